package inference

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Age is the patient's age at the study date as an image header gives it:
// Patient's Age (0010,1010), else Patient's Birth Date (0010,0030) against
// Study Date (0008,0020). Only the age is kept, never the birth date.
// Intended-use rules (Accepts.AgeYears) compare Years, the whole years
// completed: a child of 5 years 11 months is 5, and "018M" is 1.
type Age struct {
	// Known is set when the header gave a usable age.
	Known bool
	// Years is the whole years completed (when Known).
	Years int
	// Text is the age as a clinician reads it: "86 y", "18 m", "3 w",
	// "10 d" (as Patient's Age spells it; from dates: years from a year
	// on, else months, else days).
	Text string
	// From names the attributes it came from: "Patient's Age" or
	// "Patient's Birth Date and Study Date".
	From string
	// Problem says why a header that had age attributes gave no age
	// ("Patient's Age \"4X\" is not nnnD, nnnW, nnnM or nnnY"); "" when
	// the header simply has none.
	Problem string
}

// Unknown describes an age that is not known, for a caveat or a refusal:
// "no Patient's Age, and no Patient's Birth Date with a Study Date", or the
// Problem.
func (a Age) Unknown() string {
	if a.Problem != "" {
		return a.Problem
	}
	return "no Patient's Age, and no Patient's Birth Date with a Study Date"
}

// maxAgeYears is the oldest age believed (130 years), as radgate.MaxAgeYears.
const maxAgeYears = 130

// ParsePatientAge reads a DICOM Age String (AS, PS3.5 6.2): digits then D
// (days), W (weeks), M (months) or Y (years), e.g. "004Y", "018M", "003W",
// "010D". The standard says exactly three digits; one to three are taken, as
// some modalities drop leading zeros. Anything else, and an age over 130
// years, is an error naming the value.
func ParsePatientAge(s string) (Age, error) {
	v := strings.TrimRight(strings.TrimSpace(s), "\x00 ")
	bad := func(why string) (Age, error) {
		return Age{}, fmt.Errorf("Patient's Age %q %s", clipValue(v), why)
	}
	if len(v) < 2 || len(v) > 4 {
		return bad("is not nnnD, nnnW, nnnM or nnnY")
	}
	digits, unit := v[:len(v)-1], v[len(v)-1]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return bad("is not nnnD, nnnW, nnnM or nnnY")
		}
	}
	n, _ := strconv.Atoi(digits)
	a := Age{Known: true, From: "Patient's Age"}
	switch unit {
	case 'Y':
		a.Years, a.Text = n, fmt.Sprintf("%d y", n)
	case 'M':
		a.Years, a.Text = n/12, fmt.Sprintf("%d m", n)
	case 'W':
		a.Years, a.Text = n*7/365, fmt.Sprintf("%d w", n)
	case 'D':
		a.Years, a.Text = n/365, fmt.Sprintf("%d d", n)
	default:
		return bad("is not nnnD, nnnW, nnnM or nnnY (unit must be D, W, M or Y)")
	}
	if a.Years > maxAgeYears {
		return bad(fmt.Sprintf("is over %d years", maxAgeYears))
	}
	return a, nil
}

// ParseDA reads a DICOM Date (DA): YYYYMMDD, or the old ACR-NEMA
// YYYY.MM.DD. The error names the attribute (name) but not the value, which
// may be a birth date.
func ParseDA(name, s string) (time.Time, error) {
	v := strings.TrimRight(strings.TrimSpace(s), "\x00 ")
	if len(v) == 10 && v[4] == '.' && v[7] == '.' {
		v = v[:4] + v[5:7] + v[8:]
	}
	t, err := time.Parse("20060102", v)
	if err != nil || len(v) != 8 {
		return time.Time{}, fmt.Errorf("%s is not a date YYYYMMDD", name)
	}
	return t, nil
}

// AgeFromDates is the age at studyDate of a patient born on birth (both
// DICOM DA values): whole years from a year on, months under a year, days
// under a month. A birth date after the study date, a date that does not
// parse, and an age over 130 years are errors that name the attribute but
// never quote the birth date.
func AgeFromDates(birth, studyDate string) (Age, error) {
	b, err := ParseDA("Patient's Birth Date", birth)
	if err != nil {
		return Age{}, err
	}
	s, err := ParseDA("Study Date", studyDate)
	if err != nil {
		return Age{}, err
	}
	if b.After(s) {
		return Age{}, fmt.Errorf("Patient's Birth Date is after the Study Date")
	}
	total := (s.Year()-b.Year())*12 + int(s.Month()-b.Month())
	if s.Day() < b.Day() {
		total--
	}
	// The month-anniversary may overflow a short month (born on the 31st):
	// step back until it is not after the study date.
	for total > 0 && b.AddDate(0, total, 0).After(s) {
		total--
	}
	years, months := total/12, total%12
	days := int(s.Sub(b.AddDate(0, total, 0)).Hours() / 24)
	if years > maxAgeYears {
		return Age{}, fmt.Errorf("Patient's Birth Date gives an age over %d years", maxAgeYears)
	}
	a := Age{Known: true, Years: years, From: "Patient's Birth Date and Study Date"}
	switch {
	case years > 0:
		a.Text = fmt.Sprintf("%d y", years)
	case months > 0:
		a.Text = fmt.Sprintf("%d m", months)
	default:
		a.Text = fmt.Sprintf("%d d", days)
	}
	return a, nil
}

// readAge reads the age at the study date from the header: Patient's Age,
// else Patient's Birth Date against Study Date. Problems with either are
// kept in Problem (an unusable Patient's Age is named even when the dates
// give the age: nothing hides a wrong header).
func readAge(elems []*dicom.Element) Age {
	var problems []string
	if s := getString(elems, tag.PatientAge); s != "" {
		a, err := ParsePatientAge(s)
		if err == nil {
			return a
		}
		problems = append(problems, err.Error())
	}
	birth := getString(elems, tag.PatientBirthDate)
	study := getString(elems, tag.StudyDate)
	switch {
	case birth != "" && study != "":
		a, err := AgeFromDates(birth, study)
		if err == nil {
			return a
		}
		problems = append(problems, err.Error())
	case birth != "":
		problems = append(problems, "Patient's Birth Date without a Study Date")
	}
	return Age{Problem: strings.Join(problems, "; ")}
}

// clipValue shortens a value quoted in an error to 16 characters.
func clipValue(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
