package inference

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

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
