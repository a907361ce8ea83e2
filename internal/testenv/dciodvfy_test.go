package testenv

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder stands in for a test: it records a failure or skip and ends the
// goroutine as testing.T does.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(a ...any)            { r.failed = fmt.Sprint(a...); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...); runtime.Goexit() }
func (r *recorder) Skip(a ...any)             { r.skipped = fmt.Sprint(a...); runtime.Goexit() }

func runDciodvfy(t *testing.T, data []byte) (r *recorder, iod string) {
	r = &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		iod, _ = Dciodvfy(r, "sample", data)
	}()
	<-done
	return r, iod
}

// Dciodvfy fails on a file with errors, listing the Error lines; it passes
// a clean one; without dciodvfy it fails under RADGATE_REQUIRE_PEERS=1.
func TestDciodvfy(t *testing.T) {
	bad, err := os.ReadFile(Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm")) // Patient's Age "62"
	require.NoError(t, err)
	r, _ := runDciodvfy(t, bad)
	if r.skipped != "" {
		require.False(t, Required())
		t.Skip(r.skipped)
	}
	require.Contains(t, r.failed, "sample (SCImage) has 2 error(s)")
	require.Contains(t, r.failed, "Error - Value invalid for this VR - (0x0010,0x1010) AS Patient's Age")

	good, err := os.ReadFile(Testdata("cxr-dicom", "cr-hip-jpeg-lossless.dcm")) // no errors
	require.NoError(t, err)
	r, iod := runDciodvfy(t, good)
	require.Empty(t, r.failed)
	require.Equal(t, "CRImage", iod)

	t.Setenv("PATH", t.TempDir())
	t.Setenv("RADGATE_REQUIRE_PEERS", "1")
	r, _ = runDciodvfy(t, good)
	require.Contains(t, r.failed, "dciodvfy (dicom3tools) not on PATH")
	require.Empty(t, r.skipped, "a failure, not a skip")
}
