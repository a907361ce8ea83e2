package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/adapters/dicomweb"
	fhiradapter "github.com/radgate/radgate/adapters/fhir"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/report"
	"github.com/radgate/radgate/routing"
	"github.com/radgate/radgate/routing/route"
)

// engineLoader opens engines from the models directory on demand and keeps
// them open: a route reload that names a new engine loads it before the new
// routes are swapped in.
type engineLoader struct {
	reg    *inference.Registry
	lib    string
	decode inference.DecodeOptions // the pacs section's limits on inflating images

	mu     sync.Mutex
	loaded map[string]routing.Engine
	opened []*inference.Engine
}

func newEngineLoader(cfg config.Config) (*engineLoader, error) {
	reg, err := inference.LoadEngines(cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	lib, err := inference.FindLibrary(cfg.Inference.ONNXRuntimeLibrary)
	if err != nil {
		return nil, err
	}
	return &engineLoader{reg: reg, lib: lib, loaded: map[string]routing.Engine{}, decode: inference.DecodeOptions{
		MaxInflatedBytes: cfg.PACS.MaxInflatedBytes, MaxInflateRatio: cfg.PACS.MaxInflateRatio}}, nil
}

// IDs lists every engine in the models directory.
func (l *engineLoader) IDs() []string { return l.reg.IDs() }

// load returns the engines with these ids, opening those not open yet.
func (l *engineLoader) load(ids []string) ([]routing.Engine, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []routing.Engine
	for _, id := range ids {
		if e, ok := l.loaded[id]; ok {
			out = append(out, e)
			continue
		}
		m, err := l.reg.Get(id)
		if err != nil {
			return nil, err
		}
		e, err := inference.NewEngine(m, inference.EngineOptions{Library: l.lib, Decode: l.decode})
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", id, err)
		}
		l.opened = append(l.opened, e)
		re := routing.NewInferenceEngine(e, inference.HeatmapOptions{})
		l.loaded[id] = re
		out = append(out, re)
	}
	return out, nil
}

func (l *engineLoader) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.opened {
		_ = e.Close()
	}
	l.opened, l.loaded = nil, map[string]routing.Engine{}
}

// loadRoutes reads the configured route file, checked against the engines in
// the models directory and the configured destinations; without a route
// file, the built-in route sends every order to cfg.Engines and the "fhir"
// destination.
func loadRoutes(cfg config.Config, engineIDs []string) (*route.Set, error) {
	if cfg.RoutesFile == "" {
		return route.Default(cfg.Engines, []string{config.BuiltinDestination}), nil
	}
	return route.LoadFile(cfg.RoutesFile, route.Registry{Engines: engineIDs, Destinations: cfg.DestinationNames()})
}

