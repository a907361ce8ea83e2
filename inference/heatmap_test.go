package inference

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

func gradientImage(w, h int) *Image {
	img := &Image{Width: w, Height: h, Pixels: make([]float32, w*h)}
	for i := range img.Pixels {
		img.Pixels[i] = float32(i%w) / float32(w)
	}
	return img
}

func isGrey(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r == g && g == b
}

func TestRenderHeatmapGeometry(t *testing.T) {
	// A wide 300×200 image, centre-cropped to x 50..250; CAM hot in its
	// top-left cell only.
	img := gradientImage(300, 200)
	cam := make([]float32, 49)
	cam[0] = 3
	res := Result{Probability: 0.9, Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: image.Rect(50, 0, 250, 200), SourceWidth: 300, SourceHeight: 200}
	b, w, h, err := RenderHeatmap(img, res, HeatmapOptions{})
	require.NoError(t, err)
	require.Equal(t, [2]int{300, 200}, [2]int{w, h})
	out := decodePNG(t, b)
	require.Equal(t, image.Rect(0, 0, 300, 200), out.Bounds())
	require.False(t, isGrey(out.At(55, 5)), "hot cell at the crop's top-left is coloured")
	r, _, bl, _ := out.At(55, 5).RGBA()
	require.Greater(t, r, bl, "the peak is red in the jet map")
	require.True(t, isGrey(out.At(20, 5)), "left of the crop stays grey")
	require.True(t, isGrey(out.At(280, 5)), "right of the crop stays grey")
	require.True(t, isGrey(out.At(200, 150)), "cold CAM cells stay grey")
	g := color.GrayModel.Convert(out.At(280, 5)).(color.Gray)
	require.InDelta(t, 255*280.0/300, float64(g.Y), 1.5, "grey is the windowed radiograph")
}

func TestRenderHeatmapRules(t *testing.T) {
	img := gradientImage(64, 48)
	base := Result{CAM: make([]float32, 49), CAMWidth: 7, CAMHeight: 7,
		Crop: image.Rect(8, 0, 56, 48), SourceWidth: 64, SourceHeight: 48}

	t.Run("not marked: no heatmap", func(t *testing.T) {
		r := base
		r.Probability, r.Marked = 0.4, false
		_, _, _, err := RenderHeatmap(img, r, HeatmapOptions{})
		require.ErrorIs(t, err, ErrNotMarked)
	})
	t.Run("all-zero CAM stays zero: plain grey", func(t *testing.T) {
		r := base
		r.Marked = true
		b, w, h, err := RenderHeatmap(img, r, HeatmapOptions{})
		require.NoError(t, err)
		out := decodePNG(t, b)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				require.True(t, isGrey(out.At(x, y)))
			}
		}
	})
	t.Run("large sources are downscaled to MaxHeatmapEdge", func(t *testing.T) {
		big := gradientImage(3000, 2000)
		r := base
		r.Marked, r.Crop, r.SourceWidth, r.SourceHeight = true, image.Rect(500, 0, 2500, 2000), 3000, 2000
		r.CAM = append([]float32(nil), r.CAM...)
		r.CAM[24] = 1
		b, w, h, err := RenderHeatmap(big, r, HeatmapOptions{})
		require.NoError(t, err)
		require.Equal(t, MaxHeatmapEdge, 2048)
		require.Equal(t, [2]int{2048, 1365}, [2]int{w, h})
		require.Equal(t, image.Rect(0, 0, 2048, 1365), decodePNG(t, b).Bounds())
	})
	t.Run("a result for another image is refused", func(t *testing.T) {
		r := base
		r.Marked, r.SourceWidth = true, 65
		_, _, _, err := RenderHeatmap(img, r, HeatmapOptions{})
		require.ErrorContains(t, err, "result is for a 65×48 image")
	})
}

