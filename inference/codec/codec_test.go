package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

const original = "cr-chest-mono1-10bit-explicit-le.dcm"

// TestLosslessReencodingsAreExact: every lossless re-encoding of the 10-bit
// chest radiograph decodes to exactly the Explicit VR Little Endian
// original's Pixel Data, byte for byte.
func TestLosslessReencodingsAreExact(t *testing.T) {
	orig := loadFixture(t, original)
	require.Len(t, orig.Native, 440*440*2)
	for _, name := range []string{
		"cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm",
		"cr-chest-mono1-10bit-jpegls-lossless.dcm",
		"cr-chest-mono1-10bit-jpeg2000-lossless.dcm",
		"cr-chest-mono1-10bit-rle.dcm",
	} {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			needSupport(t, fx.TransferSyntaxUID)
			px, err := Decode(fx.Frame)
			require.NoError(t, err)
			require.Equal(t, 440, px.Rows)
			require.Equal(t, 440, px.Columns)
			require.Equal(t, 1, px.SamplesPerPixel)
			require.Equal(t, 16, px.BitsAllocated)
			require.Empty(t, px.PhotometricInterpretation)
			require.True(t, bytes.Equal(orig.Native, px.Data), "decoded pixels differ from the original")
		})
	}
}

// TestLossyReencodingsWithinBound: the near-lossless JPEG-LS re-encoding is
// within its NEAR parameter (read from the stream) of the original, and the
// 12-bit JPEG Extended one within a small error of it.
func TestLossyReencodingsWithinBound(t *testing.T) {
	orig := nativeWords(loadFixture(t, original).Native)

	t.Run("jpegls-near-lossless", func(t *testing.T) {
		px, err := Decode(loadFixture(t, "cr-chest-mono1-10bit-jpegls-near-lossless.dcm").Frame)
		require.NoError(t, err)
		require.Equal(t, 2, px.NearLossless, "NEAR parameter of the stream")
		got := words(px)
		maxErr := 0
		for i := range got {
			maxErr = max(maxErr, absInt(int(got[i])-int(orig[i])))
		}
		t.Logf("JPEG-LS near-lossless: NEAR %d, max abs error %d", px.NearLossless, maxErr)
		require.LessOrEqual(t, maxErr, px.NearLossless)
		require.Positive(t, maxErr, "a lossy stream that is exact is suspicious")
	})

	t.Run("jpeg-extended-12bit", func(t *testing.T) {
		fx := loadFixture(t, "cr-chest-mono1-10bit-jpeg-extended-12bit.dcm")
		px, err := Decode(fx.Frame)
		require.NoError(t, err)
		require.Equal(t, 12, px.Precision)
		// DCMTK stretched the 10-bit range to 12 bits when it encoded
		// (v × 4095/1023; its Window Width went from 1024 to 4099.0029
		// with it): compare in the original's units.
		const scale = 4095.0 / 1023.0
		got := words(px)
		var maxErr, sumSq float64
		for i := range got {
			e := math.Abs(float64(got[i])/scale - float64(orig[i]))
			maxErr = max(maxErr, e)
			sumSq += e * e
		}
		rms := math.Sqrt(sumSq / float64(len(got)))
		t.Logf("JPEG Extended 12-bit (IJG quality 90): max abs error %.2f, RMS %.3f (of 1024 levels)", maxErr, rms)
		require.Less(t, maxErr, 12.0, "max error, in 10-bit levels")
		require.Less(t, rms, 1.5, "RMS error, in 10-bit levels")
	})
}