// buildSinks builds a result sink for every destination: the built-in
// "fhir" (the fhir section) and each one configured. It returns the sinks
// and the built-in FHIR sink (for the Subscriptions), and a function that
// closes what the sinks hold open.
func buildSinks(cfg config.Config, sec *security, js jetstream.JetStream, pacs *dicomweb.Client, logger *slog.Logger) (map[string]routing.Sink, *fhiradapter.Sink, func(), error) {
	pdf := pdfReport(pacs)
	var opts []fhiradapter.SinkOption
	if cfg.FHIR.PDFReport {
		opts = append(opts, fhiradapter.WithPDF(pdf))
	}
	main, err := fhiradapter.NewSink(fhiradapter.SinkOptions{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir,
		Timeout: cfg.FHIR.Timeout.D(), Logger: logger}, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fhir: %w", err)
	}
	sinks := map[string]routing.Sink{config.BuiltinDestination: main}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	for _, name := range cfg.DestinationNames() {
		d, ok := cfg.Destinations[name]
		if !ok {
			continue
		}
		timeout := d.Timeout.D()
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		var destPDF func(context.Context, routing.Result) ([]byte, error)
		if d.PDFReport {
			destPDF = pdf
		}
		var s routing.Sink
		switch d.Type {
		case config.DestinationFHIR:
			var o []fhiradapter.SinkOption
			if destPDF != nil {
				o = append(o, fhiradapter.WithPDF(destPDF))
			}
			s, err = fhiradapter.NewSink(fhiradapter.SinkOptions{BaseURL: d.URL, HTTPClient: sec.destinations[name],
				Timeout: timeout, Logger: logger}, o...)
		case config.DestinationDICOMweb:
			var c *dicomweb.Client
			c, err = dicomweb.New(dicomweb.Options{BaseURL: d.URL, HTTPClient: sec.destinations[name], Timeout: timeout})
			if err == nil {
				o := dicomweb.SinkOptions{SC: d.StoreSC(), SR: d.StoreSR(), SCWhenUnmarked: d.SCWhenUnmarked, PDF: destPDF}
				if err = o.Validate(); err == nil {
					s = dicomweb.NewSink(c, o)
				}
			}
		case config.DestinationHL7v2:
			var rs *hl7v2.ResultSink
			rs, err = hl7v2.NewResultSink(hl7v2.ResultSinkOptions{JS: js, Address: d.Address, PDF: destPDF, Logger: logger,
				ORU: hl7v2.ORUOptions{
					SendingApplication:   hl7v2.HD{Namespace: d.SendingApplication},
					SendingFacility:      hl7v2.HD{Namespace: d.SendingFacility},
					ReceivingApplication: hl7v2.HD{Namespace: d.ReceivingApplication},
					ReceivingFacility:    hl7v2.HD{Namespace: d.ReceivingFacility},
				},
				Client: hl7v2.ClientOptions{AckTimeout: timeout},
			})
			if err == nil {
				closers = append(closers, rs.Close)
				s = rs
			}
		default:
			err = fmt.Errorf("unknown destination type %q", d.Type)
		}
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("destinations.%s: %w", name, err)
		}
		sinks[name] = s
	}
	return sinks, main, closeAll, nil
}

// pdfReport renders a result's one-page PDF report. A result that is not
// marked shows the radiograph itself, fetched from the PACS as stored. The
// same result goes to several destinations at about the same time: the last
// few reports are kept, keyed by everything the page shows, so each is
// rendered once.
func pdfReport(pacs *dicomweb.Client) func(context.Context, routing.Result) ([]byte, error) {
	var (
		mu     sync.Mutex
		recent = map[[32]byte][]byte{}
		order  [][32]byte
	)
	const keep = 32
	return func(ctx context.Context, r routing.Result) ([]byte, error) {
		// What the page shows (report.PDF): the order's progress is not on
		// it, and changes between one destination's delivery and the next.
		k := r
		k.Order, k.Destination, k.Destinations, k.Read = routing.OrderStatus{}, "", nil, nil
		j, err := json.Marshal(struct {
			R                              routing.Result
			Accession                      *routing.Identifier
			ServiceRequest, ImagingStudy   *routing.Reference
			OrderID, OrderStudyInstanceUID string
		}{k, r.Order.Accession, r.Order.ServiceRequest, r.Order.ImagingStudy, r.Order.ID, r.Order.StudyInstanceUID})
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		h.Write(j)
		h.Write(r.HeatmapPNG)
		var key [32]byte
		copy(key[:], h.Sum(nil))
		mu.Lock()
		pdf, ok := recent[key]
		mu.Unlock()
		if ok {
			return pdf, nil
		}

		in := report.Input{Result: r}
		if !r.Marked && pacs != nil && r.SOPInstanceUID != "" {
			src, err := pacs.RetrieveInstance(ctx, r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
			if err != nil {
				return nil, fmt.Errorf("the report's radiograph: %w", err)
			}
			if in.Thumbnail, err = derived.Thumbnail(src, 768); err != nil {
				return nil, fmt.Errorf("the report's radiograph: %w", err)
			}
		}
		if pdf, err = report.PDF(in); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if _, dup := recent[key]; !dup {
			recent[key] = pdf
			order = append(order, key)
			if len(order) > keep {
				delete(recent, order[0])
				order = order[1:]
			}
		}
		return pdf, nil
	}
}

// routeReloader reloads the route file on SIGHUP and when the file changes:
// the whole new set is built (and its engines loaded) and swapped in only on
// success; on failure the old routes keep serving and the error is logged
// and exported as radgate_routes_reload_error 1.
type routeReloader struct {
	cfg     config.Config
	engines *engineLoader
	sinks   map[string]routing.Sink
	pipe    *routing.Pipeline
	log     *slog.Logger

	reloads  *prometheus.CounterVec
	failing  prometheus.Gauge
	loadedAt prometheus.Gauge
	mu       sync.Mutex
	digest   string
}

func newRouteReloader(cfg config.Config, engines *engineLoader, sinks map[string]routing.Sink, pipe *routing.Pipeline,
	digest string, log *slog.Logger, reg prometheus.Registerer) *routeReloader {
	r := &routeReloader{cfg: cfg, engines: engines, sinks: sinks, pipe: pipe, log: log, digest: digest,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_routes_reloads_total", Help: "Route file reloads, by result (success, failure, unchanged).",
		}, []string{"result"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_routes_reload_error",
			Help: "1 when the last route reload failed (the previous routes keep serving), else 0.",
		}),
		loadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_routes_loaded_timestamp_seconds", Help: "When the routes in service were loaded.",
		}),
	}
	r.loadedAt.SetToCurrentTime()
	reg.MustRegister(r.reloads, r.failing, r.loadedAt)
	return r
}

