package inference

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestRepoManifests(t *testing.T) {
	for _, tc := range []struct {
		id   string
		crop string
	}{
		{"cxr-pneumonia-densenet121", CropCenterSquare},
		{"cxr-pneumonia-densenet121-k224", CropNone},
	} {
		t.Run(tc.id, func(t *testing.T) {
			m := loadTestManifest(t, tc.id)
			dir := filepath.Join(testenv.RepoRoot(), "models", tc.id)
			require.Equal(t, tc.id, m.ID)
			require.Equal(t, filepath.Join(dir, "model.onnx"), m.ModelPath())
			require.Equal(t, []string{"CR", "DX"}, m.Modalities)
			require.Equal(t, []string{"CHEST"}, m.BodyParts)
			require.Equal(t, Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"}, m.Finding)
			require.Equal(t, TensorSpec{Name: "image", Shape: []int64{-1, 1, 224, 224}, DType: "float32"}, m.Input)
			require.Equal(t, "probability", m.Outputs.Probability.Name)
			h, w := m.CAMSize()
			require.Equal(t, [2]int{7, 7}, [2]int{h, w})
			require.Equal(t, Preprocessing{Crop: tc.crop, Size: 224, Resize: ResizeArea}, m.Preprocessing)
			require.Equal(t, DefaultThresholds, m.Thresholds)

			// The disclaimer is the card's quoted statement, word for word.
			card, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "models", DefaultEngineID, "MODEL_CARD.md"))
			require.NoError(t, err)
			var quote []string
			for _, line := range strings.Split(string(card), "\n") {
				if strings.HasPrefix(line, "> ") {
					quote = append(quote, strings.TrimPrefix(line, "> "))
				}
			}
			require.Equal(t, strings.Join(quote, " "), m.Disclaimer)
			require.Equal(t, "AI decision support: confidence of an imaging finding of infectious pneumonia. "+
				"It does not determine whether pneumonia is present, nor its severity or progression. Not a diagnosis.", m.Disclaimer)

			// The metrics are training-metrics.json's.
			raw, err := os.ReadFile(filepath.Join(dir, "training-metrics.json"))
			require.NoError(t, err)
			var tm struct {
				Val, Test struct {
					N                                       int
					AUC, Acc, Sensitivity, Specificity, ECE float64
				}
				ONNX struct {
					ORTVersion string  `json:"ort_version"`
					TestAUC    float64 `json:"ort_test_auc"`
				}
			}
			require.NoError(t, json.Unmarshal(raw, &tm))
			for _, s := range []struct {
				got  *SplitMetrics
				want struct {
					N                                       int
					AUC, Acc, Sensitivity, Specificity, ECE float64
				}
			}{{m.Metrics.Validation, tm.Val}, {m.Metrics.Test, tm.Test}} {
				require.NotNil(t, s.got)
				require.Equal(t, s.want.N, s.got.N)
				require.InDelta(t, s.want.AUC, s.got.AUC, 1e-6)
				require.InDelta(t, s.want.Acc, s.got.Accuracy, 1e-6)
				require.InDelta(t, s.want.Sensitivity, s.got.Sensitivity, 1e-6)
				require.InDelta(t, s.want.Specificity, s.got.Specificity, 1e-6)
				require.InDelta(t, s.want.ECE, s.got.ECE, 1e-6)
			}
			require.Equal(t, tm.ONNX.ORTVersion, m.Metrics.ONNXRuntime.Version)
			require.InDelta(t, tm.ONNX.TestAUC, m.Metrics.ONNXRuntime.TestAUC, 1e-6)
		})
	}
}

