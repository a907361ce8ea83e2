package evaluation

import (
	"bytes"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var plotDir = flag.String("plots", "", "also write the test plots to this directory, to look at them")

func labelsOf(xs ...int) []bool {
	out := make([]bool, len(xs))
	for i, x := range xs {
		out[i] = x == 1
	}
	return out
}

// bruteAUC is the definition: the mean of ψ over all positive × negative pairs.
func bruteAUC(scores []float64, labels []bool) float64 {
	var sum float64
	var pairs int
	for i := range scores {
		for j := range scores {
			if !labels[i] || labels[j] {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				sum++
			case scores[i] == scores[j]:
				sum += 0.5
			}
		}
	}
	return sum / float64(pairs)
}

func TestAUCHandComputed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"perfect separation", []float64{0.9, 0.8, 0.7, 0.3, 0.2, 0.1}, labelsOf(1, 1, 1, 0, 0, 0), 1},
		{"perfectly wrong", []float64{0.1, 0.2, 0.3, 0.7, 0.8, 0.9}, labelsOf(1, 1, 1, 0, 0, 0), 0},
		{"all ties", []float64{0.5, 0.5, 0.5, 0.5, 0.5}, labelsOf(1, 0, 1, 0, 0), 0.5},
		// Positives 0.8, 0.4; negatives 0.6, 0.2, 0.4. Pairs: 0.8 beats all
		// three (3); 0.4 loses to 0.6 (0), beats 0.2 (1), ties 0.4 (0.5).
		// 4.5 of 6.
		{"a tie across classes", []float64{0.8, 0.6, 0.4, 0.2, 0.4}, labelsOf(1, 0, 1, 0, 0), 0.75},
		// One positive between two negatives: 1 of 2.
		{"one positive in the middle", []float64{0.1, 0.5, 0.9}, labelsOf(0, 1, 0), 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AUC(tc.scores, tc.labels)
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, 1e-15)
			require.InDelta(t, tc.want, trapezoid(ROC(tc.scores, tc.labels)), 1e-12, "area under the ROC points")
		})
	}
}

func TestAUCMatchesDefinitionOnRandomData(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		n := 5 + r.IntN(200)
		scores := make([]float64, n)
		labels := make([]bool, n)
		for i := range scores {
			scores[i] = float64(r.IntN(20)) / 20 // many ties
			labels[i] = r.IntN(3) == 0
		}
		labels[0], labels[1] = true, false
		got, err := AUC(scores, labels)
		require.NoError(t, err)
		require.InDelta(t, bruteAUC(scores, labels), got, 1e-12)
		require.InDelta(t, got, trapezoid(ROC(scores, labels)), 1e-12)
	}
}

func TestInputErrors(t *testing.T) {
	_, err := AUC([]float64{0.1, 0.2}, labelsOf(1))
	require.ErrorIs(t, err, ErrLength)
	_, err = AUC([]float64{0.1, math.NaN()}, labelsOf(1, 0))
	require.ErrorIs(t, err, ErrNaN)
	_, err = AUC([]float64{0.1, 0.2}, labelsOf(1, 1))
	require.ErrorIs(t, err, ErrOneClass)
	_, err = DeLong([]float64{0.1, 0.2, 0.3}, labelsOf(1, 1, 0))
	require.ErrorIs(t, err, ErrTooFew)
	_, err = Evaluate(nil, nil, Options{})
	require.ErrorIs(t, err, ErrOneClass)
	_, err = CompareAUC([]float64{0.1, 0.2}, []float64{0.1}, labelsOf(1, 0))
	require.ErrorIs(t, err, ErrLength)
}

// hanleyMcNeil is table 1 of Hanley & McNeil (Radiology 1982): CT ratings
// 1..5 of 58 normal and 51 abnormal cases; their published AUC is 0.893.
func hanleyMcNeil() ([]float64, []bool) {
	normal := []int{33, 6, 6, 11, 2}
	abnormal := []int{3, 2, 2, 11, 33}
	var s []float64
	var l []bool
	for r := range normal {
		for range normal[r] {
			s, l = append(s, float64(r+1)), append(l, false)
		}
		for range abnormal[r] {
			s, l = append(s, float64(r+1)), append(l, true)
		}
	}
	return s, l
}

