package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker/brokertest"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/routing"
)

// consoleClient is a signed-in console browser.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func signInConsole(t *testing.T, base, token string) *consoleClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := c.PostForm(base+"/console/signin", url.Values{"token": {token}})
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	return &consoleClient{t: t, base: base, c: c}
}

func (cc *consoleClient) get(path string) (int, string) {
	cc.t.Helper()
	r, err := cc.c.Get(cc.base + path)
	require.NoError(cc.t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func (cc *consoleClient) post(path string, form url.Values) (int, string) {
	cc.t.Helper()
	r, err := cc.c.PostForm(cc.base+path, form)
	require.NoError(cc.t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// The routes, engines and usage pages through radgate serve on the real
// peers: the route file and a which-route decision, a failed reload's
// finding at line:col, both engines with a facility's mode, an operator's
// suspension through governance (audited on the FHIR server) and a
// viewer's 403, and the usage CSV equal to billing's bytes.
func TestConsoleRoutesEnginesUsage(t *testing.T) {
	nc, topo := brokertest.Topology(t)
	cfg := testConfig(t)
	cfg.NATS.URL = nc.ConnectedUrl()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops-olga tok-ops viewer,operator\nviewer-ann tok-viewer viewer\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}
	engine := config.DefaultEngine
	good := "routes:\n  - name: chest\n    when:\n      modality: [DX, CR]\n      body_part: [CHEST]\n    engines: [" + engine +
		"]\n    destinations: [fhir]\n    acceptance: {min_cases: 10, auc_lower_95: 0.8}\n"
	cfg.RoutesFile = filepath.Join(dir, "routes.yaml")
	require.NoError(t, os.WriteFile(cfg.RoutesFile, []byte(good), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, errc := runUntilReady(t, ctx, cfg)
	base := "http://" + addr
	ops := signInConsole(t, base, "tok-ops")
	viewer := signInConsole(t, base, "tok-viewer")

	// Routes: the running file, its digest, and a decision by the running set.
	set, err := routing.Load(cfg.RoutesFile, []byte(good), routing.Registry{Engines: []string{engine}, Destinations: cfg.DestinationNames()})
	require.NoError(t, err)
	code, body := viewer.get("/console/routes?decide=1&modality=DX&body_part=CHEST&facility=kids")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, set.Digest()[:12])
	assert.Contains(t, body, `<span class="ln" id="L2" aria-hidden="true">2</span>  - name: chest`)
	assert.Contains(t, body, "<dt>Routes</dt><dd>chest</dd>")
	assert.Contains(t, body, "<dt>Engines</dt><dd>"+engine+"</dd>")
	assert.Contains(t, body, "<dt>Destinations</dt><dd>fhir</dd>")

	// A reload that fails: its finding at line:col, the old routes serving.
	bad := []byte(good[:len(good)-len("    acceptance: {min_cases: 10, auc_lower_95: 0.8}\n")] + "    read: {request: sometimes}\n")
	_, lerr := routing.Load(cfg.RoutesFile, bad, routing.Registry{Engines: []string{engine}, Destinations: cfg.DestinationNames()})
	var findings config.Errors
	require.True(t, errors.As(lerr, &findings), "the bad file has findings: %v", lerr)
	where := fmt.Sprintf("%s:%d:%d", findings[0].File, findings[0].Line, findings[0].Column)
	require.NoError(t, os.WriteFile(cfg.RoutesFile, bad, 0o600))
	require.Eventually(t, func() bool {
		_, body = viewer.get("/console/routes")
		return bytes.Contains([]byte(body), []byte("The last reload failed"))
	}, 20*time.Second, 100*time.Millisecond, "the failed reload shows")
	assert.Contains(t, body, "<code>"+where+"</code>")
	assert.Contains(t, body, set.Digest()[:12], "the running set is still the good one")
	assert.Contains(t, body, "acceptance: {min_cases: 10", "and its text")

	// Engines: the kids facility's engine is in shadow on route chest (its
	// first result there), with a result recorded for the live figures.
	gov := governance.New(governance.Options{Topology: topo})
	st := radgate.OrderStatus{ID: "o-console-e", FacilityID: "kids",
		Route: &radgate.RouteDecision{Acceptance: &radgate.Acceptance{Route: "chest"}}}
	info := radgate.EngineInfo{ID: engine, Version: "1.0.0"}
	mode, err := gov.Mode(ctx, st, info)
	require.NoError(t, err)
	require.Equal(t, radgate.EngineShadow, mode)
	require.NoError(t, gov.Measure(ctx, radgate.Result{ID: "r-console-e", Order: st, Engine: info, Outcome: radgate.OutcomeScored,
		Probability: 0.8, Tier: "High", Input: &radgate.InputMix{Modality: "DX"}}, mode))
	code, body = viewer.get("/console/engines")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "<code>"+engine+"</code>")
	assert.Contains(t, body, "<code>"+engine+"-k224</code>")
	assert.Contains(t, body, "<td>kids</td><td>chest</td><td>1.0.0</td><td><span class=\"mode mode-shadow\">shadow</span>")
	assert.Contains(t, body, "Live figures at kids")
	assert.Contains(t, body, "age_years 1–5 y")
	assert.NotContains(t, body, "/console/engines/change", "a viewer gets no action")

	// A viewer's POST is refused; an operator suspends through the page.
	m := consoleCSRF.FindStringSubmatch(body)
	require.NotNil(t, m)
	change := url.Values{"csrf": {m[1]}, "facility": {"kids"}, "route": {"chest"}, "engine": {engine}, "mode": {"suspended"}, "why": {"drift at kids"}}
	code, _ = viewer.post("/console/engines/change", change)
	assert.Equal(t, http.StatusForbidden, code)
	_, body = ops.get("/console/engines")
	assert.Contains(t, body, "mode=suspended\">Suspend</a>")
	code, form := ops.get("/console/engines/change?facility=kids&route=chest&engine=" + engine + "&mode=suspended")
	require.Equal(t, http.StatusOK, code)
	change.Set("csrf", consoleCSRF.FindStringSubmatch(form)[1])
	code, body = ops.post("/console/engines/change", change)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "by ops-olga (drift at kids)")
	states, err := gov.States(ctx, "kids", "chest")
	require.NoError(t, err)
	require.Len(t, states, 1)
	assert.Equal(t, radgate.EngineSuspended, states[0].Mode)
	assert.Equal(t, "ops-olga", states[0].By)
	audit := regexp.MustCompile(`Audit record: <code>(AuditEvent/[^<]+)</code>`).FindStringSubmatch(body)
	require.NotNil(t, audit, "the change's audit record: %s", body)
	r, err := http.Get(cfg.FHIR.BaseURL + "/" + audit[1])
	require.NoError(t, err)
	ae, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, string(ae), "drift at kids")

	// Usage: the CSV is billing's bytes for the month.
	u, err := billing.EnsureUsageMeter(ctx, topo.JS)
	require.NoError(t, err)
	at := time.Now().UTC()
	_, err = u.Count(ctx, "r-console-e", engine, "kids", at)
	require.NoError(t, err)
	month := at.Format("2006-01")
	rows, err := u.Month(ctx, month)
	require.NoError(t, err)
	var want bytes.Buffer
	require.NoError(t, billing.WriteUsage(&want, month, rows, billing.UsageCSV))
	code, got := viewer.get("/console/usage.csv?month=" + month)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, want.String(), got)
	_, body = viewer.get("/console/usage?month=" + month + "&facility=kids")
	assert.Contains(t, body, "<td>kids</td><td>"+engine+"</td>")

	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("no stop in 40 s")
	}
}
