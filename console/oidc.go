package console

// Sign-in through an OpenID Connect authorization-code flow (issue 15,
// slice O), when console.oidc is configured: GET /console/oidc/login keeps
// a state, a nonce and a PKCE verifier server-side (a short-lived record in
// the session bucket, found again by a random id in a cookie that is
// HttpOnly, SameSite=Lax so that it comes back with the provider's
// redirect, Path=/console/oidc) and sends the browser to the provider;
// GET /console/oidc/callback takes the record once (a replayed callback
// finds nothing), checks the state, exchanges the code with the verifier,
// verifies the ID token (signature, issuer, audience = client id, expiry,
// nonce) and opens the same session as a pasted token, with the roles of
// the ID token's roles claim.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"github.com/radgate/radgate/adapters/httpauth"
)

// OIDCCookieName is the cookie that ties a browser to its sign-in attempt.
const OIDCCookieName = "radgate_console_oidc"

// OIDCFlowTTL is how long a sign-in attempt may take at the provider.
const OIDCFlowTTL = 10 * time.Minute

// oidcTimeout bounds each call to the provider (discovery, token
// exchange, JWKS).
const oidcTimeout = 15 * time.Second

// OIDCConfig is the console's OpenID Connect client (config.ConsoleOIDC
// with the secret read).
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	// Scopes asked for (openid among them).
	Scopes []string
	// RolesClaim is the ID token claim holding the roles.
	RolesClaim string
	// HTTPClient reaches the provider; nil: a client with oidcTimeout.
	HTTPClient *http.Client
}

// OIDC signs console users in at an OpenID Provider. Its discovery
// document is fetched on the first sign-in (and again after a failure),
// so serve starts while the provider is down.
type OIDC struct {
	cfg  OIDCConfig
	host string

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC returns the client for cfg.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("console.oidc.issuer: %q is not a URL with a host", cfg.Issuer)
	}
	if cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("console.oidc: client_id and redirect_url must be set")
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = httpauth.DefaultRolesClaim
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: oidcTimeout}
	}
	return &OIDC{cfg: cfg, host: u.Host}, nil
}

// Host is the provider's host, as the sign-in button names it.
func (o *OIDC) Host() string { return o.host }

// discover returns the provider, fetching its discovery document once.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.cfg.HTTPClient), oidcTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.cfg.Scopes}
}

// oidcFlow is what the session bucket holds for one sign-in attempt, under
// oidcKey(id). It never holds a token.
type oidcFlow struct {
	State    string    `json:"state"`
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"`
	Expires  time.Time `json:"expires"`
}

// oidcKey is the flow's key: longer than a session id, so that no session
// lookup (64 hex digits) ever reads it.
func oidcKey(id string) string { return "oidc-" + id }

func (c *Console) oidcCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: OIDCCookieName, Value: value, Path: "/console/oidc", MaxAge: maxAge,
		HttpOnly: true, Secure: c.o.TLS, SameSite: http.SameSiteLaxMode}
}

// oidcButton is the sign-in page's "Sign in with <host>" (empty: no OIDC).
func (c *Console) oidcButton() string {
	if c.o.OIDC == nil || c.o.Auth.Open() {
		return ""
	}
	return "Sign in with " + c.o.OIDC.Host()
}

// oidcRefuse shows the sign-in page with what went wrong.
func (c *Console) oidcRefuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	c.render(w, r, code, "signin", map[string]any{"Error": msg})
}

