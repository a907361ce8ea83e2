//go:build !linux

package bench

import (
	"errors"
	"time"
)

// The bench reads processes from /proc: Linux only.
var errNoProc = errors.New("radgate bench measures processes through /proc: Linux only")

func procCPU(int) (time.Duration, error) { return 0, errNoProc }
func procRSS(int) (int64, error)         { return 0, errNoProc }
func procCmdline(int) (string, error)    { return "", errNoProc }
func selfCPU() time.Duration             { return 0 }
func diskUsage(string) (int64, error)    { return 0, errNoProc }
