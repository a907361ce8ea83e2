package fhirhttp_test

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
)

// The intake mounts at the root of radgate's listener, beside the health
// endpoints.
func ExampleNewIntake() {
	var intake radgate.Intake // routing's NATS-backed intake
	mux := http.NewServeMux()
	h := fhirhttp.NewIntake(stubIntake{intake}, fhirhttp.IntakeOptions{Logger: slog.Default()})
	mux.Handle("/fhir", h)
	mux.Handle("/fhir/", h)
	mux.Handle("/orders/", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	_ = &http.Server{Addr: "127.0.0.1:8080", Handler: mux}
}

func ExampleSink() {
	ctx := context.Background()
	sink, err := fhirhttp.NewSink(fhirhttp.SinkOptions{BaseURL: "http://127.0.0.1:8103/fhir/R4"})
	if err != nil {
		panic(err) // a bad base URL
	}
	// Once at start-up: publish the tier code systems.
	if err := sink.EnsureCodeSystem(ctx); err != nil {
		slog.Warn("publishing the code systems", "transient", radgate.IsTransient(err), "error", err)
	}
	var _ radgate.Sink = sink // hand it to routing as a destination
}

type stubIntake struct{ radgate.Intake }
