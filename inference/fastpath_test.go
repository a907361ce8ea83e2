package inference

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// fastPathTolerance bounds |fast − reference| on any input-tensor value.
// The planes are identical (the same lookup table); the resize sums the
// same float64 products but vertical pass first, rounding to float32 once
// where the reference rounds its horizontal pass too, so values may differ
// by float32 rounding (measured: at most 6e-8, one ulp near 1).
const fastPathTolerance = 1e-6

// compareFastPath decodes data with Decode (stored words, resize through the
// lookup table, pixel bytes read in place) and with the reference path
// (library copy of the Pixel Data, full float32 plane, the two-pass resize
// as it was), and compares the planes and the input tensors of every crop,
// resize method and a few sizes. It returns the largest tensor difference.
func compareFastPath(t *testing.T, data []byte) float64 {
	t.Helper()
	ref, refErr := decode(data, false)
	fast, err := Decode(data)
	if refErr != nil {
		require.EqualError(t, err, refErr.Error())
		return 0
	}
	require.NoError(t, err)
	require.NotNil(t, ref.Pixels)
	if ref.Meta.SamplesPerPixel == 1 && ref.Meta.BitsAllocated <= 16 {
		require.Nil(t, fast.Pixels, "a grey image of ≤ 16 bits is kept as stored words")
		require.NotNil(t, fast.stored)
	}
	require.Equal(t, ref.Width, fast.Width)
	require.Equal(t, ref.Height, fast.Height)
	require.Equal(t, ref.VOI, fast.VOI)
	require.Equal(t, ref.Meta, fast.Meta)
	require.Equal(t, ref.Pixels, fast.Plane(), "plane built from the stored words")
	for _, xy := range [][2]int{{0, 0}, {ref.Width - 1, ref.Height - 1}, {ref.Width / 2, ref.Height / 3}} {
		require.Equal(t, ref.At(xy[0], xy[1]), fast.At(xy[0], xy[1]))
	}
	// Preprocess must not depend on Plane having been built: use a fresh
	// decode for the tensors.
	fast, err = Decode(data)
	require.NoError(t, err)
	var worst float64
	for _, crop := range []string{CropCenterSquare, CropNone} {
		for _, rs := range []string{ResizeArea, ResizeAreaExact} {
			for _, size := range []int{224, 7, 299} {
				p := Preprocessing{Crop: crop, Size: size, Resize: rs}
				want := make([]float32, size*size)
				r := p.CropRect(ref.Width, ref.Height)
				referenceResize(ref.Pixels, ref.Width, r, want, size, size, rs == ResizeAreaExact)
				got := make([]float32, size*size)
				gr, err := p.Preprocess(fast, got)
				require.NoError(t, err)
				require.Equal(t, r, gr)
				for i := range want {
					d := math.Abs(float64(got[i] - want[i]))
					if d > fastPathTolerance {
						require.Failf(t, "tensor differs", "%s/%s/%d: value %d: fast %v, reference %v", crop, rs, size, i, got[i], want[i])
					}
					worst = math.Max(worst, d)
				}
			}
		}
	}
	return worst
}

// TestFastPathMatchesReferenceFixtures: every DICOM file of testdata (all
// transfer syntaxes and codecs of cxr-dicom, both labelled sets, the
// negative files) through both paths.
func TestFastPathMatchesReferenceFixtures(t *testing.T) {
	var files []string
	for _, dir := range []string{"cxr-dicom", "kermany224-val-dicom", "pneumoniamnist-val-dicom", "dicom-negative"} {
		m, err := filepath.Glob(filepath.Join(testenv.Testdata(dir), "*.dcm"))
		require.NoError(t, err)
		require.NotEmpty(t, m, dir)
		files = append(files, m...)
	}
	var worst float64
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			worst = math.Max(worst, compareFastPath(t, data))
		})
	}
	t.Logf("%d files, max |fast − reference| over all tensors: %g", len(files), worst)
}