// goldenPixels are SHA-256 sums of the decoded Pixel Data. Those marked
// DCMTK are what `dcmdjpeg` / `dcmdjpls` (DCMTK 3.6.7) write as native
// Explicit VR Little Endian for the file (see TestAgainstDCMTK, which checks
// them again whenever DCMTK is installed); the JPEG 2000 ones, which DCMTK
// cannot decode, are what opj_decompress (OpenJPEG 2.5.0) writes as raw
// little-endian samples.
var goldenPixels = map[string]string{
	// DCMTK
	"cr-chest-mono1-10bit-jpeg-extended-12bit.dcm":  "a7bd3e2e5034beb9a419de1f00cb55c3ad0d4a364cb3ce049a1204d5e2cb8956",
	"cr-chest-mono1-10bit-jpegls-near-lossless.dcm": "b7a3cab77065caade70fc3b98a08a3d8be15a677fbec3d7291d3a6adfd79408d",
	"cr-hip-jpeg-lossless.dcm":                      "9ed5d9818c250bb81ff9093a6c4d5c6032df281fce82b9a288de65c74348301e",
	"cr-chest-pa-jpeg-baseline.dcm":                 "938432fbb18d79f48568dc5b1fb06ffd2ace4a4ded4bfc490c35981e58f053fb",
	// opj_decompress
	"cr-chest-mono1-jpeg2000-lossy.dcm":        "88aa9135b12d8582316d1db5c45b4c2c55dd1da74c3c52a80a7be49f145c7149",
	"cr-extremity-mono1-jpeg2000-lossless.dcm": "85480a0287e37795bc96799747a69af475f3bf0c35203fac1010fc6e100821a7",
}

// TestOtherRadiographs: the real radiographs that have no native original
// decode with their dimensions, a plausible value range for their Bits
// Stored, and exactly the pixels of an independent decoder (goldenPixels).
func TestOtherRadiographs(t *testing.T) {
	tests := []struct {
		name            string
		rows, cols      int
		precision       int
		minMax, maxMin  uint32 // max must be ≥ minMax, min ≤ maxMin
		maxAllowed      uint32
		lossy           bool
		wantNearAtLeast int
	}{
		{name: "cr-chest-mono1-jpeg2000-lossy.dcm", rows: 1955, cols: 1841, precision: 15, minMax: 20000, maxMin: 2000, maxAllowed: 1<<15 - 1},
		{name: "cr-hip-jpeg-lossless.dcm", rows: 2140, cols: 1760, precision: 10, minMax: 800, maxMin: 50, maxAllowed: 1023},
		{name: "cr-extremity-mono1-jpeg2000-lossless.dcm", rows: 1760, cols: 1760, precision: 10, minMax: 1000, maxMin: 50, maxAllowed: 1023},
		{name: "cr-chest-pa-jpeg-baseline.dcm", rows: 1024, cols: 1024, precision: 8, minMax: 200, maxMin: 20, maxAllowed: 255},
		{name: "cr-chest-mono1-10bit-jpeg-extended-12bit.dcm", rows: 440, cols: 440, precision: 12, minMax: 3000, maxMin: 100, maxAllowed: 4095},
		{name: "cr-chest-mono1-10bit-jpegls-near-lossless.dcm", rows: 440, cols: 440, precision: 10, minMax: 900, maxMin: 10, maxAllowed: 1023},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := loadFixture(t, tc.name)
			needSupport(t, fx.TransferSyntaxUID)
			px, err := Decode(fx.Frame)
			require.NoError(t, err)
			require.Equal(t, tc.rows, px.Rows)
			require.Equal(t, tc.cols, px.Columns)
			require.Equal(t, tc.precision, px.Precision)
			require.Len(t, px.Data, tc.rows*tc.cols*fx.BitsAllocated/8)
			lo, hi := uint32(math.MaxUint32), uint32(0)
			hist := map[uint32]bool{}
			for _, v := range words(px) {
				lo, hi = min(lo, v), max(hi, v)
				hist[v] = true
			}
			t.Logf("%d × %d, %d-bit, values %d…%d, %d distinct", px.Columns, px.Rows, px.Precision, lo, hi, len(hist))
			require.LessOrEqual(t, hi, tc.maxAllowed, "above the precision")
			require.GreaterOrEqual(t, hi, tc.minMax, "too dark to be a radiograph")
			require.LessOrEqual(t, lo, tc.maxMin, "too bright to be a radiograph")
			require.Greater(t, len(hist), 200, "too few grey levels")
			sum := sha256.Sum256(px.Data)
			require.Equal(t, goldenPixels[tc.name], hex.EncodeToString(sum[:]), "pixels differ from the independent decoder's")
		})
	}
}

