// Package bench is the harness behind `radgate bench`: the whole
// order→report path on loopback (FHIR intake, NATS, QIDO-RS and WADO-RS
// against a PACS, decode, preprocessing, ONNX Runtime, heatmap, the FHIR
// write) measured beside bare ONNX Runtime inference of the same model, in
// the same run, and the compressed day (Options.Day). radgate serve runs as
// a child process, so its CPU time and memory are radgate's alone. It
// needs a running PACS (DICOMweb) and FHIR server.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
)

// Options are the knobs of a run.
type Options struct {
	// Orthanc is the PACS's base URL (DICOMweb at /dicom-web), with User
	// and Password; FHIR is the FHIR server's base URL.
	Orthanc, User, Password, FHIR string
	// ModelsDir and Library are the models directory and the ONNX Runtime
	// library ("" : the usual lookup).
	ModelsDir, Library string
	// Samples are the chest radiographs cloned into orders; the first is
	// also the bare phase's input. NonChest are the non-chest studies of
	// the day (radgate rejects them).
	Samples, NonChest []string
	// PDFReport attaches the PDF report to each DiagnosticReport.
	PDFReport bool
	// BareRuns is how many bare session runs are timed.
	BareRuns int
	// ThroughputOrders are posted at once; LatencyOrders at Rate per second.
	ThroughputOrders int
	Rate             float64
	LatencyOrders    int
	// Day runs the compressed day (DayOrders orders, see day.go) instead of
	// the throughput and latency phases.
	Day       bool
	DayOrders int
	// PeersRun is the folder where testenv/start.sh keeps the peers' pid
	// files and data (for their memory and disk use; "" : not reported).
	PeersRun string
	// JSON prints the Report instead of progress lines.
	JSON bool
	// CPUProfile, when set, is where radgate serve writes a CPU profile of
	// its whole run (start-up to the stop).
	CPUProfile string
	// MemProfile, when set, is where radgate serve writes a heap profile
	// at its clean stop (what it holds once the run is done).
	MemProfile string
	// Executable is the radgate binary run as `serve` ("" : this one), with
	// Env added to its environment.
	Executable string
	Env        []string
}

// Report is what `radgate bench --json` prints. Ratios are within one run.
type Report struct {
	Engine              string  `json:"engine"`
	Samples             int     `json:"samples"`
	PDFReport           bool    `json:"pdf_report"`
	BareImagesPerSecond float64 `json:"bare_images_per_second"`
	BareMsPerImage      float64 `json:"bare_ms_per_image"`
	// BareCPUMsPerImage is the process CPU (every thread) of one batch-1
	// session.Run.
	BareCPUMsPerImage float64 `json:"bare_cpu_ms_per_image"`
	OrdersPerSecond   float64 `json:"orders_per_second"`
	ThroughputRatio   float64 `json:"throughput_ratio"`
	ThroughputOrders  int     `json:"throughput_orders"`
	// ThroughputCPUMsPerOrder is radgate's process CPU over the throughput
	// phase per delivered order; CPURatio that ÷ BareCPUMsPerImage.
	ThroughputCPUMsPerOrder float64 `json:"throughput_cpu_ms_per_order"`
	CPURatio                float64 `json:"cpu_ratio"`
	// FHIRBytesPerResult is every request body byte radgate sent to the
	// FHIR server over the throughput phase per delivered result.
	FHIRBytesPerResult   float64 `json:"fhir_bytes_per_result"`
	Rate                 float64 `json:"latency_rate_per_second"`
	LatencyOrders        int     `json:"latency_orders"`
	LatencyP50Ms         float64 `json:"latency_p50_ms"`
	LatencyP99Ms         float64 `json:"latency_p99_ms"`
	LatencyMaxMs         float64 `json:"latency_max_ms"`
	LatencyCPUMsPerOrder float64 `json:"latency_cpu_ms_per_order"`
	LatencyCPURatio      float64 `json:"latency_cpu_ratio"`
	// LatencyFHIRBytesPerResult is FHIRBytesPerResult over the latency phase.
	LatencyFHIRBytesPerResult float64            `json:"latency_fhir_bytes_per_result"`
	Marked                    int                `json:"marked"`
	StageMeanMs               map[string]float64 `json:"stage_mean_ms,omitempty"`
	// RadgateRSSMB is radgate's resident memory at the end of the phases.
	RadgateRSSMB float64 `json:"radgate_rss_mb"`
	// Day is the compressed day's report (--day).
	Day *DayReport `json:"day,omitempty"`
}

