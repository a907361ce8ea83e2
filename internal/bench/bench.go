// Package bench is the harness behind `radgate bench`: the whole
// order→report path on loopback (FHIR intake, NATS, QIDO-RS and WADO-RS
// against a PACS, decode, preprocessing, ONNX Runtime, heatmap, the FHIR
// write) measured beside bare ONNX Runtime inference of the same model, in
// the same run. It needs a running PACS (DICOMweb) and FHIR server.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/internal/demo"
)

// ServeFunc runs radgate serve with cfg until ctx ends, sending the intake's
// listening address on ready once it accepts orders.
type ServeFunc func(ctx context.Context, cfg config.Config, logger *slog.Logger, ready chan<- string) error

// Options are the knobs of a run.
type Options struct {
	// Orthanc is the PACS's base URL (DICOMweb at /dicom-web), with User
	// and Password; FHIR is the FHIR server's base URL.
	Orthanc, User, Password, FHIR string
	// ModelsDir and Library are the models directory and the ONNX Runtime
	// library ("" : the usual lookup).
	ModelsDir, Library string
	// Samples are the radiographs cloned into orders; the first is also
	// the bare phase's input.
	Samples []string
	// PDFReport attaches the PDF report to each DiagnosticReport.
	PDFReport bool
	// BareRuns is how many bare session runs are timed.
	BareRuns int
	// ThroughputOrders are posted at once; LatencyOrders at Rate per second.
	ThroughputOrders int
	Rate             float64
	LatencyOrders    int
	// JSON prints the Report instead of progress lines.
	JSON bool
	// CPUProfile, when set, is where a CPU profile of the whole-path
	// phases is written.
	CPUProfile string
	// Serve runs radgate in-process against the peers.
	Serve ServeFunc
}

// Report is what `radgate bench --json` prints.
type Report struct {
	Engine              string             `json:"engine"`
	Samples             int                `json:"samples"`
	BareImagesPerSecond float64            `json:"bare_images_per_second"`
	BareMsPerImage      float64            `json:"bare_ms_per_image"`
	OrdersPerSecond     float64            `json:"orders_per_second"`
	ThroughputRatio     float64            `json:"throughput_ratio"`
	ThroughputOrders    int                `json:"throughput_orders"`
	Rate                float64            `json:"latency_rate_per_second"`
	LatencyOrders       int                `json:"latency_orders"`
	LatencyP50Ms        float64            `json:"latency_p50_ms"`
	LatencyP99Ms        float64            `json:"latency_p99_ms"`
	LatencyMaxMs        float64            `json:"latency_max_ms"`
	Marked              int                `json:"marked"`
	StageMeanMs         map[string]float64 `json:"stage_mean_ms,omitempty"`
}

