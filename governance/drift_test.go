package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker/brokertest"
	"github.com/radgate/radgate/routing"
)

var day0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// labelsOn makes n labels recorded on day d (0-based from day0), wrong of
// them disagreeing with the engine's call at mark 0.5.
func labelsOn(d, n, wrong int) []Label {
	var out []Label
	for i := range n {
		p := 0.9
		finding := radgate.FindingPresent
		if i < wrong {
			finding = radgate.FindingAbsent // called present at 0.9: disagrees
		}
		out = append(out, Label{ResultID: fmt.Sprintf("r-%d-%d", d, i), Version: "1.0", Probability: &p, Tier: "High",
			Verdict:    radgate.Verdict{Finding: finding},
			RecordedAt: day0.AddDate(0, 0, d).Add(time.Duration(9+i%8) * time.Hour).Format(time.RFC3339Nano)})
	}
	return out
}

func disagreement(t *testing.T, rule routing.Drift, labels []Label, at time.Time) DriftAlert {
	t.Helper()
	as, err := DriftFindings(rule, Key{Facility: "kids", Route: "r", Engine: "eng", Version: "1.0"}, nil, labels,
		EngineReference{Mark: 0.5}, 0.05, "test", at)
	require.NoError(t, err)
	require.Len(t, as, 1)
	require.Equal(t, DriftDisagreement, as[0].Rule)
	return as[0]
}

// endOf is the last second of day d.
func endOf(d int) time.Time { return day0.AddDate(0, 0, d+1).Add(-time.Second) }

func TestDisagreementRuleFiresOnDaySevenNotSix(t *testing.T) {
	rule := routing.Drift{DisagreementDays: 7, MinDailyLabels: 5}
	var labels []Label
	for d := range 7 {
		labels = append(labels, labelsOn(d, 10, 5)...) // 50 % against a reference of 5 %
		a := disagreement(t, rule, labels, endOf(d))
		require.Equal(t, d == 6, a.Firing, "day %d: %s", d+1, a.Text)
	}
	a := disagreement(t, rule, labels, endOf(6))
	require.Equal(t, day0.Format(time.DateOnly), a.Since)
	require.Contains(t, a.Text, "on 7 consecutive days with labels since 2026-03-02")
}

func TestDisagreementRuleGaps(t *testing.T) {
	rule := routing.Drift{DisagreementDays: 7, MinDailyLabels: 5}
	t.Run("a normal day breaks the run", func(t *testing.T) {
		var labels []Label
		for d := range 8 {
			wrong := 5
			if d == 3 {
				wrong = 0
			}
			labels = append(labels, labelsOn(d, 10, wrong)...)
		}
		a := disagreement(t, rule, labels, endOf(7))
		require.False(t, a.Firing, a.Text)
		require.Contains(t, a.Text, "on 4 consecutive days")
	})
	t.Run("a day without labels neither counts nor breaks", func(t *testing.T) {
		var labels []Label
		for d := range 8 {
			if d == 3 {
				continue
			}
			labels = append(labels, labelsOn(d, 10, 5)...)
		}
		require.False(t, disagreement(t, rule, labels, endOf(6)).Firing, "6 days with labels by day 7")
		require.True(t, disagreement(t, rule, labels, endOf(7)).Firing, "the 7th day with labels is day 8")
	})
	t.Run("a day under min_daily_labels is skipped", func(t *testing.T) {
		var labels []Label
		for d := range 7 {
			n, wrong := 10, 5
			if d == 2 {
				n, wrong = 4, 0 // would break the run if it counted
			}
			labels = append(labels, labelsOn(d, n, wrong)...)
		}
		a := disagreement(t, rule, labels, endOf(6))
		require.False(t, a.Firing, "only 6 days count")
		require.Contains(t, a.Text, "on 6 consecutive days")
	})
}

// refCounts is the default engine's reference (models/cxr-pneumonia-densenet121).
var refCounts = []int{121, 4, 5, 1, 2, 2, 4, 4, 8, 373}

func scoresOn(d int, ps []float64) []Score {
	var out []Score
	for i, p := range ps {
		p := p
		out = append(out, Score{ResultID: fmt.Sprintf("s-%d-%d", d, i), Engine: "eng", Version: "1.0", Outcome: radgate.OutcomeScored,
			Probability: &p, Tier: "Low", InScope: true, AgeBand: AgeBandChild,
			RecordedAt: day0.AddDate(0, 0, d).Add(time.Duration(8+i%10) * time.Hour).Format(time.RFC3339Nano)})
	}
	return out
}

