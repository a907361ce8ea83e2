package dimse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// BenchmarkStoreIngest: C-STORE ingest over loopback on one association
// from our Dialer, into our Server (the handler reads every byte and
// drops it) and, in the same run, into dcmtk's storescp --ignore (receives
// and drops; TCP_NODELAY=1, see startStorescp), both announcing a 128 KiB maximum PDU. MB/s through
// b.SetBytes, instances/s as a metric; compare the two as a ratio. The
// data set is the 1 MiB Implicit VR testdata radiograph.
func BenchmarkStoreIngest(b *testing.B) {
	var f part10
	for _, c := range cxrFiles(b) {
		if c.transferSyntax == ImplicitVRLittleEndian {
			f = c
		}
	}
	b.Run("radgate", func(b *testing.B) {
		sink := StoreHandlerFunc(func(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
			if _, err := io.Copy(io.Discard, data); err != nil {
				return StatusOutOfResources
			}
			return StatusSuccess
		})
		addr, _ := startServer(b, &Server{AETitle: "RADGATE", Store: sink, MaxPDULength: 131072})
		benchStore(b, addr, f)
	})
	b.Run("storescp", func(b *testing.B) {
		benchStore(b, startStorescp(b), f)
	})
	// What radgate serve does with each instance: Intake reads it whole,
	// checks its header, and stores it durably in the image store
	// (JetStream, file storage) before answering — next to storescp
	// writing each instance to a file.
	b.Run("radgate-durable", func(b *testing.B) {
		serveGC(b)
		arch := newArchive(b, ArchiveLimits{MaxAge: time.Hour})
		in := &Intake{Archive: arch, Orders: &orders{}, Facilities: radgate.NewFacilities([]config.Facility{{ID: "bench", AETitles: []string{"BENCH"}}}),
			MaxInstanceBytes: 64 << 20}
		addr, _ := startServer(b, &Server{AETitle: "RADGATE", Accept: in.Accept, Store: in, MaxPDULength: 131072})
		benchStore(b, addr, f)
	})
	b.Run("storescp-files", func(b *testing.B) {
		addr, pid := startStorescpProc(b, "-od", b.TempDir())
		benchStoreParallel(b, addr, f, 1, pid)
	})
	// The same two with parallelAssociations associations sending at
	// once (a modality or a PACS forwarding in parallel); storescp
	// --fork serves each association in a process of its own.
	b.Run(fmt.Sprintf("radgate-durable-%dassoc", parallelAssociations), func(b *testing.B) {
		serveGC(b)
		arch := newArchive(b, ArchiveLimits{MaxAge: time.Hour})
		in := &Intake{Archive: arch, Orders: &orders{}, Facilities: radgate.NewFacilities([]config.Facility{{ID: "bench", AETitles: []string{"BENCH"}}}),
			MaxInstanceBytes: 64 << 20}
		addr, _ := startServer(b, &Server{AETitle: "RADGATE", Accept: in.Accept, Store: in, MaxPDULength: 131072})
		benchStoreParallel(b, addr, f, parallelAssociations, 0)
	})
	b.Run(fmt.Sprintf("storescp-files-%dassoc", parallelAssociations), func(b *testing.B) {
		addr, pid := startStorescpProc(b, "--fork", "-od", b.TempDir())
		benchStoreParallel(b, addr, f, parallelAssociations, pid)
	})
}

// serveGC sets, until b ends, the garbage collector's target radgate
// serve runs with by default (runtime.gc_percent, service.ApplyRuntime),
// unless GOGC is set: the durable rows measure the SCP as serve runs it.
func serveGC(b *testing.B) {
	if os.Getenv("GOGC") != "" {
		return
	}
	prev := debug.SetGCPercent(config.DefaultRuntime().GCPercent)
	b.Cleanup(func() { debug.SetGCPercent(prev) })
}

// parallelAssociations is how many associations the parallel rows of
// BenchmarkStoreIngest send on at once.
const parallelAssociations = 4

func benchStore(b *testing.B, addr string, f part10) {
	benchStoreParallel(b, addr, f, 1, 0)
}