const baseManifest = `id: test-engine
name: Test
version: "1"
model: model.onnx
modalities: [CR, DX]
body_parts: [CHEST]
finding: {system: http://snomed.info/sct, code: "233604007", display: Pneumonia}
input: {name: image, shape: [-1, 1, 224, 224], dtype: float32}
outputs:
  probability: {name: probability, shape: [-1], dtype: float32}
  cam: {name: cam, shape: [-1, 7, 7], dtype: float32}
preprocessing: {crop: center-square, size: 224, resize: area}
thresholds: {tier_mid: 0.30, tier_high: 0.65, mark: 0.50}
intended_use: test
disclaimer: test
licence: test
accepts: {min_rows: 28, min_columns: 28, pixel_spacing_mm: {min: 0.05, max: 1.0}}
`

// writeManifest writes yaml as <dir>/test-engine/model.yaml beside an empty
// model.onnx and returns its path.
func writeManifest(t *testing.T, dir, yaml string) string {
	t.Helper()
	d := filepath.Join(dir, "test-engine")
	require.NoError(t, os.MkdirAll(d, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(d, "model.onnx"), nil, 0o644))
	p := filepath.Join(d, ManifestFile)
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o644))
	return p
}

func TestLoadManifestErrors(t *testing.T) {
	line := func(n int, repl string) func(string) string {
		return func(s string) string {
			ls := strings.Split(s, "\n")
			ls[n-1] = repl
			return strings.Join(ls, "\n")
		}
	}
	cases := []struct {
		name string
		edit func(string) string
		want []string // each "line:col: message" (prefixed by the file path)
	}{
		{
			name: "unknown top-level key",
			edit: func(s string) string { return s + "modality: CR\n" },
			want: []string{`18:1: the manifest: unknown key "modality" (known: id, name, version, model, sha256, modalities, body_parts, views, accepts, finding, input, outputs, preprocessing, thresholds, intended_use, disclaimer, licence, metrics, reference)`},
		},
		{
			name: "unknown nested key",
			edit: line(13, "thresholds: {tier_mid: 0.30, tier_high: 0.65, mark: 0.50, tier_low: 0.1}"),
			want: []string{`13:59: thresholds: unknown key "tier_low" (known: tier_mid, tier_high, mark)`},
		},
		{
			name: "wrong type",
			edit: line(12, "preprocessing: {crop: center-square, size: big, resize: area}"),
			want: []string{`12:44: preprocessing.size: "big" is not a valid int`},
		},
		{
			name: "every error, not just the first",
			edit: func(s string) string {
				return line(12, "preprocessing: {crop: center-square, size: big, resize: area}")(s) + "extra: 1\n"
			},
			want: []string{`12:44: preprocessing.size: "big" is not a valid int`, `18:1: the manifest: unknown key "extra"`},
		},
		{
			name: "a list where a scalar belongs",
			edit: line(2, "name: [a, b]"),
			want: []string{`2:7: name: want a string, got a list`},
		},
		{
			name: "duplicate key",
			edit: func(s string) string { return s + "licence: again\n" },
			want: []string{`18:1: the manifest: key "licence" given twice`},
		},
		{
			name: "thresholds out of order",
			edit: line(13, "thresholds: {tier_mid: 0.70, tier_high: 0.65, mark: 0.50}"),
			want: []string{`13:13: thresholds: want 0 < tier_mid < tier_high ≤ 1, got tier_mid 0.7, tier_high 0.65`},
		},
		{
			name: "unknown crop",
			edit: line(12, "preprocessing: {crop: middle, size: 224, resize: area}"),
			want: []string{`12:16: preprocessing: crop "middle": want "center-square" or "none"`},
		},
		{
			name: "input shape disagrees with the size",
			edit: line(8, "input: {name: image, shape: [-1, 1, 256, 256], dtype: float32}"),
			want: []string{`8:29: input shape [-1 1 256 256]: want [-1, 1, 224, 224]`},
		},
		{
			name: "id differs from the directory",
			edit: line(1, "id: other-engine"),
			want: []string{`1:5: id "other-engine" differs from its directory name "test-engine"`},
		},
		{
			name: "missing model file",
			edit: line(4, "model: nope.onnx"),
			want: []string{`4:8: model file `, `nope.onnx: no such file or directory`},
		},
		{
			name: "missing disclaimer",
			edit: line(15, ""),
			want: []string{`1:1: disclaimer is required`},
		},
		{
			name: "no accepts section",
			edit: line(17, ""),
			want: []string{`1:1: accepts.min_rows: want the smallest Rows the engine scores, at least 1 (e.g. 224), got 0`,
				`1:1: accepts.min_columns: want the smallest Columns the engine scores, at least 1 (e.g. 224), got 0`},
		},
		{
			name: "accepts: zero columns, spacing range upside down",
			edit: line(17, "accepts: {min_rows: 28, min_columns: 0, pixel_spacing_mm: {min: 1.0, max: 0.05}}"),
			want: []string{`17:38: accepts.min_columns: want the smallest Columns the engine scores, at least 1 (e.g. 224), got 0`,
				`17:59: accepts.pixel_spacing_mm: want 0 < min ≤ max (mm), got min 1, max 0.05`},
		},
		{
			name: "accepts: unknown rule",
			edit: line(17, "accepts: {min_rows: 28, min_columns: 28, min_age: 18}"),
			want: []string{`17:42: accepts: unknown key "min_age" (known: min_rows, min_columns, pixel_spacing_mm, age_years)`},
		},
		{
			name: "accepts: age range upside down",
			edit: line(17, "accepts: {min_rows: 28, min_columns: 28, age_years: {min: 5, max: 1}}"),
			want: []string{`17:53: accepts.age_years: want 0 ≤ min ≤ max ≤ 130 (whole years at the study date), got min 5, max 1`},
		},
		{
			name: "accepts: age in months is not a whole year",
			edit: line(17, "accepts: {min_rows: 28, min_columns: 28, age_years: {min: 0.5, max: 5}}"),
			want: []string{`accepts.age_years.min: "0.5" is not a valid int`},
		},
		{
			name: "YAML syntax error",
			edit: line(2, `name: Test: extra`),
			want: []string{`model.yaml:2: mapping values are not allowed in this context`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeManifest(t, t.TempDir(), tc.edit(baseManifest))
			m, err := LoadManifest(p)
			require.Error(t, err)
			require.Nil(t, m)
			var me ManifestErrors
			require.ErrorAs(t, err, &me)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				require.Regexp(t, regexp.MustCompile(`^`+regexp.QuoteMeta(p)+`:\d+(:\d+)?: `), l)
			}
		})
	}
	t.Run("the base is valid", func(t *testing.T) {
		m, err := LoadManifest(writeManifest(t, t.TempDir(), baseManifest))
		require.NoError(t, err)
		require.Equal(t, "test-engine", m.ID)
	})
}