func TestPSIRisesWithTheAdultWeek(t *testing.T) {
	ref := EngineReference{Dataset: "PneumoniaMNIST validation split", N: 524, Counts: refCounts, Mark: 0.5}
	// Paediatric days: scores spread like the reference (one per 10 of
	// each bin's count, rounded up); adult days: the middle of the range.
	var paed []float64
	for b, c := range refCounts {
		for range (c + 9) / 10 {
			paed = append(paed, float64(b)/10+0.05)
		}
	}
	adult := []float64{0.35, 0.42, 0.48, 0.55, 0.61, 0.44, 0.52, 0.38, 0.58, 0.47}
	rule := routing.Drift{PSIMax: 0.25, PSIWindow: 3 * 24 * time.Hour}
	k := Key{Facility: "kids", Route: "r", Engine: "eng", Version: "1.0"}
	var scores []Score
	var psi []float64
	for d := range 10 {
		ps := paed
		if d >= 5 {
			ps = adult
		}
		scores = append(scores, scoresOn(d, ps)...)
		as, err := DriftFindings(rule, k, scores, nil, ref, 0, "", endOf(d))
		require.NoError(t, err)
		require.Len(t, as, 1)
		psi = append(psi, as[0].Value)
		require.Equal(t, d >= 5, as[0].Firing, "day %d: %s", d+1, as[0].Text)
	}
	for d := 1; d < 5; d++ {
		require.Less(t, psi[d], 0.15, "paediatric day %d (the rounding up of small bins adds a little)", d+1)
	}
	require.Less(t, psi[5], psi[6])
	require.Less(t, psi[6], psi[7], "PSI rises while the adult share of the window grows")

	m := Figures("kids", "eng", "1.0", scores, nil, ref, day0, endOf(9))
	require.Equal(t, len(scores), m.Results)
	require.Equal(t, map[string]int{AgeBandChild: len(scores)}, m.Inputs.AgeBand)
	require.Len(t, m.Daily, 10)
	require.NotNil(t, m.Daily[9].PSI)
	require.Greater(t, *m.Daily[9].PSI, 1.0)
	require.Less(t, *m.Daily[0].PSI, 0.15)
}

func TestFiguresFromLabels(t *testing.T) {
	var labels []Label
	mk := func(id string, p float64, tier, finding, agreement string) {
		labels = append(labels, Label{ResultID: id, Version: "1.0", Probability: &p, Tier: tier,
			Verdict: radgate.Verdict{Finding: finding, Agreement: agreement}, RecordedAt: day0.Add(10 * time.Hour).Format(time.RFC3339Nano)})
	}
	mk("a", 0.9, "High", radgate.FindingPresent, "")
	mk("b", 0.8, "High", radgate.FindingAbsent, "") // disagrees at mark 0.5
	mk("c", 0.1, "Low", radgate.FindingAbsent, "")
	mk("d", 0.4, "Mid", radgate.FindingPresent, "")                           // disagrees
	mk("e", 0.2, "Low", radgate.FindingUnlabelled, radgate.AgreementDisagree) // the reader's word
	mk("f", 0.2, "Low", radgate.FindingUnlabelled, "")                        // says nothing
	m := Figures("kids", "eng", "1.0", nil, labels, EngineReference{Mark: 0.5}, day0, endOf(0))
	require.Equal(t, 5, m.Labelled)
	require.Equal(t, 3, m.Disagreeing)
	require.InDelta(t, 0.4, m.Agreement.Rate, 1e-9)
	require.NotNil(t, m.AUC)
	require.InDelta(t, 0.75, *m.AUC, 1e-9) // a 0.9 and d 0.4 vs b 0.8 and c 0.1: 3 of 4 pairs
	require.Len(t, m.AtTiers, 3)
	require.Equal(t, TierFigures{Tier: "High", TP: 1, FN: 1, TN: 1, FP: 1, Sensitivity: 0.5, Specificity: 0.5}, m.AtTiers[2])
	require.NotNil(t, m.ECE)
	require.Equal(t, 3, m.Daily[0].Disagreeing)
}

type flagLog struct {
	mu     sync.Mutex
	alerts []DriftAlert
}

func (f *flagLog) DriftRaised(_ context.Context, a DriftAlert) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts = append(f.alerts, a)
	return "Flag/test-" + a.Rule, nil
}

const driftRoutes = `routes:
  - name: kids-chest
    engines: [eng]
    destinations: [fhir]
    acceptance: {min_cases: 4, auc_lower_95: 0.50}
    drift: {disagreement_days: 3, min_daily_labels: 2, auto_suspend: true}
`

