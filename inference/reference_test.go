package inference

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	var imgs []*Image
	for i, r := range rows {
		if i%stride != 0 {
			continue
		}
		img, err := DecodeFile(filepath.Join(dir, r.File))
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
			require.Equal(t, Tier(r.Tier), res[i].Tier, r.File)
		}
	}
	return set
}

// farFromThresholds: a reference tier is comparable only when the reference
// probability is not within the tolerance of a tier boundary.
func farFromThresholds(p float64, th Thresholds) bool {
	return math.Abs(p-th.TierMid) > referenceTolerance && math.Abs(p-th.TierHigh) > referenceTolerance
}

func labelled(t *testing.T, set scoredSet) float64 {
	t.Helper()
	labels := make([]bool, len(set.rows))
	for i, r := range set.rows {
		require.Contains(t, []string{"0", "1"}, r.Label, r.File)
		labels[i] = r.Label == "1"
	}
	auc, err := AUC(set.probs, labels)
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
		})
	}
}

// A transfer syntax no decoder handles (here JPEG 2000 Part 2, made by
// relabelling the JPEG 2000 sample: same UID length, so no length changes)
// fails with an error naming it, while the header still reads.
func TestUndecodableErrorMessage(t *testing.T) {
	b, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-jpeg2000-lossless.dcm"))
	require.NoError(t, err)
	require.Equal(t, 1, bytes.Count(b, []byte(TSJPEG2000Lossless)))
	b = bytes.Replace(b, []byte(TSJPEG2000Lossless), []byte("1.2.840.10008.1.2.4.93"), 1)
	_, err = Decode(b)
	require.ErrorIs(t, err, ErrUnsupportedTransferSyntax)
	require.EqualError(t, err, "transfer syntax 1.2.840.10008.1.2.4.93 (JPEG 2000 Part 2 Multi-component) is not decoded yet")
	m, err := ReadHeader(b)
	require.NoError(t, err)
	require.NotEmpty(t, m.SOPInstanceUID)
}

