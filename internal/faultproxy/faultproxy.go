// Package faultproxy is an HTTP reverse proxy for tests that stands in front
// of a real server (Orthanc, a FHIR server) and injects faults into the
// requests that match a rule: an HTTP error status, or a response body cut
// short. Everything else passes through unchanged, so the peer stays real.
//
// TCP (tcp.go) stands in a plain TCP link instead (an edge's NATS leaf
// connection): Cut drops it until Restore.
//
// It listens on 127.0.0.1 only.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rule selects requests and says what to do with them. The first rule that
// matches a request (and has tries left) applies; a request no rule takes is
// passed through.
type Rule struct {
	// Name labels the rule in Hits.
	Name string
	// Method, when set, must equal the request's method.
	Method string
	// Contains, when set, must occur in the request's path and query
	// (e.g. a Study Instance UID, or "/instances/").
	Contains string
	// Status, when non-zero, is answered instead of forwarding, with a short
	// JSON body in Orthanc's error shape.
	Status int
	// Truncate forwards the request and passes on the status and headers but
	// only the first half of the body (at most TruncateAt bytes when set),
	// then ends the response cleanly: the client sees a body that stops
	// early, with no transport error to tell it so.
	Truncate   bool
	TruncateAt int
	// Times is how many requests the rule takes; 0 means every one.
	Times int

	hits atomic.Int64
}

func (r *Rule) matches(req *http.Request) bool {
	if r.Method != "" && r.Method != req.Method {
		return false
	}
	if r.Contains != "" && !strings.Contains(req.URL.RequestURI(), r.Contains) {
		return false
	}
	return true
}

// take claims one try of the rule; false when it has none left.
func (r *Rule) take() bool {
	for {
		n := r.hits.Load()
		if r.Times > 0 && n >= int64(r.Times) {
			return false
		}
		if r.hits.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Proxy forwards to one upstream base URL.
type Proxy struct {
	upstream *url.URL
	ln       net.Listener
	srv      *http.Server
	client   *http.Client

	mu    sync.Mutex
	rules []*Rule

	passed atomic.Int64
}

// New starts a proxy to upstream (scheme://host:port; any path of upstream
// is ignored: the proxied request keeps its own path) on a free port of
// 127.0.0.1.
func New(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q is not an http(s) URL with a host", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &Proxy{
		upstream: &url.URL{Scheme: u.Scheme, Host: u.Host},
		ln:       ln,
		client: &http.Client{
			Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL (http://127.0.0.1:PORT), to use instead of
// the upstream's scheme and host.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRules replaces the rules. The proxy keeps pointers to them: Hits reads
// their counters.
func (p *Proxy) SetRules(rules ...*Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = rules
}

// Hits reports how many requests the named rule took (0 for no such rule).
func (p *Proxy) Hits(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.Name == name {
			return int(r.hits.Load())
		}
	}
	return 0
}

// Passed reports how many requests went through untouched.
func (p *Proxy) Passed() int { return int(p.passed.Load()) }

// Close stops the proxy; requests in flight are cut.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	p.client.CloseIdleConnections()
	return err
}

func (p *Proxy) rule(req *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.matches(req) && r.take() {
			return r
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := p.rule(req)
	if r != nil && r.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(r.Status)
		fmt.Fprintf(w, `{"HttpStatus":%d,"Message":"fault injected by faultproxy (rule %q)"}`, r.Status, r.Name)
		return
	}
	if r == nil {
		p.passed.Add(1)
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method,
		p.upstream.String()+req.URL.RequestURI(), req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.ContentLength = req.ContentLength
	for k, v := range req.Header {
		out.Header[k] = v
	}
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if r == nil || !r.Truncate {
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "faultproxy: reading upstream body: "+err.Error(), http.StatusBadGateway)
		return
	}
	cut := len(body) / 2
	if r.TruncateAt > 0 && r.TruncateAt < cut {
		cut = r.TruncateAt
	}
	// Without Content-Length the response is chunked and ends cleanly at
	// the cut: a short body the client can only detect from its content.
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body[:cut])
}
