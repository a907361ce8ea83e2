package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/broker"
)

// The seed's day: 8,000 studies, a third of them in the morning peak
// (07:00–10:00): 2,667 in 3 h, 0.25 orders/s; the run compresses it in
// time. Each size sends at least peakOrders, and at least perSiteMin per
// facility so that each site's p95 has samples (n = 1000: 8,000 orders).
const (
	peakOrders = 2667
	perSiteMin = 8
)

// envInt and envFloat read a run's size from the environment (for runs by
// hand; the defaults are what BENCHMARKS.md reports).
func envFloat(name string, def float64) float64 {
	if s := os.Getenv(name); s != "" {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return v
		}
	}
	return def
}

// BenchmarkFacilities is issue 16's load run: n facilities (two of them
// real leaf-node edges, or RADGATE_LOAD_EDGES; the others one client
// connection each with their own credential) on a hub of three
// nats-servers, the morning peak compressed to RADGATE_LOAD_RATE orders/s
// (default 60). It runs once, whatever b.N (-benchtime 1x), and logs the
// figures BENCHMARKS.md gives:
// orders/s, order → result p50/p99, each site's p95, the hub's resources
// per node before the sites, with them idle, under load, and after the
// hub's RADGATE_JOBS sources every facility.
//
//	go test ./internal/loadtest -run '^$' -bench Facilities -benchtime 1x -timeout 30m -v
func BenchmarkFacilities(b *testing.B) {
	rate := envFloat("RADGATE_LOAD_RATE", 60)
	sizes := []int{10, 100, 1000}
	if s := os.Getenv("RADGATE_LOAD_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			orders := max(peakOrders, perSiteMin*n)
			if v := envFloat("RADGATE_LOAD_ORDERS", 0); v > 0 {
				orders = int(v)
			}
			edges := min(int(envFloat("RADGATE_LOAD_EDGES", 2)), n)
			res := run(b, rigOptions{Facilities: n, Edges: edges, Orders: orders, Rate: rate, Workers: 4}, true)
			b.ReportMetric(res.load.Sustained, "orders/s")
			b.ReportMetric(float64(res.load.P50.Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(res.load.P99.Microseconds())/1e3, "p99-ms")
			b.ReportMetric(float64(res.load.SiteP95Max.Microseconds())/1e3, "site-p95-max-ms")
			b.ReportMetric(res.memPerSite/1024, "hub-KiB/site")
			b.ReportMetric(res.subsPerSite, "subs/site")
			for range b.N {
			}
		})
	}
}

