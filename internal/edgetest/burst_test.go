package edgetest

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// burstSample is the radiograph the burst clones: the smallest of
// testdata/cxr-dicom that the default engine scores (a 440² CR chest,
// JPEG-LS near-lossless, 51,660 B; no patient age, so delivered with the
// age-unknown caveat), so that 2,000 studies cost Orthanc ≈ 100 MB and
// their upload seconds.
const burstSample = "cr-chest-mono1-10bit-jpegls-near-lossless.dcm"

// burstTickReserve is how many steady ticks of sites B and C the run
// prepares studies for (two hours at one tick every 2 s).
const burstTickReserve = 3600

// BenchmarkBurstRealInference is issue 16 item 4 with real inference, on
// the serve-level rig (startServeRig: a three-node hub, two hub radgates
// running the default engine, edges for sites A, B and C; a private FHIR
// test server as every site's destination, the shared Orthanc as their
// PACS). After a warm-up order per site, B and C each order one study every
// RADGATE_BURST_EVERY (2 s) for RADGATE_BURST_BASELINE ticks (10): the
// baseline. Then A's EHR posts RADGATE_BURST_N studies (2,000) at once (16
// at a time) while B and C keep ordering every tick until A's last order
// is terminal, and C orders a stat study at the first tick after A's posts
// and every 15th tick after. RADGATE_BURST_FAIR_WINDOW sets every serve's
// orders.fair_window (default pipeline.DefaultFairWindow, 1,024), to see a
// burst larger than the window with a small N; RADGATE_BURST_HUB_WORKERS
// the hub radgates' inference.workers (default 4), to make the hub the
// bottleneck. Order → result is each order's own record at
// its edge: accepted (its intake's 2xx) → delivered (the DiagnosticReport
// written at the destination), GET /orders/{id}'s received_at and
// updated_at. It prints a table and reports A's completion time and
// throughput, B's and C's p50/p95/max during the burst, their baseline p95
// and the stat orders' worst. Every order must be delivered; every study it
// stored is deleted from Orthanc at the end, the servers and serves stop.
// Not run by the test command:
//
//	source /work/main/testenv/run/env.sh
//	go test ./internal/edgetest -run '^$' -bench BurstRealInference -benchtime 1x -timeout 90m
func BenchmarkBurstRealInference(b *testing.B) {
	n := envInt(b, "RADGATE_BURST_N", 2000)
	every := envDuration(b, "RADGATE_BURST_EVERY", 2*time.Second)
	baseTicks := envInt(b, "RADGATE_BURST_BASELINE", 10)
	const statEvery = 15
	ctx := b.Context()
	load0 := loadAvg()

	fhirSrv := testenv.StartFHIR(b)
	sites := []string{"site-a", "site-b", "site-c"}
	window := envInt(b, "RADGATE_BURST_FAIR_WINDOW", pipeline.DefaultFairWindow)
	hubWorkers := envInt(b, "RADGATE_BURST_HUB_WORKERS", config.Default().Inference.Workers)
	r := startServeRig(b, func(_ string, cfg *config.Config) {
		cfg.FHIR.BaseURL = fhirSrv.URL
		cfg.Orders.FairWindow = window
		if cfg.Role == config.RoleHub {
			cfg.Inference.Workers = hubWorkers
		}
	}, sites...)
	envA, envB, envC := r.envs["site-a"], r.envs["site-b"], r.envs["site-c"]
	st := newStudies(b, burstSample, n+len(sites)+2*baseTicks+3*burstTickReserve)

	// Warm-up: one order per site (the engines' first runs, the sources'
	// first messages), not measured.
	for _, f := range sites {
		warm := st.cases(r.envs[f], 1)
		require.NoError(b, r.envs[f].Order(ctx, warm))
		require.NoError(b, r.envs[f].Wait(ctx, warm, 3*time.Minute))
		require.Equal(b, radgate.StateDelivered, warm[0].Status.State, "warm-up order at %s: %s", f, warm[0].Status.Reason)
	}

	uploaded := time.Now()
	burst := st.cases(envA, n)
	b.Logf("%d studies for A's burst stored in Orthanc in %v (%s, %d B each)", n, time.Since(uploaded).Round(time.Millisecond), burstSample, len(st.src))

	// tick orders one routine study at B and at C, and a stat one at C.
	var mu sync.Mutex
	var orderedB, orderedC, orderedStat []*demo.Case
	tick := func(stat bool) error {
		for _, s := range []struct {
			env  *demo.Env
			list *[]*demo.Case
			prio string
		}{{envB, &orderedB, ""}, {envC, &orderedC, ""}, {envC, &orderedStat, "stat"}} {
			if s.prio == "stat" && !stat {
				continue
			}
			cs, err := st.tryCases(s.env, 1)
			if err != nil {
				return err
			}
			cs[0].Priority = s.prio
			if err := s.env.Order(ctx, cs); err != nil {
				return err
			}
			mu.Lock()
			*s.list = append(*s.list, cs...)
			mu.Unlock()
		}
		return nil
	}
	take := func() (bs, cs, stats []*demo.Case) {
		mu.Lock()
		defer mu.Unlock()
		bs, cs, stats = orderedB, orderedC, orderedStat
		orderedB, orderedC, orderedStat = nil, nil, nil
		return bs, cs, stats
	}

	// Baseline: B and C ordering steadily, no burst.
	for range baseTicks {
		require.NoError(b, tick(false))
		time.Sleep(every)
	}
	baseB, baseC, _ := take()
	require.NoError(b, envB.Wait(ctx, baseB, 3*time.Minute))
	require.NoError(b, envC.Wait(ctx, baseC, 3*time.Minute))

	// The burst: A posts n orders at once, B and C keep ordering; the hub's
	// routine inference consumer is sampled every second (its backlog past
	// the fair windows, and in them).
	cpu0 := cpuNow()
	start := time.Now()
	sampled := make(chan [4]uint64, 1)
	sampleStop := make(chan struct{})
	ajs := edgeJS(b, r.h, "site-a")
	go func() {
		var peak [4]uint64
		defer func() { sampled <- peak }()
		for {
			for i, c := range []struct {
				js              jetstream.JetStream
				stream, durable string
			}{{r.h.js, broker.StreamJobs, "inference"}, {ajs, broker.StreamOrders, "router"}} {
				if cons, err := c.js.Consumer(ctx, c.stream, c.durable); err == nil {
					if info, err := cons.Info(ctx); err == nil {
						peak[2*i], peak[2*i+1] = max(peak[2*i], info.NumPending), max(peak[2*i+1], uint64(info.NumAckPending))
					}
				}
			}
			select {
			case <-sampleStop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	posted, stop, ticked := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		var err error
		defer func() { ticked <- err }()
		for i, statAt := 0, -1; ; i++ {
			if statAt < 0 {
				select {
				case <-posted:
					statAt = i
				default:
				}
			}
			if err = tick(statAt >= 0 && (i-statAt)%statEvery == 0); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
		}
	}()
	work, postErrs := make(chan *demo.Case), make(chan error, 16)
	for range 16 {
		go func() {
			var first error
			for c := range work {
				if err := envA.Order(ctx, []*demo.Case{c}); err != nil && first == nil {
					first = err
				}
			}
			postErrs <- first
		}()
	}
	for _, c := range burst {
		work <- c
	}
	close(work)
	for range 16 {
		require.NoError(b, <-postErrs, "posting A's burst")
	}
	postedIn := time.Since(start)
	close(posted)
	b.Logf("A's %d orders accepted in %v", n, postedIn.Round(time.Millisecond))
	waitErr := envA.Wait(ctx, burst, max(10*time.Minute, time.Duration(n)*time.Second))
	cpu1 := cpuNow()
	close(stop)
	close(sampleStop)
	peak := <-sampled
	require.NoError(b, <-ticked, "B's and C's steady orders during the burst")
	require.NoError(b, waitErr, "A's burst")
	duringB, duringC, stats := take()
	require.NoError(b, envB.Wait(ctx, duringB, 5*time.Minute))
	require.NoError(b, envC.Wait(ctx, duringC, 5*time.Minute))
	require.NoError(b, envC.Wait(ctx, stats, 5*time.Minute))

	for _, set := range [][]*demo.Case{burst, baseB, baseC, duringB, duringC, stats} {
		for _, c := range set {
			require.Equal(b, radgate.StateDelivered, c.Status.State, "order %s: %s", c.OrderID, c.Status.Reason)
		}
	}
	require.NotEmpty(b, stats, "no stat order during the burst")
	for _, c := range stats {
		require.Equal(b, "stat", c.Status.Priority, "order %s", c.OrderID)
	}
	var done time.Time
	for _, c := range burst {
		if c.Status.UpdatedAt.After(done) {
			done = c.Status.UpdatedAt
		}
	}
	aTook := done.Sub(start)
	var scored []string
	for _, h := range r.hubs {
		scored = append(scored, strconv.Itoa(strings.Count(h.logs.String(), `msg="result published"`)))
	}

	rows := []burstRow{
		{"B, baseline (no burst)", latencies(baseB)},
		{"C, baseline (no burst)", latencies(baseC)},
		{"A, the burst", latencies(burst)},
		{"B, during the burst", latencies(duringB)},
		{"C, during the burst", latencies(duringC)},
		{"C stat, during the burst", latencies(stats)},
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nburst of %d studies at A (%s), B and C one study each every %v, fair window %d, %d inference workers a hub; %d CPUs, load average %s before, %s after\n",
		n, burstSample, every, window, hubWorkers, runtime.NumCPU(), load0, loadAvg())
	fmt.Fprintf(w, "A: %d orders accepted in %.1f s; all delivered %.1f s after the first post: %.2f studies/s; results published by the hub radgates: %s\n",
		n, postedIn.Seconds(), aTook.Seconds(), float64(n)/aTook.Seconds(), strings.Join(scored, " / "))
	fmt.Fprintf(w, "peaks of 1 s samples (fair window %d): the hub's routine inference consumer %d jobs waiting beyond the window, %d in it; "+
		"A's edge router %d orders beyond the window, %d in it\n", window, peak[0], peak[1], peak[2], peak[3])
	inBurst := n + len(duringB) + len(duringC) + len(stats)
	fmt.Fprintf(w, "CPU from the first post to A's last order terminal (%d orders delivered in it), per order: radgate's serves and the bench (this process) %.0f ms, "+
		"the 3 nats-servers %.0f ms, the destination FHIR server %.0f ms (Orthanc, shared, not counted)\n", inBurst,
		(cpu1.self-cpu0.self).Seconds()*1e3/float64(inBurst), (cpu1.nats-cpu0.nats).Seconds()*1e3/float64(inBurst),
		(cpu1.node-cpu0.node).Seconds()*1e3/float64(inBurst))
	printBurstTable(w, rows)
	var statList []string
	for _, c := range stats {
		// C's routine order of the same tick, filed just before it.
		var beside *demo.Case
		for _, r := range duringC {
			if !r.Status.ReceivedAt.After(c.Status.ReceivedAt) && (beside == nil || r.Status.ReceivedAt.After(beside.Status.ReceivedAt)) {
				beside = r
			}
		}
		line := fmt.Sprintf("%.1f s (filed %.0f s into the burst", c.Status.UpdatedAt.Sub(c.Status.ReceivedAt).Seconds(),
			c.Status.ReceivedAt.Sub(start).Seconds())
		if beside != nil {
			line += fmt.Sprintf("; C's routine order of the same tick %.1f s", beside.Status.UpdatedAt.Sub(beside.Status.ReceivedAt).Seconds())
		}
		statList = append(statList, line+")")
	}
	fmt.Fprintf(w, "C's stat orders: %s\n", strings.Join(statList, "; "))

	b.ReportMetric(aTook.Seconds(), "A-burst-s")
	b.ReportMetric(float64(n)/aTook.Seconds(), "A-studies/s")
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"B", rows[3].d}, {"C", rows[4].d}} {
		b.ReportMetric(ms(pct(m.d, 50)), m.name+"-p50-ms")
		b.ReportMetric(ms(pct(m.d, 95)), m.name+"-p95-ms")
		b.ReportMetric(ms(pct(m.d, 100)), m.name+"-max-ms")
	}
	b.ReportMetric(ms(pct(rows[0].d, 95)), "B-base-p95-ms")
	b.ReportMetric(ms(pct(rows[1].d, 95)), "C-base-p95-ms")
	b.ReportMetric(ms(pct(rows[5].d, 100)), "stat-max-ms")
	for range b.N {
	}
}