func TestRenderPreview(t *testing.T) {
	img := gradientImage(1200, 1000)
	cam := make([]float32, 49)
	cam[0] = 3
	res := Result{Probability: 0.9, Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: image.Rect(100, 0, 1100, 1000), SourceWidth: 1200, SourceHeight: 1000}

	t.Run("marked: the overlay in colour at PreviewEdge", func(t *testing.T) {
		b, w, h, err := RenderPreview(img, res, HeatmapOptions{})
		require.NoError(t, err)
		require.Equal(t, [2]int{PreviewEdge, 427}, [2]int{w, h})
		out, err := jpeg.Decode(bytes.NewReader(b))
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, w, h), out.Bounds())
		// The hot cell is the crop's top-left: source (100..243, 0..143)
		// is preview (43..104, 0..61).
		r, _, bl, _ := out.At(50, 8).RGBA()
		require.Greater(t, r, bl+0x2000, "the peak is red in the jet map")
		r, g, bl, _ := out.At(480, 400).RGBA()
		require.InDelta(t, r, g, 0x800, "cold cells stay grey")
		require.InDelta(t, g, bl, 0x800, "cold cells stay grey")
		gr := color.GrayModel.Convert(out.At(480, 400)).(color.Gray)
		require.InDelta(t, 255*480.0/512, float64(gr.Y), 4, "grey is the windowed radiograph")
	})
	t.Run("not marked: the radiograph in grey", func(t *testing.T) {
		r := res
		r.Marked = false
		b, w, h, err := RenderPreview(img, r, HeatmapOptions{})
		require.NoError(t, err)
		out, err := jpeg.Decode(bytes.NewReader(b))
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, w, h), out.Bounds())
		_, isGray := out.(*image.Gray)
		require.True(t, isGray, "one grey component")
		require.InDelta(t, 255*50.0/512, float64(out.(*image.Gray).GrayAt(50, 8).Y), 4)
	})
	t.Run("a small image keeps its size", func(t *testing.T) {
		small := gradientImage(64, 48)
		r := Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7, Crop: image.Rect(8, 0, 56, 48), SourceWidth: 64, SourceHeight: 48}
		_, w, h, err := RenderPreview(small, r, HeatmapOptions{})
		require.NoError(t, err)
		require.Equal(t, [2]int{64, 48}, [2]int{w, h})
	})
	t.Run("a broken CAM is refused when marked", func(t *testing.T) {
		r := res
		r.CAM = cam[:10]
		_, _, _, err := RenderPreview(img, r, HeatmapOptions{})
		require.ErrorContains(t, err, "CAM of 10 values is not 7×7")
	})
}

// referenceOverlayRow is overlay.row written pixel by pixel, as it was
// before the CAM rows were interpolated once per CAM row: the bilinear
// upsampling of the CAM at every pixel, horizontal then vertical.
func referenceOverlayRow(o *overlay, y int, dst []byte, bpp int) {
	grow := o.grey(y, o.buf)
	var ty camTap
	if o.colour {
		ty = o.ys[y]
	}
	cam, cw := o.cam, o.cw
	for x := 0; x < o.w; x++ {
		g := float64(grow[x])
		p := dst[bpp*x : bpp*x+3]
		if o.colour && ty.inside {
			if tx := o.xs[x]; tx.inside {
				top := cam[ty.i0*cw+tx.i0]*(1-tx.f) + cam[ty.i0*cw+tx.i1]*tx.f
				bot := cam[ty.i1*cw+tx.i0]*(1-tx.f) + cam[ty.i1*cw+tx.i1]*tx.f
				if h := top*(1-ty.f) + bot*ty.f; h > 0 {
					c := jetLUT[int(h*(jetSteps-1)+0.5)]
					a := o.alpha * h
					p[0], p[1], p[2] = to8((1-a)*g+a*c[0]), to8((1-a)*g+a*c[1]), to8((1-a)*g+a*c[2])
					continue
				}
			}
		}
		v := to8(g)
		p[0], p[1], p[2] = v, v, v
	}
}

// TestOverlayRowsAsPerPixel: the overlay's rows, drawn from the CAM rows
// interpolated once, are byte for byte the per-pixel bilinear upsampling
// (referenceOverlayRow): 8- and 10-bit radiographs, random CAMs with
// negative cells, the model's crop and one inside it, at the preview's
// size, another size and the source's own, RGB and RGBA.
func TestOverlayRowsAsPerPixel(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	for _, name := range []string{"cr-chest-pa-jpeg-baseline.dcm", "cr-chest-mono1-10bit-explicit-le.dcm"} {
		img, err := DecodeFile(testenv.Testdata("cxr-dicom", name))
		require.NoError(t, err)
		for _, inset := range []int{0, 37} {
			cam := make([]float32, 7*5)
			for i := range cam {
				cam[i] = rng.Float32()*2 - 0.5
			}
			res := Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 5,
				Crop:        Preprocessing{Crop: CropCenterSquare}.CropRect(img.Width, img.Height).Inset(inset),
				SourceWidth: img.Width, SourceHeight: img.Height}
			for _, edge := range []int{PreviewEdge, 300, max(img.Width, img.Height)} {
				o, err := newOverlay(img, res, edge, 0.6, true)
				require.NoError(t, err)
				for _, bpp := range []int{3, 4} {
					want := make([]byte, bpp*o.w*o.h)
					got := make([]byte, bpp*o.w*o.h)
					for y := 0; y < o.h; y++ {
						referenceOverlayRow(o, y, want[y*bpp*o.w:(y+1)*bpp*o.w], bpp)
						o.row(y, got[y*bpp*o.w:(y+1)*bpp*o.w], bpp)
					}
					require.Truef(t, bytes.Equal(want, got), "%s, inset %d, edge %d, %d bytes a pixel", name, inset, edge, bpp)
				}
				o.release()
			}
		}
	}
}
