package httpauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// JWKS cache timing (defaults of Options.JWKSRefresh and JWKSTimeout).
const (
	// DefaultJWKSRefresh is how often the JWKS is fetched again in the
	// background.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSTimeout bounds one fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// jwksMinRefresh is the least time between the starts of two fetches
	// asked for by requests (a token with an unknown kid), so that tokens
	// with made-up kids cannot make radgate hammer the identity provider.
	jwksMinRefresh = 10 * time.Second
	// jwksMaxRetry caps the wait before retrying a failed fetch.
	jwksMaxRetry = 5 * time.Minute
	maxJWKSBytes = 1 << 20
)

// keyError says why no key verifies a token (no secret in it).
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// jwk is one verification key of a JWKS.
type jwk struct {
	kid, alg string
	key      any
}

// jwksSnapshot is what one fetch left: the keys of the last good fetch and
// how the last attempt went. Snapshots are never modified; a fetch stores a
// new one.
type jwksSnapshot struct {
	keys    []jwk
	fetched time.Time // of keys; zero: never fetched
	lastErr error     // of the last attempt; nil when it succeeded
}

// jwksCache holds the verification keys of jwks_url or jwks_file.
//
// For jwks_url one goroutine, started by newJWKSCache and stopped by close,
// does every fetch: at once, then every refresh interval, sooner (with
// backoff) after a failure, and when a request finds no key for its kid,
// at most once per jwksMinRefresh counted from the start of the last
// attempt. Requests read the current snapshot without locking and never
// fetch: while the identity provider is slow or down they are answered
// with the cached keys, however old. Only a request whose token no cached
// key fits waits, for the one fetch it asked for or joined.
type jwksCache struct {
	url      string
	hc       *http.Client
	now      func() time.Time
	log      *slog.Logger
	refresh  time.Duration
	timeout  time.Duration
	static   bool
	snap     atomic.Pointer[jwksSnapshot]
	kick     chan struct{} // cap 1: a request asks for a fetch
	stop     chan struct{} // closed by close
	done     chan struct{} // closed when the goroutine has returned
	cancel   context.CancelFunc
	stopOnce sync.Once

	mu        sync.Mutex // guards what follows; never held across I/O
	lastTried time.Time
	pending   chan struct{} // closed when the asked-for or running fetch ends; nil: none
	closed    bool
}

// newStaticJWKS serves the keys of a file; nothing runs in the background.
func newStaticJWKS(keys []jwk) *jwksCache {
	c := &jwksCache{static: true, done: make(chan struct{})}
	close(c.done)
	c.snap.Store(&jwksSnapshot{keys: keys})
	return c
}

// newJWKSCache starts the goroutine that fetches url; close stops it.
func newJWKSCache(url string, opts Options, log *slog.Logger) *jwksCache {
	c := &jwksCache{url: url, hc: opts.HTTPClient, now: opts.Now, log: log, refresh: opts.JWKSRefresh, timeout: opts.JWKSTimeout,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.refresh <= 0 {
		c.refresh = DefaultJWKSRefresh
	}
	if c.timeout <= 0 {
		c.timeout = DefaultJWKSTimeout
	}
	c.snap.Store(&jwksSnapshot{})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
	return c
}

// close stops the fetching goroutine (abandoning a fetch in progress) and
// waits for it to return. It is idempotent.
func (c *jwksCache) close() {
	if c.static {
		return
	}
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		c.cancel()
	})
	<-c.done
}

func (c *jwksCache) run(ctx context.Context) {
	defer func() {
		c.mu.Lock()
		if c.pending != nil {
			close(c.pending)
			c.pending = nil
		}
		c.mu.Unlock()
		close(c.done)
	}()
	failures := 0
	for {
		if err := c.fetchOnce(ctx); err != nil {
			failures++
		} else {
			failures = 0
		}
		wait := c.refresh
		if failures > 0 {
			wait = min(jwksMinRefresh<<min(failures-1, 10), jwksMaxRetry, c.refresh)
		}
		t := time.NewTimer(wait)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		case <-c.kick:
			t.Stop()
		}
	}
}