// Run measures the three phases and writes the progress lines (or, with
// o.JSON, the Report as one JSON object) to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.Serve == nil {
		return errors.New("bench: Options.Serve is not set")
	}
	if o.Orthanc == "" || o.FHIR == "" {
		return fmt.Errorf("bench needs --orthanc and --fhir (or source testenv/run/env.sh; scripts/bench.sh does it all)")
	}
	progress := func(format string, args ...any) {
		if !o.JSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	rep := Report{Engine: config.DefaultEngine, Samples: len(o.Samples), ThroughputOrders: o.ThroughputOrders,
		Rate: o.Rate, LatencyOrders: o.LatencyOrders}

	// Phase 1: bare ONNX Runtime on a ready tensor, batch 1, same model.
	bare, err := benchBare(ctx, o)
	if err != nil {
		return err
	}
	rep.BareMsPerImage = float64(bare.Microseconds()) / 1000
	rep.BareImagesPerSecond = 1 / bare.Seconds()
	progress("bare session.Run: %.1f ms/image (%.2f images/s)", rep.BareMsPerImage, rep.BareImagesPerSecond)

	// The whole path: radgate in-process against the running peers.
	dataDir, err := os.MkdirTemp("", "radgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.ModelsDir = "127.0.0.1:0", dataDir, o.ModelsDir
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1" // a private broker: never collide with a running serve
	cfg.Inference.ONNXRuntimeLibrary = o.Library
	cfg.PACS.DICOMwebURL, cfg.PACS.Username = o.Orthanc+"/dicom-web", o.User
	os.Setenv("RADGATE_BENCH_PACS_PASSWORD", o.Password)
	cfg.PACS.PasswordEnv = "RADGATE_BENCH_PACS_PASSWORD"
	cfg.FHIR.BaseURL = o.FHIR
	cfg.FHIR.PDFReport = o.PDFReport
	cfg.Orders.RetryMin = config.Duration(50 * time.Millisecond)
	// The bench is one client posting as fast as it can: the per-client rate
	// limit (a policy, not a cost) would measure itself instead of radgate.
	cfg.HTTP.Limits.OrdersPerSecond = 0
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- o.Serve(sctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		return fmt.Errorf("starting radgate: %w", err)
	}
	defer func() { stop(); <-errc }()

	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, Username: o.User, Password: o.Password})
	if err != nil {
		return err
	}
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: o.FHIR})
	if err != nil {
		return err
	}
	env := &demo.Env{RadgateURL: "http://" + addr, FHIR: fc, PACS: pacs}

	// Distinct studies, stored in the PACS before any timing starts.
	total := o.ThroughputOrders + o.LatencyOrders + 1
	seed := int(time.Now().Unix()%900) * 100 // clones differ between runs against one PACS
	cases, err := cloneCases(o.Samples, total, seed)
	if err != nil {
		return err
	}
	progress("storing %d cloned studies in the PACS…", len(cases))
	for _, c := range cases {
		if _, err := pacs.Store(ctx, c.Data); err != nil {
			return fmt.Errorf("storing a clone: %w", err)
		}
	}
	warm, thr, lat := cases[:1], cases[1:1+o.ThroughputOrders], cases[1+o.ThroughputOrders:]
	if err := postAndWait(ctx, env, warm, 0); err != nil { // warm-up: sessions, connections
		return err
	}

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// Phase 2: throughput, every order posted at once.
	start := time.Now()
	if err := postAndWait(ctx, env, thr, 0); err != nil {
		return err
	}
	elapsed := time.Since(start)
	rep.OrdersPerSecond = float64(len(thr)) / elapsed.Seconds()
	rep.ThroughputRatio = rep.OrdersPerSecond / rep.BareImagesPerSecond
	progress("throughput: %d orders in %s = %.2f orders/s (%.2f × bare inference)",
		len(thr), elapsed.Round(time.Millisecond), rep.OrdersPerSecond, rep.ThroughputRatio)

	// Phase 3: latency at a steady rate.
	interval := time.Duration(float64(time.Second) / o.Rate)
	if err := postAndWait(ctx, env, lat, interval); err != nil {
		return err
	}
	var lats []float64
	for _, c := range append(slices.Clone(thr), lat...) {
		if c.Status.State != radgate.StateDelivered {
			return fmt.Errorf("order %s ended %s: %s", c.OrderID, c.Status.State, c.Status.Reason)
		}
		if p := c.Status.Engines[config.DefaultEngine].Probability; p != nil && *p >= 0.5 {
			rep.Marked++
		}
	}
	for _, c := range lat {
		lats = append(lats, float64(c.Status.UpdatedAt.Sub(c.Status.ReceivedAt).Microseconds())/1000)
	}
	sort.Float64s(lats)
	rep.LatencyP50Ms, rep.LatencyP99Ms, rep.LatencyMaxMs = quantile(lats, 0.5), quantile(lats, 0.99), lats[len(lats)-1]
	progress("latency at %.1f orders/s over %d orders: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		o.Rate, len(lat), rep.LatencyP50Ms, rep.LatencyP99Ms, rep.LatencyMaxMs)
	if rep.StageMeanMs, err = stageMeans(ctx, env.RadgateURL); err != nil {
		return err
	}
	stages := make([]string, 0, len(rep.StageMeanMs))
	for s := range rep.StageMeanMs {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	for _, s := range stages {
		progress("  stage %-14s %7.1f ms/message (mean, all phases; retries included)", s, rep.StageMeanMs[s])
	}
	if o.JSON {
		return json.NewEncoder(out).Encode(rep)
	}
	return nil
}

func cloneCases(samples []string, n, seed int) ([]*demo.Case, error) {
	var srcs [][]byte
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, b)
	}
	out := make([]*demo.Case, 0, n)
	for i := 0; i < n; i++ {
		src := srcs[i%len(srcs)]
		b, m, err := demo.Clone(src, seed+i)
		if err != nil {
			return nil, err
		}
		c := &demo.Case{File: filepath.Base(samples[i%len(samples)]), Path: demo.ViaBundle, Meta: m, Patient: "Bench Patient"}
		c.Data = b
		out = append(out, c)
	}
	return out, nil
}

// postAndWait files each order (spaced by interval, or all at once) and
// waits until every one is finished.
func postAndWait(ctx context.Context, env *demo.Env, cases []*demo.Case, interval time.Duration) error {
	next := time.Now()
	for _, c := range cases {
		if interval > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
		}
		if err := env.Order(ctx, []*demo.Case{c}); err != nil {
			return err
		}
	}
	return env.Wait(ctx, cases, 10*time.Minute)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// benchBare times session.Run on a ready tensor: the default engine, batch 1,
// the first sample preprocessed once.
func benchBare(ctx context.Context, o Options) (time.Duration, error) {
	reg, err := inference.LoadEngines(o.ModelsDir)
	if err != nil {
		return 0, err
	}
	m, err := reg.Default()
	if err != nil {
		return 0, err
	}
	lib, err := onnx.FindLibrary(o.Library)
	if err != nil {
		return 0, err
	}
	eng, err := onnx.NewEngine(m, onnx.EngineOptions{Library: lib})
	if err != nil {
		return 0, err
	}
	defer eng.Close()
	img, err := inference.DecodeFile(o.Samples[0])
	if err != nil {
		return 0, err
	}
	in := make([]float32, m.Preprocessing.Size*m.Preprocessing.Size)
	if _, err := m.Preprocessing.Preprocess(img, in); err != nil {
		return 0, err
	}
	for i := 0; i < 3; i++ { // warm-up
		if _, _, err := eng.ScoreTensor(ctx, in, 1); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for i := 0; i < o.BareRuns; i++ {
		if _, _, err := eng.ScoreTensor(ctx, in, 1); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(o.BareRuns), nil
}

// stageMeans scrapes radgate's /metrics for the mean time each stage spends
// on one message.
func stageMeans(ctx context.Context, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		for suffix, dst := range map[string]map[string]float64{"_sum": sums, "_count": counts} {
			prefix := "radgate_stage_handle_seconds" + suffix + `{stage="`
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				stage, val, _ := strings.Cut(rest, `"} `)
				v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err == nil {
					dst[stage] = v
				}
			}
		}
	}
	out := map[string]float64{}
	for stage, n := range counts {
		if n > 0 {
			out[stage] = sums[stage] / n * 1000
		}
	}
	return out, nil
}
