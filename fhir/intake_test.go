package fhir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseServiceRequest(t *testing.T) {
	o, err := ParseResource(readTestdata(t, "servicerequest.json"))
	require.NoError(t, err)
	require.Equal(t, &OrderResource{
		ResourceType: "ServiceRequest",
		ID:           "sr-1",
		Status:       "active",
		Self:         &Reference{Reference: "ServiceRequest/sr-1"},
		Accession:    &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"},
		Subject:      &Reference{Reference: "Patient/p-1"},
		Codes: []Coding{
			{System: SystemLOINC, Code: "36643-5", Display: "XR Chest 2 Views"},
			{System: SystemDICOMModality, Code: "DX"},
		},
		Modalities: []string{"DX"},
		Priority:   "urgent",
		Facility:   "General Hospital Radiology",
	}, o)
}

func TestParseImagingStudy(t *testing.T) {
	o, err := ParseResource(readTestdata(t, "imagingstudy.json"))
	require.NoError(t, err)
	require.Equal(t, &OrderResource{
		ResourceType:     "ImagingStudy",
		ID:               "is-1",
		Status:           "available",
		Self:             &Reference{Reference: "ImagingStudy/is-1"},
		Accession:        &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"},
		StudyInstanceUID: "1.2.826.0.1.3680043.8.498.1",
		Subject:          &Reference{Reference: "Patient/p-1"},
		BasedOn:          []Reference{{Reference: "ServiceRequest/sr-1"}},
		Codes:            []Coding{{System: SystemLOINC, Code: "36643-5"}},
		Modalities:       []string{"CR", "DX"},
		Facility:         "X-ray room 2",
	}, o)
}

func TestParseWithoutID(t *testing.T) {
	o, err := ParseImagingStudy([]byte(`{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},
		"identifier":[{"system":"urn:dicom:uid","value":"1.2.3"}]}`))
	require.NoError(t, err)
	require.Equal(t, &Reference{Identifier: &Identifier{System: SystemDICOMUID, Value: "urn:oid:1.2.3"}}, o.Self)
	require.Empty(t, o.Accession)

	o, err = ParseServiceRequest([]byte(`{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
		"identifier":[{"type":{"coding":[{"code":"ACSN"}]},"value":" A1 "}]}`))
	require.NoError(t, err)
	require.Equal(t, &Reference{Identifier: &Identifier{Value: "A1"}}, o.Self)
	require.Equal(t, "active", o.Status)
}