// fetchOnce fetches the JWKS and stores the outcome; requests waiting for
// a fetch are woken when it ends.
func (c *jwksCache) fetchOnce(ctx context.Context) error {
	c.mu.Lock()
	select {
	case <-c.kick: // this fetch serves whoever asked
	default:
	}
	if c.pending == nil {
		c.pending = make(chan struct{})
	}
	waiters := c.pending
	c.lastTried = c.now()
	c.mu.Unlock()

	keys, err := c.fetch(ctx)
	old := c.snap.Load()
	next := &jwksSnapshot{keys: old.keys, fetched: old.fetched, lastErr: err}
	if err == nil {
		next.keys, next.fetched = keys, c.now()
		c.log.Debug("JWKS fetched", "url", c.url, "keys", len(keys))
	} else if ctx.Err() == nil {
		age := "never fetched"
		if !old.fetched.IsZero() {
			age = c.now().Sub(old.fetched).Round(time.Second).String()
		}
		c.log.Warn("JWKS fetch failed; serving the cached keys", "url", c.url, "err", err,
			"cached_keys", len(old.keys), "cached_age", age)
	}
	c.snap.Store(next)

	c.mu.Lock()
	if c.pending == waiters {
		c.pending = nil
	}
	c.mu.Unlock()
	close(waiters)
	return err
}

// fetch GETs and parses the JWKS within the fetch timeout.
func (c *jwksCache) fetch(ctx context.Context) ([]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the JWKS: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("the JWKS at %s: %w", c.url, err)
	}
	return keys, nil
}

// askFetch returns a channel closed when a fetch this request may wait
// for ends: the one running or already asked for, or a new one when the
// last attempt started at least jwksMinRefresh ago. nil: none (too soon,
// or closed). With join false it asks for a new fetch the same way but
// returns nil: the caller does not wait.
func (c *jwksCache) askFetch(join bool) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if c.pending == nil {
		if c.now().Sub(c.lastTried) < jwksMinRefresh {
			return nil
		}
		c.pending = make(chan struct{})
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	if !join {
		return nil
	}
	return c.pending
}

// lookup returns the keys that may verify a token signed with alg and
// carrying kid (every key fitting alg when kid is empty).
func (c *jwksCache) lookup(ctx context.Context, kid, alg string) ([]any, error) {
	s := c.snap.Load()
	if found := s.match(kid, alg); len(found) > 0 {
		return found, nil
	}
	// No cached key fits: before the first fetch, or a kid the cache does
	// not know yet (the provider rotated its keys). Wait for a fetch when
	// one may be made, unless the last attempt failed: then the provider
	// is likely down, and the request is refused at once (naming why)
	// rather than held for up to the fetch timeout.
	if !c.static && (kid != "" || s.fetched.IsZero()) {
		if wait := c.askFetch(s.lastErr == nil); wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, &keyError{msg: fmt.Sprintf("no key yet: the request ended while the JWKS was being fetched (%v)", ctx.Err())}
			}
			s = c.snap.Load()
			if found := s.match(kid, alg); len(found) > 0 {
				return found, nil
			}
		}
	}
	if s.fetched.IsZero() && !c.static {
		if s.lastErr != nil {
			return nil, &keyError{msg: "no key: " + s.lastErr.Error()}
		}
		return nil, &keyError{msg: "no key: the JWKS has not been fetched yet"}
	}
	msg := fmt.Sprintf("no key for %s in the JWKS", alg)
	if kid != "" {
		msg = fmt.Sprintf("no key with the token's kid for %s in the JWKS", alg)
	}
	if s.lastErr != nil {
		msg += " (the last fetch failed: " + s.lastErr.Error() + ")"
	}
	return nil, &keyError{msg: msg}
}

func (s *jwksSnapshot) match(kid, alg string) []any {
	var out []any
	for _, k := range s.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if k.alg != "" && k.alg != alg {
			continue
		}
		if !keyFits(k.key, alg) {
			continue
		}
		out = append(out, k.key)
	}
	return out
}

// keyFits reports whether a public key's type can verify alg.
func keyFits(key any, alg string) bool {
	switch key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// parseJWKS reads the public signature keys of a JWKS. Symmetric keys,
// encryption keys and key types jwkset does not know are left out.
func parseJWKS(b []byte) ([]jwk, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	var out []jwk
	for i, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		if m.KTY == jwkset.KtyOct {
			continue // never accept a shared secret from a key set
		}
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil // public parts only
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		out = append(out, jwk{kid: m.KID, alg: string(m.ALG), key: k.Key()})
	}
	if len(out) == 0 {
		return nil, errors.New("no usable signature key")
	}
	return out, nil
}
