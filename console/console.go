// Package console is radgate's operator console: server-rendered pages
// (html/template, embedded templates and CSS, no JavaScript needed) under
// /console/ on serve's HTTP listener.
//
// Sign-in takes a static token or a JWT, checked by the same
// httpauth.Authenticator as the intake, and opens a server-side session in
// a JetStream KV bucket (broker.BucketConsoleSessions, TTL = session
// lifetime) so that every serve process sharing the broker knows it. The
// browser holds only a random session id in a cookie (HttpOnly,
// SameSite=Strict, Path=/console, Secure when serve has TLS). Every form
// carries the session's CSRF token; a POST without it is refused with 403.
//
// With http.auth.mode none there is nothing to sign in with: the console
// then serves requests from the loopback address only (127.0.0.1, ::1),
// as a viewer and operator without the phi role, and says so on every
// page; other addresses get 403.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
)

//go:embed templates/*.html static/*
var files embed.FS

// CookieName is the session cookie's name.
const CookieName = "radgate_console"

// DefaultSessionTTL is a session's lifetime when console.session_ttl is
// not set.
const DefaultSessionTTL = 8 * time.Hour

// OrderReader reads one order and its history (the pipeline).
type OrderReader interface {
	Status(ctx context.Context, orderID string) (radgate.OrderStatus, error)
	radgate.HistoryReader
}

// Options configure a console.
type Options struct {
	// Auth checks the tokens pasted at sign-in (the intake's authenticator).
	Auth *httpauth.Authenticator
	// Sessions is the session bucket (broker.EnsureConsoleSessions); its
	// TTL should equal SessionTTL.
	Sessions jetstream.KeyValue
	// SessionTTL is the cookie's Max-Age (DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// TLS: serve has TLS, so the cookie is Secure.
	TLS bool
	// Orders lists orders; Order reads one.
	Orders radgate.OrderLister
	Order  OrderReader
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	// Routes, engines and usage (issue 15 slice E). Routes is the route
	// set in force and its reload status; Engines lists the engines'
	// manifests and cards; Governance their state per facility × route
	// and live figures; Usage the billing counts. Each page says so when
	// its source is nil.
	Routes     Routes
	Engines    func() []EngineInfo
	Governance Governor
	Usage      Usage
	// Failures (issue 15 slice D): the dead-letter stream, the HL7
	// outbox (nil: no table) and where operator actions are recorded (nil:
	// in the log only).
	DLQ    DeadLetters
	Outbox Outbox
	Audit  Auditor
	// Health page and live updates (issue 15 slice H, health.go).
	// Health reads the stage queues and the last hour (the pipeline);
	// Peers checks the peers (CachePeers); Changes streams order state
	// changes to /console/events (the pipeline). Heartbeat is how often a
	// quiet stream gets a comment (DefaultHeartbeat when 0); closing Done
	// ends every stream (serve's shutdown).
	Health    HealthReader
	Peers     PeerChecker
	Changes   OrderWatcher
	Heartbeat time.Duration
	Done      <-chan struct{}
	// Order page (issue 15 slice C): Pictures is the pipeline's heatmap
	// object store (broker.BucketHeatmaps), nil: no thumbnails;
	// Destinations says where each destination's objects open (by
	// destination name; missing: references and UIDs as text);
	// AuditPHIView, when set, is called each time a phi user's order page
	// shows patient data.
	Pictures     PictureStore
	Destinations map[string]DestinationLink
	AuditPHIView func(ctx context.Context, subject, orderID string)
	// OIDC sign-in (issue 15 slice O, oidc.go): nil, only the pasted
	// token; set, the sign-in page also offers the provider's
	// authorization-code flow.
	OIDC *OIDC
}

// Console serves the console's pages.
type Console struct {
	o    Options
	log  *slog.Logger
	tpl  map[string]*template.Template
	mux  *http.ServeMux
	open string // CSRF token of mode none (no session)
}

// session is what the bucket holds per session id.
type session struct {
	Name    string          `json:"name"`
	Roles   []httpauth.Role `json:"roles"`
	CSRF    string          `json:"csrf"`
	Expires time.Time       `json:"expires"`
}

type ctxKey struct{}

