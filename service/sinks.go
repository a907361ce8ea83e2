package service

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
)

// destinations are the built result sinks by destination name, and what
// closes those that hold something open.
type destinations struct {
	sinks   map[string]radgate.Sink
	closers []func() error
}

func (d *destinations) Close() {
	for _, c := range d.closers {
		_ = c()
	}
	d.closers = nil
}

// builtinDestination is the fhir section seen as a destination of the
// "fhir" type: the EHR's FHIR server.
func builtinDestination(cfg config.Config) config.Destination {
	return config.Destination{Type: "fhir", URL: cfg.FHIR.BaseURL, Timeout: cfg.FHIR.Timeout, PDFReport: cfg.FHIR.PDFReport}
}

// destinationContext is what the destination name's type is built from.
func destinationContext(cfg config.Config, name string, sec *security, js jetstream.JetStream,
	pdf func(context.Context, radgate.Result) ([]byte, error), logger *slog.Logger) radgate.DestinationContext {
	dc := radgate.DestinationContext{Name: name, JetStream: js, Retention: cfg.Retention, Logger: logger,
		EHR: radgate.EHR{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir, Timeout: cfg.FHIR.Timeout.D()}}
	if name == config.BuiltinDestination {
		dc.Config, dc.HTTPClient = builtinDestination(cfg), sec.fhir
	} else {
		dc.Config, dc.HTTPClient = cfg.Destinations[name], sec.destinations[name]
	}
	if dc.Config.PDFReport {
		dc.PDF = pdf
	}
	return dc
}

// buildSinks builds a sink for every destination, the built-in "fhir" one
// included, each through its registered type.
func buildSinks(cfg config.Config, reg *radgate.Registry, sec *security, js jetstream.JetStream, images radgate.StudySource,
	pdf func(context.Context, radgate.Result) ([]byte, error), logger *slog.Logger) (*destinations, error) {
	out := &destinations{sinks: map[string]radgate.Sink{}}
	for _, name := range cfg.DestinationNames() {
		dc := destinationContext(cfg, name, sec, js, pdf, logger)
		dc.Images = images
		t, ok := reg.Destination(dc.Config.Type)
		if !ok {
			out.Close()
			return nil, fmt.Errorf("destinations.%s: unknown destination type %q (known: %v)", name, dc.Config.Type, reg.DestinationTypes())
		}
		if err := withTLS(t, &dc); err != nil {
			out.Close()
			return nil, err
		}
		s, err := t.New(dc)
		if err != nil {
			out.Close()
			if name == config.BuiltinDestination {
				return nil, fmt.Errorf("fhir: %w", err)
			}
			return nil, fmt.Errorf("destinations.%s: %w", name, err)
		}
		if c, ok := s.(interface{ Close() error }); ok {
			out.closers = append(out.closers, c.Close)
		}
		out.sinks[name] = s
	}
	return out, nil
}

// withTLS gives a non-HTTP type that takes the tls key (DestinationType.TLS)
// its client TLS configuration.
func withTLS(t radgate.DestinationType, dc *radgate.DestinationContext) error {
	if !t.TLS || dc.Config.TLS == (config.ClientTLS{}) {
		return nil
	}
	tc, err := httpauth.ClientTLSConfig(dc.Config.TLS)
	if err != nil {
		return fmt.Errorf("destinations.%s.%w", dc.Name, err)
	}
	dc.TLS = tc
	return nil
}
