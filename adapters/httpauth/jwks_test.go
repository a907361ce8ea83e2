package httpauth

import (
	"crypto"
	"crypto/elliptic"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// An identity provider that answers the first JWKS fetch and then hangs:
// with the cached keys older than the refresh interval, many concurrent
// requests with a valid token are all answered promptly from the cache,
// the refresh keeps trying in the background, and Close does not wait for
// the hung fetch.
func TestJWKSOutageServesCachedKeys(t *testing.T) {
	p := newIDP(t)
	key := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"ec-1": key})
	var hang atomic.Bool
	release := make(chan struct{})
	var fetches, hung atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if hang.Load() {
			hung.Add(1)
			select { // an IdP that accepted the connection and never answers
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		p.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(idp.Close)
	t.Cleanup(func() { close(release) })

	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	logs := &testenv.LogBuffer{}
	// A request that waited for a fetch would take fetchTimeout; the
	// client gives up sooner, and all requests together must finish sooner
	// still.
	const fetchTimeout = 4 * time.Second
	a, err := New(config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: idp.URL, Audience: "radgate", Algorithms: []string{"ES256"}},
		Options{Logger: debugLogger(logs), Now: clock, JWKSRefresh: 50 * time.Millisecond, JWKSTimeout: fetchTimeout})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Middleware(protected))
	t.Cleanup(srv.Close)

	now := time.Now()
	good := sign(t, jwt.SigningMethodES256, key, "ec-1", jwt.MapClaims{"aud": "radgate", "sub": "ehr",
		"exp": now.Add(3 * time.Hour).Unix(), "iat": now.Unix()})
	client := &http.Client{Timeout: fetchTimeout - time.Second}
	post := func(token string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/fhir/ServiceRequest", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := post(good)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code, "first request, keys fetched")

	// The IdP hangs from now on; the keys are older than the refresh
	// interval (real time for the background refresh, the clock for the
	// verifier).
	hang.Store(true)
	skew.Store(int64(2 * DefaultJWKSRefresh))
	require.Eventually(t, func() bool { return hung.Load() >= 1 }, 5*time.Second, 10*time.Millisecond,
		"the background refresh runs into the hung IdP")

	const n = 64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			code, err := post(good)
			switch {
			case err != nil:
				errs <- err
			case code != http.StatusAccepted:
				errs <- fmt.Errorf("HTTP %d", code)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "every request answered from the cached keys")
	}
	took := time.Since(start)
	t.Logf("%d concurrent requests with a valid token during the outage: %s", n, took)
	require.Less(t, took, fetchTimeout/2, "%d requests during the outage took %s", n, took)
	require.Equal(t, int32(1), hung.Load(), "no fetch per request: only the background refresh tried")

	// Once a fetch has failed, tokens with made-up kids are refused at once
	// (naming the failed fetch), and cause no fetch of their own.
	require.Eventually(t, func() bool { return a.jwt.keys.snap.Load().lastErr != nil }, 2*fetchTimeout, 10*time.Millisecond)
	before := fetches.Load()
	bogus := ecKey(t, elliptic.P256())
	start = time.Now()
	for i := range 20 {
		tok := sign(t, jwt.SigningMethodES256, bogus, fmt.Sprintf("made-up-%d", i), jwt.MapClaims{"aud": "radgate", "exp": now.Add(time.Hour).Unix()})
		rec := call(t, a.Middleware(protected), "POST", "/fhir/ServiceRequest", tok)
		requireRefused(t, rec, tok, "invalid_token")
		require.Contains(t, rec.Body.String(), "no key with the token's kid for ES256 in the JWKS (the last fetch failed: fetching the JWKS: ")
	}
	require.Less(t, time.Since(start), fetchTimeout/2)
	require.LessOrEqual(t, fetches.Load()-before, int32(1), "only the background refresh fetched (at most one attempt in this time)")

	// Close abandons the hung fetch and waits for the goroutine.
	start = time.Now()
	require.NoError(t, a.Close())
	require.Less(t, time.Since(start), time.Second)
	select {
	case <-a.jwt.keys.done:
	default:
		t.Fatal("the refresh goroutine is still running after Close")
	}
	require.NoError(t, a.Close(), "Close is idempotent")
	require.Contains(t, logs.String(), "JWKS fetch failed; serving the cached keys")
}

// A storm of tokens with unknown kids while the IdP is up costs one fetch,
// not one per request; another comes only jwksMinRefresh after the last
// attempt started.
func TestJWKSUnknownKidRateLimit(t *testing.T) {
	p := newIDP(t)
	key := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"ec-1": key})
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Audience: "radgate", Algorithms: []string{"ES256"}},
		Options{Now: clock})
	require.NoError(t, err)
	h := mw(protected)
	exp := time.Now().Add(time.Hour).Unix()
	require.Equal(t, http.StatusAccepted, call(t, h, "POST", "/fhir", sign(t, jwt.SigningMethodES256, key, "ec-1", jwt.MapClaims{"aud": "radgate", "exp": exp})).Code)
	require.Equal(t, int32(1), p.fetches.Load())

	skew.Store(int64(jwksMinRefresh)) // the first fetch is old enough to allow one more
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			tok := sign(t, jwt.SigningMethodES256, key, fmt.Sprintf("storm-%d", i), jwt.MapClaims{"aud": "radgate", "exp": exp})
			rec := call(t, h, "POST", "/fhir", tok)
			requireRefused(t, rec, tok, "invalid_token")
		})
	}
	wg.Wait()
	require.Equal(t, int32(2), p.fetches.Load(), "200 unknown kids, one fetch")

	skew.Store(int64(2*jwksMinRefresh + time.Second))
	rec := call(t, h, "POST", "/fhir", sign(t, jwt.SigningMethodES256, key, "later", jwt.MapClaims{"aud": "radgate", "exp": exp}))
	require.Contains(t, rec.Body.String(), "no key with the token's kid")
	require.Equal(t, int32(3), p.fetches.Load())
}
