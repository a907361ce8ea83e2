package consoletest

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/internal/testenv/oidcop"
)

// TestConsoleOIDCInTheBrowser signs in through the OIDC authorization-code
// flow in Chromium, at a real OpenID Provider (zitadel/oidc's op) on
// another site than radgate (localhost vs 127.0.0.1): the sign-in page's
// "Sign in with <host>" button → the provider's login form, typed in →
// back at radgate's callback → the orders page, signed in with the roles
// of the ID token's claim. The session cookie is SameSite=Strict, which a
// browser does not send on a redirect chain begun at another site: the
// callback's page moves on to the orders itself, and this test is what
// shows that it works in a browser. Sign-out ends the session.
func TestConsoleOIDCInTheBrowser(t *testing.T) {
	chrome := testenv.Chromium(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	secret := token()
	redirect := "http://" + addr + config.OIDCCallbackPath
	op := oidcop.Start(t, oidcop.Options{ClientID: "radgate-console", ClientSecret: secret, RedirectURIs: []string{redirect},
		Host: "localhost", Users: []oidcop.User{{ID: "sub-olga", Username: "olga", Password: "olga-pw", Roles: []string{"operator"}}}})
	t.Setenv("RADGATE_CONSOLETEST_OIDC_SECRET", secret)
	rg := startServe(t, func(c *config.Config) {
		c.Listen = addr
		c.Console.OIDC = config.ConsoleOIDC{Issuer: op.Issuer, ClientID: "radgate-console",
			ClientSecretEnv: "RADGATE_CONSOLETEST_OIDC_SECRET", RedirectURL: redirect}
	})
	b := newBrowser(t, chrome, rg.url)

	b.visit("/console/signin")
	host := strings.TrimPrefix(op.Issuer, "http://")
	b.waitText(`a[href="/console/oidc/login"]`, "Sign in with "+host)
	b.shot("signin-oidc")
	b.click(`a[href="/console/oidc/login"]`)
	b.do(chromedp.WaitVisible(chromedp.ID("username")))
	require.True(t, strings.HasPrefix(b.location(), op.Issuer+"/login/username"), b.location())
	b.do(chromedp.SendKeys(chromedp.ID("username"), "olga"), chromedp.SendKeys(chromedp.ID("password"), "olga-pw"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	b.waitText("h1", "Orders")
	require.Equal(t, rg.url+"/console/orders", b.location())
	require.Contains(t, b.text(), "sub-olga (viewer, operator)")
	b.shot("orders-oidc")

	b.signOut()
	b.visit("/console/orders")
	assert.Equal(t, rg.url+"/console/signin", b.location(), "signed out")
	assert.NotContains(t, rg.logs.String(), secret, "no client secret in serve's log")
	assert.NotContains(t, rg.logs.String(), "eyJ", "no token in serve's log")
}