func TestDeLongHanleyMcNeil(t *testing.T) {
	s, l := hanleyMcNeil()
	got, err := DeLong(s, l)
	require.NoError(t, err)
	// From testdata/delong_reference.py (independent O(m·n) definitions):
	//   hanley-mcneil auc 0.89317106152806 se 0.0307244083793811
	//   ci 0.832952327658173 0.953389795397948
	require.InDelta(t, 0.89317106152806, got.AUC, 1e-12)
	require.InDelta(t, 0.893, got.AUC, 0.0005, "the published value")
	require.InDelta(t, 0.0307244083793811, got.SE, 1e-12)
	require.InDelta(t, 0.832952327658173, got.CI[0], 1e-12)
	require.InDelta(t, 0.953389795397948, got.CI[1], 1e-12)
	require.Equal(t, 51, got.Positives)
	require.Equal(t, 58, got.Negatives)
}

func TestDeLongPerfectSeparationClipsInterval(t *testing.T) {
	got, err := DeLong([]float64{0.9, 0.8, 0.7, 0.3, 0.2, 0.1}, labelsOf(1, 1, 1, 0, 0, 0))
	require.NoError(t, err)
	require.Equal(t, 1.0, got.AUC)
	require.Equal(t, 0.0, got.SE) // every placement value is 1
	require.Equal(t, [2]float64{1, 1}, got.CI)

	// Nearly separated: the interval is clipped at 1.
	got, err = DeLong([]float64{0.9, 0.8, 0.25, 0.3, 0.2, 0.1}, labelsOf(1, 1, 1, 0, 0, 0))
	require.NoError(t, err)
	require.InDelta(t, 8.0/9, got.AUC, 1e-15)
	require.Equal(t, 1.0, got.CI[1])
	require.Less(t, got.CI[0], got.AUC)
}

