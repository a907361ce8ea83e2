package main

import (
	"context"
	"encoding/json"
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

	"github.com/spf13/cobra"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
)

// benchOptions are the knobs of `radgate bench`.
type benchOptions struct {
	orthanc, user, password, fhirURL string
	modelsDir, lib                   string
	samples                          []string
	pdfReport                        bool
	bareRuns                         int
	throughputOrders                 int
	rate                             float64
	latencyOrders                    int
	jsonOut                          bool
	cpuProfile                       string
}

// benchReport is what `radgate bench --json` prints.
type benchReport struct {
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

func init() {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the whole order→report path beside bare ONNX Runtime inference",
		Long: `Measure the whole path on loopback — FHIR intake, NATS, QIDO-RS and WADO-RS
against Orthanc, decode, preprocessing, ONNX Runtime, CAM heatmap PNG, and the
FHIR transaction write — beside bare ONNX Runtime inference of the same model
on a ready tensor, in the same run.

It needs a running Orthanc (DICOMweb) and FHIR server: scripts/bench.sh starts
them. Phase 1 times bare session runs; phase 2 posts --orders orders at once
(throughput); phase 3 posts --latency-orders at --rate orders/s and reports
p50/p99 of order→report latency (from the intake's accept to the report
being written, as radgate's order store records them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.orthanc, "orthanc", os.Getenv("RADGATE_TEST_ORTHANC_URL"), "Orthanc URL (DICOMweb at /dicom-web)")
	f.StringVar(&o.user, "user", os.Getenv("RADGATE_TEST_ORTHANC_USER"), "PACS user")
	f.StringVar(&o.password, "password", os.Getenv("RADGATE_TEST_ORTHANC_PASSWORD"), "PACS password")
	f.StringVar(&o.fhirURL, "fhir", os.Getenv("RADGATE_TEST_FHIR_URL"), "FHIR server base URL")
	f.StringVar(&o.modelsDir, "models", "models", "models directory")
	f.StringVar(&o.lib, "onnxruntime-lib", "", "ONNX Runtime library (default: the usual lookup)")
	f.StringSliceVar(&o.samples, "sample", []string{
		"testdata/cxr-dicom/cr-chest-pa-jpeg-baseline.dcm",
		"testdata/cxr-dicom/cr-chest-header-mono1-jpeg-baseline.dcm",
		"testdata/cxr-dicom/dx-chest-implicit-le-8bit.dcm",
	}, "radiographs to clone into orders (default: the 1024² chest samples)")
	f.IntVar(&o.bareRuns, "bare-runs", 40, "bare session runs to time")
	f.IntVar(&o.throughputOrders, "orders", 60, "orders posted at once for throughput")
	f.Float64Var(&o.rate, "rate", 2, "orders per second for the latency phase")
	f.IntVar(&o.latencyOrders, "latency-orders", 40, "orders posted at --rate for latency")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object")
	f.BoolVar(&o.pdfReport, "pdf-report", config.Default().FHIR.PDFReport, "attach the PDF report to each DiagnosticReport (fhir.pdf_report)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole-path phases to this file (go tool pprof)")
	rootCmd.AddCommand(cmd)
}

func runBench(ctx context.Context, o benchOptions, out io.Writer) error {
	if o.orthanc == "" || o.fhirURL == "" {
		return fmt.Errorf("bench needs --orthanc and --fhir (or source testenv/run/env.sh; scripts/bench.sh does it all)")
	}
	progress := func(format string, args ...any) {
		if !o.jsonOut {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	rep := benchReport{Engine: config.DefaultEngine, Samples: len(o.samples), ThroughputOrders: o.throughputOrders,
		Rate: o.rate, LatencyOrders: o.latencyOrders}

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
	cfg.Listen, cfg.DataDir, cfg.ModelsDir = "127.0.0.1:0", dataDir, o.modelsDir
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1" // a private broker: never collide with a running serve
	cfg.Inference.ONNXRuntimeLibrary = o.lib
	cfg.PACS.DICOMwebURL, cfg.PACS.Username = o.orthanc+"/dicom-web", o.user
	os.Setenv("RADGATE_BENCH_PACS_PASSWORD", o.password)
	cfg.PACS.PasswordEnv = "RADGATE_BENCH_PACS_PASSWORD"
	cfg.FHIR.BaseURL = o.fhirURL
	cfg.FHIR.PDFReport = o.pdfReport
	cfg.Orders.RetryMin = config.Duration(50 * time.Millisecond)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(sctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		return fmt.Errorf("starting radgate: %w", err)
	}
	defer func() { stop(); <-errc }()

	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, Username: o.user, Password: o.password})
	if err != nil {
		return err
	}
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: o.fhirURL})
	if err != nil {
		return err
	}
	env := &demo.Env{RadgateURL: "http://" + addr, FHIR: fc, PACS: pacs}

	// Distinct studies, stored in the PACS before any timing starts.
	total := o.throughputOrders + o.latencyOrders + 1
	seed := int(time.Now().Unix()%900) * 100 // clones differ between runs against one PACS
	cases, err := cloneCases(o.samples, total, seed)
	if err != nil {
		return err
	}
	progress("storing %d cloned studies in the PACS…", len(cases))
	for _, c := range cases {
		if _, err := pacs.Store(ctx, c.Data); err != nil {
			return fmt.Errorf("storing a clone: %w", err)
		}
	}
	warm, thr, lat := cases[:1], cases[1:1+o.throughputOrders], cases[1+o.throughputOrders:]
	if err := postAndWait(ctx, env, warm, 0); err != nil { // warm-up: sessions, connections
		return err
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
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
	interval := time.Duration(float64(time.Second) / o.rate)
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
		o.rate, len(lat), rep.LatencyP50Ms, rep.LatencyP99Ms, rep.LatencyMaxMs)
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
	if o.jsonOut {
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
func benchBare(ctx context.Context, o benchOptions) (time.Duration, error) {
	reg, err := inference.LoadEngines(o.modelsDir)
	if err != nil {
		return 0, err
	}
	m, err := reg.Default()
	if err != nil {
		return 0, err
	}
	lib, err := inference.FindLibrary(o.lib)
	if err != nil {
		return 0, err
	}
	eng, err := inference.NewEngine(m, inference.EngineOptions{Library: lib})
	if err != nil {
		return 0, err
	}
	defer eng.Close()
	img, err := inference.DecodeFile(o.samples[0])
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
	for i := 0; i < o.bareRuns; i++ {
		if _, _, err := eng.ScoreTensor(ctx, in, 1); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(o.bareRuns), nil
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