// oidcLogin starts a sign-in at the provider.
func (c *Console) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if c.oidcButton() == "" {
		c.message(w, r, http.StatusNotFound, "Not found", "OpenID Connect sign-in is not configured (console.oidc).")
		return
	}
	p, err := c.o.OIDC.discover(r.Context())
	if err != nil {
		c.log.Warn("console OIDC: provider discovery failed", "issuer", c.o.OIDC.cfg.Issuer, "error", err)
		c.oidcRefuse(w, r, http.StatusBadGateway, fmt.Sprintf("The identity provider %s could not be reached (discovery): %v", c.o.OIDC.Host(), err))
		return
	}
	id := randomID()
	f := oidcFlow{State: randomID(), Nonce: randomID(), Verifier: oauth2.GenerateVerifier(), Expires: c.o.Now().Add(OIDCFlowTTL)}
	b, _ := json.Marshal(f)
	// The attempt expires on its own when the bucket allows per-key TTLs
	// (broker.EnsureConsoleSessions), else with the bucket's TTL.
	var opts []jetstream.KVCreateOpt
	if st, err := c.o.Sessions.Status(r.Context()); err == nil && st.LimitMarkerTTL() > 0 {
		opts = append(opts, jetstream.KeyTTL(OIDCFlowTTL))
	}
	if _, err := c.o.Sessions.Create(r.Context(), oidcKey(id), b, opts...); err != nil {
		c.log.Error("console OIDC: sign-in attempt not stored", "error", err)
		c.message(w, r, http.StatusServiceUnavailable, "Sign-in failed", "The sign-in attempt could not be stored; try again.")
		return
	}
	http.SetCookie(w, c.oidcCookie(id, int(OIDCFlowTTL/time.Second)))
	http.Redirect(w, r, c.o.OIDC.oauth2(p).AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)), http.StatusFound)
}

// takeFlow returns the browser's sign-in attempt and deletes it, so that a
// callback is taken once.
func (c *Console) takeFlow(r *http.Request) (oidcFlow, error) {
	ck, err := r.Cookie(OIDCCookieName)
	if err != nil || len(ck.Value) != 64 {
		return oidcFlow{}, errors.New("this browser has no sign-in attempt in progress (its cookie is missing or expired, or cookies are blocked): start again")
	}
	e, err := c.o.Sessions.Get(r.Context(), oidcKey(ck.Value))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return oidcFlow{}, errors.New("the sign-in attempt is unknown or was already used (a callback is taken once): start again")
	}
	if err != nil {
		return oidcFlow{}, fmt.Errorf("the sign-in attempt could not be read: %v", err)
	}
	// Delete at the revision read: of two callbacks racing, one wins.
	if err := c.o.Sessions.Delete(r.Context(), e.Key(), jetstream.LastRevision(e.Revision())); err != nil {
		return oidcFlow{}, errors.New("the sign-in attempt was already used (a callback is taken once): start again")
	}
	var f oidcFlow
	if err := json.Unmarshal(e.Value(), &f); err != nil {
		return oidcFlow{}, errors.New("the sign-in attempt is unreadable: start again")
	}
	return f, nil
}