// The paired example of testdata/delong_reference.py: ties inside and
// across the two scorers.
var (
	pairedLabels = labelsOf(1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	pairedA      = []float64{0.9, 0.8, 0.8, 0.7, 0.55, 0.4, 0.3, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.05}
	pairedB      = []float64{0.7, 0.9, 0.5, 0.6, 0.65, 0.2, 0.45, 0.8, 0.2, 0.5, 0.1, 0.45, 0.3, 0.15, 0.05}
)

func TestCompareAUCReference(t *testing.T) {
	c, err := CompareAUC(pairedA, pairedB, pairedLabels)
	require.NoError(t, err)
	// From testdata/delong_reference.py:
	//   paired aucA 0.866071428571429 aucB 0.794642857142857
	//          seA 0.094007784554532 seB 0.124223169226174
	//   paired diff 0.0714285714285715 se 0.0872427845151186
	//          z 0.818733283509462 p 0.41293860265565
	//          ci -0.0995641441320496 0.242421286989193
	require.InDelta(t, 0.866071428571429, c.A.AUC, 1e-12)
	require.InDelta(t, 0.794642857142857, c.B.AUC, 1e-12)
	require.InDelta(t, 0.094007784554532, c.A.SE, 1e-12)
	require.InDelta(t, 0.124223169226174, c.B.SE, 1e-12)
	require.InDelta(t, 0.0714285714285715, c.Difference, 1e-12)
	require.InDelta(t, 0.0872427845151186, c.SE, 1e-12)
	require.InDelta(t, 0.818733283509462, c.Z, 1e-10)
	require.InDelta(t, 0.41293860265565, c.P, 1e-10)
	require.InDelta(t, -0.0995641441320496, c.CI[0], 1e-12)
	require.InDelta(t, 0.242421286989193, c.CI[1], 1e-12)
	require.Equal(t, 15, c.N)
	require.Equal(t, 7, c.Positives)

	// Swapping the scorers flips the sign only.
	r, err := CompareAUC(pairedB, pairedA, pairedLabels)
	require.NoError(t, err)
	require.InDelta(t, -c.Z, r.Z, 1e-12)
	require.InDelta(t, c.P, r.P, 1e-12)
}

func TestCompareAUCIdenticalScorers(t *testing.T) {
	c, err := CompareAUC(pairedA, pairedA, pairedLabels)
	require.NoError(t, err)
	require.Equal(t, 0.0, c.Difference)
	require.Equal(t, 0.0, c.SE)
	require.Equal(t, 0.0, c.Z)
	require.Equal(t, 1.0, c.P)
	require.InDelta(t, 1.0, c.Correlation, 1e-12)

	// A monotone transform has the same ranks: the same AUC, difference 0.
	sq := make([]float64, len(pairedA))
	for i, v := range pairedA {
		sq[i] = v * v
	}
	c, err = CompareAUC(pairedA, sq, pairedLabels)
	require.NoError(t, err)
	require.Equal(t, 0.0, c.Z)
	require.Equal(t, 1.0, c.P)
}

func TestOperatingPoints(t *testing.T) {
	scores := []float64{0.9, 0.65, 0.5, 0.3, 0.2, 0.64, 0.5, 0.31, 0.29, 0.0}
	labels := labelsOf(1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
	op := At(scores, labels, 0.5)
	// Called positive at ≥ 0.5: positives 0.9, 0.65, 0.5 (3 of 5); negatives
	// 0.64, 0.5 (2 of 5).
	require.Equal(t, OperatingPoint{Cutoff: 0.5, TP: 3, FN: 2, TN: 3, FP: 2, Sensitivity: 0.6, Specificity: 0.6}, op)

	tiers := Tiers(scores, labels, 0.30, 0.65)
	require.Equal(t, TierTable{
		Low:  TierCounts{Negative: 2, Positive: 1}, // 0.29, 0.0 | 0.2
		Mid:  TierCounts{Negative: 3, Positive: 2}, // 0.64, 0.5, 0.31 | 0.5, 0.3
		High: TierCounts{Negative: 0, Positive: 2}, // | 0.9, 0.65
	}, tiers)

	r, err := Evaluate(scores, labels, Options{Cutoffs: []float64{0.5, 0.9}})
	require.NoError(t, err)
	var cuts []float64
	for _, op := range r.Operating {
		cuts = append(cuts, op.Cutoff)
	}
	require.Equal(t, []float64{0.3, 0.5, 0.65, 0.9}, cuts, "sorted, each once")
	at3, ok := r.At(0.3)
	require.True(t, ok)
	require.Equal(t, 0.8, at3.Sensitivity)
	require.Equal(t, 0.4, at3.Specificity)
	at65, _ := r.At(0.65)
	require.Equal(t, 0.4, at65.Sensitivity)
	require.Equal(t, 1.0, at65.Specificity)
	require.Equal(t, tiers, r.Tiers)
}

func TestCalibrationHandComputed(t *testing.T) {
	scores := []float64{0.05, 0.15, 0.12, 0.95, 1.0, 0.92, 0.55}
	labels := labelsOf(0, 1, 0, 1, 1, 0, 1)
	bins, ece := Calibration(scores, labels, 10)
	require.Len(t, bins, 10)
	// bin 0: {0.05/0} mean 0.05, rate 0     → |0.05 − 0|   = 0.05,  n 1
	// bin 1: {0.15/1, 0.12/0} mean 0.135, 0.5 → 0.365,              n 2
	// bin 5: {0.55/1} → 0.45,                                        n 1
	// bin 9: {0.95/1, 1.0/1, 0.92/0} mean 0.956667, rate 2/3 → 0.29, n 3
	want := (1*0.05 + 2*0.365 + 1*0.45 + 3*(2.87/3-2.0/3)) / 7
	require.InDelta(t, want, ece, 1e-12)
	require.Equal(t, 3, bins[9].N)
	require.Equal(t, 2, bins[9].Positives)
	require.InDelta(t, 2.87/3, bins[9].MeanProbability, 1e-12)
	require.Equal(t, 0, bins[3].N)
	require.InDelta(t, 0.3, bins[3].Low, 1e-15)
	require.InDelta(t, 0.4, bins[3].High, 1e-15)

	// Perfectly calibrated bins: ECE 0.
	_, ece = Calibration([]float64{0.25, 0.25, 0.25, 0.25}, labelsOf(1, 0, 0, 0), 10)
	require.InDelta(t, 0, ece, 1e-15)
}

func TestROCPoints(t *testing.T) {
	pts := ROC([]float64{0.8, 0.6, 0.4, 0.2, 0.4}, labelsOf(1, 0, 1, 0, 0))
	require.Equal(t, []ROCPoint{
		{Threshold: math.Inf(1), FPR: 0, TPR: 0},
		{Threshold: 0.8, FPR: 0, TPR: 0.5},
		{Threshold: 0.6, FPR: 1.0 / 3, TPR: 0.5},
		{Threshold: 0.4, FPR: 2.0 / 3, TPR: 1}, // the tie moves diagonally
		{Threshold: 0.2, FPR: 1, TPR: 1},
	}, pts)
}

func TestPlotsArePNGs(t *testing.T) {
	s, l := hanleyMcNeil()
	ra, err := Evaluate(pairedA, pairedLabels, Options{})
	require.NoError(t, err)
	rb, err := Evaluate(pairedB, pairedLabels, Options{})
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 4))
	var ps []float64
	var pl []bool
	for range 500 { // a good, slightly over-confident scorer
		y := r.IntN(2) == 1
		x := r.NormFloat64() + map[bool]float64{true: 2.2, false: -2.2}[y]
		ps, pl = append(ps, 1/(1+math.Exp(-1.6*x))), append(pl, y)
	}
	good, err := Evaluate(ps, pl, Options{})
	require.NoError(t, err)
	hm, err := Evaluate(scaleTo01(s), l, Options{})
	require.NoError(t, err)

	plots := map[string]func(*bytes.Buffer) error{
		"roc-two.png":  func(b *bytes.Buffer) error { return PlotROC(b, "ROC, 15 cases", []Curve{ra.Curve("A"), rb.Curve("B")}) },
		"roc-good.png": func(b *bytes.Buffer) error { return PlotROC(b, "ROC, 500 cases", []Curve{good.Curve("simulated")}) },
		"reliability-good.png": func(b *bytes.Buffer) error {
			return PlotReliability(b, "Reliability, ECE 0.0xx", good.Calibration)
		},
		"reliability-hanley-mcneil.png": func(b *bytes.Buffer) error {
			return PlotReliability(b, "Hanley-McNeil ratings", hm.Calibration)
		},
	}
	for name, plot := range plots {
		var b bytes.Buffer
		require.NoError(t, plot(&b), name)
		img, err := png.Decode(bytes.NewReader(b.Bytes()))
		require.NoError(t, err, name)
		require.Equal(t, PlotSize, img.Bounds().Dx())
		require.Equal(t, PlotSize, img.Bounds().Dy())
		// Sane: what each plot must show is drawn in its colour.
		if strings.HasPrefix(name, "roc-") {
			require.Greater(t, countColor(img, palette[0]), 500, "%s: the first curve", name)
		}
		if name == "roc-two.png" {
			require.Greater(t, countColor(img, palette[1]), 500, "%s: the second curve", name)
		}
		if strings.HasPrefix(name, "reliability-") {
			require.Greater(t, countColor(img, barFill), 5000, "%s: the bars", name)
			require.Greater(t, countColor(img, redDot), 300, "%s: the mean predictions", name)
			require.Greater(t, countColor(img, gridDark), 2000, "%s: the case counts", name)
		}
		if *plotDir != "" {
			require.NoError(t, os.WriteFile(filepath.Join(*plotDir, name), b.Bytes(), 0o644))
		}
	}
	require.Error(t, PlotROC(&bytes.Buffer{}, "", nil))
	require.Error(t, PlotReliability(&bytes.Buffer{}, "", nil))
}

func scaleTo01(s []float64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = (v - 1) / 4
	}
	return out
}

// countColor counts the pixels of img that are exactly c.
func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(bl>>8) == c.B {
				n++
			}
		}
	}
	return n
}
