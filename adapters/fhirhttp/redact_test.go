package fhirhttp

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
)

const patientName = "Zyxwa Testpatient"

// TestSinkErrorsCarryNoPeerText: a FHIR server's refusal can quote the
// resource in its diagnostics, details.text or body, patient names
// included. What radgate keeps of it (the error that becomes the order's
// reason and the dead letter, and the log) is the status and the issues'
// severity, code and expression only.
func TestSinkErrorsCarryNoPeerText(t *testing.T) {
	for _, c := range []struct {
		name, ctype, body string
		status            int
		want              string
	}{
		{"diagnostics", "application/fhir+json", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invariant",
			"diagnostics":"DiagnosticReport.subject.display 'Zyxwa Testpatient' does not match Patient/p-1 (MRN 4711)",
			"details":{"text":"Patient Zyxwa Testpatient: constraint failed"},
			"expression":["Bundle.entry[3].resource.subject"]}]}`, 422,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 422 Unprocessable Entity: error invariant at Bundle.entry[3].resource.subject"},
		{"plain text body", "text/plain", "Patient Zyxwa Testpatient not found", 404,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 404 Not Found (a text/plain body of 35 bytes)"},
		{"5xx with diagnostics", "application/fhir+json", `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception",
			"diagnostics":"NullPointerException rendering Zyxwa Testpatient"}]}`, 500,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 500 Internal Server Error: fatal exception"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := fakeFHIR(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				w.Header().Set("Content-Type", c.ctype)
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			})
			var logs bytes.Buffer
			s, err := NewSink(SinkOptions{BaseURL: srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			require.NoError(t, err)
			seedDevice(s, testResult(t, radgate.OutcomeScored).Engine, "Device/dev-1")
			_, err = s.Deliver(t.Context(), testResult(t, radgate.OutcomeScored))
			require.EqualError(t, err, c.want)
			require.NotContains(t, err.Error(), "Zyxwa")
			require.NotContains(t, err.Error(), "4711")
			require.Contains(t, logs.String(), "result not delivered")
			require.NotContains(t, logs.String(), "Zyxwa")
			var oe *fhir.OutcomeError
			require.ErrorAs(t, err, &oe)
			if oe.Outcome == nil {
				return
			}
			for _, is := range oe.Outcome.Issues {
				require.Empty(t, is.Diagnostics)
				require.Empty(t, is.Details)
			}
		})
	}
}

// TestRealServerRefusalReason: the real FHIR server refuses a report whose
// subject display holds a control character (details.text "Invalid string
// format"); the error, which becomes the order's reason, names the status,
// the issue code and where, and nothing the server wrote as text.
func TestRealServerRefusalReason(t *testing.T) {
	var logs bytes.Buffer
	s, err := NewSink(SinkOptions{BaseURL: testenv.FHIR(t).URL, Timeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	r := testResult(t, radgate.OutcomeScored)
	r.ID = "r-refused-" + unique(t)
	r.Order.Patient = &radgate.Reference{Reference: "Patient/p-1", Display: patientName + "\x1b"}
	_, err = s.Deliver(t.Context(), r)
	require.Error(t, err)
	require.False(t, radgate.IsTransient(err), "a refused resource is permanent: %v", err)
	require.ErrorIs(t, err, &fhir.OutcomeError{Status: http.StatusBadRequest})
	require.Contains(t, err.Error(), "FHIR server answered 400 Bad Request: error structure at ")
	require.Contains(t, err.Error(), "subject.display")
	require.NotContains(t, err.Error(), "Invalid string format", "the server's details.text stays out")
	require.NotContains(t, err.Error(), "Zyxwa")
	require.NotContains(t, logs.String(), "Zyxwa")
	require.NotContains(t, logs.String(), "Invalid string format")
}
