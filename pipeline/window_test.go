package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for the window.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration)  { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }
func ms(n int) time.Duration              { return time.Duration(n) * time.Millisecond }
func series(s WindowStats, name, outcome string) SeriesStats {
	for _, x := range s.Series {
		if x.Name == name && x.Outcome == outcome {
			return x
		}
	}
	return SeriesStats{}
}

// Percentiles are exact (nearest rank) on known data: 1..100 ms spread
// over three minutes of the window.
func TestWindowPercentilesExact(t *testing.T) {
	clk := newFakeClock(time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC))
	w := NewWindow(clk.now)
	for i := 1; i <= 100; i++ {
		w.Record("router", "ack", ms(i))
		if i%40 == 0 {
			clk.add(time.Minute)
		}
	}
	w.Record("router", "retry", ms(7))
	s := w.Stats()
	r := series(s, "router", "ack")
	assert.Equal(t, 100, r.Count)
	assert.Equal(t, ms(50), r.P50)
	assert.Equal(t, ms(95), r.P95)
	assert.Equal(t, ms(99), r.P99)
	assert.Equal(t, 101, s.Count)
	assert.Equal(t, []int{40, 40, 21}, s.PerMinute[WindowMinutes-3:], "per minute, oldest first (the retry in the last)")
	assert.Equal(t, []int{40, 40, 20}, r.PerMinute[WindowMinutes-3:])
	assert.Equal(t, time.Date(2026, 12, 3, 9, 3, 0, 0, time.UTC), s.Start, "the window starts 59 minutes before the current one")
	require.Len(t, s.Series, 2)
	assert.Equal(t, "ack", s.Series[0].Outcome, "sorted by name and outcome")
	assert.Equal(t, ms(7), series(s, "router", "retry").P99)
}

// Minutes older than the window drop out; a bucket reused for a new minute
// starts from zero.
func TestWindowRotation(t *testing.T) {
	clk := newFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	w := NewWindow(clk.now)
	w.Record("inference", "ack", ms(900))
	clk.add(30 * time.Minute)
	w.Record("inference", "ack", ms(100))
	s := series(w.Stats(), "inference", "ack")
	assert.Equal(t, 2, s.Count)
	assert.Equal(t, ms(900), s.P99)

	clk.add(30 * time.Minute) // the first minute is now 60 minutes old
	s = series(w.Stats(), "inference", "ack")
	assert.Equal(t, 1, s.Count, "the first minute left the window")
	assert.Equal(t, ms(100), s.P99)

	w.Record("inference", "ack", ms(5)) // reuses the first minute's bucket
	s = series(w.Stats(), "inference", "ack")
	assert.Equal(t, 2, s.Count)
	assert.Equal(t, ms(100), s.P99)
	assert.Equal(t, ms(5), s.P50)

	clk.add(2 * time.Hour)
	st := w.Stats()
	assert.Zero(t, st.Count, "nothing in the last hour")
	assert.Empty(t, st.Series)
}

// Past WindowSamples events a minute keeps a sample, each weighing its
// share: counts stay exact, percentiles close.
func TestWindowBoundedSamples(t *testing.T) {
	clk := newFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	w := NewWindow(clk.now)
	for i := 1; i <= 10000; i++ {
		w.Record("deliver-fhir", "ack", ms(i%100+1))
	}
	w.mu.Lock()
	n := 0
	for _, b := range w.b {
		for _, s := range b.series {
			n += len(s.samples)
		}
	}
	w.mu.Unlock()
	assert.Equal(t, WindowSamples, n, "memory bounded")
	s := series(w.Stats(), "deliver-fhir", "ack")
	assert.Equal(t, 10000, s.Count)
	assert.InDelta(t, 50, float64(s.P50/time.Millisecond), 10)
	assert.InDelta(t, 95, float64(s.P95/time.Millisecond), 5)
}

func TestWindowConcurrentRecord(t *testing.T) {
	w := NewWindow(nil)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				w.Record("router", "ack", ms(i))
				_ = w.Stats().Count
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 2000, w.Stats().Count)
}

// BenchmarkWindowRecord is the record path the stages call per message,
// beside what the same message costs the /metrics counter and histogram.
func BenchmarkWindowRecord(b *testing.B) {
	stages := []string{"router", "inference", "deliver-fhir"}
	b.Run("window", func(b *testing.B) {
		w := NewWindow(nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			w.Record(stages[i%3], "ack", time.Duration(i)*time.Microsecond)
			i++
		}
	})
	b.Run("metrics", func(b *testing.B) {
		m := newMetrics(nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.handled.WithLabelValues(stages[i%3], "ack", "north").Inc()
			m.latency.WithLabelValues(stages[i%3], "north").Observe((time.Duration(i) * time.Microsecond).Seconds())
			i++
		}
	})
}

// BenchmarkWindowStats is one Health page's read of a full window: six
// series, every minute past WindowSamples events.
func BenchmarkWindowStats(b *testing.B) {
	clk := newFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	w := NewWindow(clk.now)
	for range WindowMinutes {
		for i := range 2 * WindowSamples {
			for _, s := range []string{"router", "router-urgent", "inference", "inference-urgent", "deliver-fhir", "deliver-fhir-urgent"} {
				w.Record(s, "ack", time.Duration(i)*time.Millisecond)
			}
		}
		clk.add(time.Minute)
	}
	clk.add(-time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if w.Stats().Count != WindowMinutes*2*WindowSamples*6 {
			b.Fatal("window not full")
		}
	}
}
