package broker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubjectsCarryClassThenFacility(t *testing.T) {
	require.Equal(t, "radgate.orders.urgent.st-marys.fhir", OrderSubject("urgent", "st-marys", "fhir"))
	require.Equal(t, "radgate.jobs.routine._.cxr-v2", JobSubject("routine", "", "cxr-v2"))
	require.Equal(t, "radgate.results.fhir.routine.north_wing.eng-a", ResultSubject("fhir", "routine", "north.wing", "eng-a"))
	for subj, want := range map[string]string{
		OrderSubject("urgent", "st-marys", "hl7 v2"):  "st-marys",
		JobSubject("routine", "", "eng-a"):            NoFacility,
		ResultSubject("ris.x", "routine", "f>1", "e"): "f_1",
	} {
		got, ok := FacilityOfSubject(subj)
		require.True(t, ok, subj)
		require.Equal(t, want, got, subj)
	}
	class, ok := ClassOfSubject(ResultSubject("fhir", "urgent", "f1", "e"))
	require.True(t, ok)
	require.Equal(t, "urgent", class)
	// The layout before facilities (state version 1), and other streams.
	for _, subj := range []string{"radgate.orders.routine.fhir", "radgate.jobs.routine.eng-a", "radgate.results.fhir.routine.eng-a",
		"radgate.dlq.router", "radgate.orders.routine..fhir", "radgate.orders.a.b.c.d"} {
		_, ok := FacilityOfSubject(subj)
		require.False(t, ok, subj)
	}
	require.Equal(t, []string{"radgate.orders.*.f1.>", "radgate.jobs.*.f1.>", "radgate.results.*.*.f1.>"}, FacilitySubjects("f1"))
}
