package inference

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// win is the PS3.3 C.11.2.1.2.1 linear function to 0..1, written out.
func win(x, c, w float64) float64 {
	switch {
	case x <= c-0.5-(w-1)/2:
		return 0
	case x > c-0.5+(w-1)/2:
		return 1
	}
	return (x-(c-0.5))/(w-1) + 0.5
}

func TestPixelPipeline(t *testing.T) {
	mono2x8 := imageAttrs(1, 4, 8, 8, 0, "MONOCHROME2")
	mono2x16 := imageAttrs(1, 4, 16, 12, 0, "MONOCHROME2")
	signed16 := imageAttrs(1, 4, 16, 12, 1, "MONOCHROME2")
	voiLUT := tSeq(0x0028, 0x3010, []tElem{
		tUS(0x0028, 0x3002, 4, 10, 8),
		tUS(0x0028, 0x3006, 0, 64, 128, 255),
	})
	cases := []struct {
		name    string
		ts      string
		elems   []tElem
		pixels  []byte
		want    []float64
		wantVOI string
	}{
		{
			name:    "8-bit MONOCHROME2, no window: the stored range, never min-max",
			elems:   mono2x8,
			pixels:  []byte{100, 150, 200, 120},
			want:    []float64{100.0 / 255, 150.0 / 255, 200.0 / 255, 120.0 / 255},
			wantVOI: "stored range 0..255",
		},
		{
			name:    "implicit VR little endian decodes the same",
			ts:      TSImplicitVRLittleEndian,
			elems:   mono2x8,
			pixels:  []byte{0, 255, 51, 204},
			want:    []float64{0, 1, 0.2, 0.8},
			wantVOI: "stored range 0..255",
		},
		{
			name:   "MONOCHROME1 is inverted after VOI",
			elems:  imageAttrs(1, 4, 8, 8, 0, "MONOCHROME1"),
			pixels: []byte{0, 255, 51, 204},
			want:   []float64{1, 0, 0.8, 0.2},
		},
		{
			name:    "12 of 16 bits, window 2048/4096",
			elems:   append(mono2x16, tStr(0x0028, 0x1050, "DS", "2048"), tStr(0x0028, 0x1051, "DS", "4096")),
			pixels:  words16(0, 2047, 2048, 4095),
			want:    []float64{win(0, 2048, 4096), win(2047, 2048, 4096), win(2048, 2048, 4096), win(4095, 2048, 4096)},
			wantVOI: "window 2048/4096 (LINEAR)",
		},
		{
			name:   "first of several window pairs; values outside are clipped",
			elems:  append(mono2x16, tStr(0x0028, 0x1050, "DS", "100\\2000"), tStr(0x0028, 0x1051, "DS", "101\\10")),
			pixels: words16(0, 49, 100, 151),
			want:   []float64{0, win(49, 100, 101), win(100, 100, 101), 1},
		},
		{
			name:   "window width 1 is a threshold at centre - 0.5",
			elems:  append(mono2x16, tStr(0x0028, 0x1050, "DS", "100"), tStr(0x0028, 0x1051, "DS", "1")),
			pixels: words16(0, 99, 100, 101),
			want:   []float64{0, 0, 1, 1},
		},
		{
			name: "LINEAR_EXACT window",
			elems: append(mono2x16, tStr(0x0028, 0x1050, "DS", "100"), tStr(0x0028, 0x1051, "DS", "200"),
				tStr(0x0028, 0x1056, "CS", "LINEAR_EXACT")),
			pixels: words16(0, 50, 100, 300),
			want:   []float64{0, 0.25, 0.5, 1},
		},
		{
			name: "SIGMOID window",
			elems: append(mono2x16, tStr(0x0028, 0x1050, "DS", "100"), tStr(0x0028, 0x1051, "DS", "200"),
				tStr(0x0028, 0x1056, "CS", "SIGMOID")),
			pixels: words16(0, 100, 150, 4000),
			want:   []float64{1 / (1 + math.Exp(2)), 0.5, 1 / (1 + math.Exp(-1)), 1 / (1 + math.Exp(-4*3900.0/200))},
		},
		{
			name: "rescale slope/intercept before the window",
			elems: append(mono2x16, tStr(0x0028, 0x1052, "DS", "-100"), tStr(0x0028, 0x1053, "DS", "2"),
				tStr(0x0028, 0x1050, "DS", "0"), tStr(0x0028, 0x1051, "DS", "201")),
			pixels: words16(0, 50, 75, 100),
			want:   []float64{win(-100, 0, 201), win(0, 0, 201), win(50, 0, 201), win(100, 0, 201)},
		},
		{
			name:    "rescale without a window: the rescaled stored range",
			elems:   append(mono2x16, tStr(0x0028, 0x1052, "DS", "-1000"), tStr(0x0028, 0x1053, "DS", "1")),
			pixels:  words16(0, 1000, 2000, 4095),
			want:    []float64{0, 1000.0 / 4095, 2000.0 / 4095, 1},
			wantVOI: "stored range -1000..3095",
		},
		{
			name:    "VOI LUT Sequence when there is no window",
			elems:   append(mono2x16, voiLUT),
			pixels:  words16(9, 11, 12, 500),
			want:    []float64{0, 64.0 / 255, 128.0 / 255, 1},
			wantVOI: "VOI LUT Sequence",
		},
		{
			name:   "a window wins over a VOI LUT Sequence",
			elems:  append(mono2x16, voiLUT, tStr(0x0028, 0x1050, "DS", "2048"), tStr(0x0028, 0x1051, "DS", "4096")),
			pixels: words16(9, 11, 12, 500),
			want:   []float64{win(9, 2048, 4096), win(11, 2048, 4096), win(12, 2048, 4096), win(500, 2048, 4096)},
		},
		{
			name: "Modality LUT Sequence replaces rescale",
			elems: append(mono2x16, tSeq(0x0028, 0x3000, []tElem{
				tUS(0x0028, 0x3002, 3, 0, 10),
				tUS(0x0028, 0x3006, 0, 512, 1023),
				tStr(0x0028, 0x3004, "LO", "TEST"),
			})),
			pixels:  words16(0, 1, 2, 7),
			want:    []float64{0, 512.0 / 1023, 1, 1},
			wantVOI: "stored range 0..1023",
		},
		{
			name:    "signed 12 of 16 bits: sign extension and the signed range",
			elems:   signed16,
			pixels:  words16(0x0FFF, 0x0800, 0x0000, 0x07FF),
			want:    []float64{2047.0 / 4095, 0, 2048.0 / 4095, 1},
			wantVOI: "stored range -2048..2047",
		},
		{
			name:   "signed: bits above Bits Stored are masked before sign extension",
			elems:  signed16,
			pixels: words16(0xFFFF, 0xF800, 0x7000, 0xA7FF),
			want:   []float64{2047.0 / 4095, 0, 2048.0 / 4095, 1},
		},
		{
			name:   "unsigned values above Bits Stored are kept (encoder overflow, as the reference pipeline reads them)",
			elems:  append(mono2x16, tStr(0x0028, 0x1050, "DS", "2080"), tStr(0x0028, 0x1051, "DS", "4096")),
			pixels: words16(40, 4095, 4104, 4120),
			want:   []float64{win(40, 2080, 4096), win(4095, 2080, 4096), win(4104, 2080, 4096), win(4120, 2080, 4096)},
		},
		{
			name:   "unsigned with an overlay in the unused bits: masked to Bits Stored",
			elems:  append(mono2x16, tUS(0x6000, 0x0100, 16), tUS(0x6000, 0x0102, 15)),
			pixels: words16(0x8000, 0x8FFF, 0x0800, 0xFFFF),
			want:   []float64{0, 1, 2048.0 / 4095, 1},
		},
		{
			name: "High Bit above Bits Stored − 1 shifts the value down",
			elems: replaceAttr(replaceAttr(mono2x16, tUS(0x0028, 0x0101, 8)),
				tUS(0x0028, 0x0102, 11)),
			pixels: words16(0x0000, 0x0FF0, 0x0800, 0x0010),
			want:   []float64{0, 1, 128.0 / 255, 1.0 / 255},
		},
		{
			name:   "10 of 16 bits without a window: 0..1023",
			elems:  replaceAttr(replaceAttr(mono2x16, tUS(0x0028, 0x0101, 10)), tUS(0x0028, 0x0102, 9)),
			pixels: words16(0, 1023, 512, 256),
			want:   []float64{0, 1, 512.0 / 1023, 256.0 / 1023},
		},
		{
			name:   "odd pixel count: 8-bit data padded to even length",
			elems:  imageAttrs(1, 3, 8, 8, 0, "MONOCHROME2"),
			pixels: []byte{0, 255, 51, 0},
			want:   []float64{0, 1, 0.2},
		},
		{
			name:   "multi-frame: the first frame only",
			elems:  append(mono2x8, tStr(0x0028, 0x0008, "IS", "2")),
			pixels: []byte{0, 255, 51, 204, 9, 9, 9, 9},
			want:   []float64{0, 1, 0.2, 0.8},
		},
		{
			name: "RGB: luma of the stored range",
			elems: replaceAttr(replaceAttr(imageAttrs(1, 2, 8, 8, 0, "RGB"), tUS(0x0028, 0x0002, 3)),
				tUS(0x0028, 0x0006, 0)),
			pixels: []byte{255, 0, 0, 0, 255, 0},
			want:   []float64{0.299, 0.587},
		},
	}
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
			img, err := Decode(data)
			require.NoError(t, err)
			require.Len(t, img.Plane(), len(tc.want))
			for i, w := range tc.want {
				require.InDeltaf(t, w, img.Plane()[i], 1e-6, "pixel %d", i)
			}
			if tc.wantVOI != "" {
				require.Equal(t, tc.wantVOI, img.VOI)
			}
		})
	}
}

