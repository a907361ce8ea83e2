package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/internal/testenv"
)

func TestQuantile(t *testing.T) {
	require.Zero(t, quantile(nil, 0.5))
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	require.Equal(t, 1.0, quantile(xs, 0))
	require.Equal(t, 6.0, quantile(xs, 0.5), "nearest rank, rounding half up")
	require.Equal(t, 10.0, quantile(xs, 0.99))
	require.Equal(t, 10.0, quantile(xs, 1))
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP radgate_stage_handle_seconds time
# TYPE radgate_stage_handle_seconds histogram
radgate_stage_handle_seconds_bucket{facility="_",stage="inference",le="1"} 3
radgate_stage_handle_seconds_sum{facility="_",stage="inference"} 1.5
radgate_stage_handle_seconds_count{facility="_",stage="inference"} 3
radgate_stage_handle_seconds_sum{facility="_",stage="router"} 0.015
radgate_stage_handle_seconds_count{facility="_",stage="router"} 3
radgate_stage_handle_seconds_sum{facility="north",stage="router"} 0.005
radgate_stage_handle_seconds_count{facility="north",stage="router"} 1
radgate_stage_handle_seconds_sum{stage="idle"} 0
radgate_stage_handle_seconds_count{stage="idle"} 0
radgate_fhir_sent_bytes_total 1.234567e+07
radgate_stage_messages_total{stage="deliver-fhir",verdict="ack"} 7
radgate_stage_messages_total{stage="deliver-fhir",verdict="retry"} 2
radgate_stage_messages_total{stage="inference",verdict="ack"} 9 1700000000000
radgate_results_total{engine="a b",outcome="scored"} 5
not a sample line
`)
	require.Equal(t, map[string]float64{"inference": 500, "router": 5}, m.stageMeans(), "mean ms per message over every facility; stages without messages left out")
	require.Equal(t, 12345670.0, m.sum(metricFHIRSentBytes))
	require.Equal(t, 9.0, m.sum("radgate_stage_messages_total", `stage="deliver-fhir"`))
	require.Equal(t, 7.0, m.sum("radgate_stage_messages_total", `stage="deliver-fhir"`, `verdict="ack"`))
	require.Equal(t, 18.0, m.sum("radgate_stage_messages_total"), "a sample with a timestamp")
	require.Equal(t, 5.0, m.sum("radgate_results_total", `engine="a b"`), "label values with spaces")
	require.Zero(t, m.sum("radgate_fhir_sent_bytes"), "a name is matched whole")
}

func TestParseProcFiles(t *testing.T) {
	cpu, err := parseStatCPU("4242 (radgate serve) S 1 4242 4242 0 -1 4194560 1234 0 0 0 1520 380 0 0 20 0 31 0 123 4567 890")
	require.NoError(t, err)
	require.Equal(t, 19*time.Second, cpu, "utime 1520 + stime 380 ticks at 100 Hz")
	cpu, err = parseStatCPU("7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 5 7 0 0 20 0 1 0 1 1 1")
	require.NoError(t, err)
	require.Equal(t, 120*time.Millisecond, cpu, "a command name with parentheses and spaces")
	_, err = parseStatCPU("7 (short) R 1 2")
	require.Error(t, err)
	_, err = parseStatCPU("no command")
	require.Error(t, err)

	rss, err := parseVmRSS("Name:\tradgate\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n")
	require.NoError(t, err)
	require.Equal(t, int64(123456*1024), rss)
	_, err = parseVmRSS("Name:\tkthreadd\nState:\tS\n")
	require.Error(t, err)

	// This process, for real.
	cpu, err = procCPU(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, cpu)
	rss, err = procRSS(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, rss, int64(1<<20))
	require.Positive(t, selfCPU())
}

func TestRSSByFinished(t *testing.T) {
	// 16 orders finish at 0.5 s, 1.5 s, …; samples every second.
	var done []time.Duration
	for i := range 16 {
		done = append(done, time.Duration(i)*time.Second+500*time.Millisecond)
	}
	var samples []RSSSample
	for s := range 18 {
		samples = append(samples, RSSSample{Seconds: float64(s), RadgateMB: 100 + float64(s)})
	}
	samples[5].RadgateMB = 400
	got, at, maxMB := rssByFinished(samples, done, 16)
	require.Equal(t, 0, got[0].Finished)
	require.Equal(t, 2, got[2].Finished, "finished by the sample's time")
	require.Equal(t, 16, got[17].Finished)
	require.Equal(t, map[string]float64{"2": 102, "8": 108, "16": 116}, at, "RSS at n/8, n/2 and n finished")
	require.Equal(t, 400.0, maxMB)
	require.Equal(t, []string{"2", "8", "16"}, sortedKeysByNumber(at))
}

func TestOrderBundleIsWhatRadgateReads(t *testing.T) {
	tpl, err := newTemplate(testenv.Testdata("cxr-dicom", "cr-hip-jpeg-lossless.dcm"), "987654321")
	require.NoError(t, err)
	_, c, err := tpl.clone(nil, 12)
	require.NoError(t, err)
	for _, s := range []study{{Chest: true, Stat: true}, {Chest: false}} {
		o, err := newOrder(c, s)
		require.NoError(t, err)
		b, err := o.bundle()
		require.NoError(t, err)
		require.Contains(t, string(b), `"birthDate":"`+c.BirthDate.Format("2006-01-02")+`"`)
		parsed, err := fhir.ParseBundle(b)
		require.NoError(t, err)
		require.NoError(t, parsed.Err())
		require.Len(t, parsed.Entries, 3)
		require.True(t, parsed.Entries[0].Ignored(), "the Patient is read for references only")
		sr, is := parsed.Entries[1].Order, parsed.Entries[2].Order
		require.Equal(t, c.Meta.AccessionNumber, sr.Accession.Value)
		require.Equal(t, c.Meta.StudyInstanceUID, is.StudyInstanceUID)
		require.Equal(t, "MRN-"+c.Meta.AccessionNumber, sr.Subject.Identifier.Value, "the subject is the Patient entry")
		if s.Stat {
			require.Equal(t, "stat", sr.Priority)
		} else {
			require.Equal(t, "routine", sr.Priority)
			require.Empty(t, sr.Codes, "no chest X-ray code on a hip study's order")
		}
		key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: sr.Accession.System, Value: sr.Accession.Value}})
		require.NoError(t, err)
		require.Equal(t, radgate.OrderID(key), o.ID, "the id radgate will give the order")
	}
}

// waitAll reads each order about once after it finished, and a round stops
// after maxMisses orders still in progress.
func TestWaitAllPollsCheaply(t *testing.T) {
	const n = 40
	var reads atomic.Int64
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/orders/"), "o%d", &i); err != nil {
			http.NotFound(w, r)
			return
		}
		st := radgate.OrderStatus{ID: fmt.Sprint(i), State: radgate.StateRouted}
		if time.Since(start) > time.Duration(i)*5*time.Millisecond { // one finishes every 5 ms, in order
			st.State, st.ReceivedAt, st.UpdatedAt = radgate.StateDelivered, start, start.Add(time.Duration(i)*5*time.Millisecond)
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	var orders []*order
	for i := range n {
		o := &order{ID: fmt.Sprintf("o%d", i)}
		o.posted.Store(true)
		orders = append(orders, o)
	}
	orders[n-1].posted.Store(false)
	c := newClient(srv.URL)
	err := c.waitAll(t.Context(), orders, 20*time.Millisecond, 300*time.Millisecond, nil)
	require.ErrorContains(t, err, "1 of 40 orders not finished", "an order never posted is never read")
	for _, o := range orders[:n-1] {
		require.Equal(t, radgate.StateDelivered, o.State)
	}
	rounds := 300/20 + 1
	require.Less(t, reads.Load(), int64(n+rounds*maxMisses), "about one read per order plus at most maxMisses a round")
}

func TestServeConfigLoads(t *testing.T) {
	dir := t.TempDir()
	o := Options{Orthanc: "http://127.0.0.1:8042", User: "u", Password: "secret-pw", FHIR: "http://127.0.0.1:8103/fhir/R4",
		ModelsDir: "models", PDFReport: true}
	path := filepath.Join(dir, "radgate.yaml")
	require.NoError(t, writeConfig(serveConfig(o, filepath.Join(dir, "data")), path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(b), "secret-pw", "the password travels in the environment")
	cfg, err := config.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8042/dicom-web", cfg.PACS.DICOMwebURL)
	require.Equal(t, passwordEnv, cfg.PACS.PasswordEnv)
	require.True(t, cfg.FHIR.PDFReport)
	require.Equal(t, 50*time.Millisecond, cfg.Orders.RetryMin.D())
	require.Zero(t, cfg.HTTP.Limits.OrdersPerSecond, "no per-client rate limit")
	require.Equal(t, "127.0.0.1:-1", cfg.NATS.EmbeddedListen)

	eo, err := engineOptions(cfg)
	if err == nil { // the ONNX Runtime library is found on this machine
		require.NotEmpty(t, eo.Library)
		serve, err := onnx.OptionsFromConfig(cfg.Inference)
		require.NoError(t, err)
		require.Equal(t, serve.Threads, eo.Threads, "the bare phase runs serve's session options")
		require.Equal(t, serve.Spinning, eo.Spinning)
	}
}

func TestFindPeers(t *testing.T) {
	dir := t.TempDir()
	o, f := findPeers(dir)
	require.Nil(t, o)
	require.Nil(t, f)
	// A pid file naming a process that does not name the folder: not ours.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fhir.pid"), []byte(fmt.Sprint(os.Getpid())), 0o644))
	_, f = findPeers(dir)
	require.Nil(t, f)

	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "orthanc", "storage"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "orthanc", "storage", "x"), make([]byte, 100_000), 0o644))
	// "; true": sh must not exec sleep in its place, which would drop the
	// folder from the process's command line.
	cmd := exec.Command(sh, "-c", "sleep 30; true", filepath.Join(dir, "orthanc", "orthanc.json"))
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "orthanc.pid"), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644))
	// The child's command line may still be the test binary's for a moment
	// after Start (before the kernel has switched it to sh's).
	require.Eventually(t, func() bool { o, _ = findPeers(dir); return o != nil }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, cmd.Process.Pid, o.pid)
	require.Positive(t, o.rss())
	require.GreaterOrEqual(t, o.disk(), int64(100_000))
	require.Zero(t, (*peer)(nil).rss())
}

func TestRunChecksItsOptions(t *testing.T) {
	err := Run(t.Context(), Options{}, nil)
	require.ErrorContains(t, err, "bench needs --orthanc and --fhir")
	err = Run(t.Context(), Options{Orthanc: "http://127.0.0.1:1", FHIR: "http://127.0.0.1:1"}, nil)
	require.ErrorContains(t, err, "at least one --sample")
}