// TestCheckDriftSuspends replays days on NATS with the injectable clock:
// the alert is raised on the third disagreeing day, once, and suspends the
// engine through Change (history, audit).
func TestCheckDriftSuspends(t *testing.T) {
	_, topo := brokertest.Topology(t)
	set, err := routing.Load("routes.yaml", []byte(driftRoutes), routing.Registry{Engines: []string{"eng"}, Destinations: []string{"fhir"}})
	require.NoError(t, err)
	now := day0.Add(8 * time.Hour)
	audit, flags := &auditLog{}, &flagLog{}
	g := New(Options{Topology: topo, Routes: func() *routing.Set { return set }, Audit: audit, Drift: flags,
		Version: func(e string) (string, bool) { return "1.0", e == "eng" },
		Reference: func(string) (EngineReference, bool) {
			return EngineReference{Mark: 0.5, ValidationAccuracy: 0.95}, true
		},
		Now: func() time.Time { now = now.Add(time.Second); return now }})
	ctx := t.Context()
	acc := &radgate.Acceptance{Route: "kids-chest", MinCases: 4, AUCLower95: 0.5}
	n := 0
	for d := range 4 {
		now = day0.AddDate(0, 0, d).Add(8 * time.Hour)
		for i := range 4 {
			n++
			st := radgate.OrderStatus{ID: fmt.Sprintf("o%d", n), FacilityID: "kids", StudyInstanceUID: fmt.Sprintf("1.2.%d", n),
				Age:   &radgate.PatientAge{Years: 3},
				Route: &radgate.RouteDecision{Matched: true, Routes: []string{"kids-chest"}, Engines: []string{"eng"}, Acceptance: acc}}
			r := radgate.Result{ID: st.ID + "-eng", Order: st, Engine: radgate.EngineInfo{ID: "eng", Version: "1.0"},
				Outcome: radgate.OutcomeScored, Probability: 0.9, Tier: "High", ScoredAt: now,
				Input: &radgate.InputMix{Modality: "CR", Manufacturer: "Acme"}}
			mode, err := g.Mode(ctx, st, r.Engine)
			require.NoError(t, err)
			require.NoError(t, g.Measure(ctx, r, mode))
			finding := radgate.FindingPresent
			if d >= 1 && i < 2 {
				finding = radgate.FindingAbsent // from day 2 on, half disagree
			}
			_, err = g.Labels().Record(ctx, radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "read-" + st.ID, OrderID: st.ID, Finding: finding})
			require.NoError(t, err)
		}
		alerts, err := g.CheckDrift(ctx)
		require.NoError(t, err)
		require.Len(t, alerts, 1)
		require.Equal(t, d == 3, alerts[0].Firing, "day %d: %s", d+1, alerts[0].Text)
		require.Contains(t, alerts[0].ReferenceSource, "validation accuracy 0.9500")
	}
	require.Len(t, flags.alerts, 1)
	require.True(t, flags.alerts[0].Suspended)
	states, err := g.States(ctx, "kids", "kids-chest")
	require.NoError(t, err)
	require.Len(t, states, 1)
	require.Equal(t, radgate.EngineSuspended, states[0].Mode)
	require.Equal(t, ByDriftRule, states[0].By)
	require.Len(t, states[0].Drift, 1)
	require.Len(t, audit.changes, 1)

	// Nothing changed: the last answer, no second Flag.
	again, err := g.CheckDrift(ctx)
	require.NoError(t, err)
	require.True(t, again[0].Firing)
	require.Equal(t, "Flag/test-disagreement", again[0].Flag)
	require.Len(t, flags.alerts, 1)

	m, err := g.Monitor(ctx, MonitorQuery{Facility: "kids", Engine: "eng", Days: 7})
	require.NoError(t, err)
	require.Equal(t, 16, m.Results)
	require.Equal(t, map[string]int{"CR": 16}, m.Inputs.Modality)
	require.Equal(t, map[string]int{"Acme": 16}, m.Inputs.Manufacturer)
	require.Equal(t, map[string]int{AgeBandChild: 16}, m.Inputs.AgeBand)
	require.Equal(t, 16, m.Labelled)
	require.Equal(t, 6, m.Disagreeing)
}

func TestMonitorOutputs(t *testing.T) {
	ref := EngineReference{Dataset: "PneumoniaMNIST validation split", N: 524, Counts: refCounts, Mark: 0.5}
	var scores []Score
	var labels []Label
	for d := range 3 {
		scores = append(scores, scoresOn(d, []float64{0.05, 0.95, 0.97, 0.5})...)
		labels = append(labels, labelsOn(d, 4, 1)...)
	}
	labels = append(labels, Label{ResultID: "neg", Version: "1.0", Probability: ptr(0.1), Tier: "Low",
		Verdict: radgate.Verdict{Finding: radgate.FindingAbsent}, RecordedAt: day0.Add(time.Hour).Format(time.RFC3339Nano)})
	m := Figures("kids", "eng", "1.0", scores, labels, ref, day0, endOf(2))
	b, err := json.Marshal(m)
	require.NoError(t, err, "the figures travel as JSON (no +Inf)")
	var back Monitor
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, m.Labelled, back.Labelled)

	var out strings.Builder
	require.NoError(t, WriteMonitor(&out, m))
	require.Contains(t, out.String(), `engine eng version 1.0 at facility "kids"`)
	require.Contains(t, out.String(), "labelled: 13, agreeing 0.77")
	require.Contains(t, out.String(), "age band: 1–5 12")

	paths, err := WriteMonitorPlots(t.TempDir(), m)
	require.NoError(t, err)
	require.Len(t, paths, 4)
	for _, p := range paths {
		f, err := os.Open(p)
		require.NoError(t, err)
		_, format, err := image.DecodeConfig(f)
		f.Close()
		require.NoError(t, err)
		require.Equal(t, "png", format)
	}
}

func ptr(x float64) *float64 { return &x }