// Every lossless compressed re-encoding of the 10-bit original decodes to
// exactly its pixels; the lossy ones stay within a small bound of the 0..1
// plane (JPEG-LS NEAR 2 and 12-bit JPEG, both against a 1024-wide window).
func TestCompressedReencodingsMatchTheOriginal(t *testing.T) {
	dir := testenv.Testdata("cxr-dicom")
	orig, err := DecodeFile(filepath.Join(dir, "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	for _, tc := range []struct {
		file   string
		maxAbs float64
	}{
		{"cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm", 0},
		{"cr-chest-mono1-10bit-jpegls-lossless.dcm", 0},
		{"cr-chest-mono1-10bit-jpeg2000-lossless.dcm", 0},
		{"cr-chest-mono1-10bit-rle.dcm", 0},
		{"cr-chest-mono1-10bit-jpegls-near-lossless.dcm", 2.5 / 1024},
		{"cr-chest-mono1-10bit-jpeg-extended-12bit.dcm", 0.01},
	} {
		t.Run(tc.file, func(t *testing.T) {
			img, err := DecodeFile(filepath.Join(dir, tc.file))
			require.NoError(t, err)
			require.Equal(t, orig.Width, img.Width)
			require.Equal(t, orig.Height, img.Height)
			if tc.maxAbs == 0 {
				require.Equal(t, orig.Plane(), img.Plane(), "lossless: identical pixels")
				return
			}
			var worst float64
			for i := range orig.Plane() {
				worst = math.Max(worst, math.Abs(float64(orig.Plane()[i]-img.Plane()[i])))
			}
			t.Logf("max |Δ| in the 0..1 plane: %.5f", worst)
			require.LessOrEqual(t, worst, tc.maxAbs)
		})
	}
}

// The Explicit LE original and its lossless native re-encodings must decode
// to the same pixels.
func TestNativeReencodingsIdentical(t *testing.T) {
	dir := testenv.Testdata("cxr-dicom")
	orig, err := DecodeFile(filepath.Join(dir, "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	require.Equal(t, 440, orig.Width)
	require.Equal(t, "MONOCHROME1", orig.Meta.PhotometricInterpretation)
	require.Equal(t, "window 550/1024 (LINEAR)", orig.VOI)
	for _, tc := range []struct{ file, ts string }{
		{"cr-chest-mono1-10bit-explicit-be.dcm", TSExplicitVRBigEndian},
		{"cr-chest-mono1-10bit-deflated.dcm", TSDeflatedExplicitVRLittleEndian},
	} {
		t.Run(tc.file, func(t *testing.T) {
			img, err := DecodeFile(filepath.Join(dir, tc.file))
			require.NoError(t, err)
			require.Equal(t, tc.ts, img.Meta.TransferSyntaxUID)
			require.Equal(t, orig.Width, img.Width)
			require.Equal(t, orig.Height, img.Height)
			require.Equal(t, orig.Plane(), img.Plane())
			// Same image attributes; only the encoding and the identifiers
			// (each sample file has its own UIDs) differ.
			m := img.Meta
			m.TransferSyntaxUID = orig.Meta.TransferSyntaxUID
			m.SOPInstanceUID, m.StudyInstanceUID, m.SeriesInstanceUID = orig.Meta.SOPInstanceUID, orig.Meta.StudyInstanceUID, orig.Meta.SeriesInstanceUID
			m.AccessionNumber = orig.Meta.AccessionNumber
			require.Equal(t, orig.Meta, m)
		})
	}
}

// The two JPEG Baseline files hold the same pixels; one header says
// MONOCHROME1, so its plane must be the inverse of the other.
func TestJPEGBaselineMonochrome1Header(t *testing.T) {
	dir := testenv.Testdata("cxr-dicom")
	m2, err := DecodeFile(filepath.Join(dir, "cr-chest-pa-jpeg-baseline.dcm"))
	require.NoError(t, err)
	m1, err := DecodeFile(filepath.Join(dir, "cr-chest-header-mono1-jpeg-baseline.dcm"))
	require.NoError(t, err)
	require.Equal(t, len(m2.Plane()), len(m1.Plane()))
	for i := range m2.Plane() {
		require.InDelta(t, 1-m2.Plane()[i], m1.Plane()[i], 1e-6)
	}
}

func TestNegativeFiles(t *testing.T) {
	m := loadTestManifest(t, DefaultEngineID)
	for _, tc := range []struct {
		file string
		want error // nil: decodes
	}{
		{"CT_small.dcm", nil},
		{"MR_truncated.dcm", ErrMalformed},
		{"rtplan_truncated.dcm", ErrMalformed},
		{"badVR.dcm", ErrMalformed},
		{"no_meta.dcm", ErrNotDICOM},
		{"meta_missing_tsyntax.dcm", ErrMalformed},
		{"ExplVR_BigEndNoMeta.dcm", ErrNotDICOM},
	} {
		t.Run(tc.file, func(t *testing.T) {
			img, err := DecodeFile(testenv.Testdata("dicom-negative", tc.file))
			if tc.want == nil {
				// A valid CT: it decodes (full signed 16-bit range, rescaled),
				// and the engine's declaration flags it.
				require.NoError(t, err)
				require.Equal(t, "CT", img.Meta.Modality)
				require.Equal(t, "stored range -33792..31743", img.VOI)
				require.Contains(t, m.Check(&img.Meta), "modality CT is not one of CR, DX")
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, img)
			t.Logf("%s: %v", tc.file, err)
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
	e := newTestEngine(t, DefaultEngineID)
	img, err := DecodeFile(testenv.Testdata("pneumoniamnist-val-dicom", "PMV0000.dcm"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.Score(ctx, []*Image{img})
	require.True(t, errors.Is(err, context.Canceled), err)
}
