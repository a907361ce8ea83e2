package console

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/pipeline"
)

type fakeHealth struct{ lh pipeline.LastHour }

func (fakeHealth) Queues(context.Context) ([]pipeline.StageQueue, uint64, error) {
	return []pipeline.StageQueue{{Stage: "inference", Stream: "RADGATE_JOBS", Consumer: "inference", Pending: 7, AckPending: 2, Redelivered: 1}}, 3, nil
}

func (f fakeHealth) LastHour() pipeline.LastHour { return f.lh }

type fakePeers []PeerCheck

func (f fakePeers) Peers(context.Context) []PeerCheck { return f }

// fakeWatcher hands out one channel per watch and reports when a watch's
// context ends.
type fakeWatcher struct {
	ch    chan pipeline.OrderChange
	ended chan struct{}
}

func (f *fakeWatcher) WatchOrders(ctx context.Context) (<-chan pipeline.OrderChange, error) {
	go func() { <-ctx.Done(); close(f.ended) }()
	return f.ch, nil
}

func healthEnv(t *testing.T, o func(*Options)) *env {
	t.Helper()
	f := &fakeOrders{}
	opts := Options{Auth: staticAuth(t), Sessions: sessions(t), Orders: f, Order: f, Now: func() time.Time { return now }}
	o(&opts)
	con, err := New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{srv: srv, c: c, orders: f}
}

func lastHour() pipeline.LastHour {
	start := time.Date(2026, 12, 3, 11, 1, 0, 0, time.UTC)
	per := make([]int, pipeline.WindowMinutes)
	per[58], per[59] = 4, 2
	return pipeline.LastHour{
		Results: pipeline.WindowStats{Start: start, PerMinute: per, Count: 6, Series: []pipeline.SeriesStats{
			{Name: "cxr", Outcome: "scored", Count: 6, PerMinute: per, P50: 2500 * time.Millisecond, P95: 4 * time.Second, P99: 41 * time.Second}}},
		Stages: pipeline.WindowStats{Start: start, PerMinute: per, Count: 6, Series: []pipeline.SeriesStats{
			{Name: "router", Outcome: "ack", Count: 6, PerMinute: per, P50: 3 * time.Millisecond, P95: 12 * time.Millisecond, P99: 12 * time.Millisecond}}},
	}
}

func TestHealthPage(t *testing.T) {
	e := healthEnv(t, func(o *Options) {
		o.Health = fakeHealth{lastHour()}
		o.Peers = fakePeers{{What: "connect pacs http://pacs (QIDO-RS)", Took: 12 * time.Millisecond},
			{What: "connect destination ris 10.0.0.9:2575 (MLLP)", Err: "connection refused"}}
	})
	r, _ := e.get(t, "/console/health")
	require.Equal(t, http.StatusSeeOther, r.StatusCode, "signed out: the sign-in page")
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/health")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, "default-src 'self'; form-action 'self'; frame-ancestors 'none'", r.Header.Get("Content-Security-Policy"))
	assert.Contains(t, body, `<a href="/console/health">Health</a>`)
	assert.Regexp(t, `connect pacs http://pacs \(QIDO-RS\)</td><td class="ok">yes`, body)
	assert.Contains(t, body, `<td class="error">no — connection refused</td>`)
	assert.Regexp(t, `<th scope="row">inference</th><td><code>RADGATE_JOBS</code> / <code>inference</code></td><td class="num">7</td><td class="num">2</td><td class="num">1</td>`, body)
	assert.Contains(t, body, `<strong class="dlq">3</strong> messages`)
	assert.Contains(t, body, "<strong>6</strong> results")
	assert.Regexp(t, `<th scope="row">cxr</th><td>scored</td><td class="num">6</td><td class="num">2.5 s</td><td class="num">4.0 s</td><td class="num">41.0 s</td>`, body)
	assert.Regexp(t, `<th scope="row">router</th><td>ack</td><td class="num">6</td><td class="num">3.0 ms</td>`, body)
	assert.Contains(t, body, `<svg class="bars"`)
	assert.Contains(t, body, `<title>12:00 UTC: 2</title>`, "the last minute's bar")
	assert.Contains(t, body, `<title>11:59 UTC: 4</title>`)
	assert.Equal(t, 4, strings.Count(body, "<rect "), "two bars per chart (minutes with events)")
	assert.Contains(t, body, `<tbody><tr><th scope="row">12:00</th><td class="num">2</td><td class="num">2</td></tr><tr><th scope="row">11:59</th><td class="num">4</td><td class="num">4</td></tr></tbody>`,
		"the numbers as a table, newest first, minutes with work")
	assert.NotContains(t, body, "<script>", "no inline script")
	assert.Contains(t, body, `<script src="/console/static/live.js" defer></script>`)
	r, _ = e.post(t, "/console/health", nil)
	assert.Equal(t, http.StatusForbidden, r.StatusCode, "a POST without the CSRF token is refused")
}

