package service

import (
	"context"
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
	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
	"github.com/radgate/radgate/pipeline"
	"github.com/radgate/radgate/routing"
)

// loadRoutes reads the configured route file, checked against the engines in
// the models directory and the configured destinations; without a route
// file, the built-in route sends every order to cfg.Engines and the "fhir"
// destination.
func loadRoutes(cfg config.Config, engineIDs []string) (*routing.Set, error) {
	set, _, err := loadRoutesSource(cfg, engineIDs)
	return set, err
}

// loadRoutesSource is loadRoutes with the bytes the set was loaded from
// (nil for the built-in route).
func loadRoutesSource(cfg config.Config, engineIDs []string) (*routing.Set, []byte, error) {
	if cfg.RoutesFile == "" {
		return routing.Default(cfg.Engines, []string{config.BuiltinDestination}), nil, nil
	}
	b, err := os.ReadFile(cfg.RoutesFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading routes: %w", err)
	}
	set, err := routing.Load(cfg.RoutesFile, b, routing.Registry{Engines: engineIDs, Destinations: cfg.DestinationNames()})
	return set, b, err
}

// routeReloader reloads the route file on SIGHUP and when the file changes:
// the whole new set is built (and its engines loaded) and swapped in only on
// success; on failure the old routes keep serving and the error is logged
// and exported as radgate_routes_reload_error 1.
type routeReloader struct {
	cfg     config.Config
	engines *engineLoader
	sinks   map[string]radgate.Sink
	pipe    *pipeline.Pipeline
	log     *slog.Logger

	reloads  *prometheus.CounterVec
	failing  prometheus.Gauge
	loadedAt prometheus.Gauge
	mu       sync.Mutex
	digest   string
	// What the console shows (under mu): the running file's bytes, when
	// they were loaded, and the last reload's result.
	source []byte
	since  time.Time
	last   *console.ReloadResult

	// hup and files are what listen set up for watch.
	hup   chan os.Signal
	files *fsnotify.Watcher
}

func newRouteReloader(cfg config.Config, engines *engineLoader, sinks map[string]radgate.Sink, pipe *pipeline.Pipeline,
	digest string, source []byte, log *slog.Logger, reg prometheus.Registerer) *routeReloader {
	r := &routeReloader{cfg: cfg, engines: engines, sinks: sinks, pipe: pipe, log: log, digest: digest,
		source: source, since: time.Now(),
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
	set, src, err := loadRoutesSource(r.cfg, r.engines.IDs())
	res := &console.ReloadResult{At: time.Now(), Trigger: why}
	r.last = res
	if err == nil {
		var engines []radgate.Engine
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
					res.Result = "unchanged"
					return nil
				}
				r.pipe.SetRoutes(set, engines)
				r.digest, r.source, r.since = set.Digest(), src, res.At
				res.Result = "success"
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
	res.Result, res.Error = "failure", err.Error()
	var findings config.Errors
	if errors.As(err, &findings) {
		res.Findings = findings
	}
	r.log.Error("route reload failed; the previous routes keep serving", "trigger", why, "file", r.cfg.RoutesFile, "err", err)
	return err
}

// RouteSet is the route set in force.
func (r *routeReloader) RouteSet() *routing.Set { return r.pipe.RouteSet() }

// RouteStatus is the running route file and the last reload's result (the
// console's routes page).
func (r *routeReloader) RouteStatus() console.RouteStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := console.RouteStatus{File: r.cfg.RoutesFile, Source: r.source, Digest: r.digest, LoadedAt: r.since}
	if r.last != nil {
		last := *r.last
		st.Last = &last
	}
	return st
}

// listen starts taking SIGHUP and watching the route file's directory (so
// editors that replace the file — write a temporary, rename — are seen
// too); watch handles what they report. Run calls it before it reports
// ready, so no change made after that is missed and a SIGHUP never meets
// its default action (ending the process).
func (r *routeReloader) listen() {
	r.hup = make(chan os.Signal, 1)
	signal.Notify(r.hup, syscall.SIGHUP)
	if r.cfg.RoutesFile == "" {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(r.cfg.RoutesFile)); err != nil {
			_ = w.Close()
		}
	}
	if err != nil {
		r.log.Warn("cannot watch the route file; reload with SIGHUP", "file", r.cfg.RoutesFile, "err", err)
		return
	}
	r.files = w
}

// watch reloads on SIGHUP and on changes to the route file (see listen)
// until ctx ends.
func (r *routeReloader) watch(ctx context.Context) {
	defer signal.Stop(r.hup)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.files != nil {
		defer r.files.Close()
		events, errs = r.files.Events, r.files.Errors
	}
	target := filepath.Clean(r.cfg.RoutesFile)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
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