// TestAgainstDCMTK decodes every JPEG, JPEG-LS and RLE radiograph with
// DCMTK too and compares the pixels exactly (and so the golden sums).
// DCMTK is installed by testenv/setup.sh; without it the test skips, except
// under the project's test command, where it fails.
func TestAgainstDCMTK(t *testing.T) {
	tools := map[string]string{
		"cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm":    "dcmdjpeg",
		"cr-chest-mono1-10bit-jpeg-extended-12bit.dcm":  "dcmdjpeg",
		"cr-hip-jpeg-lossless.dcm":                      "dcmdjpeg",
		"cr-chest-pa-jpeg-baseline.dcm":                 "dcmdjpeg",
		"cr-chest-header-mono1-jpeg-baseline.dcm":       "dcmdjpeg",
		"cr-chest-mono1-10bit-jpegls-lossless.dcm":      "dcmdjpls",
		"cr-chest-mono1-10bit-jpegls-near-lossless.dcm": "dcmdjpls",
		"cr-chest-mono1-10bit-rle.dcm":                  "dcmdrle",
	}
	for name, tool := range tools {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(tool); err != nil {
				msg := tool + " (DCMTK) not on PATH: install it with testenv/setup.sh"
				if testenv.Required() {
					t.Fatal(msg)
				}
				t.Skip(msg)
			}
			out := filepath.Join(t.TempDir(), "native.dcm")
			cmd := exec.CommandContext(t.Context(), tool, filepath.Join(fixtureDir, name), out)
			b, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s: %s", tool, b)
			ref, err := parseFixture(out)
			require.NoError(t, err)

			px, err := Decode(loadFixture(t, name).Frame)
			require.NoError(t, err)
			require.Equal(t, ref.BitsAllocated, px.BitsAllocated)
			require.True(t, bytes.Equal(ref.Native, px.Data), "pixels differ from %s's", tool)
			if want, ok := goldenPixels[name]; ok {
				sum := sha256.Sum256(ref.Native)
				require.Equal(t, want, hex.EncodeToString(sum[:]), "golden sum of %s's pixels", tool)
			}
		})
	}
}

// TestSmallCases decodes every frame of testdata/small (made by
// TestGenerateSmall: every JPEG predictor, point transform, restart
// intervals, 8/12-bit DCT, colour with and without subsampling, JPEG-LS
// interleave modes and NEAR, signed data, odd sizes, RLE and JPEG 2000
// variants) and compares it with its reference.
func TestSmallCases(t *testing.T) {
	for _, c := range loadSmall(t) {
		t.Run(c.Name, func(t *testing.T) {
			needSupport(t, c.TS)
			ref, err := os.ReadFile(filepath.Join(smallDir, c.Ref))
			require.NoError(t, err)
			px, err := Decode(c.frame(t))
			require.NoError(t, err, c.Made)
			require.Equal(t, c.WantPI, px.PhotometricInterpretation)
			require.Equal(t, c.WantNear, px.NearLossless)
			require.Len(t, px.Data, len(ref))
			want := &Pixels{Data: ref, Rows: c.Rows, Columns: c.Cols, SamplesPerPixel: c.SPP, BitsAllocated: c.BA}
			maxErr := 0
			for i := 0; i < px.Len(); i++ {
				maxErr = max(maxErr, absInt(int(px.Word(i))-int(want.Word(i))))
			}
			require.LessOrEqual(t, maxErr, c.Tolerance, "max abs error against %s (%s)", c.Ref, c.Made)

			// Fragments are padded to an even length: trailing zeros are
			// harmless.
			f := c.frame(t)
			f.Data = append(f.Data, 0, 0)
			padded, err := Decode(f)
			require.NoError(t, err, "with two bytes of padding")
			require.Equal(t, px.Data, padded.Data, "with two bytes of padding")
		})
	}
}

