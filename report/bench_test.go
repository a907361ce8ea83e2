package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

// BenchmarkPDFMarked2k: a marked result with a 2048 × 2048 heatmap, the
// largest radgate renders (inference.MaxHeatmapEdge): the cost the PDF adds
// to each delivery that attaches it.
func BenchmarkPDFMarked2k(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 2048, 2048))
	for y := 0; y < 2048; y++ {
		for x := 0; x < 2048; x++ {
			v := uint8((x ^ y) >> 3)
			img.SetRGBA(x, y, color.RGBA{v, v / 2, 255 - v, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	in := Input{Result: testResult(b, true)}
	in.Result.HeatmapPNG = buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PDF(in); err != nil {
			b.Fatal(err)
		}
	}
}
