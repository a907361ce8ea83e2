package console

import (
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A POST refused for its CSRF token (or its origin) is answered in the
// signed-in layout: the user's name and the sign-out form, not a "Sign in"
// link that would suggest the session was lost.
func TestRefusedPostKeepsTheSignedInLayout(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, "tok-viewer")
	r, body := e.post(t, "/console/signout", url.Values{"csrf": {"wrong"}})
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	assert.Contains(t, body, "CSRF token is missing or wrong")
	assert.Contains(t, body, `<span class="who">`)
	assert.Contains(t, body, `action="/console/signout"`)
	assert.Contains(t, body, "Back to the orders")
	assert.NotContains(t, body, `href="/console/signin"`)

	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/console/signout", nil)
	req.Header.Set("Origin", "https://evil.example")
	r, err := e.c.Do(req)
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	assert.Contains(t, string(b), "The form came from another site")
	assert.Contains(t, string(b), `<span class="who">viewer-ann (viewer)</span>`)
}

// Every page names its icon, served from the console's static files (so
// the browser does not ask the intake for /favicon.ico), to anyone.
func TestFavicon(t *testing.T) {
	e := newEnv(t, false)
	_, body := e.get(t, "/console/signin")
	assert.Contains(t, body, `<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">`)
	r, svg := e.get(t, "/console/static/favicon.svg")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, "image/svg+xml", r.Header.Get("Content-Type"))
	assert.Contains(t, svg, "<svg")
}