func bytesPerSample(elems []tElem) int {
	for _, e := range elems {
		if e.group == 0x0028 && e.elem == 0x0100 {
			return int(e.value[0]) / 8
		}
	}
	return 1
}

func TestPixelPipelineErrors(t *testing.T) {
	mono := imageAttrs(2, 2, 8, 8, 0, "MONOCHROME2")
	cases := []struct {
		name  string
		elems []tElem
		want  error
		msg   string
	}{
		{"pixel data too short", append(mono, tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2})), ErrMalformed, "holds 2 bytes"},
		{"no pixel data", mono, ErrNoPixelData, "no Pixel Data"},
		{"palette colour", append(replaceAttr(mono, tStr(0x0028, 0x0004, "CS", "PALETTE COLOR")),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})), ErrUnsupportedImage, "PALETTE COLOR"},
		{"bits stored above bits allocated", append(replaceAttr(mono, tUS(0x0028, 0x0101, 12)),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})), ErrMalformed, "Bits Stored 12"},
		{"zero rows", append(replaceAttr(mono, tUS(0x0028, 0x0010, 0)),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})), ErrMalformed, "Rows 0"},
		{"rescale slope not a number", append(mono, tStr(0x0028, 0x1053, "DS", "abc"),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})), ErrMalformed, "Rescale Slope"},
		{"VOI LUT without data", append(mono, tSeq(0x0028, 0x3010, []tElem{tUS(0x0028, 0x3002, 4, 0, 8)}),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})), ErrMalformed, "no LUT Data"},
		{"float pixel data", append(mono, tBytes(0x7FE0, 0x0008, "OF", make([]byte, 16))), ErrUnsupportedImage, "float"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(buildDICOM(TSExplicitVRLittleEndian, tc.elems...))
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	t.Run("a corrupt length fails fast, before any allocation", func(t *testing.T) {
		data := buildDICOM(TSExplicitVRLittleEndian, append(mono, tStr(0x0008, 0x1030, "LO", "XR CHEST"),
			tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4}))...)
		i := bytes.Index(data, []byte("XR CHEST"))
		require.Positive(t, i)
		data[i-2], data[i-1] = 0xF0, 0xFF // LO's 2-byte length → 65520
		_, err := Decode(data)
		require.ErrorIs(t, err, ErrMalformed)
		require.Contains(t, err.Error(), "element (0008,1030) length 65520 runs past the end of the data")
	})
	t.Run("not DICOM", func(t *testing.T) {
		_, err := Decode([]byte("hello"))
		require.ErrorIs(t, err, ErrNotDICOM)
	})
	t.Run("unknown transfer syntax", func(t *testing.T) {
		data := buildDICOM("1.2.3.4.5", append(mono, tBytes(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4}))...)
		_, err := Decode(data)
		require.EqualError(t, err, "transfer syntax 1.2.3.4.5 (unknown transfer syntax) is not decoded yet")
		m, err := ReadHeader(data)
		require.NoError(t, err)
		require.Equal(t, "DX", m.Modality)
	})
}

