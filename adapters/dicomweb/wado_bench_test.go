//go:build linux

package dicomweb

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/testenv"
)

// readSyscalls is this process's count of read system calls so far
// (/proc/self/io syscr; -1 where there is no such file).
func readSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// processCPU is this process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRetrieveInstance: WADO-RS of the 1024² JPEG Baseline chest
// radiograph (127 kB) from the test Orthanc, as the inference stage fetches
// every image; it reports the client's CPU and the read system calls each
// retrieve makes (the client reads the multipart body through one large
// buffer: a few reads a body rather than one per 4 kB).
func BenchmarkRetrieveInstance(b *testing.B) {
	pacs := testenv.Orthanc(b)
	c, err := New(Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	if err != nil {
		b.Fatal(err)
	}
	var s *sample
	for _, x := range loadSamples(b) {
		if x.name == "cr-chest-pa-jpeg-baseline.dcm" {
			s = &x
		}
	}
	if s == nil {
		b.Fatal("no cr-chest-pa-jpeg-baseline.dcm in testdata/cxr-dicom")
	}
	if _, err := c.Store(b.Context(), s.data); err != nil {
		b.Fatal(err)
	}
	r0, cpu0 := readSyscalls(), processCPU()
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.RetrieveInstance(b.Context(), s.study, s.series, s.sop)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, s.data) {
			b.Fatal("retrieved bytes differ from the stored file")
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	if r0 >= 0 {
		b.ReportMetric(float64(readSyscalls()-r0)/float64(b.N), "reads/op")
	}
}
