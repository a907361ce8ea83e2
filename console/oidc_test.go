package console

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/internal/testenv/oidcop"
)

// oidcEnv is a console with OIDC sign-in at a real OpenID Provider
// (zitadel/oidc's op, in-process on 127.0.0.1).
type oidcEnv struct {
	op   *oidcop.Server
	srv  *httptest.Server
	c    *http.Client // cookie jar; stops before the console's callback
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	skew atomic.Int64 // added to the console's clock
	logs *testenv.LogBuffer
}

func newOIDCEnv(t *testing.T) *oidcEnv {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + l.Addr().String()
	e := &oidcEnv{logs: &testenv.LogBuffer{}}
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	e.js, err = jetstream.New(nc)
	require.NoError(t, err)
	e.kv, err = broker.EnsureConsoleSessions(t.Context(), e.js, time.Hour)
	require.NoError(t, err)
	e.op = oidcop.Start(t, oidcop.Options{ClientID: "radgate-console", ClientSecret: "console-secret",
		RedirectURIs: []string{base + "/console/oidc/callback"},
		Users: []oidcop.User{
			{ID: "sub-olga", Username: "olga", Password: "olga-pw", Roles: []string{"operator", "billing-admin"}},
			{ID: "sub-ann", Username: "ann", Password: "ann-pw", Roles: []string{"viewer"}},
			{ID: "sub-nils", Username: "nils", Password: "nils-pw", Roles: []string{"nurse"}},
		}})
	o, err := NewOIDC(OIDCConfig{Issuer: e.op.Issuer, ClientID: "radgate-console", ClientSecret: "console-secret",
		RedirectURL: base + "/console/oidc/callback", Scopes: config.DefaultOIDCScopes, RolesClaim: "roles"})
	require.NoError(t, err)
	f := &fakeOrders{orders: []radgate.OrderStatus{order()}}
	con, err := New(Options{Auth: staticAuth(t), Sessions: e.kv, SessionTTL: 8 * time.Hour, Orders: f, Order: f, OIDC: o,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
		Now:    func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }})
	require.NoError(t, err)
	e.srv = httptest.NewUnstartedServer(con)
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.c = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/console/oidc/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	e.c.Jar, _ = cookiejar.New(nil)
	return e
}

var opLoginID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// authorize signs user in at the provider's login form and returns the
// callback URL the provider sends the browser to (not followed yet).
func (e *oidcEnv) authorize(t *testing.T, user, password string) *url.URL {
	t.Helper()
	r, err := e.c.Get(e.srv.URL + "/console/oidc/login")
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode, "the provider's login form: %s", b)
	m := opLoginID.FindSubmatch(b)
	require.NotNil(t, m, "the provider's login form has its auth request id: %s", b)
	r, err = e.c.PostForm(e.op.Issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {user}, "password": {password}})
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusFound, r.StatusCode, "the provider sends the browser back")
	u, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/console/oidc/callback", u.Path)
	return u
}

// get follows nothing further than the console's own redirects.
func (e *oidcEnv) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	r, err := e.c.Get(u)
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, string(b)
}

func (e *oidcEnv) flowID(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(e.srv.URL + "/console/oidc/callback")
	for _, c := range e.c.Jar.Cookies(u) {
		if c.Name == OIDCCookieName {
			return c.Value
		}
	}
	t.Fatal("no sign-in attempt cookie")
	return ""
}

func (e *oidcEnv) sessionCookie() string {
	u, _ := url.Parse(e.srv.URL + "/console/orders")
	for _, c := range e.c.Jar.Cookies(u) {
		if c.Name == CookieName {
			return c.Value
		}
	}
	return ""
}