func TestJPEGBaselineSynthetic(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 16, 8))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 2)
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, g, &jpeg.Options{Quality: 100}))
	stream := buf.Bytes()
	for _, tc := range []struct {
		name      string
		fragments [][]byte
		mono1     bool
	}{
		{"one fragment", [][]byte{stream}, false},
		{"split over three fragments", [][]byte{stream[:100], stream[100:200], stream[200:]}, false},
		{"MONOCHROME1 header", [][]byte{stream}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ph := "MONOCHROME2"
			if tc.mono1 {
				ph = "MONOCHROME1"
			}
			data := buildDICOM(TSJPEGBaseline, append(imageAttrs(8, 16, 8, 8, 0, ph), tEncapsulated(tc.fragments...))...)
			img, err := Decode(data)
			require.NoError(t, err)
			require.Equal(t, 16, img.Width)
			require.Equal(t, 8, img.Height)
			for i, v := range g.Pix {
				want := float64(v) / 255
				if tc.mono1 {
					want = 1 - want
				}
				require.InDeltaf(t, want, img.Plane()[i], 3.0/255, "pixel %d", i) // JPEG q100 rounding
			}
		})
	}
	t.Run("size differs from the header", func(t *testing.T) {
		data := buildDICOM(TSJPEGBaseline, append(imageAttrs(9, 16, 8, 8, 0, "MONOCHROME2"), tEncapsulated(stream))...)
		_, err := Decode(data)
		require.ErrorIs(t, err, ErrMalformed)
	})
	t.Run("corrupt stream", func(t *testing.T) {
		data := buildDICOM(TSJPEGBaseline, append(imageAttrs(8, 16, 8, 8, 0, "MONOCHROME2"), tEncapsulated(stream[:60]))...)
		_, err := Decode(data)
		require.ErrorIs(t, err, ErrMalformed)
	})
}

