package pipeline

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
)

// agedScorer is a scorer whose intended use is 1–5 y.
type agedScorer struct{ scorer }

func (agedScorer) AgeYears() (int, int, bool) { return 1, 5, true }

// checkAge decides for an image whose header gave no age: the order's age,
// else the route's unknown_age; an engine without an age range, or an
// image with its own age (the engine judged it), is left alone.
func TestCheckAge(t *testing.T) {
	eng := &agedScorer{}
	child := &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, OBR-7"}
	adult := &radgate.PatientAge{Years: 86, Text: "86 y", From: "FHIR Patient.birthDate at ImagingStudy.started"}
	noAge := radgate.ImageScore{AgeProblem: "no Patient's Age, and no Patient's Birth Date with a Study Date"}

	caveat, err := checkAge(eng, Job{}, noAge)
	require.NoError(t, err)
	require.Equal(t, "patient age unknown: engine eng-a's intended use is 1–5 y (accepts.age_years); the result was not checked against it "+
		"(no Patient's Age, and no Patient's Birth Date with a Study Date; the order gives none)", caveat)

	caveat, err = checkAge(eng, Job{OrderAge: child}, noAge)
	require.NoError(t, err)
	require.Empty(t, caveat, "the order's age stands in: no caveat")

	_, err = checkAge(eng, Job{OrderAge: adult, UnknownAge: radgate.UnknownAgeReject}, noAge)
	require.ErrorIs(t, err, inference.ErrNotAccepted)
	require.EqualError(t, err, "patient age 86 y (FHIR Patient.birthDate at ImagingStudy.started) is outside engine eng-a's intended use: 1–5 y (accepts.age_years)")

	_, err = checkAge(eng, Job{UnknownAge: radgate.UnknownAgeReject}, noAge)
	require.ErrorIs(t, err, inference.ErrNotAccepted)
	require.EqualError(t, err, "patient age unknown (no Patient's Age, and no Patient's Birth Date with a Study Date; the order gives none): "+
		"engine eng-a's intended use is 1–5 y (accepts.age_years) and the route refuses unknown ages (unknown_age: reject)")

	caveat, err = checkAge(eng, Job{OrderAge: adult}, radgate.ImageScore{Age: &radgate.PatientAge{Years: 3, Text: "3 y"}})
	require.NoError(t, err)
	require.Empty(t, caveat, "the image's own age comes first")

	caveat, err = checkAge(&scorer{}, Job{UnknownAge: radgate.UnknownAgeReject}, noAge)
	require.NoError(t, err)
	require.Empty(t, caveat, "no age range, no age rule")
}
