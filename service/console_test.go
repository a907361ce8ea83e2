package service

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// serve mounts the console at /console/ beside the intake: signed out it
// sends to the sign-in page, a token the intake accepts signs in, and the
// intake itself still wants its bearer token.
func TestServeMountsTheConsole(t *testing.T) {
	cfg := testConfig(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops tok-ops viewer,operator\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, errc := runUntilReady(t, ctx, cfg)
	base := "http://" + addr
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	r, err := c.Get(base + "/console/orders")
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
	assert.Equal(t, "/console/signin", r.Header.Get("Location"))

	r, err = c.PostForm(base+"/console/signin", url.Values{"token": {"tok-ops"}})
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Len(t, r.Cookies(), 1)
	assert.False(t, r.Cookies()[0].Secure, "no TLS, no Secure")

	// An order filed at the intake is on the console's list (the pipeline's
	// order index) and its page opens.
	acsn := `{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},"system":"urn:test:acsn","value":"CONSOLE-1"}`
	req, err := http.NewRequest(http.MethodPost, base+"/fhir/ServiceRequest", strings.NewReader(
		`{"resourceType":"ServiceRequest","status":"active","intent":"order","identifier":[`+acsn+`],"subject":{"reference":"Patient/1"}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer tok-ops")
	r, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	require.Less(t, r.StatusCode, 300, "order accepted")
	id := radgate.OrderID("acsn|urn:test:acsn|CONSOLE-1")
	r, err = c.Get(base + "/console/orders")
	require.NoError(t, err)
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, string(body), id, "the order is listed")
	r, err = c.Get(base + "/console/orders?search=CONSOLE-1")
	require.NoError(t, err)
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	assert.Contains(t, string(body), id, "found by its accession")
	r, err = c.Get(base + "/console/orders/" + id)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode)

	r, err = c.Get(base + "/console/orders/ffffffffffffffffffffffff")
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusNotFound, r.StatusCode, "signed in: the order page answers")

	r, err = c.Get(base + "/orders/ffffffffffffffffffffffff")
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode, "the console's cookie is no bearer token for the intake")
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("no stop in 40 s")
	}
}