func TestLoadEngines(t *testing.T) {
	reg, err := LoadEngines(filepath.Join(testenv.RepoRoot(), "models"))
	require.NoError(t, err)
	require.Equal(t, []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"}, reg.IDs())
	m, err := reg.Default()
	require.NoError(t, err)
	require.Equal(t, DefaultEngineID, m.ID)
	_, err = reg.Get("pneumonia-v2")
	require.ErrorContains(t, err, `engine "pneumonia-v2" not found in `)
	require.ErrorContains(t, err, `(known: cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224)`)

	t.Run("one broken engine does not hide the others", func(t *testing.T) {
		dir := t.TempDir()
		writeManifest(t, dir, baseManifest)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "no-manifest"), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, ".hidden"), 0o755))
		bad := filepath.Join(dir, "bad-engine")
		require.NoError(t, os.MkdirAll(bad, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(bad, ManifestFile), []byte("id: bad-engine\nfoo: 1\n"), 0o644))
		reg, err := LoadEngines(dir)
		require.Error(t, err)
		require.Equal(t, []string{"test-engine"}, reg.IDs())
		require.ErrorContains(t, err, filepath.Join(dir, "no-manifest")+": engine directory without model.yaml")
		require.ErrorContains(t, err, filepath.Join(bad, ManifestFile)+`:2:1: the manifest: unknown key "foo"`)
		require.NotContains(t, err.Error(), ".hidden")
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := LoadEngines(filepath.Join(t.TempDir(), "nope"))
		require.ErrorContains(t, err, "reading models directory")
	})
}

