package fhir

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutcomeJSON(t *testing.T) {
	o := NewOutcome(SeverityError, IssueRequired, "ServiceRequest.identifier: no accession number (identifier with type ACSN)", "ServiceRequest.identifier")
	require.JSONEq(t, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required",
		"diagnostics":"ServiceRequest.identifier: no accession number (identifier with type ACSN)",
		"expression":["ServiceRequest.identifier"]}]}`, string(o.JSON()))
	require.JSONEq(t, `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"ok"}]}`,
		string((&Outcome{}).JSON()))

	back, err := ParseOperationOutcome(o.JSON())
	require.NoError(t, err)
	require.Equal(t, o, back)
	require.Equal(t, "ServiceRequest.identifier: no accession number (identifier with type ACSN)", back.Text())
}

func TestParseOperationOutcome(t *testing.T) {
	o, err := ParseOperationOutcome([]byte(`{"resourceType":"OperationOutcome","issue":[
		{"severity":"error","code":"structure","details":{"text":"Missing required property"},"expression":["DiagnosticReport.status"]},
		{"severity":"error","code":"some-future-code","diagnostics":"odd"}]}`))
	require.NoError(t, err)
	require.Equal(t, "DiagnosticReport.status: Missing required property; odd", o.Text())
	_, err = ParseOperationOutcome([]byte(`{"resourceType":"Patient"}`))
	require.EqualError(t, err, "resourceType: expected OperationOutcome, got Patient")
}

func TestOutcomeFromError(t *testing.T) {
	err := fmt.Errorf("reading order: %w", &FieldError{Path: "ImagingStudy.identifier", Code: IssueRequired, Msg: "no Study Instance UID (system urn:dicom:uid)"})
	o := OutcomeFromError(err, IssueProcessing)
	require.Equal(t, []Issue{{Severity: SeverityError, Code: IssueRequired,
		Diagnostics: "ImagingStudy.identifier: no Study Instance UID (system urn:dicom:uid)",
		Expression:  []string{"ImagingStudy.identifier"}, Detail: DetailInvalidResource}}, o.Issues)

	o = OutcomeFromError(errors.New("nats: timeout"), IssueTransient)
	require.Equal(t, []Issue{{Severity: SeverityError, Code: IssueTransient, Diagnostics: "nats: timeout"}}, o.Issues)
}

func TestOutcomeError(t *testing.T) {
	err := fmt.Errorf("delivering: %w", &OutcomeError{Op: "posting the result transaction", Status: 400,
		Outcome: NewOutcome(SeverityError, IssueStructure, "Missing required property", "DiagnosticReport.status")})
	require.EqualError(t, err, "delivering: posting the result transaction: FHIR server answered 400 Bad Request: error structure at DiagnosticReport.status",
		"the status and the issue's code and location, never its diagnostics")
	require.ErrorIs(t, err, &OutcomeError{Status: 400})
	require.ErrorIs(t, err, &OutcomeError{})
	require.NotErrorIs(t, err, &OutcomeError{Status: 412})
	var oe *OutcomeError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, 400, oe.Status)

	require.EqualError(t, &OutcomeError{Status: 502, Body: "a text/html body of 24 bytes"},
		"FHIR server answered 502 Bad Gateway (a text/html body of 24 bytes)")
}