// TestFacilitiesHarness runs the load rig small (ten facilities, two of
// them real edges, 200 orders) so that the test command keeps it honest:
// every order's result arrives once, at its own site only, with no
// permission error on any site's connection; the hub counts a connection
// per simulated site and a leaf link per edge; a site's credential is
// refused another site's link subject.
func TestFacilitiesHarness(t *testing.T) {
	res := run(t, rigOptions{Facilities: 10, Edges: 2, Orders: 200, Rate: 40, Workers: 2}, false)
	r, f := res.rig, res.load
	if f.Done != f.Orders || f.Doubled != 0 || f.Foreign != 0 {
		t.Fatalf("%d of %d orders with a result, %d doubled, %d at another site", f.Done, f.Orders, f.Doubled, f.Foreign)
	}
	r.mu.Lock()
	errs := r.asyncErr
	r.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("errors on the sites' connections: %v", errs)
	}
	if got := total(res.idle).Leafs; got != 2 {
		t.Fatalf("the hub counts %d leaf links, want 2", got)
	}
	if got := total(res.idle).Conns - total(res.before).Conns; got < 8 {
		t.Fatalf("the hub counts %d more client connections with the sites, want 8 or more", got)
	}
	// Site 2's credential publishing on site 3's link subject is refused.
	s := r.sites[2]
	if err := s.nc.Publish(simJobs(r.sites[3].facility), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		errs := strings.Join(r.asyncErr, "; ")
		r.mu.Unlock()
		if strings.Contains(errs, "Permissions Violation") && strings.Contains(errs, simJobs(r.sites[3].facility)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site 2 published on site 3's link subject without a permission error (errors: %q)", errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// result is one run: its rig, order figures and the hub's resources.
type result struct {
	rig                     *rig
	load                    loadFigures
	before, idle, after     []nodeStats
	memPerSite, subsPerSite float64
}

// run sets the rig up, measures the hub before the sites, with them
// connected and idle, during and after the load; with sources, it then
// makes the hub's RADGATE_JOBS source every facility and measures again.
func run(tb testing.TB, o rigOptions, sources bool) result {
	t0 := time.Now()
	r := newRig(tb, o)
	settle := func() { time.Sleep(3 * time.Second) }
	settle()
	res := result{rig: r, before: r.stats()}
	logStats(tb, "before the sites (topology R3, the inference consumer)", res.before)
	t1 := time.Now()
	r.connectSites()
	tTrace := time.Now()
	stopTrace := r.startTrace(tTrace)
	tb.Logf("%d facilities (%d real edges, %d simulated clients) connected in %v (hub up in %v)", o.Facilities, o.Edges,
		o.Facilities-o.Edges, time.Since(t1).Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond))
	settle()
	res.idle = r.stats()
	logStats(tb, fmt.Sprintf("with %d sites connected, idle", o.Facilities), res.idle)
	b0, i0 := total(res.before), total(res.idle)
	res.memPerSite = float64(i0.Mem-b0.Mem) / float64(o.Facilities)
	res.subsPerSite = float64(i0.Subs-b0.Subs) / float64(o.Facilities)
	tb.Logf("per facility (idle − before, all nodes) / %d: mem %.1f KiB, subscriptions %.2f, connections %.2f, consumers %.2f",
		o.Facilities, res.memPerSite/1024, res.subsPerSite, float64(i0.Conns-b0.Conns)/float64(o.Facilities),
		float64(i0.Consumers-b0.Consumers)/float64(o.Facilities))

	// Idle traffic: heartbeats of the results consumers (all sites) and
	// of both link sources (real edges).
	idle := 10 * time.Second
	if !sources {
		idle = time.Second
	}
	idleFrom, linkFrom := total(r.stats()), r.linkMsgs()
	time.Sleep(idle)
	idleTo, linkTo := total(r.stats()), r.linkMsgs()
	secs := idle.Seconds()
	idleRate := float64(idleTo.OutMs-idleFrom.OutMs+idleTo.InMsgs-idleFrom.InMsgs) / secs
	tb.Logf("idle %v: hub nodes out %.0f msgs/s (%.2f per site), in %.0f msgs/s; real edges' links %.1f msgs/s per edge", idle,
		float64(idleTo.OutMs-idleFrom.OutMs)/secs, float64(idleTo.OutMs-idleFrom.OutMs)/secs/float64(o.Facilities),
		float64(idleTo.InMsgs-idleFrom.InMsgs)/secs, float64(linkTo-linkFrom)/secs/float64(max(o.Edges, 1)))

	tb.Logf("before the load: %s", r.linkSources())

	// The load, the hub's CPU sampled every 5 s.
	var samples [][]nodeStats
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				samples = append(samples, r.stats())
			}
		}
	}()
	loadFrom := total(r.stats())
	t2 := time.Now()
	if os.Getenv(traceEnv) != "" {
		tb.Logf("trace %6.2fs: the load starts", t2.Sub(tTrace).Seconds())
	}
	res.load = r.runLoad(2 * time.Minute)
	loadTook := time.Since(t2)
	stopTrace()
	r.logTimeline(t2)
	close(stop)
	wg.Wait()
	res.after = r.stats()
	loadTo := total(res.after)
	f := res.load
	tb.Logf("load: %d orders offered at %.0f/s (sent at %.1f/s) to %d facilities (%d each): %d results (%d doubled, %d at another site), "+
		"sustained %.1f orders/s; order → result p50 %v, p99 %v, max %v; each site's p95 over %d sites: median %v, max %v; "+
		"the real edges' orders p50 %v; hub nodes %d msgs in, %d out (%.1f an order, %.1f beyond the idle rate)", f.Orders, f.Offered, f.Sent,
		o.Facilities, f.PerSite, f.Done, f.Doubled, f.Foreign, f.Sustained, f.P50.Round(time.Microsecond*100),
		f.P99.Round(time.Microsecond*100), f.Max.Round(time.Millisecond), f.SitesMeasured, f.SiteP95Median.Round(time.Microsecond*100),
		f.SiteP95Max.Round(time.Microsecond*100), f.EdgeP50.Round(time.Microsecond*100), loadTo.InMsgs-loadFrom.InMsgs,
		loadTo.OutMs-loadFrom.OutMs, float64(loadTo.InMsgs-loadFrom.InMsgs+loadTo.OutMs-loadFrom.OutMs)/float64(max(f.Done, 1)),
		(float64(loadTo.InMsgs-loadFrom.InMsgs+loadTo.OutMs-loadFrom.OutMs)-idleRate*loadTook.Seconds())/float64(max(f.Done, 1)))
	tb.Logf("legs (p50): the real edges' orders sent → job taken on the hub %v, → result at the edge %v; "+
		"the simulated sites' %v, %v", f.EdgeToHub.Round(time.Microsecond*100), f.EdgeBack.Round(time.Microsecond*100),
		f.SimToHub.Round(time.Microsecond*100), f.SimBack.Round(time.Microsecond*100))
	var cpu []string
	for _, s := range samples {
		cpu = append(cpu, fmt.Sprintf("%.0f", total(s).CPU))
	}
	tb.Logf("hub CPU during the load (%v), percent of a core, all three nodes, every 5 s: %s", loadTook.Round(time.Second), strings.Join(cpu, " "))
	logStats(tb, "after the load", res.after)
	r.mu.Lock()
	if len(r.consumeErr) > 0 {
		tb.Logf("the hub workers' Consume reported (%d): %.3000s", len(r.consumeErr), strings.Join(r.consumeErr, "; "))
	}
	if len(r.asyncErr) > 0 {
		tb.Logf("errors on the sites' connections (%d): %.2000s", len(r.asyncErr), strings.Join(r.asyncErr, "; "))
	}
	r.mu.Unlock()
	if !sources {
		return res
	}

	// The hub's RADGATE_JOBS sources every facility (the real edges'
	// sources active; a simulated site has no JetStream, so its source
	// retries on JetStream's backoff as one whose edge is down does).
	facilities := make([]string, o.Facilities)
	for i := range facilities {
		facilities[i] = facilityName(i)
	}
	s0 := total(r.stats())
	t3 := time.Now()
	must(tb, broker.EnsureHubSources(tb.Context(), r.hubJS, facilities))
	took := time.Since(t3)
	time.Sleep(20 * time.Second)
	n, active, failing := r.sourceState()
	srcStats := r.stats()
	s1 := total(srcStats)
	tb.Logf("RADGATE_JOBS sources %d facilities: stream update %v; 20 s later %d sources, %d active, %d in error; "+
		"hub mem +%.1f MiB (%.1f KiB a source), subscriptions +%d, msgs out %.0f/s, in %.0f/s over those 20 s",
		o.Facilities, took.Round(time.Millisecond), n, active, failing, float64(s1.Mem-s0.Mem)/(1<<20),
		float64(s1.Mem-s0.Mem)/1024/float64(o.Facilities), s1.Subs-s0.Subs,
		float64(s1.OutMs-s0.OutMs)/(20+took.Seconds()), float64(s1.InMsgs-s0.InMsgs)/(20+took.Seconds()))
	logStats(tb, "with every source", srcStats)
	return res
}
