package console

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// fakeOrders is an OrderLister and OrderReader over fixed orders; it
// records the last query.
type fakeOrders struct {
	orders []radgate.OrderStatus
	last   radgate.ListQuery
}

func (f *fakeOrders) ListOrders(_ context.Context, q radgate.ListQuery) (radgate.ListPage, error) {
	f.last = q
	return radgate.ListPage{Orders: f.orders, Next: "cur-2"}, nil
}

func (f *fakeOrders) Status(_ context.Context, id string) (radgate.OrderStatus, error) {
	for _, o := range f.orders {
		if o.ID == id {
			return o, nil
		}
	}
	return radgate.OrderStatus{}, radgate.ErrOrderNotFound
}

func (f *fakeOrders) History(_ context.Context, id string) ([]radgate.HistoryEntry, error) {
	return []radgate.HistoryEntry{
		{At: now.Add(-3 * time.Minute), Order: id, Event: "received", To: radgate.StateReceived},
		{At: now.Add(-2 * time.Minute), Order: id, Event: "routed", From: radgate.StateReceived, To: radgate.StateRouted},
	}, nil
}

func sessions(t *testing.T) jetstream.KeyValue {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := broker.EnsureConsoleSessions(t.Context(), js, time.Hour)
	require.NoError(t, err)
	return kv
}

func staticAuth(t *testing.T) *httpauth.Authenticator {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(f, []byte("viewer-ann tok-viewer viewer\nphi-bob tok-phi viewer,phi\n"), 0o600))
	a, err := httpauth.New(config.IntakeAuth{Mode: config.AuthStatic, TokensFile: f}, httpauth.Options{})
	require.NoError(t, err)
	return a
}

func order() radgate.OrderStatus {
	p := 0.87
	return radgate.OrderStatus{ID: "0a1b2c3d4e5f60718293a4b5", State: radgate.StateDelivered,
		Accession: &radgate.Identifier{Value: "ACC-42"}, Facility: "north", Priority: "urgent",
		Patient:    &radgate.Reference{Reference: "Patient/pat-secret-77"},
		ReceivedAt: now.Add(-3 * time.Minute),
		Engines: map[string]radgate.EngineProgress{"cxr": {State: radgate.StateDelivered, Probability: &p, Tier: "High",
			Reason:     "scored on 2 of 3 images",
			Deliveries: map[string]radgate.DeliveryProgress{"pacs-sr": {State: radgate.StateFailed, Revision: 1, Reason: "connection refused"}}}},
	}
}

type env struct {
	srv    *httptest.Server
	c      *http.Client
	orders *fakeOrders
}

func newEnv(t *testing.T, tlsOn bool) *env {
	t.Helper()
	f := &fakeOrders{orders: []radgate.OrderStatus{order()}}
	con, err := New(Options{Auth: staticAuth(t), Sessions: sessions(t), SessionTTL: 8 * time.Hour, TLS: tlsOn,
		Orders: f, Order: f, Now: func() time.Time { return now }})
	require.NoError(t, err)
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(con)
	} else {
		srv = httptest.NewServer(con)
	}
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{srv: srv, c: c, orders: f}
}

func (e *env) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	r, err := e.c.Get(e.srv.URL + path)
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, string(b)
}

func (e *env) post(t *testing.T, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	r, err := e.c.PostForm(e.srv.URL+path, form)
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, string(b)
}

func (e *env) signIn(t *testing.T, token string) *http.Response {
	t.Helper()
	r, _ := e.post(t, "/console/signin", url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/console/orders", r.Header.Get("Location"))
	return r
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "no CSRF field in the page")
	return m[1]
}

func TestSignedOutGoesToSignIn(t *testing.T) {
	e := newEnv(t, false)
	for _, p := range []string{"/console/", "/console/orders", "/console/orders/" + order().ID, "/console/nothing"} {
		r, body := e.get(t, p)
		assert.Equal(t, http.StatusSeeOther, r.StatusCode, p)
		assert.Equal(t, "/console/signin", r.Header.Get("Location"), p)
		assert.NotContains(t, body, "ACC-42", p)
	}
	r, _ := e.post(t, "/console/signout", nil)
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
	r, body := e.get(t, "/console/signin")
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, `name="token"`)
}

func TestBadTokenShowsError(t *testing.T) {
	e := newEnv(t, false)
	r, body := e.post(t, "/console/signin", url.Values{"token": {"not-a-token"}})
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	assert.Contains(t, body, "The token was refused: unknown token")
	assert.Empty(t, r.Cookies())
}

func TestCookieFlags(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		e := newEnv(t, tlsOn)
		if tlsOn {
			e.c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test server
		}
		r := e.signIn(t, "tok-viewer")
		cs := r.Cookies()
		require.Len(t, cs, 1)
		ck := cs[0]
		assert.Equal(t, CookieName, ck.Name)
		assert.Regexp(t, `^[0-9a-f]{64}$`, ck.Value)
		assert.True(t, ck.HttpOnly)
		assert.Equal(t, http.SameSiteStrictMode, ck.SameSite)
		assert.Equal(t, "/console", ck.Path)
		assert.Equal(t, 8*3600, ck.MaxAge)
		assert.Equal(t, tlsOn, ck.Secure, "Secure only with TLS")
		raw := r.Header.Get("Set-Cookie")
		assert.Contains(t, raw, "HttpOnly")
		assert.Contains(t, raw, "SameSite=Strict")
		assert.Equal(t, tlsOn, strings.Contains(raw, "Secure"))
	}
}