// run is one bench run's shared state.
type run struct {
	o        Options
	rep      Report
	out      io.Writer
	radgate  *child
	rg       *client
	pacs     *dicomweb.Client
	bareCPU  time.Duration // per batch-1 session.Run
	tmp      string
	dataDir  string // radgate's
	runNum   string
	progress func(format string, args ...any)
}

// Run measures the phases and writes the progress lines (or, with o.JSON,
// the Report as one JSON object) to out.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	if o.Orthanc == "" || o.FHIR == "" {
		return fmt.Errorf("bench needs --orthanc and --fhir (or source testenv/run/env.sh; scripts/bench.sh does it all)")
	}
	if len(o.Samples) == 0 {
		return errors.New("bench needs at least one --sample")
	}
	if o.Executable == "" {
		if o.Executable, err = os.Executable(); err != nil {
			return fmt.Errorf("finding radgate's executable: %w", err)
		}
	}
	r := &run{o: o, out: out, rep: Report{Engine: config.DefaultEngine, Samples: len(o.Samples), PDFReport: o.PDFReport},
		runNum: fmt.Sprint(100_000_000 + rand.IntN(900_000_000))}
	r.progress = func(format string, args ...any) {
		if !o.JSON {
			fmt.Fprintf(out, format+"\n", args...)
		}
	}
	if r.tmp, err = os.MkdirTemp("", "radgate-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(r.tmp)
	r.dataDir = filepath.Join(r.tmp, "data")
	cfg := serveConfig(o, r.dataDir)

	// Phase 1, in this process before radgate starts: bare ONNX Runtime on
	// a ready tensor, batch 1, the same model and session options.
	bare, err := benchBare(ctx, o, cfg)
	if err != nil {
		return err
	}
	r.bareCPU = bare.cpu
	r.rep.BareMsPerImage = ms(bare.wall)
	r.rep.BareImagesPerSecond = 1 / bare.wall.Seconds()
	r.rep.BareCPUMsPerImage = ms(bare.cpu)
	r.progress("bare session.Run: %.1f ms/image (%.2f images/s), %.1f CPU-ms/image", r.rep.BareMsPerImage, r.rep.BareImagesPerSecond, r.rep.BareCPUMsPerImage)

	// radgate serve, a child process against the running peers.
	cfgPath := filepath.Join(r.tmp, "radgate.yaml")
	if err := writeConfig(cfg, cfgPath); err != nil {
		return err
	}
	env := append([]string{passwordEnv + "=" + o.Password}, o.Env...)
	if r.radgate, err = startChild(ctx, o.Executable, cfgPath, o.CPUProfile, o.MemProfile, r.tmp, env); err != nil {
		return err
	}
	defer func() {
		if serr := r.radgate.stop(time.Minute); serr != nil && err == nil {
			err = serr
		}
		if err == nil && o.CPUProfile != "" {
			r.progress("CPU profile of radgate serve: %s (go tool pprof -top %s)", o.CPUProfile, o.CPUProfile)
		}
		if err == nil && o.MemProfile != "" {
			r.progress("heap profile of radgate serve at its stop: %s (go tool pprof -sample_index=inuse_space -top %s)", o.MemProfile, o.MemProfile)
		}
		if err == nil && o.JSON {
			err = json.NewEncoder(out).Encode(r.rep)
		}
	}()
	r.rg = newClient(r.radgate.URL)
	if r.pacs, err = dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, Username: o.User, Password: o.Password}); err != nil {
		return err
	}
	if o.Day {
		return r.day(ctx)
	}
	return r.phases(ctx)
}

