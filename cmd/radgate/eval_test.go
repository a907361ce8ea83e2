package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/internal/testenv"
)

const k224 = "cxr-pneumonia-densenet121-k224"

// runEvalCmd runs a fresh `radgate eval` with args and returns its stdout,
// stderr and error.
func runEvalCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newEvalCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

// evalArgs are the flags every run against the real engines needs.
func evalArgs(t *testing.T, args ...string) []string {
	return append([]string{"--models", filepath.Join(testenv.RepoRoot(), "models"),
		"--onnxruntime-lib", testenv.ONNXRuntimeLib(t)}, args...)
}

// jsonLines parses stdout's lines as JSON objects.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj), line)
		out = append(out, obj)
	}
	return out
}

func keys(obj map[string]any) []string {
	var k []string
	for key := range obj {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// checkEngineLine checks one engine line against DESIGN.md's `eval --json`
// contract and its internal consistency.
func checkEngineLine(t *testing.T, obj map[string]any, n int) {
	t.Helper()
	require.Equal(t, []string{"at_cutoffs", "auc", "auc_ci", "ece", "engine", "n", "sensitivity", "specificity", "tiers"}, keys(obj))
	require.EqualValues(t, n, obj["n"])
	auc := obj["auc"].(float64)
	ci := obj["auc_ci"].([]any)
	require.Len(t, ci, 2)
	require.LessOrEqual(t, ci[0].(float64), auc)
	require.GreaterOrEqual(t, ci[1].(float64), auc)
	require.LessOrEqual(t, ci[0].(float64), ci[1].(float64))
	cuts := obj["at_cutoffs"].(map[string]any)
	require.Equal(t, []string{"0.3", "0.5", "0.65"}, keys(cuts))
	for _, c := range cuts {
		require.Equal(t, []string{"sensitivity", "specificity"}, keys(c.(map[string]any)))
	}
	half := cuts["0.5"].(map[string]any)
	require.Equal(t, half["sensitivity"], obj["sensitivity"], "sensitivity is at 0.5")
	require.Equal(t, half["specificity"], obj["specificity"], "specificity is at 0.5")
	tiers := obj["tiers"].(map[string]any)
	require.Equal(t, []string{"High", "Low", "Mid"}, keys(tiers))
	total := 0
	for _, tc := range tiers {
		counts := tc.(map[string]any)
		require.Equal(t, []string{"negative", "positive"}, keys(counts))
		total += int(counts["negative"].(float64) + counts["positive"].(float64))
	}
	require.Equal(t, n, total)
}

// valMetrics is the validation part of a training-metrics.json.
type valMetrics struct {
	AUC          float64                   `json:"auc"`
	Sensitivity  float64                   `json:"sensitivity"`
	Specificity  float64                   `json:"specificity"`
	ECE          float64                   `json:"ece"`
	TiersByLabel map[string]map[string]int `json:"tiers_by_label"`
}

func trainingVal(t *testing.T, engine string) valMetrics {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "models", engine, "training-metrics.json"))
	require.NoError(t, err)
	var m struct {
		Val valMetrics `json:"val"`
	}
	require.NoError(t, json.Unmarshal(data, &m))
	return m.Val
}

// checkAgainstCard compares an engine line with the training run's own
// validation figures: AUC within 0.003, sensitivity, specificity and ECE
// within 0.01, every tier × label count within 3.
func checkAgainstCard(t *testing.T, obj map[string]any, card valMetrics) {
	t.Helper()
	require.InDelta(t, card.AUC, obj["auc"], 0.003)
	require.InDelta(t, card.Sensitivity, obj["sensitivity"], 0.01)
	require.InDelta(t, card.Specificity, obj["specificity"], 0.01)
	require.InDelta(t, card.ECE, obj["ece"], 0.01)
	tiers := obj["tiers"].(map[string]any)
	for label, key := range map[string]string{"normal": "negative", "pneumonia": "positive"} {
		for tier, want := range card.TiersByLabel[label] {
			got := tiers[strings.ToUpper(tier[:1])+tier[1:]].(map[string]any)[key].(float64)
			require.InDelta(t, want, got, 3, "%s %s", label, tier)
		}
	}
}