// needSupport skips a test of a syntax this build does not decode: JPEG
// 2000 without cgo (the project's builds have cgo, and there it runs).
func needSupport(t *testing.T, ts string) {
	t.Helper()
	if !Supported(ts) {
		t.Skipf("%s is not supported in this build (no cgo)", Name(ts))
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestSupported(t *testing.T) {
	for _, ts := range []string{JPEGBaseline, JPEGExtended, JPEGLossless, JPEGLosslessSV1, RLELossless, JPEGLSLossless, JPEGLSNearLossless} {
		require.True(t, Supported(ts), ts)
	}
	for _, ts := range []string{JPEG2000Lossless, JPEG2000} {
		require.Equal(t, haveOpenJPEG, Supported(ts), ts)
	}
	for _, ts := range []string{"", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.201"} {
		require.False(t, Supported(ts), ts)
	}
}

// TestErrorsNameTheTransferSyntax: every failure is a *DecodeError naming
// the syntax, wrapping the right sentinel.
func TestErrorsNameTheTransferSyntax(t *testing.T) {
	sv1 := loadFixture(t, "cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm").Frame
	with := func(f Frame, edit func(*Frame)) Frame { edit(&f); return f }
	tests := []struct {
		name    string
		frame   Frame
		dec     Decoder
		want    error
		wantMsg string
	}{
		{"unknown syntax", with(sv1, func(f *Frame) { f.TransferSyntaxUID = "1.2.840.10008.1.2.4.100" }), Decoder{}, ErrUnsupported,
			"decoding transfer syntax 1.2.840.10008.1.2.4.100: not supported: not an encapsulated transfer syntax this package decodes"},
		{"native syntax", with(sv1, func(f *Frame) { f.TransferSyntaxUID = "1.2.840.10008.1.2.1" }), Decoder{}, ErrUnsupported, ""},
		{"no data", with(sv1, func(f *Frame) { f.Data = nil }), Decoder{}, ErrInvalidFrame,
			"decoding JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): invalid frame attributes: no encapsulated data"},
		{"zero rows", with(sv1, func(f *Frame) { f.Rows = 0 }), Decoder{}, ErrInvalidFrame, ""},
		{"negative columns", with(sv1, func(f *Frame) { f.Columns = -440 }), Decoder{}, ErrInvalidFrame, ""},
		{"65536 columns", with(sv1, func(f *Frame) { f.Columns = 65536 }), Decoder{}, ErrInvalidFrame, ""},
		{"4 samples", with(sv1, func(f *Frame) { f.SamplesPerPixel = 4 }), Decoder{}, ErrInvalidFrame, ""},
		{"bits allocated 12", with(sv1, func(f *Frame) { f.BitsAllocated = 12 }), Decoder{}, ErrInvalidFrame, ""},
		{"bits stored 17", with(sv1, func(f *Frame) { f.BitsStored = 17 }), Decoder{}, ErrInvalidFrame, ""},
		{"pixel representation 2", with(sv1, func(f *Frame) { f.PixelRepresentation = 2 }), Decoder{}, ErrInvalidFrame, ""},
		{"absurd size", with(sv1, func(f *Frame) { f.Rows, f.Columns, f.SamplesPerPixel, f.BitsAllocated = 65535, 65535, 3, 32 }), Decoder{}, ErrTooLarge,
			"decoding JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): frame exceeds the decoder's size limit: 65535 × 65535 × 3 samples of 32 bits is 51538034700 bytes, limit 268435456"},
		{"over a set limit", sv1, Decoder{MaxBytes: 440*440*2 - 1}, ErrTooLarge, ""},
		{"dimensions disagree", with(sv1, func(f *Frame) { f.Columns = 441 }), Decoder{}, ErrCorrupt,
			"decoding JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): corrupt or mismatched stream: JPEG frame is 440 × 440, the data set says 441 × 440"},
		{"samples disagree", with(sv1, func(f *Frame) { f.SamplesPerPixel = 3 }), Decoder{}, ErrCorrupt, ""},
		{"precision above bits allocated", with(sv1, func(f *Frame) { f.BitsAllocated, f.BitsStored = 8, 8 }), Decoder{}, ErrCorrupt, ""},
		{"garbage", with(sv1, func(f *Frame) { f.Data = bytes.Repeat([]byte{0x5A}, 1000) }), Decoder{}, ErrCorrupt,
			"decoding JPEG Lossless SV1 (1.2.840.10008.1.2.4.70): corrupt or mismatched stream: no JPEG SOI marker at the start of the frame"},
		{"header only", with(sv1, func(f *Frame) { f.Data = f.Data[:400] }), Decoder{}, ErrCorrupt, ""},
		{"half the stream", with(sv1, func(f *Frame) { f.Data = f.Data[:len(f.Data)/2] }), Decoder{}, ErrCorrupt, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			px, err := tc.dec.Decode(tc.frame)
			require.Nil(t, px)
			require.ErrorIs(t, err, tc.want)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.frame.TransferSyntaxUID, de.TransferSyntaxUID)
			require.Contains(t, err.Error(), tc.frame.TransferSyntaxUID)
			if tc.wantMsg != "" {
				require.Equal(t, tc.wantMsg, err.Error())
			}
		})
	}
}

