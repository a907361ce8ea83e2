package consoletest

import (
	"cmp"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// TestRoutesEnginesUsageInTheBrowser: the routes page shows the running
// route file, and its which-route form, typed into and submitted, shows
// the decision; the engines page lists both engines of models/ with
// their state; after orders are delivered the usage table shows their
// facility and engine, and its CSV link answers the same figures as a
// download. As a viewer, JavaScript on.
func TestRoutesEnginesUsageInTheBrowser(t *testing.T) {
	chrome := testenv.Chromium(t)
	engine := config.DefaultEngine
	routes := "# The browser test's routes.\nmatch: first\nroutes:\n  - name: chest-xray\n    when:\n      modality: [DX, CR]\n      body_part: [CHEST]\n" +
		"    engines: [" + engine + "]\n    destinations: [fhir]\n"
	var modelsDir string
	rg := startServe(t, func(cfg *config.Config) {
		cfg.RoutesFile = filepath.Join(t.TempDir(), "routes.yaml")
		require.NoError(t, os.WriteFile(cfg.RoutesFile, []byte(routes), 0o600))
		modelsDir = cfg.ModelsDir
	})
	b := newBrowser(t, chrome, rg.url)
	cases := rg.fileOrders(t) // scored while the pages are read
	b.signIn(rg.tokens[viewer])
	b.waitText("h1", "Orders")

	// Routes: the file in force, line by line, and a decision asked for
	// by typing into the form and pressing Decide.
	b.click(`nav a[href="/console/routes"]`)
	b.waitText("h1", "Routes")
	src := b.textOf("pre.source")
	assert.Contains(t, src, "- name: chest-xray")
	assert.Contains(t, src, "engines: ["+engine+"]")
	assert.Contains(t, b.textOf("dl.facts"), "chest-xray")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=modality]`), "DX"),
		chromedp.SendKeys(chromedp.CSS(`input[name=body_part]`), "chest"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
	b.waitText("section.decision", "Matched")
	d := b.textOf("section.decision")
	assert.Contains(t, d, "yes")
	assert.Contains(t, d, "chest-xray")
	assert.Contains(t, d, engine)
	assert.Contains(t, d, "fhir")
	assert.Contains(t, b.location(), "modality=DX")
	b.shot("routes-decision")
	// And one that no route takes, with why.
	b.visit("/console/routes")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=modality]`), "CT"),
		chromedp.SendKeys(chromedp.CSS(`input[name=body_part]`), "HEAD"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
	b.waitText("section.decision", "Why")
	assert.Contains(t, b.textOf("section.decision"), "no")

	// Engines: every engine of models/ with its state (none recorded:
	// this route set declares no acceptance, so each is active).
	entries, err := os.ReadDir(modelsDir)
	require.NoError(t, err)
	var engines []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(modelsDir, e.Name(), "model.yaml")); err == nil {
			engines = append(engines, e.Name())
		}
	}
	require.Len(t, engines, 2, "models/ has two engines")
	b.click(`nav a[href="/console/engines"]`)
	b.waitText("h1", "Engines")
	require.Equal(t, len(engines), b.count("section.engine"))
	for _, e := range engines {
		sec := b.textOf(`section.engine[aria-labelledby="e-` + e + `"]`)
		assert.Contains(t, sec, "version")
		assert.Contains(t, sec, "State per facility and route")
		assert.Contains(t, sec, "No recorded state", "engine %s", e)
	}
	assert.Zero(t, b.count(`a[href^="/console/engines/change"]`), "a viewer gets no action")
	b.shot("engines")

	// Usage: once the orders are delivered, their facility and engine
	// with one analysis each; the CSV link downloads the same.
	var facility string
	for _, c := range cases {
		var st radgate.OrderStatus
		require.Eventually(t, func() bool {
			st, err = rg.env.OrderStatus(t.Context(), c.OrderID)
			return err == nil && st.State == radgate.StateDelivered
		}, 90*time.Second, 200*time.Millisecond, "order %s not delivered: %+v", c.OrderID, st)
		facility = cmp.Or(st.FacilityID, st.Facility, billing.UnknownFacility)
	}
	b.click(`nav a[href="/console/usage"]`)
	b.waitText("h1", "Usage")
	month := time.Now().UTC().Format("2006-01")
	b.reloadUntil("table.usage tfoot", "3", 10*time.Second)
	rows := run(b, chromedp.Evaluate[[][]string](
		`Array.from(document.querySelectorAll('table.usage tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText.trim()))`))
	require.Equal(t, [][]string{{month, facility, engine, "3"}}, rows)
	b.noPatient(cases, viewer)
	b.shot("usage")
	link := `a[href^="/console/usage.csv"]`
	require.Equal(t, 1, b.count(link+"[download]"), "the CSV link downloads")
	got := run(b, chromedp.Evaluate[[]string](`fetch(document.querySelector('`+link+`').href).then(async r =>
		[String(r.status), r.headers.get("Content-Type"), r.headers.get("Content-Disposition"), await r.text()])`, chromedp.EvalAwaitPromise))
	require.Len(t, got, 4)
	assert.Equal(t, "200", got[0])
	assert.Equal(t, "text/csv; charset=utf-8", got[1])
	assert.Equal(t, `attachment; filename="radgate-usage-`+month+`.csv"`, got[2])
	records, err := csv.NewReader(strings.NewReader(got[3])).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"month", "facility", "engine", "analyses"}, {month, facility, engine, "3"}}, records)
	// Filtered to another facility: none.
	b.visit("/console/usage?facility=nowhere")
	b.waitText("main", "No analyses in "+month+" at nowhere")
	b.signOut()

	assert.NotContains(t, rg.logs.String(), "/favicon.ico", "the browser asked the intake for an icon")
	t.Logf("screenshots in %s", b.dir)
}
