package radgate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAgeAt(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse(time.DateOnly, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		birth, at string
		want      PatientAge
	}{
		{"2020-03-15", "2024-03-15", PatientAge{Years: 4, Text: "4 y", From: "x"}},
		{"2020-03-16", "2024-03-15", PatientAge{Years: 3, Text: "3 y", From: "x"}},
		{"2018-04-15", "2024-03-14", PatientAge{Years: 5, Text: "5 y", From: "x"}}, // 5 y 11 m
		{"2023-07-31", "2024-02-29", PatientAge{Years: 0, Text: "6 m", From: "x"}}, // month ends
		{"2024-02-01", "2024-02-29", PatientAge{Years: 0, Text: "28 d", From: "x"}},
		{"2020-02-29", "2021-02-28", PatientAge{Years: 0, Text: "11 m", From: "x"}},
		{"2020-02-29", "2021-03-01", PatientAge{Years: 1, Text: "1 y", From: "x"}},
		{"1940-01-01", "2026-12-03", PatientAge{Years: 86, Text: "86 y", From: "x"}},
	} {
		got, err := AgeAt(d(tc.birth), d(tc.at), "x")
		require.NoError(t, err, tc.birth)
		require.Equal(t, tc.want, got, "%s at %s", tc.birth, tc.at)
	}
	// Zones do not move the calendar days: a birth at 23:30 local time is
	// still that day.
	late := time.Date(2020, 3, 15, 23, 30, 0, 0, time.FixedZone("", -5*3600))
	got, err := AgeAt(late, time.Date(2024, 3, 15, 1, 0, 0, 0, time.UTC), "x")
	require.NoError(t, err)
	require.Equal(t, 4, got.Years)

	_, err = AgeAt(d("2024-03-16"), d("2024-03-15"), "HL7 PID-7 at OBR-7")
	require.EqualError(t, err, "HL7 PID-7 at OBR-7: the birth date is after the date the age is taken at")
	_, err = AgeAt(d("1800-01-01"), d("2024-03-15"), "x")
	require.ErrorContains(t, err, "over 130")
}
