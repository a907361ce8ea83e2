package inference

import (
	"image"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCropRect(t *testing.T) {
	for _, tc := range []struct {
		crop string
		w, h int
		want image.Rectangle
	}{
		{CropCenterSquare, 28, 28, image.Rect(0, 0, 28, 28)},
		{CropCenterSquare, 1841, 1955, image.Rect(0, 57, 1841, 1898)},
		{CropCenterSquare, 300, 200, image.Rect(50, 0, 250, 200)},
		{CropCenterSquare, 201, 200, image.Rect(0, 0, 200, 200)}, // odd difference: offset rounded down
		{CropNone, 300, 200, image.Rect(0, 0, 300, 200)},
	} {
		require.Equal(t, tc.want, Preprocessing{Crop: tc.crop, Size: 224, Resize: ResizeArea}.CropRect(tc.w, tc.h))
	}
}

func TestResize(t *testing.T) {
	t.Run("area: PyTorch's bins (adaptive average pooling)", func(t *testing.T) {
		// 5 → 2: bins [0,3) and [2,5) share pixel 2.
		src := []float32{1, 2, 3, 4, 5}
		dst := make([]float32, 2)
		Resize(src, 5, image.Rect(0, 0, 5, 1), dst, 2, 1, false)
		require.InDeltaSlice(t, []float32{2, 4}, dst, 1e-6)
	})
	t.Run("area-exact: fractional weights", func(t *testing.T) {
		src := []float32{1, 2, 3, 4, 5}
		dst := make([]float32, 2)
		Resize(src, 5, image.Rect(0, 0, 5, 1), dst, 2, 1, true)
		// [0,2.5): (1+2+0.5·3)/2.5 = 1.8; [2.5,5): (0.5·3+4+5)/2.5 = 4.2
		require.InDeltaSlice(t, []float32{1.8, 4.2}, dst, 1e-6)
	})
	t.Run("integer upsampling replicates pixels", func(t *testing.T) {
		src := []float32{0, 1, 2, 3}
		for _, exact := range []bool{false, true} {
			dst := make([]float32, 16)
			Resize(src, 2, image.Rect(0, 0, 2, 2), dst, 4, 4, exact)
			require.Equal(t, []float32{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3}, dst)
		}
	})
	t.Run("a sub-rectangle with a stride", func(t *testing.T) {
		// 4×2 plane; the right 2×2 square averages to one value.
		src := []float32{9, 9, 1, 3, 9, 9, 5, 7}
		dst := make([]float32, 1)
		Resize(src, 4, image.Rect(2, 0, 4, 2), dst, 1, 1, false)
		require.InDelta(t, 4, dst[0], 1e-6)
	})
	t.Run("constant stays constant", func(t *testing.T) {
		src := make([]float32, 1000*700)
		for i := range src {
			src[i] = 0.25
		}
		for _, exact := range []bool{false, true} {
			dst := make([]float32, 224*224)
			Resize(src, 1000, image.Rect(150, 0, 850, 700), dst, 224, 224, exact)
			for _, v := range dst {
				require.InDelta(t, 0.25, v, 1e-6)
			}
		}
	})
}

func TestPreprocess(t *testing.T) {
	img := &Image{Width: 6, Height: 4, Pixels: make([]float32, 24)}
	for y := 0; y < 4; y++ {
		for x := 0; x < 6; x++ {
			img.Pixels[y*6+x] = float32(x)
		}
	}
	p := Preprocessing{Crop: CropCenterSquare, Size: 2, Resize: ResizeArea}
	dst := make([]float32, 4)
	r, err := p.Preprocess(img, dst)
	require.NoError(t, err)
	require.Equal(t, image.Rect(1, 0, 5, 4), r)
	require.Equal(t, []float32{1.5, 3.5, 1.5, 3.5}, dst)

	p.Crop = CropNone
	r, err = p.Preprocess(img, dst)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 6, 4), r)
	require.Equal(t, []float32{1, 4, 1, 4}, dst)

	_, err = p.Preprocess(img, make([]float32, 3))
	require.ErrorContains(t, err, "destination holds 3 values, want 4")
	_, err = Preprocessing{Crop: "middle", Size: 2, Resize: ResizeArea}.Preprocess(img, dst)
	require.ErrorContains(t, err, `crop "middle"`)
}
