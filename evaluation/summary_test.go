package evaluation

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// pairedSet is the paired test set as cases and two scorers' Scores; the
// second scorer could not score the last case.
func pairedSet() ([]Case, []Scores) {
	var cases []Case
	for i, l := range pairedLabels {
		cases = append(cases, Case{File: string(rune('a'+i)) + ".dcm", Positive: l})
	}
	all := make([]bool, len(cases))
	for i := range all {
		all[i] = true
	}
	some := append([]bool(nil), all...)
	some[len(some)-1] = false
	opts := Options{TierMid: 0.3, TierHigh: 0.65, Cutoffs: []float64{0.5}}
	return cases, []Scores{
		{Name: "A", Prob: pairedA, Scored: all, Options: opts},
		{Name: "B", Prob: pairedB, Scored: some, Options: opts},
	}
}

func TestSummarizeEvaluatesAndCompares(t *testing.T) {
	cases, scores := pairedSet()
	s, err := Summarize(cases, scores)
	require.NoError(t, err)
	require.Equal(t, []string{"A", "B"}, s.Names)
	require.Equal(t, 15, s.Reports[0].N)
	require.Equal(t, 14, s.Reports[1].N, "B is judged on the cases it scored")
	want, err := Evaluate(pairedA, pairedLabels, scores[0].Options)
	require.NoError(t, err)
	require.Equal(t, want, s.Reports[0])

	require.Len(t, s.Comparisons, 1)
	c := s.Comparisons[0]
	require.Equal(t, 0, c.IndexA)
	require.Equal(t, 1, c.IndexB)
	require.Equal(t, 14, c.N, "compared on the cases both scored")
	ref, err := CompareAUC(pairedA[:14], pairedB[:14], pairedLabels[:14])
	require.NoError(t, err)
	require.Equal(t, ref, c.Comparison)
}

func TestSummarizeErrorsNameTheScorer(t *testing.T) {
	cases, scores := pairedSet()
	scores[1].Scored = make([]bool, len(cases))
	_, err := Summarize(cases, scores)
	require.EqualError(t, err, "engine B scored none of the 15 files")

	cases, scores = pairedSet()
	for i, c := range cases { // B scores only the positives
		scores[1].Scored[i] = c.Positive
	}
	_, err = Summarize(cases, scores)
	require.ErrorContains(t, err, "engine B on 7 cases: ")
	require.ErrorIs(t, err, ErrOneClass)
}

func TestSummaryJSONContract(t *testing.T) {
	cases, scores := pairedSet()
	s, err := Summarize(cases, scores)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, s.WriteJSON(&b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3, "two scorers, one comparison")
	require.True(t, strings.HasPrefix(lines[0], `{"engine":"A","n":15,"auc":`), "keys in the contract's order: %s", lines[0])
	require.Contains(t, lines[0], `"at_cutoffs":{"0.3":{"sensitivity":`)
	require.Regexp(t, `"at_cutoffs":\{"0\.3":\{[^}]*\},"0\.5":\{[^}]*\},"0\.65":\{[^}]*\}\},"ece":`, lines[0])
	require.Contains(t, lines[0], `"tiers":{"Low":{"negative":`)
	var obj map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &obj))
	half, _ := s.Reports[0].At(0.5)
	require.Equal(t, half.Sensitivity, obj["sensitivity"])

	var cmp struct {
		Comparison map[string]any `json:"comparison"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &cmp))
	require.Equal(t, []any{"A", "B"}, cmp.Comparison["engines"])
	require.Equal(t, "DeLong", cmp.Comparison["method"])
	require.EqualValues(t, 14, cmp.Comparison["n"])
	require.InDelta(t, s.Comparisons[0].Z, cmp.Comparison["z"], 1e-12)
}

func TestSummaryTable(t *testing.T) {
	cases, scores := pairedSet()
	s, err := Summarize(cases, scores)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, s.WriteTable(&b, "set"))
	out := b.String()
	for _, want := range []string{
		"set: 15 labelled case(s), 7 positive, 8 negative\n",
		"cases scored                    15            14\n",
		"  95% CI (DeLong)", "sensitivity at ≥ 0.3", "specificity at ≥ 0.65", "ECE (10 bins)",
		"tiers, positive: Low/Mid/High", "  tier cut-offs                 0.3, 0.65     0.3, 0.65\n",
		"Paired comparison of AUCs (DeLong's test for correlated ROC curves):\n  A − B, 14 cases scored by both:\n    difference ",
		"\nA case counts as positive at a cut-off when its probability is ≥ the cut-off.\n",
	} {
		require.Contains(t, out, want)
	}
}

func TestSummaryPlots(t *testing.T) {
	cases, scores := pairedSet()
	s, err := Summarize(cases, scores)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "plots")
	files, err := s.WritePlots(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "roc.png"), filepath.Join(dir, "reliability-A.png"), filepath.Join(dir, "reliability-B.png")}, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(data))
		require.NoError(t, err, f)
		require.Equal(t, PlotSize, img.Bounds().Dx())
	}
}
