package consoletest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// refusingFHIR puts a proxy in front of the configured FHIR server that,
// while broken, refuses every transaction (POST to the base: the results)
// with 422 and an OperationOutcome; everything else passes through.
func refusingFHIR(t *testing.T, cfg *config.Config, broken *atomic.Bool) {
	t.Helper()
	target, err := url.Parse(cfg.FHIR.BaseURL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	base := strings.TrimSuffix(target.Path, "/")
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == base {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"refused by the browser test"}]}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	cfg.FHIR.BaseURL = proxy.URL + target.Path
}

// TestFailuresInTheBrowser is issue 15's failure path in the browser: the
// FHIR server refuses the results (a proxy in front of the real one), the
// orders fail and show on /console/failures with why; the cause is fixed;
// the operator ticks one row, presses "Replay selected", reads the
// confirmation, confirms and sees the outcome; that order ends delivered
// (its page and GET /orders/{id}) with exactly one DiagnosticReport on the
// real FHIR server, and only its dead letter left the DLQ. A viewer's
// failures page has no checkbox nor button, and its POST with a valid CSRF
// token is refused with 403.
func TestFailuresInTheBrowser(t *testing.T) {
	chrome := testenv.Chromium(t)
	var broken atomic.Bool
	broken.Store(true)
	var modelsDir string
	rg := startServe(t, func(cfg *config.Config) {
		refusingFHIR(t, cfg, &broken)
		modelsDir = cfg.ModelsDir
	})
	b := newBrowser(t, chrome, rg.url)

	b.signIn(rg.tokens[operator])
	b.waitText("h1", "Orders")
	cases := rg.fileOrders(t)

	// Every order fails at delivery and its dead letter shows, with why
	// (the page does not update itself: reload until it does).
	b.visit("/console/failures")
	for _, c := range cases {
		b.reloadUntil("table.failures", c.OrderID, 90*time.Second)
	}
	require.Equal(t, len(cases), b.count("table.failures tbody tr"), "one dead letter per order")
	assert.Contains(t, b.textOf("table.failures"), "422 Unprocessable Entity")
	assert.Contains(t, b.textOf("table.failures"), "deliver-fhir")
	b.noPatient(cases, "operator without phi")
	b.shot("failures")
	for _, c := range cases {
		st, err := rg.env.OrderStatus(t.Context(), c.OrderID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateFailed, st.State, "order %s: %s", c.OrderID, st.Reason)
	}

	// The cause is fixed; the operator replays the first order's dead
	// letter alone: tick its row, Replay selected, confirm.
	broken.Store(false)
	c := cases[0]
	row := fmt.Sprintf(`table.failures a[href="/console/orders/%s"]`, c.OrderID)
	seq := run(b, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).closest("tr").querySelector("input[name=seq]").value`, row)))
	require.NotEmpty(t, seq)
	b.click("#dlq-" + seq)
	require.True(t, run(b, chromedp.Evaluate[bool](fmt.Sprintf(`document.getElementById("dlq-%s").checked`, seq))), "the row is ticked")
	b.click(`form[action="/console/failures/replay"] p button[type=submit]`) // Replay selected
	b.waitText("h1", "Confirm replay")
	require.Equal(t, 1, b.count("table.failures tbody tr"), "only the ticked dead letter")
	assert.Contains(t, b.textOf("table.failures tbody"), c.OrderID)
	assert.Contains(t, b.textOf("table.failures tbody"), seq)
	b.shot("replay-confirm")
	b.click(`main form button[type=submit]`) // Replay 1
	b.waitText("h1", "Replay: done")
	out := b.textOf("main")
	assert.Contains(t, out, c.OrderID)
	assert.Contains(t, out, "removed from the DLQ")
	assert.Contains(t, out, "Recorded as AuditEvent/")
	b.shot("replay-outcome")

	// Delivered: on the API, on the order's page, and exactly once on
	// the real FHIR server.
	var st radgate.OrderStatus
	require.Eventually(t, func() bool {
		var err error
		st, err = rg.env.OrderStatus(t.Context(), c.OrderID)
		return err == nil && st.State == radgate.StateDelivered
	}, time.Minute, 100*time.Millisecond, "order %s never delivered: %+v", c.OrderID, st)
	b.click(fmt.Sprintf(`a[href="/console/orders/%s"]`, c.OrderID))
	b.waitText("h1", c.OrderID)
	assert.Contains(t, b.textOf("main"), string(radgate.StateDelivered))
	b.shot("order-replayed")
	mf, err := inference.LoadManifest(filepath.Join(modelsDir, config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	id := fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: mf.Version}))
	time.Sleep(500 * time.Millisecond) // time for a duplicate to surface
	found, err := rg.env.FHIR.Search(t.Context(), "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	assert.Len(t, found, 1, "delivered exactly once")

	// The DLQ holds the other two; the replayed one is gone.
	b.visit("/console/failures")
	b.waitText("h1", "Failures")
	assert.Equal(t, len(cases)-1, b.count("table.failures tbody tr"))
	assert.NotContains(t, b.textOf("table.failures"), c.OrderID)

	// A viewer: the table, no checkbox and no button; a POST with the
	// page's valid CSRF token is refused.
	b.signOut()
	b.signIn(rg.tokens[viewer])
	b.waitText("h1", "Orders")
	b.visit("/console/failures")
	b.waitText("table.failures", cases[1].OrderID)
	assert.Zero(t, b.count(`input[name=seq]`), "no checkbox")
	assert.Zero(t, b.count(`form[action="/console/failures/replay"]`), "no replay form")
	assert.Zero(t, b.count("main button"), "no button")
	b.noPatient(cases, viewer)
	b.shot("failures-viewer")
	other := run(b, chromedp.Evaluate[string](`document.querySelector("table.failures tbody tr td code").innerText`))
	require.Equal(t, http.StatusForbidden, b.post("/console/failures/replay", map[string]string{"seq": other, "confirm": "yes"}, true))
	b.visit("/console/failures")
	b.waitText("h1", "Failures")
	assert.Equal(t, len(cases)-1, b.count("table.failures tbody tr"), "nothing replayed")
	b.signOut()

	logs := rg.logs.String()
	assert.NotContains(t, logs, "/favicon.ico", "the browser asked the intake for an icon")
	assert.NotContains(t, logs, "not in the state machine", "the replay took only rows of radgate.Transitions")
	assert.Contains(t, b.urls(), rg.url+"/console/static/favicon.svg", "the console's icon")
	for _, c := range cases {
		assert.NotContains(t, logs, c.Patient, "patient name in serve's log")
	}
	t.Logf("screenshots in %s", b.dir)
}
