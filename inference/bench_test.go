package inference

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// synthetic2048 is a 2048×2048, 12-of-16-bit MONOCHROME1 DX with a window,
// as a Part 10 file in memory.
func synthetic2048() []byte {
	const n = 2048
	pix := make([]byte, 2*n*n)
	for i := 0; i < n*n; i++ {
		binary.LittleEndian.PutUint16(pix[2*i:], uint16((i*7+i/n*13)%4096))
	}
	elems := append(imageAttrs(n, n, 16, 12, 0, "MONOCHROME1"),
		tStr(0x0028, 0x1050, "DS", "2048"), tStr(0x0028, 0x1051, "DS", "4096"),
		tBytes(0x7FE0, 0x0010, "OW", pix))
	return buildDICOM(TSExplicitVRLittleEndian, elems...)
}

// BenchmarkDecodePreprocess: Part 10 bytes → 0..1 plane → 224² input
// (centre crop, area resize).
func BenchmarkDecodePreprocess(b *testing.B) {
	data := synthetic2048()
	p := Preprocessing{Crop: CropCenterSquare, Size: 224, Resize: ResizeArea}
	dst := make([]float32, 224*224)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		img, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Preprocess(img, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionRun: one ONNX Runtime run of the default engine on a
// ready tensor, per batch size.
func BenchmarkSessionRun(b *testing.B) {
	e := newTestEngine(b, DefaultEngineID)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := make([]float32, n*224*224)
			for i := range in {
				in[i] = float32(i%224) / 224
			}
			if _, _, err := e.ScoreTensor(b.Context(), in, n); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := e.ScoreTensor(b.Context(), in, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/image")
		})
	}
}

// BenchmarkRenderHeatmap: a 2048² heatmap PNG.
func BenchmarkRenderHeatmap(b *testing.B) {
	img, err := Decode(synthetic2048())
	if err != nil {
		b.Fatal(err)
	}
	cam := make([]float32, 49)
	cam[24] = 1
	res := Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: Preprocessing{Crop: CropCenterSquare}.CropRect(img.Width, img.Height), SourceWidth: img.Width, SourceHeight: img.Height}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := RenderHeatmap(img, res, HeatmapOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
