package radgate

import (
	"fmt"
	"time"
)

// PatientAge is a patient's age as radgate keeps it: the age, never the
// birth date. An intake that reads a birth date (FHIR Patient.birthDate,
// HL7 PID-7) turns it into a PatientAge at once, with AgeAt, and drops the
// date. Engines' intended use (inference.Manifest accepts.age_years) is
// checked against Years: whole years completed, so a child of 5 years and
// 11 months is 5.
type PatientAge struct {
	// Years is the whole years completed.
	Years int `json:"years"`
	// Text is the age as a clinician reads it: "86 y" from a year on,
	// "7 m" under a year, "10 d" under a month.
	Text string `json:"text"`
	// From says where the age came from and at which date it was taken:
	// "FHIR Patient.birthDate at the order's date".
	From string `json:"from"`
}

// AgeAt is the age at date at of a patient born on birth, from: where the
// birth date was read and against which date (see PatientAge.From). Both
// dates are taken as calendar days; a birth after at is an error naming
// both sources, and so is an age over MaxAgeYears.
func AgeAt(birth, at time.Time, from string) (PatientAge, error) {
	y, m, d, err := AgeParts(birth, at)
	if err != nil {
		return PatientAge{}, fmt.Errorf("%s: %w", from, err)
	}
	return PatientAge{Years: y, Text: AgeText(y, m, d), From: from}, nil
}

// MaxAgeYears is the oldest age radgate believes (130 years); an older one
// is a wrong date, not a patient.
const MaxAgeYears = 130

// AgeParts is the age at date at of a patient born on birth: whole years,
// then whole months past them, then days past those (calendar arithmetic:
// a birthday on 29 February is reached on 1 March in other years).
func AgeParts(birth, at time.Time) (years, months, days int, err error) {
	by, bm, bd := birth.Date()
	ay, am, ad := at.Date()
	b := time.Date(by, bm, bd, 0, 0, 0, 0, time.UTC)
	a := time.Date(ay, am, ad, 0, 0, 0, 0, time.UTC)
	if b.After(a) {
		return 0, 0, 0, fmt.Errorf("the birth date is after the date the age is taken at")
	}
	total := (ay-by)*12 + int(am-bm)
	if ad < bd {
		total--
	}
	// The month-anniversary may overflow a short month (born on the
	// 31st): step back until it is not after at.
	for total > 0 && b.AddDate(0, total, 0).After(a) {
		total--
	}
	years, months = total/12, total%12
	days = int(a.Sub(b.AddDate(0, total, 0)).Hours() / 24)
	if years > MaxAgeYears {
		return 0, 0, 0, fmt.Errorf("an age of %d years is over %d: the birth date is wrong", years, MaxAgeYears)
	}
	return years, months, days, nil
}

// AgeText writes an age as a clinician reads it: "86 y" from a year on,
// "7 m" under a year, "10 d" under a month.
func AgeText(years, months, days int) string {
	switch {
	case years > 0:
		return fmt.Sprintf("%d y", years)
	case months > 0:
		return fmt.Sprintf("%d m", months)
	}
	return fmt.Sprintf("%d d", days)
}