// Decode must return an error, never panic (nor allocate what a corrupt
// length declares), on any damage to a file: every truncation point and
// random byte changes in the first 2 KB.
func TestDecodeNeverPanics(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
	}
	var jb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jb, g, nil))
	synthetic := buildDICOM(TSJPEGBaseline, append(imageAttrs(32, 32, 8, 8, 0, "MONOCHROME2"),
		tSeq(0x0028, 0x3010, []tElem{tUS(0x0028, 0x3002, 2, 0, 8), tUS(0x0028, 0x3006, 0, 255)}),
		tEncapsulated(jb.Bytes()[:200], jb.Bytes()[200:]))...)
	for _, name := range []string{
		testenv.Testdata("pneumoniamnist-val-dicom", "PMV0005.dcm"),
		testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-deflated.dcm"),
		"synthetic JPEG",
	} {
		orig := synthetic
		if name != "synthetic JPEG" {
			var err error
			orig, err = os.ReadFile(name)
			require.NoError(t, err)
		}
		_, err := Decode(orig)
		require.NoError(t, err, name)
		step := max(1, len(orig)/600)
		for n := 0; n < len(orig); n += step {
			_, _ = Decode(orig[:n])
			_, _ = ReadHeader(orig[:n])
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for range 300 {
			b := append([]byte(nil), orig...)
			for range 4 {
				i := 132 + rng.IntN(min(len(b)-132, 2000))
				b[i] = byte(rng.UintN(256))
			}
			_, _ = Decode(b)
			_, _ = ReadHeader(b)
		}
	}
}

func TestReadHeader(t *testing.T) {
	m, err := ReadHeaderFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-be.dcm"))
	require.NoError(t, err)
	require.Equal(t, TSExplicitVRBigEndian, m.TransferSyntaxUID)
	require.Equal(t, "Explicit VR Big Endian", m.TransferSyntaxName())
	require.Equal(t, "CR", m.Modality)
	require.Equal(t, "CHEST", m.BodyPartExamined)
	require.Equal(t, 440, m.Rows)
	require.Equal(t, 10, m.BitsStored)
	require.True(t, m.HasWindow)
	require.Equal(t, 550.0, m.WindowCenter)
	require.Equal(t, 1024.0, m.WindowWidth)
	require.NotEmpty(t, m.StudyInstanceUID)
	require.NotEmpty(t, m.SeriesInstanceUID)
	require.Equal(t, "RGS0003", m.AccessionNumber)
}
