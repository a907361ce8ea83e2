package pipeline

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// The rolling window (the console's Health page, "last hour"): radgate's
// own record of the last 60 minutes, beside the cumulative /metrics
// counters and histograms and recorded at the same places, so the two
// count the same events.

// WindowMinutes is how many one-minute buckets a Window keeps.
const WindowMinutes = 60

// WindowSamples bounds the durations a Window keeps per series per minute;
// past it a minute keeps a uniform random sample of that many (reservoir
// sampling) and each sample weighs count/WindowSamples in the percentiles.
// Memory is therefore at most series × WindowMinutes × WindowSamples × 8
// bytes (about 120 KiB per series), whatever the load.
const WindowSamples = 256

// seriesKey names a series: a stage and its verdict, or an engine and
// its result's outcome.
type seriesKey struct{ name, outcome string }

type windowSeries struct {
	count   int
	samples []time.Duration
}

type windowBucket struct {
	minute int64 // Unix minute the bucket holds; others are stale
	series map[seriesKey]*windowSeries
}

// Window counts events and keeps their durations per minute for the last
// WindowMinutes minutes, by series (name × outcome). Safe for concurrent
// use; Record does not allocate once a series has been seen in a bucket.
type Window struct {
	now func() time.Time
	mu  sync.Mutex
	b   [WindowMinutes]windowBucket
}

// NewWindow returns an empty window on clock now (time.Now when nil).
func NewWindow(now func() time.Time) *Window {
	if now == nil {
		now = time.Now
	}
	w := &Window{now: now}
	for i := range w.b {
		w.b[i].minute = math.MinInt64
	}
	return w
}

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 && s%60 != 0 {
		return s/60 - 1
	}
	return s / 60
}

// Record counts one event of series name × outcome that took d.
func (w *Window) Record(name, outcome string, d time.Duration) {
	if w == nil {
		return
	}
	m := unixMinute(w.now())
	w.mu.Lock()
	b := &w.b[int(((m%WindowMinutes)+WindowMinutes)%WindowMinutes)]
	if b.minute != m {
		for _, s := range b.series {
			s.count, s.samples = 0, s.samples[:0]
		}
		b.minute = m
	}
	if b.series == nil {
		b.series = map[seriesKey]*windowSeries{}
	}
	s := b.series[seriesKey{name, outcome}]
	if s == nil {
		s = &windowSeries{}
		b.series[seriesKey{name, outcome}] = s
	}
	s.count++
	if len(s.samples) < WindowSamples {
		s.samples = append(s.samples, d)
	} else if j := rand.IntN(s.count); j < WindowSamples {
		s.samples[j] = d
	}
	w.mu.Unlock()
}

// SeriesStats is one series over the window.
type SeriesStats struct {
	Name, Outcome string
	// Count is the events of the whole window; PerMinute the events of
	// each minute, oldest first (WindowMinutes entries, the last one the
	// current minute).
	Count     int
	PerMinute []int
	// P50, P95 and P99 are the durations' percentiles over the window
	// (nearest rank; exact while no minute had more than WindowSamples
	// events of the series).
	P50, P95, P99 time.Duration
}

// WindowStats is a Window's last hour.
type WindowStats struct {
	// Start is the first minute's start; minute i covers Start+i min.
	Start time.Time
	// PerMinute is every series' events together per minute, oldest first.
	PerMinute []int
	Count     int
	// Series are sorted by name and outcome.
	Series []SeriesStats
}

type weighted struct {
	d time.Duration
	w float64
}

// Stats returns the last WindowMinutes minutes, the current one included.
func (w *Window) Stats() WindowStats {
	now := unixMinute(w.now())
	first := now - WindowMinutes + 1
	out := WindowStats{Start: time.Unix(first*60, 0).UTC(), PerMinute: make([]int, WindowMinutes)}
	idx := map[seriesKey]int{}
	var sizes []int
	live := func(b *windowBucket) bool { return b.minute >= first && b.minute <= now }
	w.mu.Lock()
	for i := range w.b { // counts, and how many samples each series has
		b := &w.b[i]
		if !live(b) {
			continue
		}
		slot := int(b.minute - first)
		for k, s := range b.series {
			if s.count == 0 {
				continue
			}
			j, ok := idx[k]
			if !ok {
				j = len(out.Series)
				idx[k] = j
				out.Series = append(out.Series, SeriesStats{Name: k.name, Outcome: k.outcome, PerMinute: make([]int, WindowMinutes)})
				sizes = append(sizes, 0)
			}
			out.Series[j].Count += s.count
			out.Series[j].PerMinute[slot] += s.count
			out.PerMinute[slot] += s.count
			out.Count += s.count
			sizes[j] += len(s.samples)
		}
	}
	samples := make([][]weighted, len(sizes))
	for j, n := range sizes {
		samples[j] = make([]weighted, 0, n)
	}
	for i := range w.b { // the samples, each weighing its minute's count / kept
		b := &w.b[i]
		if !live(b) {
			continue
		}
		for k, s := range b.series {
			if s.count == 0 {
				continue
			}
			j := idx[k]
			weight := float64(s.count) / float64(len(s.samples))
			for _, d := range s.samples {
				samples[j] = append(samples[j], weighted{d, weight})
			}
		}
	}
	w.mu.Unlock()
	for _, j := range idx {
		ss := samples[j]
		slices.SortFunc(ss, func(a, b weighted) int { return cmp.Compare(a.d, b.d) })
		out.Series[j].P50, out.Series[j].P95, out.Series[j].P99 = percentile(ss, 0.50), percentile(ss, 0.95), percentile(ss, 0.99)
	}
	slices.SortFunc(out.Series, func(a, b SeriesStats) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Outcome, b.Outcome))
	})
	return out
}

// percentile is the nearest-rank p-th percentile of sorted weighted
// samples: the smallest duration whose cumulative weight reaches p of the
// total.
func percentile(sorted []weighted, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	total := 0.0
	for _, s := range sorted {
		total += s.w
	}
	// With unit weights this is rank ceil(p·n); the small tolerance keeps
	// float sums from skipping it.
	target := math.Ceil(p*total-1e-9) - 1e-9
	acc := 0.0
	for _, s := range sorted {
		acc += s.w
		if acc >= target {
			return s.d
		}
	}
	return sorted[len(sorted)-1].d
}

// LastHour is the pipeline's rolling window.
type LastHour struct {
	// Stages: messages handled per stage × verdict (ack, retry,
	// dead-letter) and the time each took, as radgate_stage_messages_total
	// and radgate_stage_handle_seconds count them.
	Stages WindowStats
	// Results: results per engine × outcome (radgate_results_total) and
	// the time from the order's receipt to the result.
	Results WindowStats
}

// LastHour returns the last hour of the pipeline's work.
func (p *Pipeline) LastHour() LastHour {
	return LastHour{Stages: p.stages.Stats(), Results: p.results.Stats()}
}
