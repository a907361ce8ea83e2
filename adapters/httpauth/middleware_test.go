package httpauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
)

func debugLogger(buf *testenv.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newAuth builds the authentication for cfg and closes it when the test
// ends.
func newAuth(t *testing.T, cfg config.IntakeAuth, opts Options) (func(http.Handler) http.Handler, error) {
	t.Helper()
	a, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a.Middleware, nil
}

// protected is the intake stand-in: it answers 202 to whatever gets through.
var protected = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })

func call(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader("{}"))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// requireRefused checks a 401: challenge, OperationOutcome, no token echoed.
func requireRefused(t *testing.T, rec *httptest.ResponseRecorder, token, wantErr string) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	ch := rec.Header().Get("WWW-Authenticate")
	require.True(t, strings.HasPrefix(ch, `Bearer realm="radgate"`), ch)
	if wantErr != "" {
		require.Contains(t, ch, `error="`+wantErr+`"`)
	}
	require.Equal(t, "application/fhir+json", rec.Header().Get("Content-Type"))
	oo, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
	require.NoError(t, err)
	require.Len(t, oo.Issues, 1)
	if token != "" {
		require.NotContains(t, rec.Body.String(), token)
		require.NotContains(t, ch, token)
	}
}

func TestStaticTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(file, []byte("# intake tokens\nehr tok-ehr-5f1c9a\n\ntok-anon-77d2\n"), 0o600))
	t.Setenv("RADGATE_TEST_INTAKE_TOKENS", "tok-env-a, tok-env-b")
	logs := &testenv.LogBuffer{}
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthStatic, TokensFile: file, TokensEnv: "RADGATE_TEST_INTAKE_TOKENS"},
		Options{Logger: debugLogger(logs)})
	require.NoError(t, err)
	h := mw(protected)

	for _, tok := range []string{"tok-ehr-5f1c9a", "tok-anon-77d2", "tok-env-a", "tok-env-b"} {
		require.Equal(t, http.StatusAccepted, call(t, h, "POST", "/fhir/ServiceRequest", tok).Code, tok)
	}
	requireRefused(t, call(t, h, "POST", "/fhir/ServiceRequest", ""), "", "")
	requireRefused(t, call(t, h, "POST", "/fhir/ServiceRequest", "tok-ehr-5f1c9b"), "tok-ehr-5f1c9b", "invalid_token")
	requireRefused(t, call(t, h, "POST", "/fhir/ServiceRequest", "tok-ehr"), "tok-ehr", "invalid_token")

	// Basic credentials are not a bearer token.
	req := httptest.NewRequest("GET", "/orders/x", nil)
	req.SetBasicAuth("ehr", "tok-ehr-5f1c9a")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	requireRefused(t, rec, "", "")

	// Probes stay open; metrics and anything else do not; a POST to a probe
	// path, or a path that only starts like one, is not a probe.
	require.Equal(t, http.StatusAccepted, call(t, h, "GET", "/healthz", "").Code)
	require.Equal(t, http.StatusAccepted, call(t, h, "GET", "/readyz", "").Code)
	requireRefused(t, call(t, h, "GET", "/metrics", ""), "", "")
	requireRefused(t, call(t, h, "POST", "/healthz", ""), "", "")
	requireRefused(t, call(t, h, "GET", "/healthz/../orders/1", ""), "", "")
	require.Equal(t, http.StatusAccepted, call(t, h, "GET", "/metrics", "tok-env-b").Code)

	require.Contains(t, logs.String(), "subject=ehr", "the log names the client, not its token")
	for _, tok := range []string{"tok-ehr-5f1c9a", "tok-anon-77d2", "tok-env-a", "tok-env-b", "tok-ehr-5f1c9b"} {
		require.NotContains(t, logs.String(), tok)
	}
}

func TestStaticTokensConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(bad, []byte("a b c secret-in-a-bad-line\nops tok-ops viewer,operatr\nx tok-x secret-as-a-role\n"), 0o600))
	_, err := newAuth(t, config.IntakeAuth{Mode: config.AuthStatic, TokensFile: bad}, Options{})
	require.EqualError(t, err, "http.auth.tokens_file "+bad+":1: expected \"token\", \"name token\" or \"name token role,role\" (4 fields)\n"+
		"http.auth.tokens_file "+bad+":2: role 2 of the third field is not a known role (known: viewer, operator, phi; roles are separated by commas, no spaces)\n"+
		"http.auth.tokens_file "+bad+":3: role 1 of the third field is not a known role (known: viewer, operator, phi; roles are separated by commas, no spaces)")
	require.NotContains(t, err.Error(), "secret-in-a-bad-line")
	require.NotContains(t, err.Error(), "secret-as-a-role")
	require.NotContains(t, err.Error(), "tok-")

	_, err = newAuth(t, config.IntakeAuth{Mode: config.AuthStatic, TokensEnv: "RADGATE_TEST_UNSET_TOKENS_VAR"}, Options{})
	require.EqualError(t, err, "http.auth.tokens_env: environment variable RADGATE_TEST_UNSET_TOKENS_VAR is not set")

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("# none yet\n"), 0o600))
	_, err = newAuth(t, config.IntakeAuth{Mode: config.AuthStatic, TokensFile: empty}, Options{})
	require.ErrorContains(t, err, "no token")
}

// idp is the identity-provider stand-in: a JWKS over HTTP and keys to sign
// with.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	jwks    []byte
	fetches atomic.Int32
}