// phases runs the throughput and latency phases.
func (r *run) phases(ctx context.Context) error {
	o := r.o
	chest, err := r.templates(o.Samples)
	if err != nil {
		return err
	}
	orders, err := r.corpus(ctx, chest, nil, 1+o.ThroughputOrders+o.LatencyOrders, mix{})
	if err != nil {
		return err
	}
	warm, thr, lat := orders[:1], orders[1:1+o.ThroughputOrders], orders[1+o.ThroughputOrders:]
	if err := r.postAndWait(ctx, warm, 0); err != nil { // warm-up: sessions, connections
		return err
	}

	// Phase 2: throughput, every order posted at once.
	ph, err := r.measure(ctx, thr, 0)
	if err != nil {
		return err
	}
	r.rep.ThroughputOrders = len(thr)
	r.rep.OrdersPerSecond = float64(len(thr)) / ph.elapsed.Seconds()
	r.rep.ThroughputRatio = r.rep.OrdersPerSecond / r.rep.BareImagesPerSecond
	r.rep.ThroughputCPUMsPerOrder, r.rep.CPURatio, r.rep.FHIRBytesPerResult = ph.cpuPerOrder, ph.cpuRatio, ph.fhirBytes
	r.progress("throughput: %d orders in %s = %.2f orders/s (%.2f × bare inference)",
		len(thr), ph.elapsed.Round(time.Millisecond), r.rep.OrdersPerSecond, r.rep.ThroughputRatio)
	r.progress("  radgate CPU %.1f ms/order = %.2f × bare CPU (CPU ratio); FHIR %.0f kB sent/result", ph.cpuPerOrder, ph.cpuRatio, ph.fhirBytes/1000)

	// Phase 3: latency at a steady rate.
	r.rep.Rate, r.rep.LatencyOrders = o.Rate, len(lat)
	ph, err = r.measure(ctx, lat, time.Duration(float64(time.Second)/o.Rate))
	if err != nil {
		return err
	}
	var lats []float64
	for _, od := range lat {
		lats = append(lats, ms(od.latency()))
	}
	sort.Float64s(lats)
	r.rep.LatencyP50Ms, r.rep.LatencyP99Ms, r.rep.LatencyMaxMs = quantile(lats, 0.5), quantile(lats, 0.99), lats[len(lats)-1]
	r.rep.LatencyCPUMsPerOrder, r.rep.LatencyCPURatio, r.rep.LatencyFHIRBytesPerResult = ph.cpuPerOrder, ph.cpuRatio, ph.fhirBytes
	r.progress("latency at %.1f orders/s over %d orders: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		o.Rate, len(lat), r.rep.LatencyP50Ms, r.rep.LatencyP99Ms, r.rep.LatencyMaxMs)
	r.progress("  radgate CPU %.1f ms/order = %.2f × bare CPU (CPU ratio); FHIR %.0f kB sent/result", ph.cpuPerOrder, ph.cpuRatio, ph.fhirBytes/1000)
	for _, od := range append(slices.Clone(thr), lat...) {
		if od.State != radgate.StateDelivered {
			return fmt.Errorf("order %s ended %s: %s", od.ID, od.State, od.Reason)
		}
		if od.Marked {
			r.rep.Marked++
		}
	}

	m, err := scrape(ctx, r.radgate.URL)
	if err != nil {
		return err
	}
	r.rep.StageMeanMs = m.stageMeans()
	stages := make([]string, 0, len(r.rep.StageMeanMs))
	for s := range r.rep.StageMeanMs {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	for _, s := range stages {
		r.progress("  stage %-14s %7.1f ms/message (mean, all phases; retries included)", s, r.rep.StageMeanMs[s])
	}
	if rss, err := r.radgate.RSS(); err == nil {
		r.rep.RadgateRSSMB = mb(rss)
		r.progress("radgate RSS after the phases: %.0f MB", r.rep.RadgateRSSMB)
	}
	return nil
}

// phase is what one phase cost radgate.
type phase struct {
	elapsed     time.Duration
	cpuPerOrder float64 // ms of radgate CPU per delivered order
	cpuRatio    float64 // cpuPerOrder ÷ bare CPU per run
	fhirBytes   float64 // FHIR request bytes per delivered result
}

// measure posts the orders (spaced by interval, or all at once), waits for
// every one, and reads radgate's CPU time and FHIR bytes around it.
func (r *run) measure(ctx context.Context, orders []*order, interval time.Duration) (phase, error) {
	before, err := scrape(ctx, r.radgate.URL)
	if err != nil {
		return phase{}, err
	}
	cpu0, err := r.radgate.CPU()
	if err != nil {
		return phase{}, err
	}
	start := time.Now()
	if err := r.postAndWait(ctx, orders, interval); err != nil {
		return phase{}, err
	}
	ph := phase{elapsed: time.Since(start)}
	cpu1, err := r.radgate.CPU()
	if err != nil {
		return phase{}, err
	}
	after, err := scrape(ctx, r.radgate.URL)
	if err != nil {
		return phase{}, err
	}
	delivered := 0
	for _, o := range orders {
		if o.State == radgate.StateDelivered {
			delivered++
		}
	}
	if delivered > 0 {
		ph.cpuPerOrder = ms(cpu1-cpu0) / float64(delivered)
		if r.bareCPU > 0 {
			ph.cpuRatio = ph.cpuPerOrder / ms(r.bareCPU)
		}
		ph.fhirBytes = (after.sum(metricFHIRSentBytes) - before.sum(metricFHIRSentBytes)) / float64(delivered)
	}
	return ph, nil
}

// postAndWait files the orders and waits until each is terminal.
func (r *run) postAndWait(ctx context.Context, orders []*order, interval time.Duration) error {
	if err := r.rg.postAll(ctx, orders, 4, interval); err != nil {
		return err
	}
	return r.rg.waitAll(ctx, orders, 100*time.Millisecond, 10*time.Minute, nil)
}

// templates prepares the source files for cloning.
func (r *run) templates(paths []string) ([]*template, error) {
	var out []*template
	for _, p := range paths {
		t, err := newTemplate(p, r.runNum)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// corpus clones n studies after the mix and stores each in the PACS as it
// is made (a few at a time; only the orders' metadata is kept), before any
// timing, and prints how long that took.
func (r *run) corpus(ctx context.Context, chest, other []*template, n int, m mix) ([]*order, error) {
	r.progress("storing %d cloned studies in the PACS…", n)
	start := time.Now()
	orders := make([]*order, n)
	const storers = 3
	next := make(chan int)
	errc := make(chan error, storers)
	var wg sync.WaitGroup
	for range storers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range next {
				s := m.plan(i, len(chest), len(other))
				t := chest[s.Source%len(chest)]
				if !s.Chest {
					t = other[s.Source]
				}
				b, c, err := t.clone(buf, i)
				if err == nil {
					buf = b
					orders[i], err = newOrder(c, s)
				}
				if err == nil {
					_, err = r.pacs.Store(ctx, b)
				}
				if err != nil {
					errc <- fmt.Errorf("storing clone %d of %s: %w", i, t.name, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && len(errc) > 0 {
		err = <-errc
	}
	if err != nil {
		return nil, err
	}
	r.progress("  stored in %s (%.1f studies/s)", time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	return orders, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

// engineOptions are the ONNX Runtime session options of cfg's engines, as
// radgate serve builds them (service/engines.go): the bare phase uses
// them, so that both sides run the same session (threads, spinning).
func engineOptions(cfg config.Config) (onnx.EngineOptions, error) {
	return onnx.OptionsFromConfig(cfg.Inference) // the bare phase decodes nothing: no inflate limits
}

// bareResult is one batch-1 session.Run: wall time and process CPU time.
type bareResult struct{ wall, cpu time.Duration }

// benchBare times session.Run on a ready tensor: the default engine, batch
// 1, the first sample preprocessed once, with the session options serve
// uses. The CPU time is this process's (getrusage: ONNX Runtime's threads
// included), taken before radgate serve starts.
func benchBare(ctx context.Context, o Options, cfg config.Config) (bareResult, error) {
	if o.BareRuns < 1 {
		return bareResult{}, fmt.Errorf("--bare-runs must be at least 1, got %d", o.BareRuns)
	}
	reg, err := inference.LoadEngines(cfg.ModelsDir)
	if err != nil {
		return bareResult{}, err
	}
	m, err := reg.Default()
	if err != nil {
		return bareResult{}, err
	}
	eo, err := engineOptions(cfg)
	if err != nil {
		return bareResult{}, err
	}
	eng, err := onnx.NewEngine(m, eo)
	if err != nil {
		return bareResult{}, err
	}
	defer eng.Close()
	img, err := inference.DecodeFile(o.Samples[0])
	if err != nil {
		return bareResult{}, err
	}
	in := make([]float32, m.Preprocessing.Size*m.Preprocessing.Size)
	if _, err := m.Preprocessing.Preprocess(img, in); err != nil {
		return bareResult{}, err
	}
	for range 3 { // warm-up
		if _, _, err := eng.ScoreTensor(ctx, in, 1); err != nil {
			return bareResult{}, err
		}
	}
	cpu0, start := selfCPU(), time.Now()
	for range o.BareRuns {
		if _, _, err := eng.ScoreTensor(ctx, in, 1); err != nil {
			return bareResult{}, err
		}
	}
	n := time.Duration(o.BareRuns)
	return bareResult{wall: time.Since(start) / n, cpu: (selfCPU() - cpu0) / n}, nil
}