// referenceAUC is the AUC of a reference CSV's probabilities (the model
// card pipeline's output per file) against its labels.
func referenceAUC(t *testing.T, parts ...string) ([]float64, []bool, float64) {
	t.Helper()
	f, err := os.Open(testenv.Testdata(parts...))
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	var p []float64
	var l []bool
	for _, r := range rows[1:] { // file,label,encoding,probability,…
		v, err := strconv.ParseFloat(r[3], 64)
		require.NoError(t, err)
		p, l = append(p, v), append(l, r[1] == "1")
	}
	auc, err := evaluation.AUC(p, l)
	require.NoError(t, err)
	return p, l, auc
}

// TestEvalPneumoniaMNISTReproducesModelCard: the default engine on the
// PneumoniaMNIST validation set gives the card's AUC 0.998 (± 0.003) and
// its tier table.
func TestEvalPneumoniaMNISTReproducesModelCard(t *testing.T) {
	dir := testenv.Testdata("pneumoniamnist-val-dicom")
	plots := t.TempDir()
	stdout, stderr, err := runEvalCmd(t, evalArgs(t, "--json", "--labels", filepath.Join(dir, "labels.csv"), "--plots", plots, dir)...)
	require.NoError(t, err, stderr)
	lines := jsonLines(t, stdout)
	require.Len(t, lines, 1, "one engine, no comparison")
	obj := lines[0]
	require.Equal(t, "cxr-pneumonia-densenet121", obj["engine"])
	checkEngineLine(t, obj, 524)
	require.InDelta(t, 0.9979, obj["auc"], 0.003, "MODEL_CARD.md: validation AUC 0.9979")
	checkAgainstCard(t, obj, trainingVal(t, "cxr-pneumonia-densenet121"))
	_, _, refAUC := referenceAUC(t, "pneumoniamnist-val-dicom", "reference.csv")
	require.InDelta(t, refAUC, obj["auc"], 0.002, "reference.csv's AUC")

	for _, name := range []string{"roc.png", "reliability-cxr-pneumonia-densenet121.png"} {
		f, err := os.Open(filepath.Join(plots, name))
		require.NoError(t, err)
		img, err := png.Decode(f)
		f.Close()
		require.NoError(t, err, name)
		require.Equal(t, evaluation.PlotSize, img.Bounds().Dx())
	}
	require.Contains(t, stderr, "plots written")
	require.NotContains(t, stderr, "scoring [", "no progress bar when stderr is not a terminal")
}