// TestParseErrors names, for each bad input, the exact error radgate answers
// with: the element in FHIRPath form, then what is wrong.
func TestParseErrors(t *testing.T) {
	const acsn = `{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},"value":"A1"}`
	const uid = `{"system":"urn:dicom:uid","value":"urn:oid:1.2.3"}`
	cases := []struct {
		name, body string
		parse      func([]byte) (*OrderResource, error)
		want       string
		code       IssueCode
	}{
		{"empty body", ``, ParseResource, "empty body: expected a FHIR resource in JSON", IssueStructure},
		{"malformed JSON", `{"resourceType": "ServiceRequest",}`, ParseResource,
			"malformed JSON at byte 35: invalid character '}' looking for beginning of object key string", IssueStructure},
		{"truncated JSON", `{"resourceType": "Servi`, ParseResource,
			"malformed JSON at byte 23: unexpected end of JSON input", IssueStructure},
		{"array", `[1,2]`, ParseResource, "expected a JSON object, got array (byte 1)", IssueStructure},
		{"no resourceType", `{"id":"x"}`, ParseResource, "resourceType: missing: expected a FHIR resource", IssueRequired},
		{"numeric resourceType", `{"resourceType":7}`, ParseResource, "resourceType: expected a string", IssueStructure},
		{"Patient", `{"resourceType":"Patient"}`, ParseResource,
			"resourceType: expected ServiceRequest or ImagingStudy, got Patient", IssueNotSupported},
		{"Patient as ServiceRequest", `{"resourceType":"Patient"}`, ParseServiceRequest,
			"resourceType: expected ServiceRequest, got Patient", IssueInvalid},
		{"ServiceRequest as ImagingStudy", `{"resourceType":"ServiceRequest"}`, ParseImagingStudy,
			"resourceType: expected ImagingStudy, got ServiceRequest", IssueInvalid},
		{"no accession", `{"resourceType":"ServiceRequest","status":"active","intent":"order","identifier":[{"system":"x","value":"1"}]}`,
			ParseResource, "ServiceRequest.identifier: no accession number (identifier with type ACSN)", IssueRequired},
		{"empty accession", `{"resourceType":"ServiceRequest","status":"active","intent":"order","identifier":[{"value":"x"},
			{"type":{"coding":[{"code":"ACSN"}]},"value":" "}]}`, ParseResource,
			"ServiceRequest.identifier[1].value: accession number (identifier with type ACSN) has no value", IssueRequired},
		{"unknown status", `{"resourceType":"ServiceRequest","status":"actve","intent":"order","identifier":[` + acsn + `]}`,
			ParseResource, `ServiceRequest.status: unknown code "actve" (RequestStatus)`, IssueValue},
		{"unknown intent", `{"resourceType":"ServiceRequest","status":"active","intent":"orders","identifier":[` + acsn + `]}`,
			ParseResource, `ServiceRequest.intent: unknown code "orders" (RequestIntent)`, IssueValue},
		{"unknown priority", `{"resourceType":"ServiceRequest","status":"active","intent":"order","priority":"now","identifier":[` + acsn + `]}`,
			ParseResource, `ServiceRequest.priority: unknown code "now" (RequestPriority)`, IssueValue},
		{"identifier not an array", `{"resourceType":"ServiceRequest","status":"active","intent":"order","identifier":{"value":"x"}}`,
			ParseResource, "ServiceRequest.identifier: expected an array, got object (byte 82)", IssueStructure},
		{"value not a string", `{"resourceType":"ServiceRequest","status":"active","intent":"order","identifier":[{"value":12}]}`,
			ParseResource, "ServiceRequest.identifier.value: expected a string, got number (byte 93)", IssueStructure},
		{"no study UID", `{"resourceType":"ImagingStudy","status":"available","identifier":[` + acsn + `]}`,
			ParseResource, "ImagingStudy.identifier: no Study Instance UID (system urn:dicom:uid)", IssueRequired},
		{"no identifiers", `{"resourceType":"ImagingStudy","status":"available"}`,
			ParseResource, "ImagingStudy.identifier: no Study Instance UID (system urn:dicom:uid)", IssueRequired},
		{"bad study UID", `{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.abc"}]}`,
			ParseResource, `ImagingStudy.identifier[0].value: is not a DICOM UID: character 5 is not a digit or a dot`, IssueValue},
		{"empty study UID", `{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"urn:oid:"}]}`,
			ParseResource, `ImagingStudy.identifier[0].value: Study Instance UID (system urn:dicom:uid) has no value`, IssueRequired},
		{"unknown study status", `{"resourceType":"ImagingStudy","status":"done","identifier":[` + uid + `]}`,
			ParseResource, `ImagingStudy.status: unknown code "done" (ImagingStudyStatus)`, IssueValue},
		{"unknown identifier use", `{"resourceType":"ImagingStudy","status":"available","identifier":[{"use":"main","system":"urn:dicom:uid","value":"1.2"}]}`,
			ParseResource, `ImagingStudy.identifier.use: unknown code "main" (IdentifierUse)`, IssueValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.parse([]byte(c.body))
			require.Error(t, err)
			require.Equal(t, c.want, err.Error())
			require.ErrorIs(t, err, ErrInvalidResource)
			var fe *FieldError
			require.True(t, errors.As(err, &fe))
			require.Equal(t, c.code, fe.Code)
		})
	}
}

func TestValidUID(t *testing.T) {
	for uid, ok := range map[string]bool{
		"1.2.840.10008.1.2": true, "1": true, "": false, "1..2": false, ".1": false, "1.": false,
		"1.2.a": false, "1.2.3 ": false,
		"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27": false,
	} {
		require.Equal(t, ok, ValidUID(uid), uid)
	}
}
