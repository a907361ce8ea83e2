package inference

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The streamed PNG decodes with the standard library to exactly the rows
// written, for odd sizes and random content (which the Up filter must
// survive byte for byte).
func TestPNGWriterRoundTrip(t *testing.T) {
	for _, size := range [][2]int{{1, 1}, {3, 5}, {17, 4}, {256, 3}} {
		w, h := size[0], size[1]
		rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
		want := make([]byte, 3*w*h)
		for i := range want {
			want[i] = byte(rng.UintN(256))
		}
		enc, err := newPNGWriter(w, h)
		require.NoError(t, err)
		for y := 0; y < h; y++ {
			copy(enc.row(), want[3*w*y:3*w*(y+1)])
			require.NoError(t, enc.writeRow())
		}
		b, err := enc.finish()
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(b))
		require.NoError(t, err)
		require.Equal(t, w, img.Bounds().Dx())
		require.Equal(t, h, img.Bounds().Dy())
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bl, a := img.At(x, y).RGBA()
				i := 3 * (w*y + x)
				require.Equal(t, []uint32{uint32(want[i]), uint32(want[i+1]), uint32(want[i+2]), 255},
					[]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}, "pixel %d,%d of %dx%d", x, y, w, h)
			}
		}
	}
}