// TestEvalKermany224ComparesEngines: both engines on the Kermany 224
// validation set, side by side and compared. The second engine's figures
// match its card (AUC 0.9990); the first engine's its reference file.
func TestEvalKermany224ComparesEngines(t *testing.T) {
	dir := testenv.Testdata("kermany224-val-dicom")
	stdout, stderr, err := runEvalCmd(t, evalArgs(t, "--json", "--labels", filepath.Join(dir, "labels.csv"),
		"--engine", k224, "--engine", "cxr-pneumonia-densenet121", dir)...)
	require.NoError(t, err, stderr)
	lines := jsonLines(t, stdout)
	require.Len(t, lines, 3, "two engines, then the comparison")

	a, b := lines[0], lines[1]
	require.Equal(t, k224, a["engine"])
	require.Equal(t, "cxr-pneumonia-densenet121", b["engine"])
	checkEngineLine(t, a, 521)
	checkEngineLine(t, b, 521)
	require.InDelta(t, 0.9990, a["auc"], 0.003, "MODEL_CARD.md: validation AUC 0.9990")
	checkAgainstCard(t, a, trainingVal(t, k224))
	refA, labels, refAUCA := referenceAUC(t, "kermany224-val-dicom", "reference-k224.csv")
	refB, _, refAUCB := referenceAUC(t, "kermany224-val-dicom", "reference-m28.csv")
	require.InDelta(t, refAUCA, a["auc"], 0.002, "reference-k224.csv's AUC")
	require.InDelta(t, refAUCB, b["auc"], 0.002, "reference-m28.csv's AUC")

	require.Equal(t, []string{"comparison"}, keys(lines[2]))
	c := lines[2]["comparison"].(map[string]any)
	require.Equal(t, []string{"auc", "auc_difference", "ci", "engines", "method", "n", "p_value", "z"}, keys(c))
	require.Equal(t, []any{k224, "cxr-pneumonia-densenet121"}, c["engines"])
	require.Equal(t, "DeLong", c["method"])
	require.EqualValues(t, 521, c["n"])
	require.Equal(t, []any{a["auc"], b["auc"]}, c["auc"])
	d := c["auc_difference"].(float64)
	require.InDelta(t, a["auc"].(float64)-b["auc"].(float64), d, 1e-12)
	ci := c["ci"].([]any)
	require.Less(t, ci[0].(float64), d)
	require.Greater(t, ci[1].(float64), d)
	p := c["p_value"].(float64)
	require.Greater(t, p, 0.0)
	require.LessOrEqual(t, p, 1.0)
	require.InDelta(t, d/((ci[1].(float64)-ci[0].(float64))/2/evaluation.Z95), c["z"], 1e-9, "z = difference / SE")
	// The same test on the reference pipeline's probabilities lands close.
	ref, err := evaluation.CompareAUC(refA, refB, labels)
	require.NoError(t, err)
	require.InDelta(t, ref.Difference, d, 0.002)
	require.InDelta(t, ref.Z, c["z"], 0.5)
}

// TestEvalReportsFilesItCannotScore: a listed file that is missing or not
// DICOM is named on stderr and the exit status is 1; the figures cover the
// rest, in JSON and in the table.
func TestEvalReportsFilesItCannotScore(t *testing.T) {
	src := testenv.Testdata("pneumoniamnist-val-dicom")
	dir := t.TempDir()
	labels := "file,label,encoding\n"
	// Three positives and three negatives, one of each per encoding
	// (m2_8, m1_8, m2_12).
	for _, c := range []struct{ file, label string }{
		{"PMV0000.dcm", "1"}, {"PMV0002.dcm", "1"}, {"PMV0005.dcm", "1"},
		{"PMV0003.dcm", "0"}, {"PMV0045.dcm", "0"}, {"PMV0028.dcm", "0"},
	} {
		data, err := os.ReadFile(filepath.Join(src, c.file))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, c.file), data, 0o644))
		labels += c.file + "," + c.label + ",x\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "garbage.dcm"), []byte("not a DICOM file"), 0o644))
	labels += "garbage.dcm,1,x\nabsent.dcm,0,x\n"
	lpath := filepath.Join(t.TempDir(), "labels.csv")
	require.NoError(t, os.WriteFile(lpath, []byte(labels), 0o644))

	// The chosen negatives must really be negative in the set's labels.
	cases, err := evaluation.ReadLabels(filepath.Join(src, "labels.csv"))
	require.NoError(t, err)
	byFile := map[string]bool{}
	for _, c := range cases {
		byFile[c.File] = c.Positive
	}
	require.False(t, byFile["PMV0003.dcm"] || byFile["PMV0045.dcm"] || byFile["PMV0028.dcm"])
	require.True(t, byFile["PMV0000.dcm"] && byFile["PMV0002.dcm"] && byFile["PMV0005.dcm"])

	stdout, stderr, err := runEvalCmd(t, evalArgs(t, "--json", "--labels", lpath, dir)...)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.code)
	require.Contains(t, err.Error(), "2 of 8 file(s) could not be scored")
	require.Contains(t, stderr, "garbage.dcm")
	require.Contains(t, stderr, "absent.dcm")
	lines := jsonLines(t, stdout)
	require.Len(t, lines, 1)
	checkEngineLine(t, lines[0], 6)

	stdout, _, err = runEvalCmd(t, evalArgs(t, "--labels", lpath, dir)...)
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.code)
	for _, want := range []string{"8 labelled case(s), 4 positive, 4 negative", "cases scored", "AUC", "95% CI (DeLong)",
		"sensitivity at ≥ 0.5", "specificity at ≥ 0.65", "ECE (10 bins)", "tiers, positive: Low/Mid/High"} {
		require.Contains(t, stdout, want)
	}
	require.NotContains(t, stdout, "Paired comparison")

	// Nothing scored: status 2.
	none := filepath.Join(t.TempDir(), "labels.csv")
	require.NoError(t, os.WriteFile(none, []byte("file,label\ngarbage.dcm,1\nabsent.dcm,0\n"), 0o644))
	stdout, stderr, err = runEvalCmd(t, evalArgs(t, "--json", "--labels", none, dir)...)
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.code)
	require.Contains(t, err.Error(), "scored none of the 2 files")
	require.Contains(t, stderr, "absent.dcm")
	require.Empty(t, stdout)
}

