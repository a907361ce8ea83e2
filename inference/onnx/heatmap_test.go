package onnx

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

func isGrey(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r == g && g == b
}

func TestHeatmapFromEngine(t *testing.T) {
	for _, tc := range []struct {
		engine, dir, file string
		w, h              int
	}{
		{"cxr-pneumonia-densenet121", "pneumoniamnist-val-dicom", "PMV0000.dcm", 28, 28},
		{"cxr-pneumonia-densenet121-k224", "cxr-dicom", "cr-chest-mono1-10bit-deflated.dcm", 440, 440},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			e := newTestEngine(t, tc.engine)
			img, err := inference.DecodeFile(testenv.Testdata(tc.dir, tc.file))
			require.NoError(t, err)
			res, err := e.Score(t.Context(), []*inference.Image{img})
			require.NoError(t, err)
			require.True(t, res[0].Marked, "%s scores %.3f", tc.file, res[0].Probability)
			b, w, h, err := inference.RenderHeatmap(img, res[0], inference.HeatmapOptions{})
			require.NoError(t, err)
			require.Equal(t, [2]int{tc.w, tc.h}, [2]int{w, h})
			out := decodePNG(t, b)
			require.Equal(t, image.Rect(0, 0, tc.w, tc.h), out.Bounds())
			coloured := 0
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					if !isGrey(out.At(x, y)) {
						coloured++
					}
				}
			}
			require.Positive(t, coloured)
		})
	}
	t.Run("an unmarked score gets none", func(t *testing.T) {
		e := newTestEngine(t, inference.DefaultEngineID)
		img, err := inference.DecodeFile(filepath.Join(testenv.Testdata("pneumoniamnist-val-dicom"), "PMV0003.dcm"))
		require.NoError(t, err)
		res, err := e.Score(t.Context(), []*inference.Image{img})
		require.NoError(t, err)
		require.False(t, res[0].Marked)
		_, _, _, err = inference.RenderHeatmap(img, res[0], inference.HeatmapOptions{})
		require.ErrorIs(t, err, inference.ErrNotMarked)
	})
}