func TestOIDCSignIn(t *testing.T) {
	e := newOIDCEnv(t)
	host := strings.TrimPrefix(e.op.Issuer, "http://")
	_, body := e.get(t, e.srv.URL+"/console/signin")
	assert.Contains(t, body, `<a class="button" href="/console/oidc/login">Sign in with `+host+`</a>`, "the button beside the paste form")
	assert.Contains(t, body, `name="token"`)

	// The login redirect: state, nonce and a PKCE S256 challenge; the
	// attempt's cookie HttpOnly, SameSite=Lax, Path=/console/oidc.
	nc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := nc.Get(e.srv.URL + "/console/oidc/login")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusFound, r.StatusCode)
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(loc.String(), e.op.Issuer+"/auth?"), loc.String())
	q := loc.Query()
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, "radgate-console", q.Get("client_id"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Len(t, q.Get("code_challenge"), 43)
	assert.Len(t, q.Get("state"), 64)
	assert.Len(t, q.Get("nonce"), 64)
	assert.Equal(t, "openid profile email", q.Get("scope"))
	require.Len(t, r.Cookies(), 1)
	ck := r.Cookies()[0]
	assert.Equal(t, OIDCCookieName, ck.Name)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.Equal(t, "/console/oidc", ck.Path)
	assert.Equal(t, 600, ck.MaxAge)
	assert.NotContains(t, r.Header.Get("Location"), ck.Value, "the cookie's id is not the state")

	cb := e.authorize(t, "olga", "olga-pw")
	flow := e.flowID(t)
	// The attempt's record expires on its own after OIDCFlowTTL.
	stream, err := e.js.Stream(t.Context(), "KV_"+broker.BucketConsoleSessions)
	require.NoError(t, err)
	raw, err := stream.GetLastMsgForSubject(t.Context(), "$KV."+broker.BucketConsoleSessions+"."+oidcKey(flow))
	require.NoError(t, err)
	assert.Equal(t, "10m0s", raw.Header.Get("Nats-TTL"), "the record's own TTL")
	r, body = e.get(t, cb.String())
	require.Equal(t, http.StatusOK, r.StatusCode, body)
	assert.Contains(t, body, "Signed in as sub-olga (viewer, operator).")
	assert.Contains(t, body, `<meta http-equiv="refresh" content="0; url=/console/orders">`)
	sid := e.sessionCookie()
	require.Regexp(t, `^[0-9a-f]{64}$`, sid)
	r, body = e.get(t, e.srv.URL+"/console/orders")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, order().ID, "signed in")
	// The attempt is gone: its cookie cleared, its record deleted.
	u, _ := url.Parse(e.srv.URL + "/console/oidc/callback")
	for _, c := range e.c.Jar.Cookies(u) {
		assert.NotEqual(t, OIDCCookieName, c.Name)
	}
	keys, err := e.kv.Keys(t.Context())
	require.NoError(t, err)
	assert.Contains(t, keys, sid)
	assert.NotContains(t, keys, oidcKey(flow), "the attempt's record is deleted")
	// Logs carry the subject, never a code or token.
	logs := e.logs.String()
	assert.Contains(t, logs, "subject=sub-olga")
	assert.Contains(t, logs, `roles="viewer, operator"`)
	assert.NotContains(t, logs, cb.Query().Get("code"))
	assert.NotContains(t, logs, "eyJ", "no JWT in the logs")
}