// oidcCallback finishes a sign-in: the provider sends the browser back
// here with a code (or an error).
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if c.oidcButton() == "" {
		c.message(w, r, http.StatusNotFound, "Not found", "OpenID Connect sign-in is not configured (console.oidc).")
		return
	}
	http.SetCookie(w, c.oidcCookie("", -1))
	q := r.URL.Query()
	refuse := func(code int, why string) {
		c.log.Info("console OIDC sign-in refused", "remote", r.RemoteAddr, "reason", why)
		c.oidcRefuse(w, r, code, "Sign-in with "+c.o.OIDC.Host()+" failed: "+why)
	}
	f, err := c.takeFlow(r)
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	if e := q.Get("error"); e != "" {
		why := "the identity provider answered " + e
		if d := q.Get("error_description"); d != "" {
			why += " (" + d + ")"
		}
		refuse(http.StatusUnauthorized, why)
		return
	}
	// RFC 9207: a provider that names itself must be the one configured
	// (a mix-up attack sends another provider's response here).
	if iss := q.Get("iss"); iss != "" && iss != c.o.OIDC.cfg.Issuer {
		refuse(http.StatusBadRequest, fmt.Sprintf("the response names issuer %q, not %s", iss, c.o.OIDC.cfg.Issuer))
		return
	}
	if s := q.Get("state"); s == "" || subtle.ConstantTimeCompare([]byte(s), []byte(f.State)) != 1 {
		refuse(http.StatusBadRequest, "the state parameter does not match this browser's sign-in attempt")
		return
	}
	if !c.o.Now().Before(f.Expires) {
		refuse(http.StatusBadRequest, fmt.Sprintf("the sign-in attempt expired (it may take %v): start again", OIDCFlowTTL))
		return
	}
	code := q.Get("code")
	if code == "" {
		refuse(http.StatusBadRequest, "the provider sent no authorization code")
		return
	}
	p, err := c.o.OIDC.discover(r.Context())
	if err != nil {
		refuse(http.StatusBadGateway, fmt.Sprintf("the identity provider could not be reached (discovery): %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), c.o.OIDC.cfg.HTTPClient), oidcTimeout)
	defer cancel()
	tok, err := c.o.OIDC.oauth2(p).Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		refuse(http.StatusUnauthorized, "the code was not exchanged at the token endpoint: "+exchangeReason(err))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusUnauthorized, "the token response holds no ID token (is openid among console.oidc.scopes?)")
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.o.OIDC.cfg.ClientID, Now: c.o.Now}).Verify(ctx, raw)
	if err != nil {
		refuse(http.StatusUnauthorized, "the ID token was refused: "+strings.TrimPrefix(err.Error(), "oidc: "))
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		refuse(http.StatusUnauthorized, "the ID token's nonce does not match this sign-in attempt")
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		refuse(http.StatusUnauthorized, "the ID token's claims are unreadable")
		return
	}
	roles := httpauth.RolesOf(claims, c.o.OIDC.cfg.RolesClaim)
	if len(roles) == 0 {
		c.log.Info("console OIDC sign-in refused: no radgate role", "subject", idt.Subject, "claim", c.o.OIDC.cfg.RolesClaim)
		c.oidcRefuse(w, r, http.StatusForbidden, fmt.Sprintf(
			"%s signed you in as %s, but the ID token's claim %q names none of radgate's roles (viewer, operator, phi): ask your identity provider's administrator for one.",
			c.o.OIDC.Host(), idt.Subject, c.o.OIDC.cfg.RolesClaim))
		return
	}
	pr := httpauth.NewPrincipal(idt.Subject, roles...)
	id := randomID()
	s := session{Name: pr.Name, Roles: pr.Roles, CSRF: randomID(), Expires: c.o.Now().Add(c.o.SessionTTL)}
	b, _ := json.Marshal(s)
	if _, err := c.o.Sessions.Create(r.Context(), id, b); err != nil {
		c.log.Error("console session not stored", "subject", pr.Name, "error", err)
		c.message(w, r, http.StatusServiceUnavailable, "Sign-in failed", "The session could not be stored; try again.")
		return
	}
	c.log.Info("console sign-in", "subject", pr.Name, "roles", pr.RoleList(), "via", "oidc", "issuer", c.o.OIDC.cfg.Issuer, "remote", r.RemoteAddr)
	http.SetCookie(w, c.cookie(id, int(c.o.SessionTTL/time.Second)))
	// Not a redirect: the browser came here from the provider, and a
	// browser does not send a SameSite=Strict cookie on a redirect chain
	// that began on another site. The page moves on to the orders itself
	// (a same-site navigation).
	c.render(w, r, http.StatusOK, "oidc_signedin", map[string]any{"Name": pr.Name, "Roles": pr.RoleList()})
}

// exchangeReason words a failed code exchange without any token: the
// provider's error code and description, or the transport error.
func exchangeReason(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		why := fmt.Sprintf("HTTP %d", re.Response.StatusCode)
		if re.ErrorCode != "" {
			why += " " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			why += " (" + re.ErrorDescription + ")"
		}
		return why
	}
	return err.Error()
}
