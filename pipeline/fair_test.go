package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// slowSource is a PACS that takes d to answer each query: the router is
// the bottleneck, as with a real PACS under a burst.
type slowSource struct {
	*archive
	d time.Duration
}

func (s slowSource) FindStudy(ctx context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.d):
	}
	return s.archive.FindStudy(ctx, q)
}

// arrivals is a Sink that records the order in which results arrive, and
// when.
type arrivals struct {
	mu    sync.Mutex
	order []string
	at    map[string]time.Time
}

func (a *arrivals) Deliver(_ context.Context, res radgate.Result) (radgate.Receipt, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string]time.Time{}
	}
	if _, ok := a.at[res.Order.ID]; !ok {
		a.order = append(a.order, res.Order.ID)
		a.at[res.Order.ID] = time.Now()
	}
	return radgate.Receipt{Report: "DiagnosticReport/" + res.ID}, nil
}

func (a *arrivals) snapshot() ([]string, map[string]time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := make(map[string]time.Time, len(a.at))
	for k, v := range a.at {
		at[k] = v
	}
	return append([]string(nil), a.order...), at
}

var threeSites = []config.Facility{{ID: "site-a", Name: "A"}, {ID: "site-b", Name: "B"}, {ID: "site-c", Name: "C"}}

// burstHarness is a pipeline with three facilities, one router and one
// inference worker, a PACS answering in pacs, and window (<0: stream
// order) messages served in turn.
func burstHarness(t testing.TB, window int, pacs time.Duration) (*harness, *arrivals) {
	sink, arch := &arrivals{}, newArchive()
	h := newIdleHarness(t, func(o *Options) {
		o.Source = slowSource{arch, pacs}
		o.Facilities = radgate.NewFacilities(threeSites)
		o.RouterWorkers, o.InferenceWorkers, o.FairWindow = 1, 1, window
		o.StableAfter = -1
		o.Sinks = map[string]radgate.Sink{"fhir": sink}
		o.DeliveryWindow = time.Minute
	})
	h.arch = arch
	return h, sink
}

// burst accepts counts[site] orders from each site of sites in turn (all
// of one site, then the next), then a stat one from statFrom when set
// (under "stat"); it returns the order ids by site, and when each was
// accepted.
func burst(t testing.TB, h *harness, counts map[string]int, sites []string, statFrom string) (map[string][]string, map[string]time.Time) {
	ids, accepted := map[string][]string{}, map[string]time.Time{}
	seq := 0
	accept := func(site, prio string) string {
		seq++
		acsn := fmt.Sprintf("%s%04d", site, seq)
		h.arch.add(acsn, "9."+acsn, "CR", "CHEST", "sop-1")
		ev := sr(acsn, acsn)
		ev.Facility, ev.Priority = site, prio
		st, err := h.p.Accept(context.Background(), ev)
		require.NoError(t, err)
		accepted[st.ID] = time.Now()
		return st.ID
	}
	for _, s := range sites {
		for range counts[s] {
			ids[s] = append(ids[s], accept(s, ""))
		}
	}
	if statFrom != "" {
		ids["stat"] = append(ids["stat"], accept(statFrom, "stat"))
	}
	return ids, accepted
}

// waitArrivals waits until n results have arrived.
func waitArrivals(t testing.TB, a *arrivals, n int, within time.Duration) ([]string, map[string]time.Time) {
	deadline := time.Now().Add(within)
	for {
		order, at := a.snapshot()
		if len(order) >= n {
			return order, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results arrived within %v", len(order), n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A burst from facility A does not starve B and C: their orders, queued
// behind A's whole burst in the stream, are scored and delivered while A
// still has a backlog (they wait for at most the window, not the burst),
// and a stat order from A overtakes A's own routine ones. The stages are
// the real ones on JetStream; the PACS is slow, so the router is the
// bottleneck.
func TestBurstFromOneFacilityDoesNotStarveTheOthers(t *testing.T) {
	const window, n = 20, 60
	h, sink := burstHarness(t, window, 20*time.Millisecond)
	ids, _ := burst(t, h, map[string]int{"A": n, "B": 3, "C": 3}, []string{"A", "B", "C"}, "A")
	require.NoError(t, h.p.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, h.p.Stop(ctx))
	})
	order, _ := waitArrivals(t, sink, n+7, time.Minute)
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	lastOther := 0
	for _, id := range append(append([]string(nil), ids["B"]...), ids["C"]...) {
		lastOther = max(lastOther, pos[id])
	}
	aAfter := 0
	for _, id := range ids["A"] {
		if pos[id] > lastOther {
			aAfter++
		}
	}
	t.Logf("B and C all delivered at position %d of %d; %d of A's %d after them; the stat order at %d",
		lastOther, len(order), aAfter, n, pos[ids["stat"][0]])
	// In stream order B and C would come after all of A's burst (aAfter
	// 0); in turn, they come once they are in the window, with about a
	// window of A's still waiting.
	require.GreaterOrEqual(t, aAfter, window/4, "B and C waited for A's backlog to drain")
	require.Less(t, pos[ids["stat"][0]], n/2, "the stat order did not overtake A's routine backlog")
}

// The queue serves keys in turn, each in its own order.
func TestFairQueueTakesFacilitiesInTurn(t *testing.T) {
	q := newFairQueue(100)
	msgs := map[string]*testMsg{}
	for _, k := range []string{"a1", "a2", "a3", "a4", "b1", "c1", "c2"} {
		m := fakeMsg(t, k)
		msgs[k] = m
		require.True(t, q.push(k[:1], m))
	}
	var got []string
	for range 7 {
		m, ok := q.pop()
		require.True(t, ok)
		for k, v := range msgs {
			if v == m {
				got = append(got, k)
			}
		}
	}
	require.Equal(t, []string{"a1", "b1", "c1", "a2", "c2", "a3", "a4"}, got)
	require.True(t, q.push("a", msgs["a1"]))
	require.Len(t, q.close(), 1)
	_, ok := q.pop()
	require.False(t, ok)
	require.False(t, q.push("a", msgs["a2"]), "closed")
}

// BenchmarkBurstSiteLatency measures each site's order→delivery latency
// (p50, p95) when site A sends a burst of 300 orders and B and C 30 each
// just after, with the facilities served in turn (the default window) and
// in stream order, in the same run. The stages are the real ones on
// JetStream; the PACS answers each query in 5 ms and the engine is the
// test stub, so the router (one worker) is the bottleneck: what is
// measured is the scheduling. Run with -benchtime=1x.
func BenchmarkBurstSiteLatency(b *testing.B) {
	for _, mode := range []struct {
		name   string
		window int
	}{{"in-turn", 0}, {"stream-order", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				h, sink := burstHarness(b, mode.window, 5*time.Millisecond)
				counts := map[string]int{"A": 300, "B": 30, "C": 30}
				ids, accepted := burst(b, h, counts, []string{"A", "B", "C"}, "")
				start := time.Now()
				require.NoError(b, h.p.Start(context.Background()))
				_, at := waitArrivals(b, sink, 360, 5*time.Minute)
				b.ReportMetric(time.Since(start).Seconds(), "s-all")
				for _, site := range []string{"A", "B", "C"} {
					var lat []float64
					for _, id := range ids[site] {
						lat = append(lat, float64(at[id].Sub(accepted[id]).Milliseconds()))
					}
					sort.Float64s(lat)
					b.ReportMetric(lat[len(lat)/2], site+"-p50-ms")
					b.ReportMetric(lat[(len(lat)*95+99)/100-1], site+"-p95-ms")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				require.NoError(b, h.p.Stop(ctx))
				cancel()
			}
		})
	}
}
