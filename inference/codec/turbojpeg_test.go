//go:build cgo

package codec

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func smallCaseNamed(tb testing.TB, name string) (smallCase, Frame) {
	tb.Helper()
	for _, c := range loadSmall(tb) {
		if c.Name == name {
			return c, c.frame(tb)
		}
	}
	tb.Fatalf("no small case %s", name)
	return smallCase{}, Frame{}
}

// libjpeg-turbo decodes the 8-bit baseline frame to exactly what DCMTK's
// libjpeg decodes it to (the reference), and to what this package's own
// decoder gives; a wrong size, a truncated stream and a 12-bit stream are
// refused with the sentinel that says which.
func TestDecodeJPEGGray(t *testing.T) {
	c, fr := smallCaseNamed(t, "mono8-jpeg-baseline")
	ref, err := os.ReadFile(filepath.Join(smallDir, c.Ref))
	require.NoError(t, err)
	got, err := DecodeJPEGGray(fr.Data, fr.Columns, fr.Rows)
	require.NoError(t, err)
	require.Equal(t, ref, got, "bit-exact with the reference")
	own, err := Decode(fr)
	require.NoError(t, err)
	require.Equal(t, own.Data, got, "and with this package's decoder")

	_, err = DecodeJPEGGray(fr.Data, fr.Columns+1, fr.Rows)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "JPEG frame is 64×48, header says 65×48")
	_, err = DecodeJPEGGray(fr.Data[:len(fr.Data)/2], fr.Columns, fr.Rows)
	require.ErrorIs(t, err, ErrCorrupt, "a truncated stream is an error, not a grey fill")
	_, err = DecodeJPEGGray(nil, 64, 48)
	require.ErrorIs(t, err, ErrCorrupt)

	_, fr12 := smallCaseNamed(t, "mono10-jpeg-extended-12bit")
	_, err = DecodeJPEGGray(fr12.Data, fr12.Columns, fr12.Rows)
	require.ErrorIs(t, err, ErrUnsupported)
}

func TestEncodeJPEG(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := 0; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], rgba.Pix[i+3] = 200, 40, 40, 255
	}
	b, err := EncodeJPEG(rgba.Pix, 40, 30, rgba.Stride, false, 85)
	require.NoError(t, err)
	img, err := jpeg.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 40, 30), img.Bounds())
	r, g, _, _ := img.At(20, 15).RGBA()
	require.InDelta(t, 200, r>>8, 4)
	require.InDelta(t, 40, g>>8, 4)

	grey := image.NewGray(image.Rect(0, 0, 33, 17))
	for i := range grey.Pix {
		grey.Pix[i] = 90
	}
	b, err = EncodeJPEG(grey.Pix, 33, 17, grey.Stride, true, 85)
	require.NoError(t, err)
	img, err = jpeg.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	g8, ok := img.(*image.Gray)
	require.True(t, ok, "one grey component")
	require.InDelta(t, 90, g8.GrayAt(16, 8).Y, 2)

	_, err = EncodeJPEG(grey.Pix[:10], 33, 17, grey.Stride, true, 85)
	require.ErrorContains(t, err, "are not a 33×17 picture")
}

// FuzzDecodeJPEGGray fuzzes the bytes of the 64 × 48 8-bit baseline frame
// (and the real 1024² radiograph's) through libjpeg-turbo: every input
// decodes to exactly width × height bytes or is refused with a sentinel.
func FuzzDecodeJPEGGray(f *testing.F) {
	_, fr := smallCaseNamed(f, "mono8-jpeg-baseline")
	f.Add(fr.Data, uint16(fr.Columns), uint16(fr.Rows))
	real := loadFixture(f, "cr-chest-pa-jpeg-baseline.dcm").Frame
	f.Add(real.Data, uint16(real.Columns), uint16(real.Rows))
	f.Fuzz(func(t *testing.T, data []byte, cols, rows uint16) {
		if int(cols)*int(rows) > 4<<20 {
			return // the caller has checked the header's size against its limits
		}
		px, err := DecodeJPEGGray(data, int(cols), int(rows))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(px) != int(cols)*int(rows) {
			t.Fatalf("decoded %d bytes for %d × %d", len(px), cols, rows)
		}
	})
}