func TestOIDCCallbackRefusals(t *testing.T) {
	e := newOIDCEnv(t)
	refused := func(t *testing.T, u string, code int, want string) {
		t.Helper()
		r, body := e.get(t, u)
		assert.Equal(t, code, r.StatusCode, body)
		assert.Contains(t, body, want)
		assert.Contains(t, body, `href="/console/oidc/login"`, "the sign-in page, to start again")
		assert.Empty(t, e.sessionCookie(), "no session")
	}
	with := func(u *url.URL, k, v string) *url.URL {
		x := *u
		q := x.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		x.RawQuery = q.Encode()
		return &x
	}

	t.Run("state mismatch", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		refused(t, with(cb, "state", strings.Repeat("0", 64)).String(), http.StatusBadRequest, "the state parameter does not match")
		refused(t, cb.String(), http.StatusBadRequest, "this browser has no sign-in attempt in progress")
	})
	t.Run("another issuer", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		refused(t, with(cb, "iss", "https://idp.example.net").String(), http.StatusBadRequest,
			"the response names issuer &#34;https://idp.example.net&#34;, not "+e.op.Issuer)
	})
	t.Run("missing code", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		refused(t, with(cb, "code", "").String(), http.StatusBadRequest, "the provider sent no authorization code")
	})
	t.Run("replayed callback", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		id := e.flowID(t)
		r, _ := e.get(t, cb.String())
		require.Equal(t, http.StatusOK, r.StatusCode, "the first callback signs in")
		// The same callback again, with the attempt's cookie, from a
		// browser without the session.
		req, _ := http.NewRequest(http.MethodGet, cb.String(), nil)
		req.AddCookie(&http.Cookie{Name: OIDCCookieName, Value: id})
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Contains(t, string(b), "the sign-in attempt is unknown or was already used")
		for _, c := range r.Cookies() {
			assert.NotEqual(t, CookieName, c.Name, "no session for a replay")
		}
		e.c.Jar, _ = cookiejar.New(nil)
	})
	t.Run("provider error", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		u := with(with(with(cb, "code", ""), "error", "access_denied"), "error_description", "the user cancelled")
		refused(t, u.String(), http.StatusUnauthorized, "the identity provider answered access_denied (the user cancelled)")
	})
	t.Run("expired", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		e.skew.Store(int64(OIDCFlowTTL + time.Second))
		defer e.skew.Store(0)
		refused(t, cb.String(), http.StatusBadRequest, "the sign-in attempt expired")
	})
	t.Run("PKCE verifier that does not match the challenge", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		e.tamper(t, func(f *oidcFlow) { f.Verifier = strings.Repeat("v", 43) })
		refused(t, cb.String(), http.StatusUnauthorized, "the code was not exchanged at the token endpoint: HTTP 400 invalid_grant")
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		cb := e.authorize(t, "olga", "olga-pw")
		e.tamper(t, func(f *oidcFlow) { f.Nonce = strings.Repeat("n", 64) })
		refused(t, cb.String(), http.StatusUnauthorized, "the ID token&#39;s nonce does not match this sign-in attempt")
	})
	t.Run("no radgate role", func(t *testing.T) {
		cb := e.authorize(t, "nils", "nils-pw")
		refused(t, cb.String(), http.StatusForbidden, `signed you in as sub-nils, but the ID token&#39;s claim &#34;roles&#34; names none of radgate&#39;s roles`)
	})
	t.Run("no attempt cookie", func(t *testing.T) {
		refused(t, e.srv.URL+"/console/oidc/callback?code=x&state=y", http.StatusBadRequest, "this browser has no sign-in attempt in progress")
	})
	assert.NotContains(t, e.logs.String(), "eyJ", "no JWT in the logs")
}

// tamper rewrites the stored sign-in attempt of e's browser.
func (e *oidcEnv) tamper(t *testing.T, change func(*oidcFlow)) {
	t.Helper()
	key := oidcKey(e.flowID(t))
	ent, err := e.kv.Get(t.Context(), key)
	require.NoError(t, err)
	var f oidcFlow
	require.NoError(t, json.Unmarshal(ent.Value(), &f))
	change(&f)
	b, _ := json.Marshal(f)
	_, err = e.kv.Put(t.Context(), key, b)
	require.NoError(t, err)
}

func TestOIDCProviderDown(t *testing.T) {
	e := newOIDCEnv(t)
	e.op.Close()
	r, body := e.get(t, e.srv.URL+"/console/oidc/login")
	assert.Equal(t, http.StatusBadGateway, r.StatusCode)
	assert.Contains(t, body, "could not be reached (discovery)")
	keys, _ := e.kv.Keys(t.Context())
	assert.Empty(t, keys, "no attempt stored")
}

func TestOIDCNotConfigured(t *testing.T) {
	e := newEnv(t, false)
	_, body := e.get(t, "/console/signin")
	assert.NotContains(t, body, "/console/oidc/login")
	r, _ := e.get(t, "/console/oidc/login")
	assert.Equal(t, http.StatusNotFound, r.StatusCode)
	r, _ = e.get(t, "/console/oidc/callback?code=x&state=y")
	assert.Equal(t, http.StatusNotFound, r.StatusCode)
}
