package fhirhttp

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/report"
)

// TestRealServerDeliverPDF: with WithPDF, the scored result's
// DiagnosticReport carries the report as presentedForm, which the real
// (validating) server accepts and returns intact; a redelivery leaves one
// report.
func TestRealServerDeliverPDF(t *testing.T) {
	base := realClient(t)
	calls := 0
	s, err := NewSink(SinkOptions{BaseURL: base.base.String()}, WithPDF(func(_ context.Context, r radgate.Result) ([]byte, error) {
		calls++
		return report.PDF(report.Input{Result: r})
	}))
	require.NoError(t, err)
	ctx := t.Context()
	r := testResult(t, radgate.OutcomeScored)
	r.ID = unique(t)
	r.Order.Accession = &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-" + r.ID}
	want, err := report.PDF(report.Input{Result: r})
	require.NoError(t, err)

	rec, err := s.Deliver(ctx, r)
	require.NoError(t, err)
	again, err := s.Deliver(ctx, r)
	require.NoError(t, err)
	require.Equal(t, rec, again)
	require.Equal(t, 2, calls)
	id := fhir.ResultIdentifier(r.ID)
	found, err := s.Search(ctx, "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	require.Len(t, found, 1)

	dr := readJSON(t, s.Client, rec.Report)
	f := dr["presentedForm"].([]any)[0].(map[string]any)
	require.Equal(t, "application/pdf", f["contentType"])
	got, err := base64.StdEncoding.DecodeString(f["data"].(string))
	require.NoError(t, err)
	require.Equal(t, want, got, "the PDF, byte for byte")
}

func TestSinkPDFErrors(t *testing.T) {
	srv := fakeFHIR(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		t.Error("nothing is posted when the PDF cannot be rendered")
		w.WriteHeader(http.StatusInternalServerError)
	})
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"permanent", errors.New("thumbnail unreadable"), false},
		{"transient", radgate.Transient(errors.New("object store unavailable")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSink(SinkOptions{BaseURL: srv.URL}, WithPDF(func(context.Context, radgate.Result) ([]byte, error) { return nil, tc.err }))
			require.NoError(t, err)
			r := testResult(t, radgate.OutcomeScored)
			_, err = s.Deliver(t.Context(), r)
			require.ErrorIs(t, err, tc.err)
			require.ErrorContains(t, err, "rendering the PDF report")
			require.Equal(t, tc.transient, radgate.IsTransient(err))
		})
	}
}
