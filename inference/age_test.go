package inference

import (
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestParsePatientAge(t *testing.T) {
	for _, tc := range []struct {
		in    string
		years int
		text  string
	}{
		{"004Y", 4, "4 y"},
		{"086Y", 86, "86 y"},
		{"018M", 1, "18 m"},
		{"011M", 0, "11 m"},
		{"071M", 5, "71 m"}, // 5 y 11 m: 5 whole years
		{"003W", 0, "3 w"},
		{"104W", 1, "104 w"},
		{"010D", 0, "10 d"},
		{"400D", 1, "400 d"},
		{"000D", 0, "0 d"},
		{"4Y", 4, "4 y"},       // leading zeros dropped by some modalities
		{"05Y ", 5, "5 y"},     // padded to even length
		{"130Y", 130, "130 y"}, // the oldest believed
	} {
		a, err := ParsePatientAge(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, Age{Known: true, Years: tc.years, Text: tc.text, From: "Patient's Age"}, a, tc.in)
	}
	for in, want := range map[string]string{
		"62":    `Patient's Age "62" is not nnnD, nnnW, nnnM or nnnY (unit must be D, W, M or Y)`,
		"004y":  `unit must be D, W, M or Y`,
		"004X":  `unit must be D, W, M or Y`,
		"Y":     `Patient's Age "Y" is not nnnD, nnnW, nnnM or nnnY`,
		"-04Y":  `is not nnnD`,
		"0004Y": `is not nnnD`,
		"4.5Y":  `is not nnnD`,
		"999Y":  `Patient's Age "999Y" is over 130 years`,
		"":      `is not nnnD`,
	} {
		a, err := ParsePatientAge(in)
		require.ErrorContains(t, err, want, in)
		require.False(t, a.Known, in)
	}
}

func TestAgeFromDates(t *testing.T) {
	for _, tc := range []struct {
		birth, study string
		years        int
		text         string
	}{
		{"20200315", "20240315", 4, "4 y"},       // the birthday itself
		{"20200316", "20240315", 3, "3 y"},       // the day before it
		{"20180415", "20240314", 5, "5 y"},       // 5 y 11 m is 5
		{"20180314", "20240314", 6, "6 y"},       // 6 y is out of 1–5
		{"19400101", "20261203", 86, "86 y"},     // an adult
		{"20240101", "20240815", 0, "7 m"},       // under a year: months
		{"20240801", "20240815", 0, "14 d"},      // under a month: days
		{"20240815", "20240815", 0, "0 d"},       // born that day
		{"20200229", "20240228", 3, "3 y"},       // leap-day birth, the day before
		{"20200229", "20240229", 4, "4 y"},       // leap-day birth on a leap day
		{"20200229", "20210301", 1, "1 y"},       // leap-day birth in a common year: 1 March
		{"20240131", "20240229", 0, "29 d"},      // born on the 31st, a short month later
		{"1940.01.01", "2026.12.03", 86, "86 y"}, // ACR-NEMA dates
	} {
		a, err := AgeFromDates(tc.birth, tc.study)
		require.NoError(t, err, tc.birth)
		require.Equal(t, Age{Known: true, Years: tc.years, Text: tc.text, From: "Patient's Birth Date and Study Date"}, a, "%s → %s", tc.birth, tc.study)
	}
	for _, tc := range []struct{ birth, study, want string }{
		{"20240816", "20240815", "Patient's Birth Date is after the Study Date"},
		{"19400101", "", "Study Date is not a date YYYYMMDD"},
		{"1940", "20240815", "Patient's Birth Date is not a date YYYYMMDD"},
		{"19401301", "20240815", "Patient's Birth Date is not a date YYYYMMDD"},
		{"18000101", "20240815", "Patient's Birth Date gives an age over 130 years"},
	} {
		_, err := AgeFromDates(tc.birth, tc.study)
		require.EqualError(t, err, tc.want)
		if len(tc.birth) == 8 {
			require.NotContains(t, err.Error(), tc.birth, "the birth date is never quoted")
		}
	}
}

func TestCheckImageAge(t *testing.T) {
	m := loadTestManifest(t, DefaultEngineID)
	meta := func(a Age) *Meta {
		return &Meta{Rows: 512, Columns: 512, Modality: "CR", BodyPartExamined: "CHEST", Age: a}
	}
	aged := func(text string, y int) Age { return Age{Known: true, Years: y, Text: text, From: "Patient's Age"} }
	for _, a := range []Age{aged("1 y", 1), aged("4 y", 4), aged("71 m", 5)} {
		require.NoError(t, m.CheckImage(meta(a)), a.Text)
		require.Empty(t, m.Check(meta(a)), a.Text)
	}
	for _, a := range []Age{aged("86 y", 86), aged("6 y", 6), aged("11 m", 0)} {
		err := m.CheckImage(meta(a))
		require.ErrorIs(t, err, ErrNotAccepted, a.Text)
		want := "patient age " + a.Text + " (Patient's Age) is outside engine cxr-pneumonia-densenet121's intended use: 1–5 y (accepts.age_years)"
		require.EqualError(t, err, want)
		require.Contains(t, m.Check(meta(a)), want, "score and eval warn with the same words")
	}
	// Unknown: the engine does not refuse (the order and the route decide);
	// score and eval warn.
	require.NoError(t, m.CheckImage(meta(Age{})))
	require.Equal(t, "patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y (accepts.age_years); the result was not checked against it (no Patient's Age, and no Patient's Birth Date with a Study Date)", m.Check(meta(Age{})))
	require.Contains(t, m.Check(meta(Age{Problem: `Patient's Age "62" is not nnnD, nnnW, nnnM or nnnY`})), `(Patient's Age "62" is not`)
}

func TestAgeReadFromHeaders(t *testing.T) {
	for name, want := range map[string]Age{
		// 1940 birth date against a 2004 study date: an adult, refused.
		"cxr-dicom/cr-chest-mono1-jpeg2000-lossy.dcm": {Known: true, Years: 64, Text: "64 y", From: "Patient's Birth Date and Study Date"},
		"cxr-dicom/cr-chest-pa-jpeg-baseline.dcm":     {Problem: `Patient's Age "62" is not nnnD, nnnW, nnnM or nnnY (unit must be D, W, M or Y)`},
		"cxr-dicom/cr-chest-mono1-10bit-rle.dcm":      {},
		"jp-charset/jp-utf8.dcm":                      {Known: true, Years: 4, Text: "4 y", From: "Patient's Age"},
	} {
		m, err := ReadHeaderFile(filepath.Join(testenv.RepoRoot(), "testdata", name))
		require.NoError(t, err)
		require.Equal(t, want, m.Age, name)
	}
	def := loadTestManifest(t, DefaultEngineID)
	m, err := ReadHeaderFile(filepath.Join(testenv.RepoRoot(), "testdata", "cxr-dicom", "cr-chest-mono1-jpeg2000-lossy.dcm"))
	require.NoError(t, err)
	require.EqualError(t, def.CheckImage(m), "patient age 64 y (Patient's Birth Date and Study Date) is outside engine cxr-pneumonia-densenet121's intended use: 1–5 y (accepts.age_years)")
}
