package routing

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

func TestAcceptanceIsCarriedIntoTheDecision(t *testing.T) {
	src := `routes:
  - name: adult-chest
    when: {facility: [Adult Clinic]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: 100, auc_lower_95: 0.80, sensitivity_at: mid, min_sensitivity: 0.90}
  - name: rest
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
`
	s, err := Load("routes.yaml", []byte(src), testReg)
	require.NoError(t, err)
	want := Acceptance{Route: "adult-chest", MinCases: 100, AUCLower95: 0.80, SensitivityAt: "Mid", MinSensitivity: 0.90}
	d := s.Decide(Facts{Facilities: []string{"adult clinic"}})
	require.NotNil(t, d.Acceptance)
	require.Equal(t, want, *d.Acceptance)
	require.Nil(t, s.Decide(Facts{Facilities: []string{"Children's Hospital"}}).Acceptance, "a route without acceptance keeps its engines active")

	a, declared, known := s.Acceptance("adult-chest")
	require.True(t, declared && known)
	require.Equal(t, want, a)
	_, declared, known = s.Acceptance("rest")
	require.True(t, known)
	require.False(t, declared)
	_, _, known = s.Acceptance("nope")
	require.False(t, known)
}

func TestAcceptanceMistakesAreReportedAtTheirPosition(t *testing.T) {
	src := `match: all
routes:
  - name: r
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: -3, auc_lower_95: 1.8, sensitivity_at: Medium, min_sensitivty: 0.9}
  - name: s
    when: {priority: [stat]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_sensitivity: 0.9}
`
	_, err := Load("routes.yaml", []byte(src), testReg)
	require.Error(t, err)
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		`routes.yaml:6:29: route "r": acceptance.min_cases: want a whole number of labelled cases, at least 1, got "-3"`,
		`routes.yaml:6:47: route "r": acceptance.auc_lower_95: want a fraction in (0, 1], e.g. 0.80, got "1.8"`,
		`routes.yaml:6:68: route "r": acceptance.sensitivity_at: unknown tier "Medium" (known: Low, Mid, High)`,
		`routes.yaml:6:76: route "r": acceptance: unknown key "min_sensitivty" (did you mean "min_sensitivity"? known: min_cases, auc_lower_95, sensitivity_at, min_sensitivity, min_specificity)`,
		`routes.yaml:11:17: route "s": acceptance: min_cases must be set (the labelled cases an evaluation needs, e.g. 100)`,
		`routes.yaml:11:17: route "s": acceptance: sensitivity_at must be set with min_sensitivity or min_specificity (the tier whose threshold they are measured at: Low, Mid, High)`,
	}, got)
}
