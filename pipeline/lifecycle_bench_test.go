package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// busyScorer burns CPU for cost per image, like an engine would.
type busyScorer struct {
	scorer
	cost time.Duration
}

func (b *busyScorer) Score(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	for range files {
		end := time.Now().Add(b.cost)
		x := 0
		for time.Now().Before(end) {
			x++
		}
		_ = x
	}
	return b.scorer.Score(ctx, files)
}

// BenchmarkStatLatencyUnderLoad measures a stat order's latency (Accept →
// delivered) on an idle pipeline and with 100 routine orders queued ahead
// of it, each costing 20 ms of CPU to score, one inference worker: the
// ratio is what issue 11 bounds by 2. The routine sub-benchmark sends the
// last order as routine, for contrast: it waits behind the queue.
//
//	go test ./pipeline -run '^$' -bench BenchmarkStatLatencyUnderLoad -benchtime 5x
func BenchmarkStatLatencyUnderLoad(b *testing.B) {
	for _, last := range []string{"stat", "routine"} {
		b.Run(last, func(b *testing.B) { benchLatencyUnderLoad(b, last) })
	}
}

func benchLatencyUnderLoad(b *testing.B, last string) {
	eng := &busyScorer{scorer: scorer{probs: map[string]float64{}}, cost: 20 * time.Millisecond}
	h := newBenchHarness(b, func(o *Options) {
		o.Engines = []radgate.Engine{eng}
		o.InferenceWorkers = 1
		o.StableAfter = -1
	})
	var seq int
	order := func(prio string) string {
		seq++
		acsn, sop := fmt.Sprintf("B%d", seq), fmt.Sprintf("s%d", seq)
		eng.scorer.probs[sop] = 0.5 // written before the order exists: no race with Score
		h.arch.add(acsn, "4."+acsn, "CR", "CHEST", sop)
		ev := sr(acsn, "b"+acsn)
		ev.Priority = prio
		st, err := h.p.Accept(context.Background(), ev)
		if err != nil {
			b.Fatal(err)
		}
		return st.ID
	}
	wait := func(id string) {
		for {
			st, err := h.p.Status(context.Background(), id)
			if err == nil && st.State.Terminal() {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	var idle, loaded time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		wait(order(last))
		idle += time.Since(start)

		var routine []string
		for range 100 {
			routine = append(routine, order("routine"))
		}
		time.Sleep(50 * time.Millisecond) // the routine queue is there
		start = time.Now()
		wait(order(last))
		loaded += time.Since(start)
		for _, id := range routine {
			wait(id)
		}
	}
	b.ReportMetric(float64(idle.Milliseconds())/float64(b.N), "idle-ms")
	b.ReportMetric(float64(loaded.Milliseconds())/float64(b.N), "loaded-ms")
	b.ReportMetric(float64(loaded)/float64(idle), "loaded/idle")
}

// BenchmarkWaitingOrdersLooks counts the PACS looks (FindStudy calls) that
// 10,000 orders waiting for their studies cost, per hour of simulated
// time, under the default schedule (poll_min 30 s doubling to poll_max
// 15 min, poll_rate 20/s): the watcher's ticks are driven by a simulated
// clock, the claims and looks are real (JetStream KV, the order store).
//
//	go test ./pipeline -run '^$' -bench BenchmarkWaitingOrdersLooks -benchtime 1x
func BenchmarkWaitingOrdersLooks(b *testing.B) {
	const n = 10000
	for range b.N {
		h := newBenchHarness(b, func(o *Options) {
			o.PollMin, o.PollMax, o.PollRate = 30*time.Second, 15*time.Minute, 20
		})
		ctx := context.Background()
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		ids := make([]string, 0, n)
		for i := range n {
			st, err := h.p.Accept(ctx, sr(fmt.Sprintf("N%d", i), fmt.Sprintf("n%d", i)))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, st.ID)
		}
		for _, id := range ids {
			if _, err := h.p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
				o.State, o.WaitUntil = radgate.StateWaiting, t0.Add(72*time.Hour)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if err := h.p.watch(ctx, id, watchEntry{Next: t0.Add(h.p.pollInterval(0)), Class: radgate.PriorityRoutine}); err != nil {
				b.Fatal(err)
			}
		}
		w := h.p.newWatcher()
		if err := w.load(ctx); err != nil {
			b.Fatal(err)
		}
		var perHour []int64
		b.ResetTimer()
		for hour := range 3 {
			before := w.looks
			for now := t0.Add(time.Duration(hour) * time.Hour); now.Before(t0.Add(time.Duration(hour+1) * time.Hour)); now = now.Add(time.Second) { // the production tick
				w.tick(ctx, now)
			}
			perHour = append(perHour, w.looks-before)
		}
		b.StopTimer()
		for i, v := range perHour {
			b.ReportMetric(float64(v), fmt.Sprintf("looks-hour%d", i+1))
		}
		var s []string
		for _, v := range perHour {
			s = append(s, fmt.Sprint(v))
		}
		b.Logf("10,000 waiting orders: PACS looks per simulated hour %s (cap %d/h)", strings.Join(s, ", "), 20*3600)
	}
}

// newBenchHarness is newIdleHarness for a benchmark, started when mutate
// leaves the stages to run (the stat benchmark) — the looks benchmark
// drives its own watcher and starts none.
func newBenchHarness(b *testing.B, mutate func(*Options)) *harness {
	h := newIdleHarness(b, mutate)
	if strings.Contains(b.Name(), "StatLatency") || strings.Contains(b.Name(), "OrderPlumbing") {
		require.NoError(b, h.p.Start(context.Background()))
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = h.p.Stop(ctx)
		})
	}
	return h
}
