package consoletest

// The harness the browser tests share: startServe runs radgate serve on the
// real peers with static tokens for the three principals; newBrowser opens
// one headless Chromium tab that records every URL it asks for; the
// browser's methods visit, click, type, read text, post (with or without
// the page's CSRF token) and save screenshots. A page's checks are a new
// Test… that uses them (see TestConsoleInTheBrowser), with b.noPatient on
// every page a viewer opens and the URL/log checks at its end.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/service"

	// Registers its destination type (dicomweb and fhirhttp, imported
	// above, register theirs), as radgate's main does.
	_ "github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/internal/testenv"
)

// The three principals the tests sign in as (static tokens).
const (
	viewer   = "viewer"
	operator = "operator"
	phi      = "operator-phi"
)

// radiographs are the test's studies: paediatric-engine chest radiographs
// that serve scores and delivers (see cmd/radgate's e2e test).
var radiographs = []string{"cr-chest-header-mono1-jpeg-baseline.dcm", "dx-chest-implicit-le-8bit.dcm", "cr-chest-pa-jpeg-baseline.dcm"}

// serve is radgate serve, in the test process, on the real peers.
type serve struct {
	url    string
	tokens map[string]string // principal → token
	logs   *testenv.LogBuffer
	env    *demo.Env
}

func token() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startServe starts radgate serve, the config first changed by mutate
// when not nil (a destination that fails, a short delivery window, …).
func startServe(t *testing.T, mutate func(*config.Config)) *serve {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1"
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.Orders.RetryMin, cfg.Orders.RetryMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(20 * time.Second)
	cfg.DataDir = t.TempDir()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = testenv.ONNXRuntimeLib(t)
	cfg.PACS.DICOMwebURL = pacs.DICOMweb
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_CONSOLETEST_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_CONSOLETEST_PACS_PASSWORD"
	cfg.FHIR.BaseURL = fhirSrv.URL

	tokens := map[string]string{viewer: token(), operator: token(), phi: token()}
	file := filepath.Join(t.TempDir(), "tokens")
	lines := fmt.Sprintf("%s %s viewer\n%s %s viewer,operator\n%s %s viewer,operator,phi\n",
		viewer, tokens[viewer], operator, tokens[operator], phi, tokens[phi])
	require.NoError(t, os.WriteFile(file, []byte(lines), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: file}
	if mutate != nil {
		mutate(&cfg)
	}

	logs := &testenv.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- service.Run(ctx, cfg, service.Options{Logger: logger, Ready: ready}) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("serve ended before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("serve not ready in 60 s\n%s", logs.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Error("serve did not stop in 40 s")
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	})

	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	// The intake wants a bearer token: the operator's.
	hc := &http.Client{Transport: bearer{tokens[operator]}, Timeout: 30 * time.Second}
	return &serve{url: "http://" + addr, tokens: tokens, logs: logs,
		env: &demo.Env{RadgateURL: "http://" + addr, FHIR: fc, PACS: pc, HTTP: hc}}
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// order is one filed order with the patient's name and MRN the checks
// look for.
type order struct {
	*demo.Case
	mrn string
}

// fileOrders stores clones of the radiographs (new studies, so runs never
// meet on the shared PACS and FHIR server) and files their orders at the
// intake, as a FHIR ServiceRequest + ImagingStudy and as a Bundle.
func (s *serve) fileOrders(t *testing.T) []order {
	t.Helper()
	cases := newCases(t)
	ctx := t.Context()
	require.NoError(t, s.env.LoadImages(ctx, cases))
	require.NoError(t, s.env.Order(ctx, cases))
	return ordersOf(cases)
}

// ordersOf pairs each case with the MRN demo gives its patient.
func ordersOf(cases []*demo.Case) []order {
	var out []order
	for i, c := range cases {
		out = append(out, order{Case: c, mrn: fmt.Sprintf("MRN-%04d", i+1)}) // demo's MRN for the i-th case
	}
	return out
}

// newCases clones the radiographs into new studies (not yet stored).
func newCases(t *testing.T) []*demo.Case {
	t.Helper()
	// Clone numbers: up to 5 digits (the radiographs' UIDs); one per case,
	// since a clone's accession number is its number alone.
	n, err := rand.Int(rand.Reader, big.NewInt(99999/int64(len(radiographs))))
	require.NoError(t, err)
	var cases []*demo.Case
	for i, name := range radiographs {
		src, err := os.ReadFile(testenv.Testdata("cxr-dicom", name))
		require.NoError(t, err)
		data, _, err := demo.Clone(src, int(n.Int64())*len(radiographs)+i)
		require.NoError(t, err, name)
		path := demo.ViaDirectPost
		if i%2 == 1 {
			path = demo.ViaBundle
		}
		cases = append(cases, &demo.Case{File: name, Data: data, Path: path, Patient: fmt.Sprintf("Qzxv Consolepatient%02d", i)})
	}
	return cases
}

// browser is one headless Chromium tab at 1366×768 that records every URL
// it asks for and saves screenshots.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	n    int // screenshots taken

	mu      sync.Mutex
	visited []string
}

func newBrowser(t *testing.T, exec, base string) *browser {
	t.Helper()
	dir := os.Getenv("RADGATE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "testdata-out")
	}
	dir = filepath.Join(dir, t.Name()) // one folder per test: their NN-names never meet
	require.NoError(t, os.MkdirAll(dir, 0o755))
	b := &browser{t: t, base: base, dir: dir}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exec), chromedp.WindowSize(1366, 768), chromedp.Flag("disable-gpu", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.record))
	t.Cleanup(func() { cancel(); acancel() })
	b.ctx = ctx
	// The first Do starts the browser and its tab, which live as long as
	// the context it gets: ctx itself, not one with a step's timeout.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)))
	return b
}

