package console

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/routing"
)

// areaEnv is a console with an operator and a viewer token and the
// options o (Auth, Sessions and Now filled in).
func areaEnv(t *testing.T, o Options) *env {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(f, []byte("viewer-ann tok-viewer viewer\nops-olga tok-ops viewer,operator\n"), 0o600))
	a, err := httpauth.New(config.IntakeAuth{Mode: config.AuthStatic, TokensFile: f}, httpauth.Options{})
	require.NoError(t, err)
	o.Auth, o.Sessions, o.Now = a, sessions(t), func() time.Time { return now }
	con, err := New(o)
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{srv: srv, c: c}
}

const testRoutes = `match: first
routes:
  - name: chest
    when:
      modality: [DX, CR]
      body_part: [CHEST]
    engines: [cxr]
    destinations: [fhir]
    acceptance: {min_cases: 10, auc_lower_95: 0.8}
  - name: ct-head
    when:
      modality: [CT]
    engines: [ct]
    destinations: [pacs]
`

type fakeRoutes struct {
	set *routing.Set
	st  RouteStatus
}

func (f fakeRoutes) RouteSet() *routing.Set   { return f.set }
func (f fakeRoutes) RouteStatus() RouteStatus { return f.st }

func loadTestRoutes(t *testing.T) *routing.Set {
	t.Helper()
	set, err := routing.Load("/etc/radgate/routes.yaml", []byte(testRoutes),
		routing.Registry{Engines: []string{"cxr", "ct"}, Destinations: []string{"fhir", "pacs"}})
	require.NoError(t, err)
	return set
}

// The routes page shows the running file with line numbers, its digest
// and the last reload's findings at line:col.
func TestRoutesPageShowsFileAndFailedReload(t *testing.T) {
	set := loadTestRoutes(t)
	st := RouteStatus{File: "/etc/radgate/routes.yaml", Source: []byte(testRoutes), Digest: set.Digest(), LoadedAt: now.Add(-time.Hour),
		Last: &ReloadResult{At: now.Add(-time.Minute), Trigger: "file changed", Result: "failure",
			Findings: config.Errors{{File: "/etc/radgate/routes.yaml", Line: 7, Column: 15, Message: `route "chest": engines: unknown engine "cxr2"`}}}}
	e := areaEnv(t, Options{Routes: fakeRoutes{set: set, st: st}})
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/routes")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "<code>/etc/radgate/routes.yaml</code>")
	assert.Contains(t, body, set.Digest()[:12])
	assert.Contains(t, body, `<span class="ln" id="L3" aria-hidden="true">3</span>  - name: chest`)
	assert.Contains(t, body, "The last reload failed")
	assert.Contains(t, body, "<code>/etc/radgate/routes.yaml:7:15</code>")
	assert.Contains(t, body, `unknown engine &#34;cxr2&#34;`)
	assert.Contains(t, body, `href="/console/routes"`, "in the nav")
}

// The which-route form runs the running set's Decide on the facts given.
func TestRoutesPageDecides(t *testing.T) {
	set := loadTestRoutes(t)
	e := areaEnv(t, Options{Routes: fakeRoutes{set: set, st: RouteStatus{File: "r.yaml", Source: []byte(testRoutes), Digest: set.Digest()}}})
	e.signIn(t, "tok-viewer")
	_, body := e.get(t, "/console/routes?decide=1&modality=dx&body_part=chest&facility=St+Mary&priority=stat")
	assert.Contains(t, body, "<dt>Routes</dt><dd>chest</dd>")
	assert.Contains(t, body, "<dt>Engines</dt><dd>cxr</dd>")
	assert.Contains(t, body, "<dt>Destinations</dt><dd>fhir</dd>")
	assert.Contains(t, body, "route chest: at least 10 labelled cases")
	assert.Contains(t, body, `<option selected>stat</option>`)

	_, body = e.get(t, "/console/routes?decide=1&modality=MR")
	want := set.Decide(routing.Facts{Modalities: []string{"MR"}}).Reason
	require.NotEmpty(t, want)
	assert.Contains(t, body, "<strong>no</strong>")
	assert.Contains(t, body, escaped(want))
}

func TestRouteFacts(t *testing.T) {
	f := routeFacts(map[string][]string{"modality": {"DX, CR"}, "procedure_code": {"http://loinc.org|36643-5, 123"}, "priority": {" STAT "}})
	assert.Equal(t, []string{"DX", "CR"}, f.Modalities)
	assert.Equal(t, []routing.Code{{System: "http://loinc.org", Code: "36643-5"}, {Code: "123"}}, f.ProcedureCodes)
	assert.Equal(t, "stat", f.Priority)
}

// escaped escapes s as html/template writes text.
func escaped(s string) string {
	return htmlEscaper.Replace(s)
}

var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `'`, "&#39;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;", "+", "&#43;")
