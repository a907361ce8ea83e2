package service

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
	"github.com/radgate/radgate/pipeline"
)

// withConsole serves the operator console at /console/ beside intake (the
// authenticated mux): the console authenticates by its own session
// cookie, signed in with the same authenticator.
func withConsole(ctx context.Context, cfg config.Config, sec *security, topo *broker.Topology, pipe *pipeline.Pipeline,
	logger *slog.Logger, intake http.Handler) (http.Handler, error) {
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
	// The order page (issue 15 slice C): heatmap thumbnails from the
	// pipeline's object store, links into each destination that has a URL.
	o.Pictures, o.Destinations = topo.Heatmaps, consoleLinks(cfg)
	c, err := console.New(o)
	if err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle("/console/", c)
	root.Handle("/", intake)
	return root, nil
}

// consoleLinks says where each destination's objects open on the order
// page: the FHIR base or DICOMweb root, without any credentials in it.
func consoleLinks(cfg config.Config) map[string]console.DestinationLink {
	out := map[string]console.DestinationLink{}
	for _, name := range cfg.DestinationNames() {
		d := builtinDestination(cfg)
		if name != config.BuiltinDestination {
			d = cfg.Destinations[name]
		}
		link := console.DestinationLink{Type: d.Type}
		if u, err := url.Parse(d.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && (d.Type == "fhir" || d.Type == "dicomweb") {
			u.User = nil
			link.URL = u.String()
		}
		out[name] = link
	}
	return out
}
