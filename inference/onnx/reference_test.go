package onnx

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// referenceTolerance is how far a probability may land from the reference
// pipeline's (pydicom + PyTorch, float64 pixels), per the model cards.
const referenceTolerance = 0.01

// scoredSet is a reference evaluation: every file of a folder against a CSV.
type scoredSet struct {
	rows   []refRow
	probs  []float64
	maxAbs float64
	worst  string
}

// scoreReference decodes and scores every row's file (in Score's batches)
// and checks each probability against the reference. stride > 1 scores
// every stride-th row only (-short).
func scoreReference(t *testing.T, e *Engine, dir string, rows []refRow, stride int) scoredSet {
	t.Helper()
	var set scoredSet
	var imgs []*inference.Image
	for i, r := range rows {
		if i%stride != 0 {
			continue
		}
		img, err := inference.DecodeFile(filepath.Join(dir, r.File))
		require.NoError(t, err, r.File)
		imgs = append(imgs, img)
		set.rows = append(set.rows, r)
	}
	t0 := time.Now()
	res, err := e.Score(t.Context(), imgs)
	require.NoError(t, err)
	require.Len(t, res, len(imgs))
	t.Logf("%s: scored %d files in %v (%.1f ms/image)", e.Manifest().ID, len(imgs), time.Since(t0).Round(time.Millisecond),
		float64(time.Since(t0).Milliseconds())/float64(len(imgs)))
	for i, r := range set.rows {
		p := res[i].Probability
		set.probs = append(set.probs, p)
		d := math.Abs(p - r.Probability)
		if d > set.maxAbs {
			set.maxAbs, set.worst = d, r.File
		}
		require.InDeltaf(t, r.Probability, p, referenceTolerance, "%s (%s)", r.File, r.Encoding)
		require.Equal(t, e.Manifest().Thresholds.Tier(p), res[i].Tier, r.File)
		require.Equal(t, p >= e.Manifest().Thresholds.Mark, res[i].Marked, r.File)
		if r.Tier != "" && farFromThresholds(r.Probability, e.Manifest().Thresholds) {
			require.Equal(t, inference.Tier(r.Tier), res[i].Tier, r.File)
		}
	}
	return set
}

// farFromThresholds: a reference tier is comparable only when the reference
// probability is not within the tolerance of a tier boundary.
func farFromThresholds(p float64, th inference.Thresholds) bool {
	return math.Abs(p-th.TierMid) > referenceTolerance && math.Abs(p-th.TierHigh) > referenceTolerance
}

func labelled(t *testing.T, set scoredSet) float64 {
	t.Helper()
	labels := make([]bool, len(set.rows))
	for i, r := range set.rows {
		require.Contains(t, []string{"0", "1"}, r.Label, r.File)
		labels[i] = r.Label == "1"
	}
	auc, err := inference.AUC(set.probs, labels)
	require.NoError(t, err)
	return auc
}

func TestCXRDicomReference(t *testing.T) {
	dir := testenv.Testdata("cxr-dicom")
	for _, tc := range []struct {
		engine, csv string
	}{
		{"cxr-pneumonia-densenet121", "reference.csv"},
		{"cxr-pneumonia-densenet121-k224", "reference-k224.csv"},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			e := newTestEngine(t, tc.engine)
			// Every file decodes, whatever its transfer syntax: native, JPEG
			// Baseline, Extended 12-bit, Lossless, JPEG-LS, JPEG 2000, RLE.
			decodable := readReference(t, filepath.Join(dir, tc.csv))
			require.Len(t, decodable, 15)
			set := scoreReference(t, e, dir, decodable, 1)
			t.Logf("%s on cxr-dicom: %d files, max |Δp| %.6f (%s)", tc.engine, len(set.rows), set.maxAbs, set.worst)

			// serve's session (the config's defaults: one intra-op
			// thread, no spinning) scores the same within the tolerance.
			opts, err := OptionsFromConfig(config.Default().Inference)
			require.NoError(t, err)
			require.Equal(t, 1, opts.Threads)
			require.False(t, opts.Spinning)
			serve := scoreReference(t, newTestEngineWith(t, tc.engine, opts), dir, decodable, 1)
			for i := range set.probs {
				require.InDelta(t, set.probs[i], serve.probs[i], 1e-4, set.rows[i].File)
			}
		})
	}
}

func TestPneumoniaMNISTReference(t *testing.T) {
	dir := testenv.Testdata("pneumoniamnist-val-dicom")
	rows := readReference(t, filepath.Join(dir, "reference.csv"))
	require.Len(t, rows, 524)
	stride := 1
	if testing.Short() {
		stride = 8
	}
	e := newTestEngine(t, "cxr-pneumonia-densenet121")
	set := scoreReference(t, e, dir, rows, stride)
	auc := labelled(t, set)
	t.Logf("pneumoniamnist-val: %d files, max |Δp| %.6f (%s), AUC %.4f", len(set.rows), set.maxAbs, set.worst, auc)
	if stride == 1 {
		require.InDelta(t, 0.9979, auc, 0.002)
	}
}

func TestKermany224Reference(t *testing.T) {
	dir := testenv.Testdata("kermany224-val-dicom")
	rows := readReference(t, filepath.Join(dir, "reference-k224.csv"))
	require.Len(t, rows, 521)
	stride := 1
	if testing.Short() {
		stride = 8
	}
	e := newTestEngine(t, "cxr-pneumonia-densenet121-k224")
	set := scoreReference(t, e, dir, rows, stride)
	auc := labelled(t, set)
	t.Logf("kermany224-val: %d files, max |Δp| %.6f (%s), AUC %.4f", len(set.rows), set.maxAbs, set.worst, auc)
	if stride == 1 {
		require.InDelta(t, 0.9990, auc, 0.002)
	}
}

func TestScoreCancelled(t *testing.T) {
	e := newTestEngine(t, inference.DefaultEngineID)
	img, err := inference.DecodeFile(testenv.Testdata("pneumoniamnist-val-dicom", "PMV0000.dcm"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.Score(ctx, []*inference.Image{img})
	require.True(t, errors.Is(err, context.Canceled), err)
}
