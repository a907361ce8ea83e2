package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/inference"
)

// DefaultDriftEvery is how often serve checks the drift rules besides
// right after each label.
const DefaultDriftEvery = time.Hour

// engineReference reads what live monitoring compares an engine with from
// its manifest.
func engineReference(reg *inference.Registry) func(string) (governance.EngineReference, bool) {
	return func(engine string) (governance.EngineReference, bool) {
		m, err := reg.Get(engine)
		if err != nil {
			return governance.EngineReference{}, false
		}
		ref := governance.EngineReference{Mark: m.Thresholds.Mark}
		if v := m.Metrics.Validation; v != nil {
			ref.ValidationAccuracy = v.Accuracy
		}
		if r := m.Reference; r != nil {
			ref.Dataset, ref.N, ref.Counts = r.Dataset, r.N, r.Counts
		}
		return ref, true
	}
}

// fhirDrifter writes each drift alert as a FHIR Flag, with PUT at an id
// derived from the alert, so a retried write is one resource.
type fhirDrifter struct {
	c       *fhirhttp.Client
	timeout time.Duration
}

func (d fhirDrifter) DriftRaised(ctx context.Context, a governance.DriftAlert) (string, error) {
	at, _ := time.Parse(time.RFC3339Nano, a.RaisedAt)
	b, err := fhir.DriftFlag(fhir.DriftAlert{ID: "radgate-drift-" + shortHash(a.Facility+"|"+a.Route+"|"+a.Engine+"|"+a.Version+"|"+a.Rule+"|"+a.RaisedAt),
		Facility: a.Facility, Route: a.Route, Engine: a.Engine, Version: a.Version, Rule: a.Rule, Text: a.Text, Suspended: a.Suspended, At: at})
	if err != nil {
		return "", err
	}
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	return d.c.Update(ctx, b)
}

// driftWatcher runs governance's drift check on a ticker and when poked
// (after each label), and keeps radgate_engine_drift_alert.
type driftWatcher struct {
	gov   *governance.Governance
	every time.Duration
	poke  chan struct{}
	gauge *prometheus.GaugeVec
	log   *slog.Logger
}

func newDriftWatcher(gov *governance.Governance, every time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*driftWatcher, error) {
	if every <= 0 {
		every = DefaultDriftEvery
	}
	w := &driftWatcher{gov: gov, every: every, poke: make(chan struct{}, 1), log: logger.With("component", "drift"),
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "radgate_engine_drift_alert",
			Help: "1 while a route's drift rule fires on an engine at a facility (rule: disagreement, psi), else 0."},
			[]string{"facility", "engine", "rule"})}
	if err := reg.Register(w.gauge); err != nil {
		return nil, err
	}
	return w, nil
}

// Poke asks for a check soon (never blocks).
func (w *driftWatcher) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// run checks until ctx is done.
func (w *driftWatcher) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.poke:
		}
	}
}

func (w *driftWatcher) check(ctx context.Context) {
	alerts, err := w.gov.CheckDrift(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("drift rules not checked", "err", err)
		}
		return
	}
	for _, a := range alerts {
		v := 0.0
		if a.Firing {
			v = 1
		}
		w.gauge.WithLabelValues(a.Facility, a.Engine, a.Rule).Set(v)
	}
}

// pokingRecorder is the verdict recorder that asks for a drift check after
// each label recorded.
type pokingRecorder struct {
	radgate.VerdictRecorder
	w *driftWatcher
}

func (p pokingRecorder) Record(ctx context.Context, v radgate.Verdict) (radgate.VerdictReceipt, error) {
	rc, err := p.VerdictRecorder.Record(ctx, v)
	if err == nil && !rc.Duplicate {
		p.w.Poke()
	}
	return rc, err
}

// engineMonitorHandler serves radgate monitor:
//
//	GET /engines/monitor?facility=F&engine=E[&version=V][&days=N]   governance.Monitor (any caller)
func engineMonitorHandler(gov *governance.Governance, logger *slog.Logger) http.Handler {
	log := logger.With("component", "governance-http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mq := governance.MonitorQuery{Facility: q.Get("facility"), Engine: q.Get("engine"), Version: q.Get("version")}
		if d := q.Get("days"); d != "" {
			n, err := strconv.Atoi(d)
			if err != nil || n < 1 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("days: want a whole number of days, at least 1, got %q", d)})
				return
			}
			mq.Days = n
		}
		m, err := gov.Monitor(r.Context(), mq)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, m)
		case errors.Is(err, governance.ErrBadRequest):
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		default:
			log.Warn("monitor figures failed", "facility", mq.Facility, "engine", mq.Engine, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "monitor figures not readable now; retry"})
		}
	})
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
