package service

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// The PDF a result gets is the same at every destination (rendered once),
// and follows the order when what the page shows changes.
func TestPDFReportPerResult(t *testing.T) {
	var heat bytes.Buffer
	require.NoError(t, png.Encode(&heat, image.NewRGBA(image.Rect(0, 0, 64, 64))))
	r := radgate.Result{ID: "res-1", Outcome: radgate.OutcomeScored, Probability: 0.81, Tier: "High", Marked: true,
		HeatmapPNG: heat.Bytes(), ScoredAt: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC),
		Order: radgate.OrderStatus{ID: "ord-1", Accession: &radgate.Identifier{System: "urn:acsn", Value: "A-1"}},
		Engine: radgate.EngineInfo{ID: "eng", Name: "Engine", Version: "1", Disclaimer: "Not a diagnosis.",
			Finding: radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"}},
		StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5"}
	pdf := pdfReport(nil)
	ctx := context.Background()

	r.Destination = "fhir"
	first, err := pdf(ctx, r)
	require.NoError(t, err)
	r.Destination = "ris"
	r.Order.Engines = map[string]radgate.EngineProgress{"eng": {State: radgate.StateScored,
		Deliveries: map[string]radgate.DeliveryProgress{"fhir": {State: radgate.StateDelivered}}}} // progress is not on the page
	again, err := pdf(ctx, r)
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Same(t, &first[0], &again[0], "rendered once, kept for the next destination")

	r.Order.ServiceRequest = &radgate.Reference{Reference: "ServiceRequest/9"} // the order learned more
	changed, err := pdf(ctx, r)
	require.NoError(t, err)
	require.NotEqual(t, first, changed)
	require.True(t, bytes.HasPrefix(changed, []byte("%PDF-")))
}