func TestManifestCheck(t *testing.T) {
	m := loadTestManifest(t, DefaultEngineID)
	for _, tc := range []struct {
		modality, bodyPart string
		want               string
	}{
		{"CR", "CHEST", ""},
		{"dx", "chest", ""},
		{"CT", "CHEST", "outside engine cxr-pneumonia-densenet121's declaration: modality CT is not one of CR, DX"},
		{"CR", "HIP", "outside engine cxr-pneumonia-densenet121's declaration: body part HIP is not one of CHEST"},
		{"DX", "", "outside engine cxr-pneumonia-densenet121's declaration: Body Part Examined is empty (engine declares CHEST)"},
		{"", "EXTREMITY", "modality (none) is not one of CR, DX; body part EXTREMITY is not one of CHEST"},
	} {
		got := m.Check(&Meta{Modality: tc.modality, BodyPartExamined: tc.bodyPart, Rows: 440, Columns: 440, Age: Age{Known: true, Years: 2, Text: "2 y"}})
		if tc.want == "" {
			require.Empty(t, got)
		} else {
			require.Contains(t, got, tc.want)
		}
	}
}

func TestTiers(t *testing.T) {
	for _, tc := range []struct {
		p      float64
		tier   Tier
		marked bool
		pct    float64
	}{
		{0, TierLow, false, 0},
		{0.2999999, TierLow, false, 30},
		{0.30, TierMid, false, 30},
		{0.4999999, TierMid, false, 50},
		{0.50, TierMid, true, 50},
		{0.6499999, TierMid, true, 65}, // rounds to 65.0 % yet stays Mid: tiers use the unrounded value
		{0.65, TierHigh, true, 65},
		{1, TierHigh, true, 100},
	} {
		require.Equal(t, tc.tier, TierOf(tc.p), tc.p)
		require.Equal(t, tc.marked, DefaultThresholds.Marked(tc.p), tc.p)
		require.Equal(t, tc.pct, ConfidencePercent(tc.p), tc.p)
	}
}

func TestAUC(t *testing.T) {
	for _, tc := range []struct {
		scores []float64
		labels []bool
		want   float64
	}{
		{[]float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{[]float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{[]float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		{[]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75},
	} {
		got, err := AUC(tc.scores, tc.labels)
		require.NoError(t, err)
		require.InDelta(t, tc.want, got, 1e-12)
	}
	_, err := AUC([]float64{1, 2}, []bool{true, true})
	require.Error(t, err)
}

// An edge's registry (LoadEngineMetadata) does not need the model files:
// the manifests load without them; everything else is still checked.
// LoadEngines refuses, naming the file.
func TestLoadEngineMetadata(t *testing.T) {
	dir := t.TempDir()
	p := writeManifest(t, dir, baseManifest)
	model := filepath.Join(filepath.Dir(p), "model.onnx")
	require.NoError(t, os.Remove(model))
	reg, err := LoadEngineMetadata(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"test-engine"}, reg.IDs())
	_, err = LoadEngines(dir)
	require.ErrorContains(t, err, "model file "+model+": no such file or directory")

	bad := filepath.Join(dir, "bad-engine")
	require.NoError(t, os.MkdirAll(bad, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bad, ManifestFile), []byte("id: bad-engine\nfoo: 1\n"), 0o644))
	_, err = LoadEngineMetadata(dir)
	require.ErrorContains(t, err, filepath.Join(bad, ManifestFile)+`:2:1: the manifest: unknown key "foo"`)
}
