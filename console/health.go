package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate/pipeline"
)

// The Health page (/console/health) and the live updates
// (/console/events, read by static/live.js).

// HealthReader is what the Health page reads of the pipeline: each stage
// consumer's backlog with the dead-letter queue's size, and the rolling
// last hour it keeps beside /metrics.
type HealthReader interface {
	Queues(ctx context.Context) ([]pipeline.StageQueue, uint64, error)
	LastHour() pipeline.LastHour
}

// OrderWatcher streams order state changes (the pipeline's WatchOrders)
// until ctx ends.
type OrderWatcher interface {
	WatchOrders(ctx context.Context) (<-chan pipeline.OrderChange, error)
}

// PeerCheck is one peer reached, as `radgate check --connect` reaches it.
type PeerCheck struct {
	// What names the peer and the check ("connect pacs http://… (QIDO-RS)").
	What string
	// Err is why it failed; "" when reachable.
	Err  string
	Took time.Duration
}

// PeerChecker checks every peer; the Health page calls it on each view,
// so it should be cached (CachePeers).
type PeerChecker interface {
	Peers(ctx context.Context) []PeerCheck
}

// CachePeers runs check at most once per ttl, each run bounded by
// timeout, and gives every caller within ttl the last result: a reload of
// the Health page never probes the peers again at once.
func CachePeers(check func(context.Context) []PeerCheck, ttl, timeout time.Duration) PeerChecker {
	return &peerCache{check: check, ttl: ttl, timeout: timeout}
}

type peerCache struct {
	check        func(context.Context) []PeerCheck
	ttl, timeout time.Duration
	mu           sync.Mutex
	at           time.Time
	last         []PeerCheck
}

func (p *peerCache) Peers(ctx context.Context) []PeerCheck {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil && time.Since(p.at) < p.ttl {
		return p.last
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
	defer cancel()
	p.last, p.at = p.check(ctx), time.Now()
	return p.last
}

// DefaultHeartbeat is how often a quiet /console/events stream gets a
// comment line, so that proxies and browsers keep it open.
const DefaultHeartbeat = 15 * time.Second

// seriesRow is one series of the last hour as the page shows it.
type seriesRow struct {
	Name, Outcome string
	Count         int
	P50, P95, P99 string
}

// minuteRow is one minute of the last hour.
type minuteRow struct {
	At               string
	Results, Handled int
}

func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func rows(s pipeline.WindowStats) []seriesRow {
	out := make([]seriesRow, 0, len(s.Series))
	for _, x := range s.Series {
		out = append(out, seriesRow{Name: x.Name, Outcome: x.Outcome, Count: x.Count,
			P50: duration(x.P50), P95: duration(x.P95), P99: duration(x.P99)})
	}
	return out
}

// barChart draws counts (one per minute from start) as an inline SVG bar
// chart: no script, no external resource, colours from console.css.
func barChart(label string, start time.Time, counts []int) template.HTML {
	const w, h, top = 600, 120, 12
	peak := 1
	for _, n := range counts {
		peak = max(peak, n)
	}
	bw := float64(w) / float64(max(len(counts), 1))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, w, h+18, w, h+18, html.EscapeString(label))
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%d" x2="%d" y2="%d"/>`, h, w, h)
	for i, n := range counts {
		if n == 0 {
			continue
		}
		bh := float64(h-top) * float64(n) / float64(peak)
		at := start.Add(time.Duration(i) * time.Minute).UTC().Format("15:04")
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s UTC: %d</title></rect>`,
			float64(i)*bw+1, float64(h)-bh, bw-2, bh, at, n)
	}
	fmt.Fprintf(&b, `<text x="0" y="%d">%s</text>`, h+15, start.UTC().Format("15:04"))
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s UTC</text>`, w, h+15, start.Add(time.Duration(len(counts)-1)*time.Minute).UTC().Format("15:04"))
	fmt.Fprintf(&b, `<text x="%d" y="10" text-anchor="end">peak %d/min</text>`, w, peak)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above from numbers, times and an escaped label
}

func (c *Console) health(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{}
	if c.o.Peers != nil {
		data["Peers"] = c.o.Peers.Peers(r.Context())
	}
	if c.o.Health != nil {
		qs, dlq, err := c.o.Health.Queues(r.Context())
		if err != nil {
			c.log.Warn("console health: queues not read", "error", err)
			data["QueuesErr"] = err.Error()
		}
		data["Queues"], data["DLQ"] = qs, dlq
		lh := c.o.Health.LastHour()
		minutes := make([]minuteRow, 0, len(lh.Results.PerMinute))
		for i := len(lh.Results.PerMinute) - 1; i >= 0; i-- {
			if lh.Results.PerMinute[i]+lh.Stages.PerMinute[i] == 0 {
				continue
			}
			minutes = append(minutes, minuteRow{At: lh.Results.Start.Add(time.Duration(i) * time.Minute).Format("15:04"),
				Results: lh.Results.PerMinute[i], Handled: lh.Stages.PerMinute[i]})
		}
		data["Hour"] = map[string]any{
			"Results": lh.Results.Count, "Handled": lh.Stages.Count,
			"ResultsChart": barChart("Results per minute, last hour", lh.Results.Start, lh.Results.PerMinute),
			"HandledChart": barChart("Stage messages per minute, last hour", lh.Stages.Start, lh.Stages.PerMinute),
			"ResultRows":   rows(lh.Results), "StageRows": rows(lh.Stages), "Minutes": minutes,
		}
	}
	c.render(w, r, http.StatusOK, "health", data)
}

// events streams order state changes as server-sent events (event
// "order", data pipeline.OrderChange as JSON: id, state, facility, tier —
// no patient data), one NATS subscription per stream, ended when the
// client goes, with a comment every Heartbeat. ?order=ID sends only that
// order's changes.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	if c.o.Changes == nil {
		http.Error(w, "this radgate has no live order changes", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	changes, err := c.o.Changes.WatchOrders(ctx)
	if err != nil {
		c.log.Error("console events: watch failed", "error", err)
		http.Error(w, "order changes cannot be watched now", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	only := r.URL.Query().Get("order")
	every := c.o.Heartbeat
	if every <= 0 {
		every = DefaultHeartbeat
	}
	u := userFrom(r)
	c.log.Debug("console events: stream opened", "subject", u.Name)
	defer c.log.Debug("console events: stream closed", "subject", u.Name)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 3000\n: radgate order changes\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.o.Done:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case ch, ok := <-changes:
			if !ok {
				return
			}
			if only != "" && ch.Order != only {
				continue
			}
			b, _ := json.Marshal(ch)
			if _, err := fmt.Fprintf(w, "event: order\ndata: %s\n\n", b); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
