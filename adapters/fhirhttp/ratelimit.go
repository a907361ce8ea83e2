package fhirhttp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxClients bounds how many clients' buckets the intake keeps.
const DefaultMaxClients = 10000

// RateLimit bounds the orders one client hands in: a token bucket per
// client (golang.org/x/time/rate) that holds Burst orders and refills at
// OrdersPerSecond. A request costs one token per ServiceRequest or
// ImagingStudy it carries (a Bundle of 40 costs 40), and at least one.
// A request the bucket cannot pay for now is answered 429 with
// Retry-After; nothing of it is accepted.
type RateLimit struct {
	// OrdersPerSecond is the sustained rate per client; zero turns the
	// limit off.
	OrdersPerSecond float64
	// Burst is how many orders a client with a full bucket may send at
	// once. It is raised to the Bundle entry limit when below it, so that
	// a Bundle the intake takes can always be paid for.
	Burst int
	// MaxClients bounds the buckets kept; zero means DefaultMaxClients.
	// Clients whose bucket has refilled are forgotten first (that changes
	// nothing for them); past the bound, the least recently seen.
	MaxClients int
}

// clientLimiter keeps one token bucket per client key.
type clientLimiter struct {
	limit   rate.Limit
	burst   int
	max     int
	mu      sync.Mutex
	clients map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newClientLimiter(rl RateLimit, minBurst int) *clientLimiter {
	if rl.OrdersPerSecond <= 0 {
		return nil
	}
	l := &clientLimiter{limit: rate.Limit(rl.OrdersPerSecond), burst: max(rl.Burst, minBurst, 1),
		max: rl.MaxClients, clients: map[string]*bucket{}}
	if l.max <= 0 {
		l.max = DefaultMaxClients
	}
	return l
}

// take spends n tokens of key's bucket at now. It returns zero when they
// were spent, else how long until the bucket could pay (nothing is spent).
func (l *clientLimiter) take(key string, n int, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[key]
	if b == nil {
		if len(l.clients) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[key] = b
	}
	b.last = now
	n = min(n, l.burst) // cannot happen: the entry limit is within the burst
	r := b.lim.ReserveN(now, n)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// evict makes room: it drops every bucket that is full again (forgetting
// it changes nothing) and, if that is not enough, the tenth of the
// clients seen least recently.
func (l *clientLimiter) evict(now time.Time) {
	for k, b := range l.clients {
		if b.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < l.max {
		return
	}
	keys := make([]string, 0, len(l.clients))
	for k := range l.clients {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return l.clients[a].last.Compare(l.clients[b].last) })
	for _, k := range keys[:max(1, len(keys)/10)] {
		delete(l.clients, k)
	}
}

// size is how many buckets are kept (tests).
func (l *clientLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// retryAfter is d in whole seconds, at least 1, for a Retry-After header.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// RemoteClientKey names a request's client by its remote IP address (the
// port left out: one host is one client). It is the intake's default
// client key, right when the intake has no authentication. Behind a
// reverse proxy every request comes from the proxy: the proxy must then
// limit rates itself.
func RemoteClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// BearerClientKey names a request's client by its bearer token, for an
// intake behind authentication (which has verified the token): a JWT by
// its issuer and subject (the principal, whichever token it holds now),
// any other token by a digest of it (a static token is one client).
// Without a bearer token it falls back to RemoteClientKey. Never use it on
// an intake without authentication: a client could then send a new token
// with each request.
func BearerClientKey(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return RemoteClientKey(r)
	}
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Iss string `json:"iss"`
				Sub string `json:"sub"`
			}
			if json.Unmarshal(payload, &claims) == nil && claims.Sub != "" {
				sum := sha256.Sum256([]byte(claims.Iss + "\x00" + claims.Sub))
				return "sub:" + hex.EncodeToString(sum[:8])
			}
		}
	}
	sum := sha256.Sum256([]byte(token))
	return "token:" + hex.EncodeToString(sum[:8])
}
