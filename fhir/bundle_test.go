package fhir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBundle(t *testing.T) {
	b, err := ParseBundle(readTestdata(t, "transaction.json"))
	require.NoError(t, err)
	require.NoError(t, b.Err())
	require.Equal(t, "transaction", b.Type)
	require.Len(t, b.Entries, 3)

	require.True(t, b.Entries[0].Ignored())
	require.Equal(t, "Patient", b.Entries[0].ResourceType)

	patient := &Reference{Identifier: &Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN-123"}}
	sr := b.Entries[1].Order
	require.Equal(t, "POST", b.Entries[1].Method)
	require.Equal(t, &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0002"}, sr.Accession)
	require.Equal(t, patient, sr.Subject, "urn:uuid subject resolved to the Patient entry's identifier")

	is := b.Entries[2].Order
	require.Equal(t, "1.2.826.0.1.3680043.8.498.2", is.StudyInstanceUID)
	require.Equal(t, patient, is.Subject)
	require.Equal(t, []Reference{{Identifier: &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0002"}}}, is.BasedOn)
	require.Equal(t, sr.Accession, is.Accession, "the study takes the accession number of the request it is based on")
}

func TestParseBundleDropsDanglingURN(t *testing.T) {
	b, err := ParseBundle([]byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":
		{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"1.2"}],
		 "subject":{"reference":"urn:uuid:0b0e2b6c-0000-4000-8000-000000000009"},
		 "basedOn":[{"reference":"urn:uuid:0b0e2b6c-0000-4000-8000-000000000008","display":"the order"}]}}]}`))
	require.NoError(t, err)
	o := b.Entries[0].Order
	require.Nil(t, o.Subject)
	require.Equal(t, []Reference{{Display: "the order"}}, o.BasedOn)
}

func TestParseBundleEntryErrors(t *testing.T) {
	b, err := ParseBundle([]byte(`{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":{"resourceType":"ServiceRequest","status":"active","intent":"order"}},
		{"resource":{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"1.2"}]},"request":{"method":"POST","url":"ImagingStudy"}},
		{"resource":{"resourceType":"ImagingStudy","status":"nope"}},
		{"request":{"method":"POST","url":"ServiceRequest"}},
		{"resource":{"resourceType":"ServiceRequest"},"request":{"method":"DELETE","url":"ServiceRequest/1"}},
		{"resource":[1]},
		{"resource":{"id":"x"}}
	]}`))
	require.NoError(t, err)
	var got []string
	for _, e := range b.Entries {
		if e.Err != nil {
			got = append(got, e.Err.Error())
		}
	}
	require.Equal(t, []string{
		"Bundle.entry[0].resource.identifier: no accession number (identifier with type ACSN)",
		`Bundle.entry[2].resource.status: unknown code "nope" (ImagingStudyStatus)`,
		"Bundle.entry[3].resource: missing",
		"Bundle.entry[4].request.method: radgate takes orders by POST or PUT, got DELETE",
		"Bundle.entry[5].resource: expected a JSON object, got array (byte 1)",
		"Bundle.entry[6].resource.resourceType: missing: expected a FHIR resource",
	}, got)
	require.NotNil(t, b.Entries[1].Order)
	require.ErrorIs(t, b.Err(), ErrInvalidResource)

	o := OutcomeFromError(b.Err(), IssueInvalid)
	require.Len(t, o.Issues, 6)
	require.Equal(t, []string{"Bundle.entry[2].resource.status"}, o.Issues[1].Expression)
	require.Equal(t, IssueValue, o.Issues[1].Code)
}

func TestParseBundleErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"resourceType":"ServiceRequest"}`:                                                          "resourceType: expected Bundle, got ServiceRequest",
		`{"resourceType":"Bundle","type":"collection"}`:                                              "Bundle.type: expected transaction or batch, got collection",
		`{"resourceType":"Bundle"}`:                                                                  "Bundle.type: expected transaction or batch, got nothing",
		`{"resourceType":"Bundle","type":"batch"}`:                                                   "Bundle.entry: no entries",
		`{"resourceType":"Bundle","type":"batch","entry":{}}`:                                        "Bundle.entry: expected an array, got object (byte 49)",
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"}}]}`: "Bundle.entry: no ServiceRequest or ImagingStudy: radgate takes imaging orders only (and verdicts: DiagnosticReport, Task)",
		`{"resourceType":"Bundle","type":"batch",`:                                                   "malformed JSON at byte 40: unexpected end of JSON input",
	} {
		_, err := ParseBundle([]byte(body))
		require.EqualError(t, err, want, body)
		require.ErrorIs(t, err, ErrInvalidResource)
	}
}
