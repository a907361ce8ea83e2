package fhir

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// srWith is a valid ServiceRequest with one element changed by edit.
func srWith(t *testing.T, edit func(sr map[string]any)) []byte {
	t.Helper()
	sr := map[string]any{
		"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
		"identifier": []any{map[string]any{
			"type":   map[string]any{"coding": []any{map[string]any{"system": SystemV20203, "code": "ACSN"}}},
			"system": "urn:oid:1.2.3.4.5", "value": "ACC-0001"}},
		"code": map[string]any{"coding": []any{
			map[string]any{"system": SystemLOINC, "code": "36643-5", "display": "XR Chest 2 Views"},
			map[string]any{"system": SystemDICOMModality, "code": "DX"}}},
		"subject":   map[string]any{"reference": "Patient/p-1", "identifier": map[string]any{"system": "urn:oid:1.2.3.4.9", "value": "MRN-1"}},
		"performer": []any{map[string]any{"reference": "Organization/o-1", "display": "General Hospital Radiology"}},
	}
	if edit != nil {
		edit(sr)
	}
	b, err := json.Marshal(sr)
	require.NoError(t, err)
	return b
}

func isWith(t *testing.T, edit func(is map[string]any)) []byte {
	t.Helper()
	is := map[string]any{
		"resourceType": "ImagingStudy", "status": "available",
		"identifier": []any{map[string]any{"system": SystemDICOMUID, "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}},
		"modality":   []any{map[string]any{"system": SystemDICOMModality, "code": "CR"}},
		"basedOn":    []any{map[string]any{"reference": "ServiceRequest/sr-1"}},
		"location":   map[string]any{"reference": "Location/l-1", "display": "X-ray room 2"},
	}
	if edit != nil {
		edit(is)
	}
	b, err := json.Marshal(is)
	require.NoError(t, err)
	return b
}

func setAccession(field, v string) func(map[string]any) {
	return func(sr map[string]any) { sr["identifier"].([]any)[0].(map[string]any)[field] = v }
}

// TestParseRefusesBadIdentifiers: every identifier, reference, code and
// text the intake keeps (and later writes into results, HL7 messages and
// PACS queries) is checked with radgate.CheckIdentifier / CheckUID before
// anything is stored; the error names the element FHIRPath-style, carries
// the invalid-identifier detail code, and never repeats the value.
func TestParseRefusesBadIdentifiers(t *testing.T) {
	long := strings.Repeat("7", 10_000)
	cases := []struct {
		name, body, path string
		code             IssueCode
		value            string // must not appear in the message
	}{
		{"ESC in accession", string(srWith(t, setAccession("value", "ACC\x1b[2J"))), "ServiceRequest.identifier[0].value", IssueValue, "ACC\x1b[2J"},
		{"NUL in accession", string(srWith(t, setAccession("value", "ACC\x00X"))), "ServiceRequest.identifier[0].value", IssueValue, "ACC\x00X"},
		{"10 kB accession", string(srWith(t, setAccession("value", long))), "ServiceRequest.identifier[0].value", IssueTooLong, long},
		{"65-character accession", string(srWith(t, setAccession("value", strings.Repeat("A", 65)))), "ServiceRequest.identifier[0].value", IssueTooLong, strings.Repeat("A", 65)},
		{"control in accession system", string(srWith(t, setAccession("system", "urn:oid:1.2\x07"))), "ServiceRequest.identifier[0].system", IssueValue, "urn:oid:1.2\x07"},
		{"invalid UTF-8 in accession", strings.Replace(string(srWith(t, nil)), "ACC-0001", "ACC-\xff", 1), "ServiceRequest.identifier[0].value", IssueValue, "ACC-\xff"},
		{"ESC in patient identifier", string(srWith(t, func(sr map[string]any) {
			sr["subject"].(map[string]any)["identifier"].(map[string]any)["value"] = "MRN\x1b1"
		})), "ServiceRequest.subject.identifier.value", IssueValue, "MRN\x1b1"},
		{"long patient reference", string(srWith(t, func(sr map[string]any) {
			sr["subject"].(map[string]any)["reference"] = "Patient/" + long
		})), "ServiceRequest.subject.reference", IssueTooLong, long},
		{"newline in facility display", string(srWith(t, func(sr map[string]any) {
			sr["performer"].([]any)[0].(map[string]any)["display"] = "General\nHospital"
		})), "ServiceRequest.performer[0].display", IssueValue, "General\nHospital"},
		{"NUL in facility reference", string(srWith(t, func(sr map[string]any) {
			sr["performer"] = []any{map[string]any{"reference": "Organization/o\x00"}}
		})), "ServiceRequest.performer[0].reference", IssueValue, "Organization/o\x00"},
		{"ESC in procedure code", string(srWith(t, func(sr map[string]any) {
			sr["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "36643\x1b"
		})), "ServiceRequest.code.coding[0].code", IssueValue, "36643\x1b"},
		{"id with a slash", string(srWith(t, func(sr map[string]any) { sr["id"] = "a/b" })), "ServiceRequest.id", IssueValue, "a/b"},
		{"study UID with a leading zero", string(isWith(t, func(is map[string]any) {
			is["identifier"] = []any{map[string]any{"system": SystemDICOMUID, "value": "urn:oid:1.02.3"}}
		})), "ImagingStudy.identifier[0].value", IssueValue, "1.02.3"},
		{"65-character study UID", string(isWith(t, func(is map[string]any) {
			is["identifier"] = []any{map[string]any{"system": SystemDICOMUID, "value": "1." + strings.Repeat("2", 63)}}
		})), "ImagingStudy.identifier[0].value", IssueTooLong, "1." + strings.Repeat("2", 63)},
		{"ESC in study accession", string(isWith(t, func(is map[string]any) {
			is["identifier"] = append(is["identifier"].([]any), map[string]any{
				"type":  map[string]any{"coding": []any{map[string]any{"code": "ACSN"}}},
				"value": "A\x1b"})
		})), "ImagingStudy.identifier[1].value", IssueValue, "A\x1b"},
		{"control in basedOn", string(isWith(t, func(is map[string]any) {
			is["basedOn"] = []any{map[string]any{"reference": "ServiceRequest/sr\x01"}}
		})), "ImagingStudy.basedOn[0].reference", IssueValue, "ServiceRequest/sr\x01"},
		{"long modality", string(isWith(t, func(is map[string]any) {
			is["modality"] = []any{map[string]any{"code": strings.Repeat("CR", 9)}}
		})), "ImagingStudy.modality[0].code", IssueTooLong, strings.Repeat("CR", 9)},
		{"control in location display", string(isWith(t, func(is map[string]any) {
			is["location"] = map[string]any{"reference": "Location/l-1", "display": "room\x1b2"}
		})), "ImagingStudy.location.display", IssueValue, "room\x1b2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseResource([]byte(c.body))
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidResource)
			o := OutcomeFromError(err, IssueInvalid)
			require.Len(t, o.Issues, 1, "%v", err)
			is := o.Issues[0]
			require.Equal(t, []string{c.path}, is.Expression)
			require.Equal(t, c.code, is.Code)
			require.Equal(t, DetailInvalidIdentifier, is.Detail)
			require.True(t, strings.HasPrefix(is.Diagnostics, c.path+": "), is.Diagnostics)
			require.NotContains(t, is.Diagnostics, c.value, "the value is never repeated")
			require.Less(t, len(is.Diagnostics), 200)
		})
	}
}

// TestParseCollectsEveryBadIdentifier: several faults are each named.
func TestParseCollectsEveryBadIdentifier(t *testing.T) {
	_, err := ParseResource(srWith(t, func(sr map[string]any) {
		sr["subject"].(map[string]any)["reference"] = "Patient/\x1b"
		sr["performer"].([]any)[0].(map[string]any)["display"] = "x\x00"
	}))
	o := OutcomeFromError(err, IssueInvalid)
	require.Len(t, o.Issues, 2)
	require.Equal(t, []string{"ServiceRequest.subject.reference"}, o.Issues[0].Expression)
	require.Equal(t, []string{"ServiceRequest.performer[0].display"}, o.Issues[1].Expression)
}

// TestParseKeepsWhatItChecked: what is kept is trimmed and passes the
// checks; blank optional texts are dropped, not refused.
func TestParseKeepsWhatItChecked(t *testing.T) {
	o, err := ParseResource(srWith(t, func(sr map[string]any) {
		sr["subject"] = map[string]any{"reference": " Patient/p-1 ", "display": "   "}
		sr["identifier"].([]any)[0].(map[string]any)["system"] = " urn:oid:1.2.3.4.5 "
	}))
	require.NoError(t, err)
	require.Equal(t, &Reference{Reference: "Patient/p-1"}, o.Subject)
	require.Equal(t, &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"}, o.Accession)
	require.NoError(t, radgate.CheckIdentifier("accession", o.Accession.Value, 0))
}

func bundleOf(t *testing.T, typ string, entries ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries})
	require.NoError(t, err)
	return b
}

