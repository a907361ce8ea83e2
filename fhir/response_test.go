package fhir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitLocation(t *testing.T) {
	for loc, want := range map[string][2]string{
		"DiagnosticReport/12/_history/1":                           {"DiagnosticReport", "DiagnosticReport/12"},
		"http://127.0.0.1:8103/fhir/R4/Observation/abc/_history/x": {"Observation", "Observation/abc"},
		"Task/7":             {"Task", "Task/7"},
		"/orders/x":          {"", ""},
		"":                   {"", ""},
		"DiagnosticReport":   {"", ""},
		"Media/m1?_format=x": {"Media", "Media/m1"},
	} {
		typ, ref := SplitLocation(loc)
		require.Equal(t, want, [2]string{typ, ref}, loc)
	}
}

func TestParseTransactionResponse(t *testing.T) {
	r, err := ParseTransactionResponse([]byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[
		{"response":{"status":"201 Created","location":"Device/d1/_history/1"}},
		{"resource":{"resourceType":"Observation","id":"o1"},"response":{"status":"200 OK"}},
		{"response":{"status":"201 Created","location":"DiagnosticReport/r1/_history/1",
		  "outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"created"}]}}}]}`))
	require.NoError(t, err)
	require.Len(t, r.Entries, 3)
	e, ok := r.Find("DiagnosticReport")
	require.True(t, ok)
	require.Equal(t, "DiagnosticReport/r1", e.Reference)
	require.Equal(t, "201 Created", e.Status)
	require.Equal(t, "created", e.Outcome.Text())
	e, ok = r.Find("Observation")
	require.True(t, ok)
	require.Equal(t, "Observation/o1", e.Reference)
	_, ok = r.Find("Task")
	require.False(t, ok)

	for body, want := range map[string]string{
		`{"resourceType":"OperationOutcome"}`:                                  "resourceType: expected a transaction-response Bundle, got OperationOutcome",
		`{"resourceType":"Bundle","type":"searchset"}`:                         "Bundle.type: expected transaction-response or batch-response, got searchset",
		`{"resourceType":"Bundle","type":"transaction-response","entry":[{}]}`: "Bundle.entry[0].response: missing",
	} {
		_, err := ParseTransactionResponse([]byte(body))
		require.EqualError(t, err, want)
	}
}
