package main

// The harness of the reliability tests (reliability_test.go): radgate serve as
// a real child process (this test binary re-executed as the radgate command,
// so it can be killed with SIGKILL), private Orthanc and FHIR server
// instances the tests may pause without disturbing other packages' tests, and
// orders made from the PneumoniaMNIST-derived 28² radiographs.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

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

// execEnv makes this test binary run as the radgate command (see TestMain).
const execEnv = "RADGATE_TEST_EXEC_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// seeds hands out clone numbers: unique within this process and, being
// based on the clock, across runs against the same peers (each run takes
// fewer than 1000). Other tests of this package use numbers below 100000.
var seeds atomic.Int64

func init() {
	seeds.Store(1_000_000 + (time.Now().Unix()%90_000)*1000)
}

// patientMarkers are the patient names and identifiers carried by the test
// images (PneumoniaMNIST clones keep "Synthetic^PMVnnnn" / "PMV-nnnn") and
// the orders the tests post: no radgate log line may contain any of them.
var patientMarkers = []string{"Synthetic^PMV", "Synthetic PMV", "PMV-0", "Synthetic^KV", "KV-0", "Qzwfa", "MRNQ"}

// ---------------------------------------------------------------- the radgate process

// proc is one radgate serve child process.
type proc struct {
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	url  string
	done chan struct{}
	err  error // from Wait, once done is closed
	env  *demo.Env
}

var servingRE = regexp.MustCompile(`msg="radgate serving".* listen=(\S+)`)

// rig is a radgate configuration (one data_dir) that can be started,
// killed and started again.
type rig struct {
	t       *testing.T
	cfg     config.Config
	cfgPath string
	env     []string
	fhir    *fhirhttp.Client
	pacs    *dicomweb.Client
	version string

	mu    sync.Mutex
	procs []*proc
}

// peers say where the rig's PACS and FHIR server are (shared by default).
type peers struct {
	pacs testenv.PACS
	fhir string
	// pacsFor radgate, when set, replaces pacs.DICOMweb in radgate's
	// configuration (a fault proxy in front of it).
	radgatePACS string
}

func sharedPeers(t *testing.T) peers {
	return peers{pacs: testenv.Orthanc(t), fhir: testenv.FHIR(t).URL}
}