func entry(fullURL string, resource []byte) map[string]any {
	return map[string]any{"fullUrl": fullURL, "resource": json.RawMessage(resource)}
}

// TestParseBundleChecksReferencedIdentifiers: a Patient entry's identifier
// becomes the orders' subject, so it is checked too; in a batch an order
// that points at an entry in error fails with it rather than losing its
// patient.
func TestParseBundleChecksReferencedIdentifiers(t *testing.T) {
	patient := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4.9","value":"MRN\u001b9"}]}`)
	sr := srWith(t, func(sr map[string]any) {
		delete(sr, "id")
		sr["subject"] = map[string]any{"reference": "urn:uuid:p"}
	})
	for _, typ := range []string{"transaction", "batch"} {
		b, err := ParseBundle(bundleOf(t, typ, entry("urn:uuid:p", patient), entry("urn:uuid:s", sr)))
		require.NoError(t, err)
		o := OutcomeFromError(b.Err(), IssueInvalid)
		require.Len(t, o.Issues, 2)
		require.Equal(t, []string{"Bundle.entry[0].resource.identifier[0].value"}, o.Issues[0].Expression)
		require.Equal(t, DetailInvalidIdentifier, o.Issues[0].Detail)
		require.Equal(t, []string{"Bundle.entry[1].resource.subject.reference"}, o.Issues[1].Expression)
		require.Equal(t, "Bundle.entry[1].resource.subject.reference: refers to Bundle.entry[0], which is in error", o.Issues[1].Diagnostics)
		require.Nil(t, b.Entries[1].Order)
	}

	// A bad identifier inside an order entry is named at its place in the Bundle.
	b, err := ParseBundle(bundleOf(t, "batch", entry("urn:uuid:s", srWith(t, setAccession("value", "A\x1b")))))
	require.NoError(t, err)
	var fe *FieldError
	require.True(t, errors.As(b.Entries[0].Err, &fe))
	require.Equal(t, "Bundle.entry[0].resource.identifier[0].value", fe.Path)
}

// TestParseBundleMax: a Bundle over the entry limit is refused before any
// entry is read.
func TestParseBundleMax(t *testing.T) {
	var entries []map[string]any
	for range 101 {
		entries = append(entries, entry("", srWith(t, nil)))
	}
	body := bundleOf(t, "batch", entries...)
	_, err := ParseBundleMax(body, 100)
	var le *EntryLimitError
	require.ErrorAs(t, err, &le)
	require.Equal(t, EntryLimitError{Entries: 101, Max: 100}, *le)
	require.EqualError(t, err, "Bundle.entry: the Bundle has 101 entries; at most 100 are taken in one Bundle")

	b, err := ParseBundleMax(body, 101)
	require.NoError(t, err)
	require.Len(t, b.Entries, 101)
	_, err = ParseBundle(body)
	require.NoError(t, err, "no limit")
}
