package derived

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestThumbnail(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	b, err := Thumbnail(src, 300)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	g, ok := img.(*image.Gray)
	require.True(t, ok, "grey, got %T", img)
	r := g.Bounds()
	require.Equal(t, 300, max(r.Dx(), r.Dy()), "long edge scaled to the bound")
	lo, hi := uint8(255), uint8(0)
	for _, v := range g.Pix {
		lo, hi = min(lo, v), max(hi, v)
	}
	require.Greater(t, int(hi)-int(lo), 100, "a radiograph, not a flat image")

	_, err = Thumbnail([]byte("not DICOM"), 300)
	require.True(t, errors.Is(err, ErrSource), "%v", err)
}