func newIDP(t *testing.T) *idp {
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// publish replaces the JWKS with the public halves of keys (kid → key).
func (p *idp) publish(t *testing.T, keys map[string]crypto.Signer) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
		require.NoError(t, err)
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	p.mu.Lock()
	p.jwks = b
	p.mu.Unlock()
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	require.NoError(t, err)
	return k
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func TestJWT(t *testing.T) {
	p := newIDP(t)
	rk, ek, other := rsaKey(t), ecKey(t, elliptic.P256()), rsaKey(t)
	p.publish(t, map[string]crypto.Signer{"rsa-1": rk, "ec-1": ek})
	logs := &testenv.LogBuffer{}
	var skew atomic.Int64 // the test's clock runs ahead by this much
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Issuer: "https://idp.example.org",
		Audience: "radgate", Algorithms: []string{"RS256", "ES256"}, Leeway: config.Duration(5 * time.Second)},
		Options{Logger: debugLogger(logs), Now: clock})
	require.NoError(t, err)
	h := mw(protected)

	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://idp.example.org", "aud": []string{"radgate", "other"}, "sub": "ehr-orders",
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Second).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	var pubDER []byte
	{
		b, err := jwkset.NewJWKFromKey(rk.Public(), jwkset.JWKOptions{})
		require.NoError(t, err)
		pubDER, _ = json.Marshal(b.Marshal())
	}
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)

	for _, tc := range []struct {
		name, token string
		wantOK      bool
		reason      string
	}{
		{"good RS256", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(nil)), true, ""},
		{"good ES256", sign(t, jwt.SigningMethodES256, ek, "ec-1", claims(nil)), true, ""},
		{"good without kid", sign(t, jwt.SigningMethodES256, ek, "", claims(nil)), true, ""},
		{"expired", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), false, "token expired"},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), false, "not valid yet"},
		{"no exp", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(func(c jwt.MapClaims) { delete(c, "exp") })), false, "a required claim (exp) is missing"},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), false, "wrong audience (claim aud)"},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.org" })), false, "wrong issuer (claim iss)"},
		{"wrong key, known kid", sign(t, jwt.SigningMethodRS256, other, "rsa-1", claims(nil)), false, "bad signature"},
		{"algorithm not allowed", sign(t, jwt.SigningMethodRS384, rk, "rsa-1", claims(nil)), false, "algorithm not allowed"},
		{"alg none", noneToken, false, "algorithm not allowed"},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", claims(nil)), false, "algorithm not allowed"},
		{"garbage", "not.a.jwt", false, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(t, h, "POST", "/fhir/ServiceRequest", tc.token)
			if tc.wantOK {
				require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
				return
			}
			requireRefused(t, rec, tc.token, "invalid_token")
			require.Contains(t, rec.Body.String(), tc.reason)
			if tc.reason == "token expired" {
				require.Contains(t, rec.Body.String(), `"code":"expired"`)
			}
		})
	}
	require.Equal(t, int32(1), p.fetches.Load(), "one fetch served every token with a known kid")

	// Key rotation: a token with a new kid makes radgate fetch the JWKS
	// again (at most once per jwksMinRefresh).
	skew.Store(int64(jwksMinRefresh + time.Second))
	rotated := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"ec-2": rotated})
	tok := sign(t, jwt.SigningMethodES256, rotated, "ec-2", claims(nil))
	require.Equal(t, http.StatusAccepted, call(t, h, "POST", "/fhir/ServiceRequest", tok).Code)
	require.Equal(t, int32(2), p.fetches.Load())
	// The old key is gone with the refresh.
	requireRefused(t, call(t, h, "POST", "/fhir/ServiceRequest", sign(t, jwt.SigningMethodRS256, rk, "rsa-1", claims(nil))), "", "invalid_token")
	// Unknown kids right after a refresh do not trigger another fetch.
	requireRefused(t, call(t, h, "POST", "/fhir/ServiceRequest", sign(t, jwt.SigningMethodES256, rotated, "made-up", claims(nil))), "", "invalid_token")
	require.Equal(t, int32(2), p.fetches.Load())
	require.Contains(t, logs.String(), "subject=ehr-orders")
	require.NotContains(t, logs.String(), tok)
}

func TestJWTFromFile(t *testing.T) {
	k := ecKey(t, elliptic.P384())
	j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "f1", ALG: jwkset.AlgES384}})
	require.NoError(t, err)
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{j.Marshal()}})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(file, b, 0o600))
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSFile: file, Algorithms: []string{"ES384"}, AllowAnyAudience: true}, Options{})
	require.NoError(t, err)
	h := mw(protected)
	good := sign(t, jwt.SigningMethodES384, k, "f1", jwt.MapClaims{"sub": "x", "exp": time.Now().Add(time.Minute).Unix()})
	require.Equal(t, http.StatusAccepted, call(t, h, "GET", "/orders/1", good).Code)

	_, err = newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSFile: file, Algorithms: []string{"HS256"}, Audience: "radgate"}, Options{})
	require.ErrorContains(t, err, "asymmetric algorithms only")
	require.NoError(t, os.WriteFile(file, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 0o600))
	_, err = newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSFile: file, Algorithms: []string{"RS256"}, Audience: "radgate"}, Options{})
	require.ErrorContains(t, err, "no usable signature key")
}

func TestJWKSUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer srv.Close()
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: srv.URL, Algorithms: []string{"RS256"}, Audience: "radgate"}, Options{})
	require.NoError(t, err)
	rec := call(t, mw(protected), "POST", "/fhir", sign(t, jwt.SigningMethodRS256, rsaKey(t), "k", jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix(), "aud": "radgate"}))
	requireRefused(t, rec, "", "invalid_token")
	require.Contains(t, rec.Body.String(), "fetching the JWKS: HTTP 502")
	_, _ = io.Copy(io.Discard, rec.Body)
}