func TestHealthPageWithoutComponents(t *testing.T) {
	e := healthEnv(t, func(*Options) {})
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/health")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "No peer to check.")
}

func TestLiveScriptServed(t *testing.T) {
	e := healthEnv(t, func(*Options) {})
	r, body := e.get(t, "/console/static/live.js")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, r.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, body, `new EventSource(url)`)
}

func TestCachePeers(t *testing.T) {
	var calls atomic.Int32
	p := CachePeers(func(ctx context.Context) []PeerCheck {
		calls.Add(1)
		dl, ok := ctx.Deadline()
		require.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(time.Second), dl, 200*time.Millisecond, "each run bounded by the timeout")
		return []PeerCheck{{What: "x"}}
	}, 50*time.Millisecond, time.Second)
	p.Peers(t.Context())
	p.Peers(t.Context())
	assert.Equal(t, int32(1), calls.Load(), "cached")
	time.Sleep(60 * time.Millisecond)
	p.Peers(t.Context())
	assert.Equal(t, int32(2), calls.Load(), "run again after the ttl")
}

// sse reads one server-sent events stream line by line.
type sse struct {
	lines chan string
	resp  *http.Response
}

func openSSE(t *testing.T, e *env, path string) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+path, nil)
	require.NoError(t, err)
	r, err := e.c.Do(req)
	require.NoError(t, err)
	s := &sse{lines: make(chan string, 64), resp: r}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

func (s *sse) next(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			require.True(t, ok, "stream ended before a line starting %q", prefix)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line starting %q in 5 s", prefix)
		}
	}
}

func TestEventsStream(t *testing.T) {
	w := &fakeWatcher{ch: make(chan pipeline.OrderChange), ended: make(chan struct{})}
	e := healthEnv(t, func(o *Options) { o.Changes = w; o.Heartbeat = 20 * time.Millisecond })
	r, _ := e.get(t, "/console/events")
	require.Equal(t, http.StatusSeeOther, r.StatusCode, "signed out: no stream")
	e.signIn(t, "tok-viewer")

	s := openSSE(t, e, "/console/events?order=0a1b")
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	assert.Equal(t, "default-src 'self'; form-action 'self'; frame-ancestors 'none'", s.resp.Header.Get("Content-Security-Policy"))
	s.next(t, ": heartbeat")
	w.ch <- pipeline.OrderChange{Order: "ffff", State: "routed"} // another order: filtered out
	w.ch <- pipeline.OrderChange{Order: "0a1b", State: "delivered", Facility: "north", Tier: "High"}
	assert.Equal(t, "event: order", s.next(t, "event: "))
	assert.Equal(t, `data: {"order":"0a1b","state":"delivered","facility":"north","tier":"High"}`, s.next(t, "data: "))

	s.resp.Body.Close() // the client goes: its watch ends
	select {
	case <-w.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch outlived its client")
	}
}

// Closing Options.Done (serve shutting down) ends open streams.
func TestEventsEndOnDone(t *testing.T) {
	done := make(chan struct{})
	w := &fakeWatcher{ch: make(chan pipeline.OrderChange), ended: make(chan struct{})}
	e := healthEnv(t, func(o *Options) { o.Changes = w; o.Done = done })
	e.signIn(t, "tok-viewer")
	s := openSSE(t, e, "/console/events")
	s.next(t, ": radgate")
	close(done)
	select {
	case _, ok := <-s.lines:
		for ok {
			_, ok = <-s.lines
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Done")
	}
}

type failingWatcher struct{}

func (failingWatcher) WatchOrders(context.Context) (<-chan pipeline.OrderChange, error) {
	return nil, errors.New("nats: connection closed")
}

func TestEventsUnavailable(t *testing.T) {
	e := healthEnv(t, func(o *Options) { o.Changes = failingWatcher{} })
	e.signIn(t, "tok-viewer")
	r, _ := e.get(t, "/console/events")
	assert.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
}
