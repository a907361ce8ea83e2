package fhir

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDriftFlag(t *testing.T) {
	at := time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)
	b, err := DriftFlag(DriftAlert{ID: "radgate-drift-1", Facility: "kids", Route: "chest", Engine: "e", Version: "1.0.0",
		Rule: "disagreement", Text: "disagreement above 0.05 on 7 consecutive days", Suspended: true, At: at})
	require.NoError(t, err)
	var f map[string]any
	require.NoError(t, json.Unmarshal(b, &f))
	require.Equal(t, "Flag", f["resourceType"])
	require.Equal(t, "radgate-drift-1", f["id"])
	require.Equal(t, "active", f["status"])
	require.Equal(t, "kids", f["subject"].(map[string]any)["identifier"].(map[string]any)["value"])
	code := f["code"].(map[string]any)
	require.Equal(t, "disagreement", code["coding"].([]any)[0].(map[string]any)["code"])
	require.Contains(t, code["text"], `engine e version 1.0.0 on route chest at facility "kids": disagreement above 0.05 on 7 consecutive days; the engine is suspended`)
	require.Equal(t, "2026-03-09T10:00:00Z", f["period"].(map[string]any)["start"])

	_, err = DriftFlag(DriftAlert{Engine: "e", Rule: "psi"})
	require.ErrorContains(t, err, "needs the facility")
}