func newRig(t *testing.T, ps peers, mutate func(*config.Config)) *rig {
	t.Helper()
	lib := testenv.ONNXRuntimeLib(t)
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1"
	// Studies stored after their order settle in 1 s, waiting orders are
	// looked at every 200 ms to 2 s (defaults: 60 s; 30 s to 15 min).
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = lib
	cfg.PACS.DICOMwebURL = ps.pacs.DICOMweb
	if ps.radgatePACS != "" {
		cfg.PACS.DICOMwebURL = ps.radgatePACS
	}
	cfg.PACS.Username = ps.pacs.Username
	cfg.PACS.PasswordEnv = "RADGATE_RELIAB_PACS_PASSWORD"
	cfg.FHIR.BaseURL = ps.fhir
	cfg.Orders.RetryMin = config.Duration(100 * time.Millisecond)
	cfg.Orders.RetryMax = config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(30 * time.Second)
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(dir, "radgate.yaml")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	_, err = config.LoadFile(path)
	require.NoError(t, err, "the configuration written for the test loads")

	pc, err := dicomweb.New(dicomweb.Options{BaseURL: ps.pacs.DICOMweb, Username: ps.pacs.Username, Password: ps.pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: ps.fhir})
	require.NoError(t, err)
	m, err := inference.LoadManifest(filepath.Join(cfg.ModelsDir, config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	r := &rig{t: t, cfg: cfg, cfgPath: path, fhir: fc, pacs: pc, version: m.Version,
		env: append(os.Environ(), execEnv+"=1", "RADGATE_RELIAB_PACS_PASSWORD="+ps.pacs.Password)}
	t.Cleanup(r.cleanup)
	return r
}

// start runs radgate serve and waits until it serves.
func (r *rig) start() *proc {
	t := r.t
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &proc{logs: &testenv.LogBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "serve", "--config", r.cfgPath)
	p.cmd.Env = r.env
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.url = "http://" + m[1]
			break
		}
		select {
		case <-p.done:
			t.Fatalf("radgate exited before serving (%v):\n%s", p.err, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("radgate not serving after 90s:\n%s", p.logs.String())
		}
	}
	p.env = &demo.Env{RadgateURL: p.url, FHIR: r.fhir, PACS: r.pacs}
	return p
}

// kill9 kills p with SIGKILL and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// terminate sends SIGTERM and returns how long p took to exit (at most
// limit; the test fails beyond it).
func (p *proc) terminate(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("radgate did not exit within %s of SIGTERM", limit)
		return 0
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cleanup stops what still runs, checks that no process logged patient data
// or a data race, and shows the logs of a failed test.
func (r *rig) cleanup() {
	r.mu.Lock()
	procs := r.procs
	r.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(45 * time.Second):
				_ = p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
	}
	for i, p := range procs {
		logs := p.logs.String()
		for _, m := range patientMarkers {
			if strings.Contains(logs, m) {
				r.t.Errorf("radgate run %d logged patient data (%q)", i+1, m)
			}
		}
		if strings.Contains(logs, "WARNING: DATA RACE") {
			r.t.Errorf("radgate run %d: the race detector found a data race", i+1)
		}
		if r.t.Failed() {
			r.t.Logf("radgate run %d log (last 6000 bytes):\n%s", i+1, tail(logs, 6000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// metric sums the samples of a Prometheus counter whose line contains
// every one of the label matchers (e.g. `stage="deliver-fhir"`).
func (p *proc) metric(ctx context.Context, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, nil
}

// delivered is how many results the FHIR destination has acknowledged.
func (p *proc) delivered(ctx context.Context) int {
	v, _ := p.metric(ctx, "radgate_stage_messages_total", `stage="deliver-fhir"`, `verdict="ack"`)
	return int(v)
}

// waitFor polls cond every 100 ms until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- orders

// order is one test order: a cloned study and its ServiceRequest.
type order struct {
	file    string
	data    []byte
	meta    *inference.Meta
	id      string
	name    string // patient name on the order (FHIR)
	mrn     string // patient identifier on the order (FHIR)
	status  radgate.OrderStatus
	elapsed time.Duration // from the POST to terminal, when measured
}

// makeOrders clones n PneumoniaMNIST radiographs into new studies with
// their own UIDs and accession numbers.
func makeOrders(t *testing.T, n int) []*order {
	t.Helper()
	files, err := filepath.Glob(testenv.Testdata("pneumoniamnist-val-dicom", "*.dcm"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	sort.Strings(files)
	out := make([]*order, n)
	for i := range out {
		f := files[i%len(files)]
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		seed := int(seeds.Add(1))
		b, m, err := demo.Clone(src, seed)
		require.NoError(t, err)
		key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: m.AccessionNumber}})
		require.NoError(t, err)
		out[i] = &order{file: filepath.Base(f), data: b, meta: m, id: radgate.OrderID(key),
			name: fmt.Sprintf("Synthetic PMV%07d", seed%10_000_000), mrn: fmt.Sprintf("PMV-0%07d", seed%10_000_000)}
	}
	return out
}

// store puts the orders' studies into the PACS.
func (r *rig) store(ctx context.Context, orders ...*order) {
	r.t.Helper()
	for _, o := range orders {
		_, err := r.pacs.Store(ctx, o.data)
		require.NoError(r.t, err, "storing %s", o.file)
	}
}

// serviceRequest is the order as an EHR posts it, with its patient.
func (o *order) serviceRequest() []byte {
	b, _ := json.Marshal(o.serviceRequestMap())
	return b
}

func (o *order) serviceRequestMap() map[string]any {
	subject := map[string]any{"display": o.name,
		"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": o.mrn}}
	return demo.ServiceRequest(o.meta, subject)
}

// post sends the order's ServiceRequest to radgate: nil once it is
// answered 202.
func post(ctx context.Context, base string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/fhir/ServiceRequest", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (o *order) post(ctx context.Context, base string) error {
	code, b, err := post(ctx, base, o.serviceRequest())
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("POST /fhir/ServiceRequest: HTTP %d: %s", code, b)
	}
	return nil
}

// submit posts every order to p, failing the test on any refusal.
func submit(t *testing.T, p *proc, orders ...*order) {
	t.Helper()
	for _, o := range orders {
		require.NoError(t, o.post(t.Context(), p.url))
	}
}

// waitTerminal polls GET /orders/{id} until every order is delivered,
// rejected or failed.
func waitTerminal(t *testing.T, p *proc, limit time.Duration, orders ...*order) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, o := range orders {
		for {
			st, err := p.env.OrderStatus(t.Context(), o.id)
			if err == nil && st.State.Terminal() {
				o.status = st
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s (%s) not terminal within %s: state %q, err %v", o.id, o.file, limit, st.State, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// reports counts the DiagnosticReports the FHIR server holds for the order,
// found by the result identifier radgate derives from order × engine ×
// model version.
func (r *rig) reports(ctx context.Context, o *order) (int, error) {
	resID := pipeline.ResultID(o.id, radgate.EngineInfo{ID: config.DefaultEngine, Version: r.version})
	id := fhir.ResultIdentifier(resID)
	found, err := r.fhir.Search(ctx, "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
	return len(found), err
}

// requireOneReportEach asserts every order is delivered with exactly one
// DiagnosticReport on the FHIR server.
func (r *rig) requireOneReportEach(t *testing.T, orders ...*order) {
	t.Helper()
	var lost, dup []string
	for _, o := range orders {
		require.Equal(t, radgate.StateDelivered, o.status.State, "order %s: %s", o.id, o.status.Reason)
		n, err := r.reports(t.Context(), o)
		require.NoError(t, err)
		switch {
		case n == 0:
			lost = append(lost, o.id)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s (%d reports)", o.id, n))
		}
	}
	require.Empty(t, lost, "orders without a DiagnosticReport")
	require.Empty(t, dup, "orders with more than one DiagnosticReport")
}

// ---------------------------------------------------------------- private peers

// privateDir makes a folder under testenv/run (so the peers' command lines
// name testenv/run, as the shared peers' do), removed after the test.
func privateDir(t *testing.T, name string) string {
	t.Helper()
	base := filepath.Join(testenv.RepoRoot(), "testenv", "run")
	require.NoError(t, os.MkdirAll(base, 0o755))
	dir, err := os.MkdirTemp(base, "reliab-"+name+"-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// peerProc is a private peer process the test may pause.
type peerProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	dir  string
}

// signal sends sig to the peer after checking that its command line names
// testenv/run (the PID is ours, not a reused one).
func (pp *peerProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pp.cmd.Process.Pid))
	require.NoError(t, err)
	require.Contains(t, string(cmdline), filepath.Join("testenv", "run"), "refusing to signal a process that is not a test peer")
	require.NoError(t, pp.cmd.Process.Signal(sig))
}

func startPeer(t *testing.T, name, dir string, cmd *exec.Cmd) *peerProc {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	pp := &peerProc{name: name, cmd: cmd, done: make(chan struct{}), dir: dir}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(pp.done) }()
	t.Cleanup(func() {
		// Always resumed, then stopped: a failed test never leaves a
		// paused peer behind.
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pp.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-pp.done
		}
	})
	return pp
}

// privateFHIR starts a FHIR server of its own (node testenv/fhir-server).
func privateFHIR(t *testing.T) (*peerProc, string) {
	t.Helper()
	dir := privateDir(t, "fhir")
	portFile := filepath.Join(dir, "port")
	cmd := exec.Command("node", filepath.Join(testenv.RepoRoot(), "testenv", "fhir-server", "server.js"),
		"--host", "127.0.0.1", "--port", "0", "--base", "/fhir/R4", "--port-file", portFile)
	pp := startPeer(t, "fhir", dir, cmd)
	var base string
	waitFor(t, 120*time.Second, "private FHIR server ready", func() bool {
		if base == "" {
			b, err := os.ReadFile(portFile)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				return false
			}
			base = "http://127.0.0.1:" + strings.TrimSpace(string(b)) + "/fhir/R4"
		}
		resp, err := http.Get(base + "/metadata")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return pp, base
}

// privateOrthanc starts an Orthanc of its own from testenv/orthanc.json.tmpl.
func privateOrthanc(t *testing.T) (*peerProc, testenv.PACS) {
	t.Helper()
	shared := testenv.Orthanc(t) // the same credentials
	dir := privateDir(t, "orthanc")
	storage := filepath.Join(dir, "storage")
	require.NoError(t, os.MkdirAll(storage, 0o755))
	tmpl, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testenv", "orthanc.json.tmpl"))
	require.NoError(t, err)
	httpPort, dicomPort := anyFreePort(t), anyFreePort(t)
	conf := strings.NewReplacer("@STORAGE_DIR@", storage,
		"@DICOMWEB_PLUGIN@", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
		"@HTTP_PORT@", strconv.Itoa(httpPort), "@DICOM_PORT@", strconv.Itoa(dicomPort),
		"@USER@", shared.Username, "@PASSWORD@", shared.Password, "@AET@", "RELIAB").Replace(string(tmpl))
	confPath := filepath.Join(dir, "orthanc.json")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	pp := startPeer(t, "orthanc", dir, exec.Command("/usr/sbin/Orthanc", confPath))
	pacs := testenv.PACS{URL: "http://127.0.0.1:" + strconv.Itoa(httpPort), Username: shared.Username, Password: shared.Password}
	pacs.DICOMweb = pacs.URL + "/dicom-web"
	waitFor(t, 60*time.Second, "private Orthanc ready", func() bool {
		req, _ := http.NewRequest(http.MethodGet, pacs.URL+"/system", nil)
		req.SetBasicAuth(pacs.Username, pacs.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return pp, pacs
}

// anyFreePort returns a TCP port free on every interface (Orthanc binds 0.0.0.0).
func anyFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