// TestEvalBadInput: problems with the inputs exit with status 2 before any
// scoring, naming what is wrong.
func TestEvalBadInput(t *testing.T) {
	dir := testenv.Testdata("pneumoniamnist-val-dicom")
	labels := filepath.Join(dir, "labels.csv")
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "labels.csv")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	models := filepath.Join(testenv.RepoRoot(), "models")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing labels file", []string{"--labels", filepath.Join(t.TempDir(), "nope.csv"), dir}, "reading labels"},
		{"header without label", []string{"--labels", write("file,class\nPMV0000.dcm,1\n"), dir}, ":1: the header must name the columns file and label"},
		{"label not 0 or 1", []string{"--labels", write("file,label\nPMV0000.dcm,1\nPMV0003.dcm,yes\n"), dir}, `:3: label "yes": want 1 (positive) or 0 (negative)`},
		{"file listed twice", []string{"--labels", write("file,label\nPMV0000.dcm,1\nPMV0000.dcm,0\n"), dir}, `:3: file "PMV0000.dcm" listed twice (first on line 2)`},
		{"path outside the directory", []string{"--labels", write("file,label\n../x.dcm,1\n"), dir}, `:2: file "../x.dcm" must be a relative path inside the directory`},
		{"no cases", []string{"--labels", write("file,label\n"), dir}, "no cases listed"},
		{"not a directory", []string{"--labels", labels, filepath.Join(dir, "labels.csv")}, "is not a directory"},
		{"unknown engine", []string{"--labels", labels, "--models", models, "--engine", "nope", dir}, `engine "nope" not found`},
		{"engine twice", []string{"--labels", labels, "--engine", k224, "--engine", k224, dir}, "given twice"},
		{"verdicts without facility", []string{"--from-verdicts"}, "--from-verdicts needs --facility"},
		{"verdicts and labels", []string{"--from-verdicts", "--facility", "Adult Clinic", "--labels", labels}, "drop --labels"},
		{"verdicts of an unknown engine", []string{"--from-verdicts", "--facility", "Adult Clinic", "--models", models, "--engine", "nope"}, `engine "nope" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runEvalCmd(t, tc.args...)
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 2, ee.code)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	_, _, err := runEvalCmd(t, dir)
	require.ErrorContains(t, err, `required flag(s) "labels" not set`)
}

func TestEvalProgressBar(t *testing.T) {
	var b bytes.Buffer
	require.Nil(t, newProgress(&b, 10), "not a terminal: no bar")
	var p *progress
	p.add(3) // a nil bar is a no-op
	p.finish()

	p = newProgressBar(&b, 64)
	p.add(32)
	require.Regexp(t, `scoring\s+50% \|.*\| \(32/64\) \[`, b.String())
	p.add(32)
	p.finish()
	require.True(t, strings.HasSuffix(b.String(), "\r"), "the bar is cleared: %q", b.String()[max(0, b.Len()-80):])
}
