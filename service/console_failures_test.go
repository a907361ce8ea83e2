package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// bearer adds a bearer token to every request (through next, or
// http.DefaultTransport when nil).
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	if b.next == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return b.next.RoundTrip(r)
}

func signIn(t *testing.T, base, token string) *consoleClient {
	t.Helper()
	return signInConsole(t, base, token)
}

func (cc *consoleClient) do(method, path string, form url.Values) (int, string) {
	cc.t.Helper()
	var r *http.Response
	var err error
	if method == http.MethodGet {
		r, err = cc.c.Get(cc.base + path)
	} else {
		r, err = cc.c.PostForm(cc.base+path, form)
	}
	require.NoError(cc.t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

var (
	csrfRE  = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)
	auditRE = regexp.MustCompile(`Recorded as <code>(AuditEvent/[^<]+)</code>`)
)

// The operator's path on the real peers, through serve's own wiring: the
// FHIR server refuses a result for good (422, through a proxy in front of
// the real server), it shows on /console/failures with why; the cause is
// fixed; the operator replays it through the confirmation; the order ends
// delivered with exactly one DiagnosticReport on the FHIR server, a second
// replay sends nothing, and the AuditEvent names the operator. A viewer
// sees the table without buttons and gets 403 posting; no CSRF token, 403.
func TestConsoleFailuresReplayEndToEnd(t *testing.T) {
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	cfg := testConfig(t)
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_CONSOLE_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_CONSOLE_PACS_PASSWORD"
	cfg.Orders.RetryMin, cfg.Orders.RetryMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(20 * time.Second)

	// The FHIR server, behind a proxy that refuses transactions (the
	// results) while broken.
	target, err := url.Parse(fhirSrv.URL)
	require.NoError(t, err)
	var broken atomic.Bool
	broken.Store(true)
	var refused atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == strings.TrimSuffix(target.Path, "/") {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"refused by the test"}]}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	cfg.FHIR.BaseURL = proxy.URL + target.Path

	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops-olga tok-ops viewer,operator\nviewer-ann tok-viewer viewer\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}

	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, cfg, Options{Ready: ready, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	base := "http://" + addr
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

	// An order whose result the FHIR server refuses.
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	img, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+3)
	require.NoError(t, err)
	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	env := &demo.Env{RadgateURL: base, FHIR: fc, PACS: pc,
		HTTP: &http.Client{Transport: bearer{token: "tok-ops", next: http.DefaultTransport}}}
	c := &demo.Case{File: "console-refused.dcm", Data: img, Path: demo.ViaDirectPost, Patient: "Consolia Failworth"}
	cases := []*demo.Case{c}
	require.NoError(t, env.LoadImages(ctx, cases))
	require.NoError(t, env.Order(ctx, cases))
	require.NoError(t, env.Wait(ctx, cases, 2*time.Minute))
	require.Equal(t, radgate.StateFailed, c.Status.State, c.Status.Reason)
	require.Positive(t, refused.Load(), "the FHIR server was asked and refused")

	ops := signIn(t, base, "tok-ops")
	var page string
	require.Eventually(t, func() bool { // the order is marked failed just before the DLQ copy is written
		_, page = ops.do(http.MethodGet, "/console/failures", nil)
		return strings.Contains(page, c.OrderID)
	}, 10*time.Second, 100*time.Millisecond, "the dead letter is not on the page")
	seqs := regexp.MustCompile(`name="seq" value="(\d+)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, seqs, 1, "one dead letter")
	seq := seqs[0][1]
	assert.Contains(t, page, "deliver-fhir")
	assert.Contains(t, page, "422 Unprocessable Entity")
	assert.Contains(t, page, "Replay selected")
	assert.NotContains(t, page, "Consolia", "no patient name")
	assert.NotContains(t, page, "MRN-", "no patient identifier")
	tok := csrfRE.FindStringSubmatch(page)[1]

	// A viewer sees the table, no button, and is refused when posting.
	viewer := signIn(t, base, "tok-viewer")
	code, vpage := viewer.do(http.MethodGet, "/console/failures", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, vpage, c.OrderID)
	assert.NotContains(t, vpage, "Replay selected")
	assert.NotContains(t, vpage, `name="seq"`)
	_, vorders := viewer.do(http.MethodGet, "/console/orders", nil)
	vtok := csrfRE.FindStringSubmatch(vorders)[1]
	code, _ = viewer.do(http.MethodPost, "/console/failures/replay", url.Values{"csrf": {vtok}, "seq": {seq}, "confirm": {"yes"}})
	assert.Equal(t, http.StatusForbidden, code, "a viewer may not replay")
	// No CSRF token: 403, nothing replayed.
	code, _ = ops.do(http.MethodPost, "/console/failures/replay", url.Values{"seq": {seq}, "confirm": {"yes"}})
	assert.Equal(t, http.StatusForbidden, code, "no CSRF token")
	_, page = ops.do(http.MethodGet, "/console/failures", nil)
	require.Contains(t, page, `name="seq" value="`+seq+`"`, "still in the DLQ")

	// Fixed; the row's button asks for confirmation, the confirmation replays.
	broken.Store(false)
	code, confirm := ops.do(http.MethodPost, "/console/failures/replay", url.Values{"csrf": {tok}, "one": {seq}})
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, confirm, "Confirm replay")
	assert.Contains(t, confirm, c.OrderID)
	code, outcome := ops.do(http.MethodPost, "/console/failures/replay", url.Values{"csrf": {csrfRE.FindStringSubmatch(confirm)[1]},
		"seq": {seq}, "confirm": {"yes"}})
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, outcome, "Replay: done")
	assert.Contains(t, outcome, "removed from the DLQ")
	m := auditRE.FindStringSubmatch(outcome)
	require.NotNil(t, m, "the outcome names the audit record: %s", outcome)

	var st radgate.OrderStatus
	require.Eventually(t, func() bool {
		st, err = env.OrderStatus(ctx, c.OrderID)
		return err == nil && st.State == radgate.StateDelivered
	}, time.Minute, 100*time.Millisecond, "order never delivered: %+v", st)

	// Replayed again (a reload of the outcome page): nothing is sent.
	_, again := ops.do(http.MethodPost, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {seq}, "confirm": {"yes"}})
	assert.Contains(t, again, "dead letter not found")
	time.Sleep(time.Second) // time for a duplicate to surface
	mf, err := inference.LoadManifest(filepath.Join(cfg.ModelsDir, config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	id := fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: mf.Version}))
	found, err := fc.Search(ctx, "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	assert.Len(t, found, 1, "delivered exactly once")
	_, page = ops.do(http.MethodGet, "/console/failures", nil)
	assert.NotContains(t, page, c.OrderID, "the DLQ is empty of it")

	// The AuditEvent on the FHIR server names the operator and the entities.
	ae, err := fc.Read(ctx, m[1])
	require.NoError(t, err)
	assert.Contains(t, string(ae), `"ops-olga"`)
	assert.Contains(t, string(ae), `"dlq-replay"`)
	assert.Contains(t, string(ae), `"urn:radgate:dlq"`)
	assert.Contains(t, string(ae), c.OrderID)
	assert.NotContains(t, string(ae), "Consolia")
	assert.Contains(t, logs.String(), "console action", "logged too")
	assert.NotContains(t, logs.String(), "Consolia", "no patient name in the log")
}