func TestCSRFMissingIs403(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, "tok-viewer")
	r, _ := e.post(t, "/console/signout", nil)
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	r, _ = e.post(t, "/console/signout", url.Values{"csrf": {strings.Repeat("0", 64)}})
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	r, _ = e.get(t, "/console/orders")
	assert.Equal(t, http.StatusOK, r.StatusCode, "a refused POST leaves the session")
}

// A POST from another site is refused even with the right token; the
// sign-in form, which has no session to hold a CSRF token, too.
func TestCrossOriginPostIs403(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, "tok-viewer")
	_, page := e.get(t, "/console/orders")
	post := func(path string, form url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		r, err := e.c.Do(req)
		require.NoError(t, err)
		r.Body.Close()
		return r.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, post("/console/signout", url.Values{"csrf": {csrf(t, page)}}))
	assert.Equal(t, http.StatusForbidden, post("/console/signin", url.Values{"token": {"tok-phi"}}))
	r, _ := e.get(t, "/console/orders")
	assert.Equal(t, http.StatusOK, r.StatusCode, "still signed in")
}

func TestOrdersListRendersRowsAndPassesFilters(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/orders?state=failed&facility=north&route=chest&engine=cxr&priority=urgent&since=2026-12-01&until=2026-12-02&q=ACC-42&cursor=c1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	q := e.orders.last
	assert.Equal(t, radgate.ListQuery{State: "failed", Facility: "north", Route: "chest", Engine: "cxr", Priority: "urgent",
		Since: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond),
		Search: "ACC-42", Cursor: "c1", Limit: 50}, q)
	assert.Contains(t, body, `href="/console/orders/0a1b2c3d4e5f60718293a4b5"`)
	assert.Contains(t, body, "ACC-42")
	assert.Contains(t, body, "3 min")
	assert.Contains(t, body, `class="tier tier-high"`)
	assert.Contains(t, body, "urgent")
	assert.Regexp(t, `rel="next" href="/console/orders\?[^"]*cursor=cur-2`, body)
	assert.NotContains(t, body, "cursor=c1", "the next link replaces the cursor")
	assert.NotContains(t, body, "pat-secret-77")
}

func TestOrderPageAndPHI(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/orders/"+order().ID)
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "— → received")
	assert.Contains(t, body, "2026-12-03 11:58:00 UTC")
	assert.Contains(t, body, "received → routed")
	assert.Contains(t, body, "87.0 %")
	assert.Contains(t, body, "scored on 2 of 3 images")
	assert.Contains(t, body, "connection refused")
	assert.Contains(t, body, "pacs-sr")
	assert.NotContains(t, body, "pat-secret-77", "a viewer sees no patient reference")

	p := newEnv(t, false)
	p.signIn(t, "tok-phi")
	_, body = p.get(t, "/console/orders/"+order().ID)
	assert.Contains(t, body, "Patient/pat-secret-77")

	r, _ = e.get(t, "/console/orders/ffffffffffffffffffffffff")
	assert.Equal(t, http.StatusNotFound, r.StatusCode)
}

func TestSignOutEndsSession(t *testing.T) {
	e := newEnv(t, false)
	r := e.signIn(t, "tok-viewer")
	id := r.Cookies()[0].Value
	_, page := e.get(t, "/console/orders")
	r, _ = e.post(t, "/console/signout", url.Values{"csrf": {csrf(t, page)}})
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
	assert.Equal(t, "/console/signin", r.Header.Get("Location"))
	r, _ = e.get(t, "/console/orders")
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
	// The old cookie, replayed, is dead too: the session is gone from the bucket.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/console/orders", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	r, err := e.c.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
}

// Mode none: loopback only, as viewer+operator without phi.
func TestModeNone(t *testing.T) {
	a, err := httpauth.New(config.IntakeAuth{Mode: config.AuthNone}, httpauth.Options{})
	require.NoError(t, err)
	f := &fakeOrders{orders: []radgate.OrderStatus{order()}}
	con, err := New(Options{Auth: a, Orders: f, Order: f, Now: func() time.Time { return now }})
	require.NoError(t, err)

	req := httptest.NewRequest(http.MethodGet, "/console/orders/"+order().ID, nil)
	req.RemoteAddr = "127.0.0.1:5000"
	w := httptest.NewRecorder()
	con.ServeHTTP(w, req)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), "Authentication is off")
	assert.Contains(t, w.Body.String(), "viewer, operator")
	assert.NotContains(t, w.Body.String(), "pat-secret-77")

	req = httptest.NewRequest(http.MethodGet, "/console/orders", nil)
	req.RemoteAddr = "10.1.2.3:5000"
	w = httptest.NewRecorder()
	con.ServeHTTP(w, req)
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.NotContains(t, w.Body.String(), "ACC-42")
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{40 * time.Second: "40 s", 3 * time.Minute: "3 min", 5 * time.Hour: "5 h", 72 * time.Hour: "3 d"} {
		assert.Equal(t, want, Age(now, now.Add(-d)))
	}
}

// A browser sends a form POST's real Origin only when the referrer policy
// allows it for the same origin: no-referrer makes it "Origin: null",
// which the same-origin check refuses (the sign-in form then never works).
func TestReferrerPolicyKeepsTheOriginOfFormPosts(t *testing.T) {
	e := newEnv(t, false)
	r, _ := e.get(t, "/console/signin")
	assert.Equal(t, "same-origin", r.Header.Get("Referrer-Policy"))
}
