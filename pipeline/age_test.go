package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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

// shadowGovernor keeps every engine in shadow and keeps what it measures.
type shadowGovernor struct {
	mu       sync.Mutex
	measured []radgate.Result
}

func (g *shadowGovernor) Mode(context.Context, radgate.OrderStatus, radgate.EngineInfo) (radgate.EngineMode, error) {
	return radgate.EngineShadow, nil
}

func (g *shadowGovernor) Measure(_ context.Context, r radgate.Result, _ radgate.EngineMode) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.measured = append(g.measured, r)
	return nil
}

// An engine in shadow scores a patient outside its intended use and the
// result is recorded out of scope (Result.OutOfScope), to be measured on
// the facility's own population; active, the same order is refused.
func TestShadowScoresOutOfScopeAge(t *testing.T) {
	adult := &radgate.PatientAge{Years: 86, Text: "86 y", From: "HL7 PID-7 at the order's date, OBR-7"}
	const rule = "patient age 86 y (HL7 PID-7 at the order's date, OBR-7) is outside engine eng-a's intended use: 1–5 y (accepts.age_years)"
	aged := func(o *Options) {
		o.Engines = []radgate.Engine{&agedScorer{scorer{probs: map[string]float64{"sop-1": 0.91}}}}
	}

	gov := &shadowGovernor{}
	h := newHarness(t, func(o *Options) {
		aged(o)
		o.Routes = loadRoutes(t, "routes:\n  - name: chest\n    engines: [eng-a]\n    destinations: [fhir]\n    acceptance: {min_cases: 2, sensitivity_at: High, min_sensitivity: 0.5}\n")
		o.Governance = gov
	})
	h.arch.add("A1", "8.A1", "CR", "CHEST", "sop-1")
	ev := sr("A1", "sA1")
	ev.Age = adult
	st, err := h.p.Accept(t.Context(), ev)
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.Equal(t, radgate.EngineShadow, st.Engines["eng-a"].Mode)
	require.NotNil(t, st.Engines["eng-a"].Probability, "scored in shadow")
	gov.mu.Lock()
	require.Len(t, gov.measured, 1)
	require.Equal(t, radgate.OutcomeScored, gov.measured[0].Outcome)
	require.Equal(t, rule, gov.measured[0].OutOfScope)
	require.Empty(t, gov.measured[0].HeatmapPNG, "a shadow result is never delivered: nothing drawn")
	require.Empty(t, gov.measured[0].Preview)
	gov.mu.Unlock()

	active := newHarness(t, aged)
	active.arch.add("A2", "8.A2", "CR", "CHEST", "sop-1")
	ev = sr("A2", "sA2")
	ev.Age = adult
	st, err = active.p.Accept(t.Context(), ev)
	require.NoError(t, err)
	st = active.waitState(t, st.ID, radgate.StateRejected)
	require.Contains(t, st.Engines["eng-a"].Reason, rule)
}

// An image without an age, from an order that came without one: the
// order's Patient is read from the EHR (Options.PatientAge) once per job,
// and its age decides — an adult refused naming where the age came from, a
// child scored with no caveat. A Patient that cannot be read leaves the age
// unknown: scored with the caveat.
func TestOrderPatientAgeReadFromTheEHR(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	ages := map[string]*radgate.PatientAge{
		"Patient/old":   {Years: 71, Text: "71 y", From: "FHIR Patient.birthDate of Patient/old at the order's date"},
		"Patient/child": {Years: 3, Text: "3 y", From: "FHIR Patient.birthDate of Patient/child at the order's date"},
	}
	h := newHarness(t, func(o *Options) {
		o.Engines = []radgate.Engine{&agedScorer{scorer{probs: map[string]float64{"sop-1": 0.91, "sop-2": 0.2, "sop-3": 0.4}}}}
		o.PatientAge = func(_ context.Context, ref string, at time.Time) (*radgate.PatientAge, error) {
			mu.Lock()
			defer mu.Unlock()
			asked[ref]++
			if at.IsZero() {
				return nil, errors.New("no order date")
			}
			if a, ok := ages[ref]; ok {
				return a, nil
			}
			return nil, errors.New("reading Patient/gone: the server answered 404")
		}
	})
	order := func(acsn, patient, sop string) radgate.OrderStatus {
		h.arch.add(acsn, "8."+acsn, "CR", "CHEST", sop)
		ev := sr(acsn, "s"+acsn)
		ev.Patient = &radgate.Reference{Reference: patient}
		st, err := h.p.Accept(t.Context(), ev)
		require.NoError(t, err)
		return st
	}
	old := order("P1", "Patient/old", "sop-1")
	child := order("P2", "Patient/child", "sop-2")
	gone := order("P3", "Patient/gone", "sop-3")

	st := h.waitState(t, old.ID, radgate.StateRejected)
	require.Contains(t, st.Engines["eng-a"].Reason, "patient age 71 y (FHIR Patient.birthDate of Patient/old at the order's date) is outside engine eng-a's intended use: 1–5 y (accepts.age_years)")
	st = h.waitState(t, child.ID, radgate.StateDelivered)
	require.NotNil(t, st.Engines["eng-a"].Probability)
	st = h.waitState(t, gone.ID, radgate.StateDelivered)
	require.NotNil(t, st.Engines["eng-a"].Probability, "unknown age: scored")
	goneCaveats := st.Engines["eng-a"].Caveats
	var caveats []string
	for _, r := range h.sink.results() {
		if r.Order.ID == child.ID {
			require.Empty(t, r.Caveats, "the Patient's age stands in: no caveat")
		}
		if r.Order.ID == gone.ID {
			caveats = r.Caveats
		}
	}
	require.Len(t, caveats, 1)
	require.Contains(t, caveats[0], "patient age unknown")
	require.Contains(t, caveats[0], "the order's Patient could not be read for its age: reading Patient/gone: the server answered 404")
	require.Equal(t, caveats, goneCaveats, "the order's status keeps the caveats")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"Patient/old": 1, "Patient/child": 1, "Patient/gone": 1}, asked, "once per job")
}
