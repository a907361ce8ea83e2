package governance

import (
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// TestFromVerdictsOneCasePerOrderLatestVerdict: each order counts once
// with its latest verdict of a finding; free text and out-of-scope results
// are left out (the latter counted in with IncludeOutOfScope); the paired
// comparison runs on the orders both engines scored.
func TestFromVerdictsOneCasePerOrderLatestVerdict(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l := f.g.Labels()
	engP := []float64{0.9, 0.2, 0.7, 0.4}
	eng2P := []float64{0.6, 0.5, 0.3, 0.1}
	present := []bool{true, false, true, false}
	for i, n := range []string{"1", "2", "3", "4"} {
		f.measure(t, order(n), "eng", engP[i], "Mid")
		f.measure(t, order(n), "eng2", eng2P[i], "Low")
		finding := radgate.FindingAbsent
		if present[i] {
			finding = radgate.FindingPresent
		}
		_, err := l.Record(ctx, verdict("DiagnosticReport/r"+n, "ACC-"+n, finding))
		require.NoError(t, err)
	}
	// Order 1 read again by someone else, absent first then present: the latest counts.
	_, err := l.Record(ctx, verdict("DiagnosticReport/second-1", "ACC-1", radgate.FindingAbsent))
	require.NoError(t, err)
	_, err = l.Record(ctx, verdict("DiagnosticReport/third-1", "ACC-1", radgate.FindingPresent))
	require.NoError(t, err)
	// Order 5 scored in shadow outside the intended use (eng only).
	st5 := order("5")
	r5 := radgate.Result{ID: "order-5-eng", Order: st5, Engine: radgate.EngineInfo{ID: "eng", Version: "1.0"}, Outcome: radgate.OutcomeScored,
		Probability: 0.1, Tier: "Low", OutOfScope: "patient age 86 y is outside the engine's intended use: 1–5 y", ScoredAt: f.now}
	require.NoError(t, f.g.Measure(ctx, r5, radgate.EngineShadow))
	_, err = l.Record(ctx, verdict("DiagnosticReport/r5", "ACC-5", radgate.FindingPresent))
	require.NoError(t, err)
	// Order 6: free text only.
	f.measure(t, order("6"), "eng", 0.8, "High")
	_, err = l.Record(ctx, verdict("DiagnosticReport/r6", "ACC-6", radgate.FindingUnlabelled))
	require.NoError(t, err)

	q := VerdictQuery{Facility: "adult-clinic", Engines: []VerdictEngine{{ID: "eng"}, {ID: "eng2"}}}
	set, err := f.g.FromVerdicts(ctx, q)
	require.NoError(t, err)
	require.Len(t, set.Cases, 4)
	require.Equal(t, []string{"1.0", "1.0"}, set.Versions)
	require.Equal(t, 1, set.Unlabelled)
	require.Equal(t, 1, set.OutOfScope)
	require.True(t, set.Cases[0].Positive, "order 1: its latest verdict says present")
	sum, err := set.Summarize()
	require.NoError(t, err)
	require.InDelta(t, 1.0, sum.Reports[0].AUC.AUC, 1e-9)
	require.InDelta(t, 0.75, sum.Reports[1].AUC.AUC, 1e-9)
	require.Len(t, sum.Comparisons, 1)
	require.Equal(t, 4, sum.Comparisons[0].N)
	require.Contains(t, set.Title(), `verdicts at facility "adult-clinic" (eng 1.0, eng2 1.0; 1 with free text only, 1 out of scope left out)`)

	q.IncludeOutOfScope = true
	set, err = f.g.FromVerdicts(ctx, q)
	require.NoError(t, err)
	require.Len(t, set.Cases, 5)
	require.Zero(t, set.OutOfScope)
	require.Equal(t, []bool{true, true, true, true, true}, set.Scores[0].Scored)
	require.Equal(t, []bool{true, true, true, true, false}, set.Scores[1].Scored, "eng2 did not score order 5")

	_, err = f.g.FromVerdicts(ctx, VerdictQuery{Facility: "elsewhere", Engines: []VerdictEngine{{ID: "eng"}}})
	require.True(t, errors.Is(err, ErrUnknown), "%v", err)
	require.Contains(t, err.Error(), `engine eng has no labelled result at facility "elsewhere"`)
}

// TestFromVerdictsSeveralVersions: labels of two model versions of one
// engine are never mixed; the version must be named.
func TestFromVerdictsSeveralVersions(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for i, v := range []string{"1.0", "2.0"} {
		st := order(strconv.Itoa(i + 1))
		r := radgate.Result{ID: st.ID + "-eng", Order: st, Engine: radgate.EngineInfo{ID: "eng", Version: v},
			Outcome: radgate.OutcomeScored, Probability: 0.5, Tier: "Mid", ScoredAt: f.now}
		require.NoError(t, f.g.Measure(ctx, r, radgate.EngineShadow))
		_, err := f.g.Labels().Record(ctx, verdict("DiagnosticReport/r"+v, "ACC-"+strconv.Itoa(i+1), radgate.FindingPresent))
		require.NoError(t, err)
	}
	_, err := f.g.FromVerdicts(ctx, VerdictQuery{Facility: "adult-clinic", Engines: []VerdictEngine{{ID: "eng"}}})
	require.ErrorIs(t, err, ErrBadRequest)
	require.Contains(t, err.Error(), `engine eng has labelled results of versions 1.0, 2.0 at facility "adult-clinic": name one (--engine eng@VERSION)`)
	set, err := f.g.FromVerdicts(ctx, VerdictQuery{Facility: "adult-clinic", Engines: []VerdictEngine{{ID: "eng", Version: "2.0"}}})
	require.NoError(t, err)
	require.Len(t, set.Cases, 1)
	require.Equal(t, "order-2", set.Cases[0].File)
}