// TestFastPathMatchesReferenceSynthetic: odd-sized synthetic images with
// every branch of the grey pipeline (8/16 bits, MONOCHROME1, windows of each
// VOI LUT Function, rescale, Modality and VOI LUT Sequences, signed data,
// overlay bits, High Bit shift, odd-length padding, implicit VR, a second
// frame, colour, JPEG Baseline grey).
func TestFastPathMatchesReferenceSynthetic(t *testing.T) {
	const rows, cols = 257, 301 // odd, not square: both crops, uneven bins
	n := rows * cols
	px8 := make([]byte, n+1) // odd length: padded to even
	px16 := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		v := uint32(i*2654435761) >> 7 // pseudo-random, every bit pattern
		px8[i] = byte(v)
		px16[2*i], px16[2*i+1] = byte(v), byte(v>>8)
	}
	m16 := func(bs, pr int, ph string) []tElem { return imageAttrs(rows, cols, 16, bs, pr, ph) }
	window := []tElem{tStr(0x0028, 0x1050, "DS", "2048"), tStr(0x0028, 0x1051, "DS", "3000")}
	cases := []struct {
		name   string
		ts     string
		elems  []tElem
		pixels []byte
	}{
		{"8-bit MONOCHROME2, stored range, odd length", "", imageAttrs(rows, cols, 8, 8, 0, "MONOCHROME2"), px8},
		{"8-bit MONOCHROME1, implicit VR", TSImplicitVRLittleEndian, imageAttrs(rows, cols, 8, 8, 0, "MONOCHROME1"), px8},
		{"12-bit MONOCHROME1 windowed", "", append(m16(12, 0, "MONOCHROME1"), window...), px16},
		{"12-bit LINEAR_EXACT", "", append(m16(12, 0, "MONOCHROME2"), append(window, tStr(0x0028, 0x1056, "CS", "LINEAR_EXACT"))...), px16},
		{"12-bit SIGMOID", "", append(m16(12, 0, "MONOCHROME2"), append(window, tStr(0x0028, 0x1056, "CS", "SIGMOID"))...), px16},
		{"16-bit stored range", "", m16(16, 0, "MONOCHROME2"), px16},
		{"signed 12-bit, rescale slope/intercept, window", "", append(m16(12, 1, "MONOCHROME2"),
			tStr(0x0028, 0x1052, "DS", "-1024"), tStr(0x0028, 0x1053, "DS", "0.5"),
			tStr(0x0028, 0x1050, "DS", "-900"), tStr(0x0028, 0x1051, "DS", "1500")), px16},
		{"signed 16-bit MONOCHROME1, no window", "", m16(16, 1, "MONOCHROME1"), px16},
		{"VOI LUT Sequence", "", append(m16(12, 0, "MONOCHROME2"), tSeq(0x0028, 0x3010, []tElem{
			tUS(0x0028, 0x3002, 4, 1000, 8), tUS(0x0028, 0x3006, 0, 64, 128, 255)})), px16},
		{"Modality LUT Sequence", "", append(m16(12, 0, "MONOCHROME1"), tSeq(0x0028, 0x3000, []tElem{
			tUS(0x0028, 0x3002, 3, 0, 10), tUS(0x0028, 0x3006, 0, 512, 1023), tStr(0x0028, 0x3004, "LO", "TEST")})), px16},
		{"overlay in the unused bits", "", append(m16(12, 0, "MONOCHROME2"), tUS(0x6000, 0x0100, 16), tUS(0x6000, 0x0102, 15)), px16},
		{"High Bit above Bits Stored − 1", "", replaceAttr(m16(8, 0, "MONOCHROME2"), tUS(0x0028, 0x0102, 11)), px16},
		{"multi-frame: first of two", "", append(m16(12, 0, "MONOCHROME2"), tStr(0x0028, 0x0008, "IS", "2")),
			append(append([]byte(nil), px16...), px16...)},
		{"RGB (decoded eagerly)", "", replaceAttr(replaceAttr(imageAttrs(rows, cols, 8, 8, 0, "RGB"), tUS(0x0028, 0x0002, 3)),
			tUS(0x0028, 0x0006, 0)), append(append(append([]byte(nil), px8[:n]...), px8[:n]...), px8[:n]...)},
	}
	var worst float64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts
			if ts == "" {
				ts = TSExplicitVRLittleEndian
			}
			vr := "OW"
			if bytesPerSample(tc.elems) == 1 {
				vr = "OB"
			}
			data := buildDICOM(ts, append(tc.elems, tBytes(0x7FE0, 0x0010, vr, tc.pixels))...)
			worst = math.Max(worst, compareFastPath(t, data))
		})
	}
	t.Run("JPEG Baseline grey", func(t *testing.T) {
		g := image.NewGray(image.Rect(0, 0, cols, rows))
		copy(g.Pix, px8)
		var buf bytes.Buffer
		require.NoError(t, jpeg.Encode(&buf, g, &jpeg.Options{Quality: 90}))
		for _, ph := range []string{"MONOCHROME2", "MONOCHROME1"} {
			data := buildDICOM(TSJPEGBaseline, append(imageAttrs(rows, cols, 8, 8, 0, ph), tEncapsulated(buf.Bytes()))...)
			worst = math.Max(worst, compareFastPath(t, data))
		}
	})
	t.Logf("max |fast − reference| over all tensors: %g", worst)
}

// TestFastPathHeatmapUnchanged: the heatmap PNG drawn from the stored words
// is byte-identical to the one drawn from the reference plane, with and
// without downscaling.
func TestFastPathHeatmapUnchanged(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	ref, err := decode(data, false)
	require.NoError(t, err)
	fast, err := Decode(data)
	require.NoError(t, err)
	require.Nil(t, fast.Pixels)
	cam := make([]float32, 49)
	for i := range cam {
		cam[i] = float32(i % 5)
	}
	res := Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: Preprocessing{Crop: CropCenterSquare}.CropRect(ref.Width, ref.Height), SourceWidth: ref.Width, SourceHeight: ref.Height}
	for _, edge := range []int{0, 200} {
		t.Run(fmt.Sprintf("max edge %d", edge), func(t *testing.T) {
			want, w1, h1, err := RenderHeatmap(ref, res, HeatmapOptions{MaxEdge: edge})
			require.NoError(t, err)
			got, w2, h2, err := RenderHeatmap(fast, res, HeatmapOptions{MaxEdge: edge})
			require.NoError(t, err)
			require.Equal(t, [2]int{w1, h1}, [2]int{w2, h2})
			require.Equal(t, want, got)
			require.Nil(t, fast.Pixels, "rendering does not build the plane")
		})
	}
}
