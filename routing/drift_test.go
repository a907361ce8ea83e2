package routing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

func TestDriftRuleIsParsed(t *testing.T) {
	src := `match: all
routes:
  - name: kids
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: 10, auc_lower_95: 0.80}
    drift: {disagreement_days: 7, psi_max: 0.25, psi_window: 7d, min_daily_labels: 5, auto_suspend: true}
  - name: rest
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: 10, auc_lower_95: 0.80}
`
	s, err := Load("routes.yaml", []byte(src), testReg)
	require.NoError(t, err)
	d, ok := s.Drift("kids")
	require.True(t, ok)
	require.Equal(t, Drift{DisagreementDays: 7, PSIMax: 0.25, PSIWindow: 7 * 24 * time.Hour, MinDailyLabels: 5, AutoSuspend: true}, d)
	_, ok = s.Drift("rest")
	require.False(t, ok)
}

func TestDriftMistakesAreReportedAtTheirPosition(t *testing.T) {
	src := `match: all
routes:
  - name: r
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: 10, auc_lower_95: 0.80}
    drift: {disagreement_days: 0, psi_max: -1, psi_window: 5m, auto_suspend: yes, psi: 1}
  - name: s
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    drift: {psi_max: 0.25}
  - name: u
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    acceptance: {min_cases: 10, auc_lower_95: 0.80}
    drift: {auto_suspend: true}
`
	_, err := Load("routes.yaml", []byte(src), testReg)
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	require.Equal(t, []string{
		`routes.yaml:7:32: route "r": drift.disagreement_days: want a whole number of consecutive days, at least 1, got "0"`,
		`routes.yaml:7:44: route "r": drift.psi_max: want a PSI above 0, e.g. 0.25 (a major shift), got "-1"`,
		`routes.yaml:7:60: route "r": drift.psi_window: want at least an hour, got "5m"`,
		`routes.yaml:7:78: route "r": drift.auto_suspend: want true or false, got "yes"`,
		`routes.yaml:7:83: route "r": drift: unknown key "psi" (known: disagreement_days, psi_max, psi_window, min_daily_labels, auto_suspend)`,
		`routes.yaml:11:5: route "s": drift needs acceptance on the same route (drift watches governed engines; auto_suspend changes their mode)`,
		`routes.yaml:16:12: route "u": drift: declares no rule: set disagreement_days, psi_max or both`,
	}, got)
}
