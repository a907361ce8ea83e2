package fhirhttp

import (
	"context"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

func init() { radgate.RegisterDestination(DestinationType()) }

// DestinationType is the "fhir" destination: results as a transaction of
// DiagnosticReport, Observation, Media, Device and Provenance (plus a read
// Task when the route asks for one) on a FHIR R4 server. The fhir section's
// built-in destination is of this type.
func DestinationType() radgate.DestinationType {
	return radgate.DestinationType{
		Name:    "fhir",
		Summary: "FHIR R4 server: DiagnosticReport, Observation, Media, Provenance, read Task",
		Keys:    []string{"url"},
		HTTP:    true,
		Check: func(d config.Destination) []radgate.KeyError {
			if d.URL == "" {
				return []radgate.KeyError{{Message: "url must be set for a fhir destination (the FHIR base URL)"}}
			}
			if err := config.CheckHTTPURL(d.URL); err != nil {
				return []radgate.KeyError{{Key: "url", Message: err.Error()}}
			}
			return nil
		},
		New: func(dc radgate.DestinationContext) (radgate.Sink, error) {
			var opts []SinkOption
			if dc.PDF != nil {
				opts = append(opts, WithPDF(dc.PDF))
			}
			return NewSink(SinkOptions{BaseURL: dc.Config.URL, HTTPClient: dc.HTTPClient,
				Timeout: dc.Config.RequestTimeout(), Logger: dc.Logger}, opts...)
		},
		ProbeDoes: "FHIR metadata",
		Probe: func(ctx context.Context, dc radgate.DestinationContext) error {
			c, err := NewClient(ClientOptions{BaseURL: dc.Config.URL, HTTPClient: dc.HTTPClient, Logger: dc.Logger})
			if err != nil {
				return err
			}
			return c.Ping(ctx)
		},
	}
}

// Prepare publishes radgate's CodeSystems on the server (best effort at
// start-up: radgate.Preparer).
func (s *Sink) Prepare(ctx context.Context) error { return s.EnsureCodeSystem(ctx) }

var _ radgate.Preparer = (*Sink)(nil)