// benchStoreParallel sends b.N instances on n associations at once, each
// association its share, one C-STORE after another. Besides MB/s it
// reports cpu-ms/instance: the CPU time (user + system) of this process
// (the sender, and radgate's SCP with its embedded NATS when they are the
// receiver) and of process pid and its children (a storescp receiver; 0:
// none) while the instances were sent, per instance — what each receiver
// costs whatever else the machine runs.
func benchStoreParallel(b *testing.B, addr string, f part10, n, pid int) {
	ctx := context.Background()
	// Every instance is a new one (its SOP Instance UID's last digits vary,
	// the length stays): a receiver that keeps files keeps each.
	at := bytes.Index(f.dataset, []byte(f.sopInstance))
	if last := f.sopInstance[strings.LastIndexByte(f.sopInstance, '.')+1:]; at < 0 || len(last) < 6 {
		b.Fatal("the data set does not hold its SOP Instance UID, or its last component is short")
	}
	assocs := make([]*Association, n)
	for i := range assocs {
		a, err := (&Dialer{CallingAE: "BENCH", CalledAE: "RADGATE", MaxPDULength: 131072}).Dial(ctx, addr, StoreContexts([]string{f.sopClass}, ImplicitVRLittleEndian))
		if err != nil {
			b.Fatal(err)
		}
		defer a.Release(ctx)
		assocs[i] = a
	}
	b.SetBytes(int64(len(f.dataset)))
	b.ResetTimer()
	start, cpu0 := time.Now(), selfCPU()+procTreeCPU(pid)
	var next atomic.Int64
	errs := make(chan error, n)
	for _, a := range assocs {
		go func() {
			ds := bytes.Clone(f.dataset)
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				sop := fmt.Sprintf("%s9%05d", f.sopInstance[:len(f.sopInstance)-6], i%100_000)
				copy(ds[at:], sop)
				s, err := a.Store(ctx, f.sopClass, sop, ImplicitVRLittleEndian, bytes.NewReader(ds))
				if err != nil || s != StatusSuccess {
					errs <- fmt.Errorf("instance %d: status %v: %v", i, s, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range assocs {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), selfCPU()+procTreeCPU(pid)-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "instances/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/instance")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
}

// peakRSS is this process's peak resident set so far (VmHWM of
// /proc/self/status; 0 without /proc): the memory a receiver in this
// process (radgate's SCP with its embedded NATS) needed at its most.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procTreeCPU is the CPU time so far of process pid and of its children
// now running (storescp --fork's association processes), from /proc; 0
// for pid 0 or without /proc.
func procTreeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	total := procCPU(pid)
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		for _, c := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(c); err == nil {
				total += procCPU(child)
			}
		}
	}
	return total
}

// procCPU reads utime + stime (fields 14 and 15, clock ticks of 1/100 s)
// of /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// startStorescp runs dcmtk's storescp --ignore (or with args) on a free
// port until the benchmark ends.
func startStorescp(b *testing.B, args ...string) string {
	addr, _ := startStorescpProc(b, args...)
	return addr
}

// startStorescpProc is startStorescp, with storescp's process id.
func startStorescpProc(b *testing.B, args ...string) (string, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if len(args) == 0 {
		args = []string{"--ignore"}
	}
	cmd := exec.Command(requireTool(b, "storescp"), append(args, "-aet", "RADGATE", "-pdu", "131072", strconv.Itoa(port))...)
	// Measured: without TCP_NODELAY=1 in its environment (a DCMTK
	// variable) storescp answers each C-STORE about 45 ms late, the
	// Nagle / delayed-ACK stall; dcmsend into it shows the same.
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, cmd.Process.Pid
		}
		if time.Now().After(end) {
			b.Fatal("storescp did not listen within 10 s")
		}
	}
}

// BenchmarkAssociationSetup: one association requested, accepted (one
// storage context and Verification) and released over loopback, from our
// Dialer to radgate's Storage SCP as serve builds it (Intake admitting the
// caller from the facility list, the image store's room checked) and, in
// the same run, to dcmtk's storescp.
func BenchmarkAssociationSetup(b *testing.B) {
	ctxs := StoreContexts([]string{StorageSOPClasses[0]}, ExplicitVRLittleEndian, ImplicitVRLittleEndian)
	run := func(b *testing.B, addr string) {
		ctx := context.Background()
		d := &Dialer{CallingAE: "BENCH", CalledAE: "RADGATE"}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			a, err := d.Dial(ctx, addr, ctxs)
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("radgate", func(b *testing.B) {
		arch := newArchive(b, ArchiveLimits{MaxAge: time.Hour, MaxBytes: 1 << 30})
		in := &Intake{Archive: arch, Orders: &orders{}, Facilities: radgate.NewFacilities([]config.Facility{{ID: "bench", AETitles: []string{"BENCH"}}}),
			MaxInstanceBytes: 64 << 20, MinFreeBytes: 1 << 20}
		addr, _ := startServer(b, &Server{AETitle: "RADGATE", Accept: in.Accept, Store: in})
		run(b, addr)
	})
	b.Run("storescp", func(b *testing.B) {
		run(b, startStorescp(b))
	})
}

// BenchmarkArchivePut: Archive.Put alone (no protocol) of the 1 MiB
// Implicit VR testdata radiograph as new instances: what the durable
// write costs a C-STORE.
func BenchmarkArchivePut(b *testing.B) {
	file, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	if err != nil {
		b.Fatal(err)
	}
	rec, err := RecordOf(file)
	if err != nil {
		b.Fatal(err)
	}
	a := newArchive(b, ArchiveLimits{MaxAge: time.Hour})
	b.SetBytes(int64(len(file)))
	for i := 0; b.Loop(); i++ {
		rec.SOPInstanceUID = fmt.Sprintf("%s.%d", rec.SeriesInstanceUID, i)
		if err := a.Put(b.Context(), rec, file); err != nil {
			b.Fatal(err)
		}
	}
}