type burstRow struct {
	what string
	d    []time.Duration
}

func printBurstTable(w io.Writer, rows []burstRow) {
	fmt.Fprintf(w, "| order → result | orders | p50 | p95 | max |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %.1f s | %.1f s | %.1f s |\n", r.what, len(r.d), pct(r.d, 50).Seconds(), pct(r.d, 95).Seconds(), pct(r.d, 100).Seconds())
	}
}

// latencies are the cases' accepted → delivered times, as their edge
// recorded them, sorted.
func latencies(cases []*demo.Case) []time.Duration {
	d := make([]time.Duration, 0, len(cases))
	for _, c := range cases {
		d = append(d, c.Status.UpdatedAt.Sub(c.Status.ReceivedAt))
	}
	slices.Sort(d)
	return d
}

// pct is the nearest-rank p-th percentile of sorted d (100: the maximum).
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d))*p/100+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		tb.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return v
}

// cpuTimes is CPU time (user + system) so far: this process's, and its
// child processes' by kind (the hub's nats-servers, the private FHIR
// server's node).
type cpuTimes struct{ self, nats, node time.Duration }

func cpuNow() cpuTimes {
	var c cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	me := strconv.Itoa(os.Getpid())
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime (fields 14 and 15, in clock ticks of 1/100 s).
		open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if open < 0 || end < open {
			continue
		}
		comm, f := string(b[open+1:end]), strings.Fields(string(b[end+1:]))
		if len(f) < 13 || f[1] != me {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d := time.Duration(ut+st) * 10 * time.Millisecond
		switch {
		case strings.HasPrefix(comm, "nats-server"):
			c.nats += d
		case strings.HasPrefix(comm, "node"):
			c.node += d
		}
	}
	return c
}