// reload builds and swaps in the route file; it returns the error that kept
// the old routes in service.
func (r *routeReloader) reload(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	set, err := loadRoutes(r.cfg, r.engines.IDs())
	if err == nil {
		var engines []routing.Engine
		if engines, err = r.engines.load(set.Engines()); err == nil {
			for _, d := range set.Destinations() {
				if _, ok := r.sinks[d]; !ok {
					err = fmt.Errorf("destination %q has no sink", d)
					break
				}
			}
			if err == nil {
				if set.Digest() == r.digest {
					r.reloads.WithLabelValues("unchanged").Inc()
					r.failing.Set(0)
					return nil
				}
				r.pipe.SetRoutes(set, engines)
				r.digest = set.Digest()
				r.reloads.WithLabelValues("success").Inc()
				r.failing.Set(0)
				r.loadedAt.SetToCurrentTime()
				r.log.Info("routes reloaded", "trigger", why, "file", r.cfg.RoutesFile, "digest", set.Digest())
				return nil
			}
		}
	}
	r.reloads.WithLabelValues("failure").Inc()
	r.failing.Set(1)
	r.log.Error("route reload failed; the previous routes keep serving", "trigger", why, "file", r.cfg.RoutesFile, "err", err)
	return err
}

// watch reloads on SIGHUP and on changes to the route file until ctx ends.
// It watches the file's directory, so editors that replace the file (write a
// temporary, rename) are seen too.
func (r *routeReloader) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.cfg.RoutesFile != "" {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			err = w.Add(filepath.Dir(r.cfg.RoutesFile))
		}
		if err != nil {
			r.log.Warn("cannot watch the route file; reload with SIGHUP", "file", r.cfg.RoutesFile, "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	target := filepath.Clean(r.cfg.RoutesFile)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = r.reload("SIGHUP")
		case ev := <-events:
			if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce = time.After(300 * time.Millisecond) // let the writer finish
			}
		case err := <-errs:
			if err != nil && !errors.Is(err, fsnotify.ErrEventOverflow) {
				r.log.Warn("watching the route file", "err", err)
			}
		case <-debounce:
			debounce = nil
			_ = r.reload("file changed")
		}
	}
}