// record keeps every request's and every navigation's URL (it runs on the
// tab's reader: it only appends).
func (b *browser) record(ev any) {
	var u string
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request != nil {
			u = e.Request.URL
		}
	case *page.EventFrameNavigated:
		if e.Frame != nil {
			u = e.Frame.URL
		}
	}
	if u != "" {
		b.mu.Lock()
		b.visited = append(b.visited, u)
		b.mu.Unlock()
	}
}

func (b *browser) urls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.visited)
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

func run[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(b.t, err)
	return v
}

func (b *browser) visit(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }
func (b *browser) reload()           { b.t.Helper(); b.do(chromedp.Reload()) }
func (b *browser) location() string  { b.t.Helper(); return run(b, chromedp.Location()) }
func (b *browser) text() string      { b.t.Helper(); return b.textOf("body") }
func (b *browser) click(css string)  { b.t.Helper(); b.do(chromedp.Click(chromedp.CSS(css))) }

// textOf is the text of the first element css selects, read by the
// page's own script: chromedp's node queries can meet a node id the
// browser has already replaced ("No node with given id found") when a page
// arrives under load.
func (b *browser) textOf(css string) string {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? [true, e.innerText] : [false, ""]; })()`, css)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := run(b, chromedp.Evaluate[[]any](js))
		if found, _ := v[0].(bool); found {
			text, _ := v[1].(string)
			return text
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no element %s on %s", css, b.location())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) eval(js string) {
	b.t.Helper()
	_ = run(b, chromedp.Evaluate[any](js))
}

// waitText waits until the element's text contains want. It asks again
// while a navigation (a click's) replaces the page under the question.
func (b *browser) waitText(css, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q); })()`, css, want)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no %s with %q on %s (last error %v):\n%s", css, want, b.location(), err, b.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scripts turns the page's JavaScript on or off (the console's pages must
// work without it; the test's own questions to the page still run).
func (b *browser) scripts(on bool) {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return err
	}))
}

// signIn types the token into the sign-in form and submits it.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.visit("/console/signin")
	b.do(chromedp.WaitVisible(chromedp.ID("token")), chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("form.signin button")))
}

// signOut presses Sign out and lands on the sign-in page.
func (b *browser) signOut() {
	b.t.Helper()
	b.click(`form[action="/console/signout"] button`)
	b.waitText("h1", "Sign in")
	require.Equal(b.t, b.base+"/console/signin", b.location())
}

// reloadUntil reloads the page until the element's text contains want,
// or fails after within (the pages that do not update themselves).
func (b *browser) reloadUntil(css, want string, within time.Duration) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.innerText.includes(%q); })()`, css, want)
	deadline := time.Now().Add(within)
	for !run(b, chromedp.Evaluate[bool](js)) {
		if time.Now().After(deadline) {
			b.t.Fatalf("no %s with %q on %s in %s:\n%s", css, want, b.location(), within, b.text())
		}
		time.Sleep(300 * time.Millisecond)
		b.reload()
	}
}

// count is the number of elements css selects.
func (b *browser) count(css string) int {
	b.t.Helper()
	return run(b, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, css)))
}

// listedStates reads the orders list: order id → state.
func (b *browser) listedStates() map[string]string {
	b.t.Helper()
	rows := run(b, chromedp.Evaluate[[][]string](
		`Array.from(document.querySelectorAll('table.orders tbody tr')).map(r => [r.cells[0].innerText.trim(), r.cells[2].innerText.trim()])`))
	out := map[string]string{}
	for _, r := range rows {
		out[r[0]] = r[1]
	}
	return out
}

// waitListed reloads the orders list until each of ids is listed in
// state, or fails after within. (When the list updates itself over SSE,
// drop the reload and watch the page instead.)
func (b *browser) waitListed(ids []string, state string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		states := b.listedStates()
		done := 0
		for _, id := range ids {
			if states[id] == state {
				done++
			}
		}
		if done == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("not every order %s on the list in %s: %v", state, within, states)
		}
		time.Sleep(500 * time.Millisecond)
		b.reload()
	}
}

// post sends a form from the page's own script (same origin, with the
// session cookie, as a form would) and returns the status, not following
// a redirect (0 then: fetch's opaque redirect). With csrf the form carries
// the token of the page's forms (the sign-out form's when nothing else).
func (b *browser) post(path string, form map[string]string, csrf bool) int {
	b.t.Helper()
	if form == nil {
		form = map[string]string{}
	}
	body, err := json.Marshal(form)
	require.NoError(b.t, err)
	js := fmt.Sprintf(`(() => {
		const f = new URLSearchParams(%s);
		if (%t) { const c = document.querySelector('input[name=csrf]'); if (c) f.set('csrf', c.value); }
		return fetch(%q, {method: "POST", body: f, redirect: "manual"}).then(r => r.status);
	})()`, body, csrf, path)
	return run(b, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
}

// noPatient asserts the page (text and HTML) holds no test patient's name
// or MRN.
func (b *browser) noPatient(cases []order, who string) {
	b.t.Helper()
	html := run(b, chromedp.OuterHTML(chromedp.CSS("html")))
	for _, c := range cases {
		for _, s := range []string{c.Patient, c.mrn, "Consolepatient"} {
			assert.NotContains(b.t, html, s, "%s sees %q on %s", who, s, b.location())
		}
	}
}

// shot saves the viewport (1366×768) as <test>/NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png := run(b, chromedp.CaptureScreenshot())
	b.n++
	f := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	require.NoError(b.t, os.WriteFile(f, png, 0o644))
}
