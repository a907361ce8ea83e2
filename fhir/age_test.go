package fhir

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// edit decodes a JSON testdata file, lets f change it and encodes it again.
func edit(t *testing.T, name string, f func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(readTestdata(t, name), &m))
	f(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// The order's age comes from the Patient that came with it (a Bundle entry,
// or contained) at the order's date; only the age leaves the package.
func TestOrderAgeFromBundlePatient(t *testing.T) {
	received := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	bundle := func(birth string, sr, is map[string]any) []byte {
		return edit(t, "transaction.json", func(m map[string]any) {
			entries := m["entry"].([]any)
			if birth != "" {
				entries[0].(map[string]any)["resource"].(map[string]any)["birthDate"] = birth
			}
			for k, v := range sr {
				entries[1].(map[string]any)["resource"].(map[string]any)[k] = v
			}
			for k, v := range is {
				entries[2].(map[string]any)["resource"].(map[string]any)[k] = v
			}
		})
	}
	b, err := ParseBundle(bundle("2021-06-10", map[string]any{"occurrenceDateTime": "2025-06-09T10:00:00+02:00", "authoredOn": "2026-01-01"},
		map[string]any{"started": "2026-06-10T08:00:00Z"}))
	require.NoError(t, err)
	require.Equal(t, &radgate.PatientAge{Years: 3, Text: "3 y", From: "FHIR Patient.birthDate at ServiceRequest.occurrenceDateTime"},
		b.Entries[1].Order.Age(received), "the day before the 4th birthday")
	require.Equal(t, &radgate.PatientAge{Years: 5, Text: "5 y", From: "FHIR Patient.birthDate at ImagingStudy.started"},
		b.Entries[2].Order.Age(received), "the study's own date")

	b, err = ParseBundle(bundle("2021-06-10", map[string]any{"authoredOn": "2021-12-24"}, nil))
	require.NoError(t, err)
	require.Equal(t, &radgate.PatientAge{Years: 0, Text: "6 m", From: "FHIR Patient.birthDate at ServiceRequest.authoredOn"}, b.Entries[1].Order.Age(received))
	require.Equal(t, &radgate.PatientAge{Years: 5, Text: "5 y", From: "FHIR Patient.birthDate at when the order came"}, b.Entries[2].Order.Age(received))

	for _, birth := range []string{"", "2021", "2021-06", "10/06/2021", "2027-01-01"} {
		b, err = ParseBundle(bundle(birth, nil, nil))
		require.NoError(t, err, "a birth date never refuses an order")
		require.Nil(t, b.Entries[1].Order.Age(received), "birthDate %q gives no age", birth)
	}
}

func TestOrderAgeFromContainedPatient(t *testing.T) {
	received := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	sr := edit(t, "servicerequest.json", func(m map[string]any) {
		m["contained"] = []any{map[string]any{"resourceType": "Patient", "id": "p", "birthDate": "1940-03-02"}}
		m["subject"] = map[string]any{"reference": "#p"}
	})
	o, err := ParseServiceRequest(sr)
	require.NoError(t, err)
	require.Equal(t, &radgate.PatientAge{Years: 86, Text: "86 y", From: "FHIR Patient.birthDate at when the order came"}, o.Age(received))
	enc, _ := json.Marshal(o)
	require.NotContains(t, string(enc), "1940", "the birth date is not exported")
}