// TestMalformed: for every codec, broken versions of a real frame —
// truncated, cut to its header, emptied, garbage, dimensions that
// disagree — fail with an error naming the syntax; and flipped bits in
// every small frame of testdata/small decode or fail, never panic.
func TestMalformed(t *testing.T) {
	for _, name := range []string{
		"cr-chest-mono1-10bit-rle.dcm",
		"cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm",
		"cr-chest-mono1-10bit-jpeg-extended-12bit.dcm",
		"cr-chest-mono1-10bit-jpegls-lossless.dcm",
		"cr-chest-mono1-10bit-jpegls-near-lossless.dcm",
		"cr-chest-mono1-10bit-jpeg2000-lossless.dcm",
	} {
		good := loadFixture(t, name).Frame
		if !Supported(good.TransferSyntaxUID) {
			continue
		}
		mustFail := func(t *testing.T, f Frame, want error) {
			t.Helper()
			px, err := Decode(f)
			require.Error(t, err)
			require.Nil(t, px)
			require.ErrorIs(t, err, want)
			require.Contains(t, err.Error(), Name(good.TransferSyntaxUID))
		}
		t.Run(Name(good.TransferSyntaxUID)+"/"+name, func(t *testing.T) {
			n := len(good.Data)
			for _, cut := range []int{1, 2, 3, 4, 10, 63, 64, 65, 100, 300, n / 4, n / 2, n * 9 / 10, n - 10} {
				f := good
				f.Data = good.Data[:cut]
				mustFail(t, f, ErrCorrupt)
			}
			for _, garbage := range [][]byte{{0}, {0xFF}, {0xFF, 0xD8}, {0xFF, 0x4F, 0xFF, 0x51}, bytes.Repeat([]byte{0xFF}, 4096), bytes.Repeat([]byte{0}, 4096)} {
				f := good
				f.Data = garbage
				mustFail(t, f, ErrCorrupt)
			}
			for _, edit := range []func(*Frame){
				func(f *Frame) { f.Rows++ },
				func(f *Frame) { f.Columns-- },
				func(f *Frame) { f.SamplesPerPixel = 3 },
			} {
				f := good
				edit(&f)
				mustFail(t, f, ErrCorrupt)
			}
		})
	}
	t.Run("flipped bits", func(t *testing.T) {
		for _, c := range loadSmall(t) {
			if !Supported(c.TS) {
				continue
			}
			good := c.frame(t)
			for i := 0; i < 64; i++ {
				f := good
				f.Data = bytes.Clone(good.Data)
				f.Data[(i*7919+13)%len(f.Data)] ^= byte(1 << (i % 8))
				if px, err := Decode(f); err == nil {
					require.Len(t, px.Data, c.Rows*c.Cols*c.SPP*c.BA/8)
				}
			}
		}
	})
}

// TestTruncatedFailsFast: a truncated stream fails at once. (Debian 12's
// CharLS 2.4.1 spins 5–7 s on one — see jpegls.go; the seed
// testdata/fuzz/FuzzJPEGLS/charls-2.4.1-truncated-hang is such a stream.)
func TestTruncatedFailsFast(t *testing.T) {
	for _, name := range []string{
		"cr-chest-mono1-10bit-jpegls-lossless.dcm",
		"cr-chest-mono1-10bit-jpegls-near-lossless.dcm",
		"cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm",
		"cr-chest-mono1-10bit-jpeg-extended-12bit.dcm",
		"cr-chest-mono1-10bit-jpeg2000-lossless.dcm",
		"cr-chest-mono1-10bit-rle.dcm",
	} {
		t.Run(name, func(t *testing.T) {
			good := loadFixture(t, name).Frame
			needSupport(t, good.TransferSyntaxUID)
			for _, cut := range []int{100, len(good.Data) / 2} {
				f := good
				f.Data = good.Data[:cut]
				start := time.Now()
				_, err := Decode(f)
				require.ErrorIs(t, err, ErrCorrupt)
				require.Less(t, time.Since(start), 2*time.Second, "cut at %d", cut)
			}
		})
	}
}
