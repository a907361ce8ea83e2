package fhirhttp

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
)

// SentBytes counts every request body byte the Clients of this process send
// to FHIR servers, whatever the method: result transactions, Binaries,
// creates, updates, CodeSystems, Subscriptions. radgate serve registers it
// on /metrics; `radgate bench` divides it by the results delivered (FHIR
// bytes per result).
var SentBytes = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "radgate_fhir_sent_bytes_total",
	Help: "Request body bytes sent to FHIR servers (every method).",
})

// countedBody counts the bytes the HTTP transport reads from a request body
// into SentBytes, so that whatever feeds the body (a byte slice, a stream)
// is counted as sent.
type countedBody struct{ io.ReadCloser }

func (b countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	SentBytes.Add(float64(n))
	return n, err
}