// New returns the console.
func New(o Options) (*Console, error) {
	if o.Auth == nil {
		return nil, errors.New("console: no authenticator")
	}
	if !o.Auth.Open() && o.Sessions == nil {
		return nil, errors.New("console: no session bucket")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{o: o, log: o.Logger.With("component", "console"), tpl: map[string]*template.Template{}, open: randomID()}
	pages, _ := fs.Glob(files, "templates/*.html")
	for _, p := range pages {
		page := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs(o.Now)).ParseFS(files, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", page, err)
		}
		c.tpl[page] = t
	}
	static, _ := fs.Sub(files, "static")
	m := http.NewServeMux()
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /console/signin", c.signinPage)
	m.HandleFunc("POST /console/signin", c.signin)
	m.Handle("POST /console/signout", c.auth(http.HandlerFunc(c.signout)))
	m.Handle("GET /console/{$}", c.auth(http.RedirectHandler("/console/orders", http.StatusSeeOther)))
	m.Handle("GET /console/orders", c.auth(http.HandlerFunc(c.orders)))
	m.Handle("GET /console/orders/{id}", c.auth(http.HandlerFunc(c.order)))
	m.Handle("GET /console/routes", c.auth(http.HandlerFunc(c.routesPage)))
	m.Handle("GET /console/engines", c.auth(http.HandlerFunc(c.enginesPage)))
	m.Handle("GET /console/engines/plot", c.auth(http.HandlerFunc(c.enginePlot)))
	m.Handle("GET /console/engines/change", c.auth(http.HandlerFunc(c.engineChangeForm)))
	m.Handle("POST /console/engines/change", c.auth(http.HandlerFunc(c.engineChange)))
	m.Handle("GET /console/usage", c.auth(http.HandlerFunc(c.usagePage)))
	m.Handle("GET /console/usage.csv", c.auth(http.HandlerFunc(c.usageCSV)))
	m.Handle("GET /console/failures", c.auth(http.HandlerFunc(c.failures)))
	m.Handle("POST /console/failures/replay", c.auth(http.HandlerFunc(c.replay)))
	m.Handle("POST /console/failures/resend", c.auth(http.HandlerFunc(c.resend)))
	m.Handle("GET /console/health", c.auth(http.HandlerFunc(c.health)))
	m.Handle("GET /console/events", c.auth(http.HandlerFunc(c.events)))
	m.Handle("GET /console/orders/{id}/heatmap/{engine}", c.auth(http.HandlerFunc(c.heatmap)))
	m.HandleFunc("GET /console/oidc/login", c.oidcLogin)
	m.HandleFunc("GET /console/oidc/callback", c.oidcCallback)
	m.Handle("/console/", c.auth(http.NotFoundHandler()))
	c.mux = m
	return c, nil
}

// ServeHTTP serves /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with a form POST, which sameOrigin must refuse, so
	// nobody could sign in (found by the browser tests, consoletest).
	// No console URL holds patient data, and none leaves the site.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; form-action 'self'; frame-ancestors 'none'")
	c.mux.ServeHTTP(w, r)
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// user is the signed-in principal with its session's CSRF token.
type user struct {
	httpauth.Principal
	CSRF string
	ID   string // session id ("" in mode none)
}

func userFrom(r *http.Request) user { u, _ := r.Context().Value(ctxKey{}).(user); return u }

// auth admits a request with a live session (or, in mode none, from the
// loopback address); others go to the sign-in page. A POST must carry the
// session's CSRF token.
func (c *Console) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u user
		if c.o.Auth.Open() {
			if !loopback(r.RemoteAddr) {
				c.message(w, r, http.StatusForbidden, "Console not available",
					"http.auth.mode is none: the console serves only the loopback address (127.0.0.1, ::1). Configure http.auth to use it from elsewhere.")
				return
			}
			u = user{Principal: httpauth.NewPrincipal("local user (http.auth.mode none)", httpauth.RoleViewer, httpauth.RoleOperator), CSRF: c.open}
		} else {
			s, id, ok := c.session(r)
			if !ok {
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
			u = user{Principal: httpauth.NewPrincipal(s.Name, s.Roles...), CSRF: s.CSRF, ID: id}
		}
		// The user first, so that a refusal below renders the signed-in
		// layout (name, nav, sign-out), not a "Sign in" page.
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, u))
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				c.log.Info("console POST refused: cross-origin", "path", r.URL.Path, "subject", u.Name)
				c.message(w, r, http.StatusForbidden, "Forbidden", "The form came from another site.")
				return
			}
			got := r.PostFormValue("csrf")
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(u.CSRF)) != 1 {
				c.log.Info("console POST refused: CSRF token missing or wrong", "path", r.URL.Path, "subject", u.Name)
				c.message(w, r, http.StatusForbidden, "Forbidden", "The form's CSRF token is missing or wrong. Reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether a POST's Origin header, when the browser sent
// one, names this host: a second check beside the CSRF token, and the only
// one the sign-in form (no session yet) has.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// session returns the request's live session.
func (c *Console) session(r *http.Request) (session, string, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || len(ck.Value) != 64 {
		return session{}, "", false
	}
	if _, err := hex.DecodeString(ck.Value); err != nil {
		return session{}, "", false
	}
	e, err := c.o.Sessions.Get(r.Context(), ck.Value)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			c.log.Warn("console session lookup failed", "error", err)
		}
		return session{}, "", false
	}
	var s session
	if err := json.Unmarshal(e.Value(), &s); err != nil || !c.o.Now().Before(s.Expires) {
		return session{}, "", false
	}
	return s, ck.Value, true
}

