package service

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/broker/brokertest"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv/oidcop"
)

// Console sign-in through the OIDC authorization-code flow, through radgate
// serve on the real peers, at a real OpenID Provider (zitadel/oidc's op,
// in-process on 127.0.0.1): a browser (an http.Client with a cookie jar)
// follows the redirects, posts the provider's login form and comes back
// signed in with the roles of the ID token's roles claim; an operator sees
// the failures page's replay buttons, a viewer does not (and gets 403 if
// it posts); sign-out ends the session. Without the client secret's
// variable serve does not start.
func TestConsoleOIDCSignIn(t *testing.T) {
	nc, topo := brokertest.Topology(t)
	cfg := testConfig(t)
	cfg.NATS.URL = nc.ConnectedUrl()
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops tok-ops viewer,operator\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens, RolesClaim: "radgate_roles"}
	// The redirect URL names serve's address, so serve gets a port known
	// before it starts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Listen = l.Addr().String()
	require.NoError(t, l.Close())
	base := "http://" + cfg.Listen
	op := oidcop.Start(t, oidcop.Options{ClientID: "radgate-console", ClientSecret: "s3cret-of-the-console",
		RedirectURIs: []string{base + config.OIDCCallbackPath}, RolesClaim: "radgate_roles",
		Users: []oidcop.User{
			{ID: "sub-olga", Username: "olga", Password: "olga-pw", Roles: []string{"operator"}},
			{ID: "sub-ann", Username: "ann", Password: "ann-pw", Roles: []string{"viewer"}},
		}})
	cfg.Console.OIDC = config.ConsoleOIDC{Issuer: op.Issuer, ClientID: "radgate-console",
		ClientSecretEnv: "RADGATE_TEST_CONSOLE_OIDC_SECRET", RedirectURL: base + config.OIDCCallbackPath}

	// A dead letter, so that the failures page has a row to act on.
	m := nats.NewMsg(broker.SubjectDLQ + "router")
	m.Header.Set(broker.HeaderOrderID, "0123456789abcdef01234567")
	m.Header.Set(broker.HeaderReason, "no route (test)")
	m.Header.Set(broker.HeaderSubject, broker.SubjectOrders+"test")
	m.Data = []byte("{}")
	_, err = topo.JS.PublishMsg(t.Context(), m)
	require.NoError(t, err)

	// No secret in the environment: serve refuses to start, naming the key.
	err = Run(t.Context(), cfg, Options{Registry: registry(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "console.oidc.client_secret_env: environment variable RADGATE_TEST_CONSOLE_OIDC_SECRET is not set")

	t.Setenv("RADGATE_TEST_CONSOLE_OIDC_SECRET", "s3cret-of-the-console")
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, cfg, Options{Registry: registry(t), Ready: ready, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	defer func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Error("no stop in 40 s")
		}
		if t.Failed() {
			t.Logf("radgate log:\n%s", logs)
		}
	}()

	for _, tc := range []struct {
		user, password, roles string
		operator              bool
	}{{"olga", "olga-pw", "viewer, operator", true}, {"ann", "ann-pw", "viewer", false}} {
		t.Run(tc.user, func(t *testing.T) {
			b := oidcBrowser(t)
			_, page := b.get(t, base+"/console/signin")
			require.Contains(t, page, `href="/console/oidc/login">Sign in with `+strings.TrimPrefix(op.Issuer, "http://")+`</a>`)
			// The button → the provider's login form → posted → back at
			// the callback → signed in.
			code, page := b.get(t, base+"/console/oidc/login")
			require.Equal(t, http.StatusOK, code)
			id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
			require.NotNil(t, id, "the provider's login form: %s", page)
			code, page = b.post(t, op.Issuer+"/login/username", url.Values{"id": {id[1]}, "username": {tc.user}, "password": {tc.password}})
			require.Equal(t, http.StatusOK, code, page)
			require.Contains(t, page, "Signed in as sub-"+tc.user+" ("+tc.roles+").")
			require.Contains(t, page, `url=/console/orders`, "the page moves on to the orders")

			code, page = b.get(t, base+"/console/failures")
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, page, "no route (test)", "the dead letter is listed")
			assert.Contains(t, page, "sub-"+tc.user, "the signed-in subject in the header")
			assert.Equal(t, tc.operator, strings.Contains(page, "Replay selected"), "replay buttons for an operator only")
			assert.Equal(t, tc.operator, strings.Contains(page, `action="/console/failures/replay"`))
			csrf := consoleCSRF.FindStringSubmatch(page)
			require.NotNil(t, csrf, "the sign-out form's CSRF token")
			if !tc.operator {
				code, _ = b.post(t, base+"/console/failures/replay", url.Values{"csrf": {csrf[1]}, "seq": {"1"}})
				assert.Equal(t, http.StatusForbidden, code, "a viewer's replay is refused")
			}

			code, page = b.post(t, base+"/console/signout", url.Values{"csrf": {csrf[1]}})
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, page, `name="token"`, "back at the sign-in page")
			code, page = b.get(t, base+"/console/orders")
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, page, `name="token"`, "signed out: the orders page sends to the sign-in page")
		})
	}
	assert.Contains(t, logs.String(), "subject=sub-olga")
	assert.NotContains(t, logs.String(), "s3cret", "no secret in the log")
	assert.NotContains(t, logs.String(), "eyJ", "no token in the log")
}

// browser is an http.Client with a cookie jar that follows redirects.
type browser struct{ c *http.Client }

func oidcBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) get(t *testing.T, u string) (int, string) {
	t.Helper()
	r, err := b.c.Get(u)
	require.NoError(t, err)
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(body)
}

func (b *browser) post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	r, err := b.c.PostForm(u, form)
	require.NoError(t, err)
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(body)
}
