package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/pipeline"
)

// withConsole serves the operator console at /console/ beside intake (the
// authenticated mux): the console authenticates by its own session
// cookie, signed in with the same authenticator.
func withConsole(ctx context.Context, cfg config.Config, sec *security, topo *broker.Topology, pipe *pipeline.Pipeline,
	logger *slog.Logger, intake http.Handler, parts consoleParts) (http.Handler, error) {
	o := console.Options{Auth: sec.auth, SessionTTL: cfg.Console.SessionTTL.D(), TLS: sec.tls != nil, Order: pipe, Logger: logger}
	// The order index comes with the pipeline's ListOrders (issue 15
	// slice B); until the pipeline has it the list page says so.
	if l, ok := any(pipe).(radgate.OrderLister); ok {
		o.Orders = l
	}
	if !sec.auth.Open() {
		kv, err := broker.EnsureConsoleSessions(ctx, topo.JS, o.SessionTTL)
		if err != nil {
			return nil, err
		}
		o.Sessions = kv
	}
	// Routes, engines and usage (issue 15 slice E).
	o.Routes, o.Governance, o.Usage = parts.routes, parts.gov, parts.usage
	o.Engines = func() []console.EngineInfo { return engineInfos(parts.engines) }
	c, err := console.New(o)
	if err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle("/console/", c)
	root.Handle("/", intake)
	return root, nil
}

// consoleParts are the components the console's pages read besides the
// pipeline.
type consoleParts struct {
	routes  *routeReloader
	gov     *governance.Governance
	usage   *billing.UsageMeter
	engines *inference.Registry
}

// engineInfos is the engines page's view of the models directory: each
// manifest and its model card (MODEL_CARD.md beside it, when there is one).
func engineInfos(reg *inference.Registry) []console.EngineInfo {
	if reg == nil {
		return nil
	}
	var out []console.EngineInfo
	for _, m := range reg.Manifests() {
		e := console.EngineInfo{ID: m.ID, Name: m.Name, Version: m.Version, Modalities: m.Modalities, BodyParts: m.BodyParts,
			Views: m.Views, TierMid: m.Thresholds.TierMid, TierHigh: m.Thresholds.TierHigh, Mark: m.Thresholds.Mark,
			IntendedUse: m.IntendedUse, Finding: fmt.Sprintf("%s (%s %s)", m.Finding.Display, m.Finding.System, m.Finding.Code)}
		a := m.Accepts
		if a.MinRows > 0 || a.MinColumns > 0 {
			e.Accepts = append(e.Accepts, fmt.Sprintf("at least %d × %d pixels", a.MinRows, a.MinColumns))
		}
		if r := a.PixelSpacingMM; r != nil {
			e.Accepts = append(e.Accepts, fmt.Sprintf("pixel spacing %g–%g mm", r.Min, r.Max))
		}
		if r := a.AgeYears; r != nil {
			e.Accepts = append(e.Accepts, "age_years "+r.String())
		}
		for _, s := range []struct {
			name string
			m    *inference.SplitMetrics
		}{{"validation", m.Metrics.Validation}, {"test", m.Metrics.Test}} {
			if s.m != nil {
				e.Metrics = append(e.Metrics, fmt.Sprintf("%s: AUC %.4f, sensitivity %.3f, specificity %.3f, ECE %.3f (n=%d, %s)",
					s.name, s.m.AUC, s.m.Sensitivity, s.m.Specificity, s.m.ECE, s.m.N, s.m.Dataset))
			}
		}
		if b, err := os.ReadFile(filepath.Join(m.Dir, "MODEL_CARD.md")); err == nil {
			e.Card = string(b)
		}
		out = append(out, e)
	}
	return out
}
