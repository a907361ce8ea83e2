//go:build unix

package onnx

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the process has used so far,
// ONNX Runtime's own pool threads included. Benchmarks report it per image
// beside wall time: on a shared, loaded machine wall time mostly measures
// waiting for a core, CPU time the work (and any spinning).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
