package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// facilitiesReloader re-reads radgate.yaml on SIGHUP and puts its
// `facilities:` in service without a restart: a site added to a running
// network. The new list is in force for every lookup at once (orders'
// and studies' facility, the Storage SCP's callers, the metrics' facility
// label, the study wait overrides), and a hub declares RADGATE_JOBS's
// source of each new edge first — if that fails, nothing changes and the
// error is logged, to be retried by the next SIGHUP. A facility removed
// from the list is no longer resolved; a hub keeps its source (radgate
// sites sources --prune removes it), as at a start. Every other setting of
// radgate.yaml takes effect at the next start.
type facilitiesReloader struct {
	path       string
	reg        *radgate.Registry
	facilities *radgate.Facilities
	current    []config.Facility
	// js is the hub's JetStream (role hub), nil elsewhere.
	js  jetstream.JetStream
	log *slog.Logger

	failing prometheus.Gauge
	outcome *prometheus.CounterVec
	hup     chan os.Signal
}

func newFacilitiesReloader(path string, cfg config.Config, reg *radgate.Registry, facilities *radgate.Facilities,
	js jetstream.JetStream, log *slog.Logger, metrics prometheus.Registerer) *facilitiesReloader {
	r := &facilitiesReloader{path: path, reg: reg, facilities: facilities, current: cfg.Facilities, log: log,
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_facilities_reloads_total",
			Help: "Reloads of radgate.yaml's facilities on SIGHUP, by result (success, failure, unchanged).",
		}, []string{"result"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_facilities_reload_error",
			Help: "1 when the last reload of the facilities failed (the previous list stays in service), else 0.",
		}),
	}
	if cfg.Role == config.RoleHub {
		r.js = js
	}
	metrics.MustRegister(r.outcome, r.failing)
	return r
}

// listen starts taking SIGHUP (before serve reports ready, like the route
// reloader's).
func (r *facilitiesReloader) listen() {
	r.hup = make(chan os.Signal, 1)
	signal.Notify(r.hup, syscall.SIGHUP)
}

// watch reloads on each SIGHUP (see listen) until ctx ends.
func (r *facilitiesReloader) watch(ctx context.Context) {
	defer signal.Stop(r.hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = r.reload(rctx)
			cancel()
		}
	}
}

// reload reads radgate.yaml and puts its facilities in service; it returns
// the error that kept the previous list.
func (r *facilitiesReloader) reload(ctx context.Context) error {
	err := r.apply(ctx)
	switch {
	case errors.Is(err, errUnchanged):
		r.outcome.WithLabelValues("unchanged").Inc()
		r.failing.Set(0)
		return nil
	case err != nil:
		r.outcome.WithLabelValues("failure").Inc()
		r.failing.Set(1)
		r.log.Error("facilities reload failed; the previous list stays in service", "file", r.path, "err", err)
		return err
	}
	r.outcome.WithLabelValues("success").Inc()
	r.failing.Set(0)
	return nil
}

var errUnchanged = errors.New("unchanged")

func (r *facilitiesReloader) apply(ctx context.Context) error {
	if r.path == "" {
		return errUnchanged // the built-in defaults: nothing to re-read
	}
	cfg, err := LoadConfig(r.path, r.reg)
	if err != nil {
		return err
	}
	if reflect.DeepEqual(cfg.Facilities, r.current) {
		return errUnchanged
	}
	var sourced broker.HubSourcesChange
	if ids := cfg.EdgeFacilities(); r.js != nil && len(ids) > 0 {
		if sourced, err = broker.DeclareHubSources(ctx, r.js, ids, false); err != nil {
			return fmt.Errorf("declaring the hub's sources of the edges' jobs: %w", err)
		}
	}
	added, removed := facilityDiff(r.current, cfg.Facilities)
	r.facilities.Replace(cfg.Facilities)
	r.current = cfg.Facilities
	r.log.Info("facilities reloaded; radgate.yaml's other settings take effect at the next start", "file", r.path,
		"facilities", len(cfg.Facilities), "added", strings.Join(added, ","), "removed", strings.Join(removed, ","),
		"hub_sources_added", strings.Join(sourced.Added, ","))
	return nil
}

// facilityDiff lists the ids in next and not in prev (added), and in prev
// and not in next (removed); a facility changed in place is in neither.
func facilityDiff(prev, next []config.Facility) (added, removed []string) {
	ids := func(l []config.Facility) []string {
		out := make([]string, len(l))
		for i, f := range l {
			out[i] = f.ID
		}
		return out
	}
	p, n := ids(prev), ids(next)
	for _, id := range n {
		if !slices.Contains(p, id) {
			added = append(added, id)
		}
	}
	for _, id := range p {
		if !slices.Contains(n, id) {
			removed = append(removed, id)
		}
	}
	return added, removed
}