func (c *Console) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, Secure: c.o.TLS, SameSite: http.SameSiteStrictMode}
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin", map[string]any{"Open": c.o.Auth.Open()})
}

// signin checks the pasted token and opens a session.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	if c.o.Auth.Open() {
		http.Redirect(w, r, "/console/orders", http.StatusSeeOther)
		return
	}
	if !sameOrigin(r) {
		c.log.Info("console sign-in refused: cross-origin", "remote", r.RemoteAddr)
		c.message(w, r, http.StatusForbidden, "Forbidden", "The sign-in form came from another site.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		c.render(w, r, http.StatusUnauthorized, "signin", map[string]any{"Error": "Paste a token to sign in."})
		return
	}
	p, err := c.o.Auth.Verify(r, token)
	if err != nil {
		c.log.Info("console sign-in refused", "remote", r.RemoteAddr, "reason", err.Error())
		c.render(w, r, http.StatusUnauthorized, "signin", map[string]any{"Error": "The token was refused: " + err.Error()})
		return
	}
	id := randomID()
	s := session{Name: p.Name, Roles: p.Roles, CSRF: randomID(), Expires: c.o.Now().Add(c.o.SessionTTL)}
	b, _ := json.Marshal(s)
	if _, err := c.o.Sessions.Create(r.Context(), id, b); err != nil {
		c.log.Error("console session not stored", "subject", p.Name, "error", err)
		c.message(w, r, http.StatusServiceUnavailable, "Sign-in failed", "The session could not be stored; try again.")
		return
	}
	c.log.Info("console sign-in", "subject", p.Name, "roles", p.RoleList(), "remote", r.RemoteAddr)
	http.SetCookie(w, c.cookie(id, int(c.o.SessionTTL/time.Second)))
	http.Redirect(w, r, "/console/orders", http.StatusSeeOther)
}

// signout ends the session (CSRF checked by auth).
func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	u := userFrom(r)
	if u.ID != "" {
		if err := c.o.Sessions.Purge(r.Context(), u.ID); err != nil {
			c.log.Warn("console session not deleted", "subject", u.Name, "error", err)
		}
		c.log.Info("console sign-out", "subject", u.Name)
	}
	http.SetCookie(w, c.cookie("", -1))
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// listQuery reads the orders list's filters from the URL.
func listQuery(v url.Values) radgate.ListQuery {
	q := radgate.ListQuery{State: v.Get("state"), Facility: v.Get("facility"), Route: v.Get("route"),
		Engine: v.Get("engine"), Priority: v.Get("priority"), Search: strings.TrimSpace(v.Get("q")), Cursor: v.Get("cursor")}
	if t, err := time.Parse(time.DateOnly, v.Get("since")); err == nil {
		q.Since = t
	}
	if t, err := time.Parse(time.DateOnly, v.Get("until")); err == nil {
		q.Until = t.Add(24*time.Hour - time.Nanosecond)
	}
	if n, err := strconv.Atoi(v.Get("limit")); err == nil && n > 0 && n <= 500 {
		q.Limit = n
	} else {
		q.Limit = 50
	}
	return q
}

func (c *Console) orders(w http.ResponseWriter, r *http.Request) {
	if c.o.Orders == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Orders", "This radgate has no order list.")
		return
	}
	v := r.URL.Query()
	q := listQuery(v)
	page, err := c.o.Orders.ListOrders(r.Context(), q)
	if err != nil {
		c.log.Error("console order list failed", "error", err)
		c.message(w, r, http.StatusInternalServerError, "Orders", "The order list could not be read: "+err.Error())
		return
	}
	next := ""
	if page.Next != "" {
		nv := url.Values{}
		for k, vs := range v {
			if k != "cursor" {
				nv[k] = vs
			}
		}
		nv.Set("cursor", page.Next)
		next = "/console/orders?" + nv.Encode()
	}
	c.render(w, r, http.StatusOK, "orders", map[string]any{"Q": q, "Form": v, "Page": page, "Next": next,
		"States": radgateStates})
}

// radgateStates are the states the list's filter offers.
var radgateStates = []radgate.OrderState{radgate.StateReceived, radgate.StateWaiting, radgate.StateStabilising,
	radgate.StateRouted, radgate.StateScored, radgate.StateDelivered, radgate.StateFailed, radgate.StateRejected,
	radgate.StateRetracting, radgate.StateCancelled, radgate.StateSuperseded}

func (c *Console) message(w http.ResponseWriter, r *http.Request, code int, title, text string) {
	c.render(w, r, code, "message", map[string]any{"Title": title, "Text": text})
}

// render writes page with data; the layout gets the user and its CSRF token.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, data map[string]any) {
	u := userFrom(r)
	data["User"] = u
	data["SignedIn"] = u.Name != ""
	data["Open"] = c.o.Auth.Open()
	data["OIDC"] = c.oidcButton()
	var b strings.Builder
	if err := c.tpl[page].Execute(&b, data); err != nil {
		c.log.Error("console template failed", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}
