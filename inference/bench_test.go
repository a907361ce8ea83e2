package inference

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/testenv"
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

// oldDecodePreprocess is the path before issue 3's fast decode: the
// library's copy of the Pixel Data, the full float32 plane through the
// lookup table, then the two-pass resize with a full-height scratch.
func oldDecodePreprocess(data []byte, p Preprocessing, dst []float32) error {
	img, err := decode(data, false)
	if err != nil {
		return err
	}
	r := p.CropRect(img.Width, img.Height)
	referenceResize(img.Pixels, img.Width, r, dst, p.Size, p.Size, p.Resize == ResizeAreaExact)
	return nil
}

// newDecodePreprocess is Decode then Preprocess: stored words resized
// through the lookup table, no full-size plane.
func newDecodePreprocess(data []byte, p Preprocessing, dst []float32) error {
	img, err := Decode(data)
	if err != nil {
		return err
	}
	_, err = p.Preprocess(img, dst)
	return err
}

// reportCPU reports the process CPU time per op since cpu0 (GC included):
// on a loaded machine a steadier measure of the work than ns/op.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu0 == 0 {
		return
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}

// synthetic2048x16 is a 2048² MONOCHROME2 using all 16 bits, no window.
func synthetic2048x16() []byte {
	const n = 2048
	pix := make([]byte, 2*n*n)
	for i := 0; i < n*n; i++ {
		binary.LittleEndian.PutUint16(pix[2*i:], uint16(i*40503>>3))
	}
	elems := append(imageAttrs(n, n, 16, 16, 0, "MONOCHROME2"), tBytes(0x7FE0, 0x0010, "OW", pix))
	return buildDICOM(TSExplicitVRLittleEndian, elems...)
}

// decodeCases are the inputs of the decode+preprocess benchmarks: the two
// native 2048² images, and the full-size compressed radiographs of
// testdata/cxr-dicom.
func decodeCases(tb testing.TB) []struct {
	name string
	data []byte
} {
	cases := []struct {
		name string
		data []byte
	}{
		{"native-2048-12bit-mono1-window", synthetic2048()},
		{"native-2048-16bit", synthetic2048x16()},
	}
	for _, f := range []struct{ name, file string }{
		{"jpeg-baseline-1024", "cr-chest-pa-jpeg-baseline.dcm"},
		{"jpeg-lossless-2140x1760", "cr-hip-jpeg-lossless.dcm"},
		{"jpeg2000-lossy-1955x1841", "cr-chest-mono1-jpeg2000-lossy.dcm"},
	} {
		data, err := os.ReadFile(testenv.Testdata("cxr-dicom", f.file))
		if err != nil {
			tb.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			data []byte
		}{f.name, data})
	}
	return cases
}

// BenchmarkDecodePreprocess2k: Part 10 bytes → 224² input (centre crop,
// area), old path beside new path in the same run, per input. Compare the
// old/new ratio of each input, not absolute times:
//
//	go test ./inference -run '^$' -bench 'DecodePreprocess2k' -benchmem -count 5
func BenchmarkDecodePreprocess2k(b *testing.B) {
	p := Preprocessing{Crop: CropCenterSquare, Size: 224, Resize: ResizeArea}
	dst := make([]float32, 224*224)
	for _, c := range decodeCases(b) {
		if _, err := Decode(c.data); errors.Is(err, ErrUnsupportedTransferSyntax) {
			continue // a codec this build lacks
		}
		for _, path := range []struct {
			name string
			run  func([]byte, Preprocessing, []float32) error
		}{{"old", oldDecodePreprocess}, {"new", newDecodePreprocess}} {
			b.Run(c.name+"/"+path.name, func(b *testing.B) {
				b.SetBytes(int64(len(c.data)))
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					if err := path.run(c.data, p, dst); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu0)
			})
		}
	}
}

// marked2048 is the synthetic 2048² radiograph, decoded, and a marked
// result over it whose CAM is hot in its centre cell.
func marked2048(b *testing.B) (*Image, Result) {
	img, err := Decode(synthetic2048())
	if err != nil {
		b.Fatal(err)
	}
	cam := make([]float32, 49)
	cam[24] = 1
	return img, Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: Preprocessing{Crop: CropCenterSquare}.CropRect(img.Width, img.Height), SourceWidth: img.Width, SourceHeight: img.Height}
}

// BenchmarkRenderPicture: one marked result of a 2048² radiograph drawn
// as the full-size heatmap PNG (for the PACS) beside the preview JPEG (for
// the FHIR Media and the PDF report), and the grey preview of an unmarked
// one, in the same run.
func BenchmarkRenderPicture(b *testing.B) {
	img, res := marked2048(b)
	grey := res
	grey.Marked = false
	for _, c := range []struct {
		name   string
		render func(*Image, Result, HeatmapOptions) ([]byte, int, int, error)
		res    Result
	}{{"heatmap-png", RenderHeatmap, res}, {"preview-jpeg", RenderPreview, res}, {"preview-grey", RenderPreview, grey}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, _, _, err := c.render(img, c.res, HeatmapOptions{})
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n)/1000, "kB")
		})
	}
}

// BenchmarkRenderHeatmap: a 2048² heatmap PNG.
func BenchmarkRenderHeatmap(b *testing.B) {
	img, res := marked2048(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := RenderHeatmap(img, res, HeatmapOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// synthetic3000 is a 3000×3000, 12-of-16-bit MONOCHROME2 DX with a window,
// as a Part 10 file in memory: 18 MB of pixel data.
func synthetic3000() []byte {
	const n = 3000
	pix := make([]byte, 2*n*n)
	for i := 0; i < n*n; i++ {
		binary.LittleEndian.PutUint16(pix[2*i:], uint16((i*7+i/n*13)%4096))
	}
	elems := append(imageAttrs(n, n, 16, 12, 0, "MONOCHROME2"),
		tStr(0x0028, 0x1050, "DS", "2048"), tStr(0x0028, 0x1051, "DS", "4096"),
		tBytes(0x7FE0, 0x0010, "OW", pix))
	return buildDICOM(TSExplicitVRLittleEndian, elems...)
}

// BenchmarkDecodePreprocess3000: the memory bound of issue 3, old path
// beside new. The old path held the raw pixel bytes (the library's copy,
// 3000²×2 = 18 MB) and one float32 plane (3000²×4 = 36 MB): that 54 MB is
// the "minimum" x-minimum is relative to. The new path reads the Pixel Data
// in place from the file's bytes and resizes from the stored words, so it
// allocates neither (the plane is built only if Image.Plane is called).
func BenchmarkDecodePreprocess3000(b *testing.B) {
	data := synthetic3000()
	p := Preprocessing{Crop: CropCenterSquare, Size: 224, Resize: ResizeArea}
	dst := make([]float32, 224*224)
	for _, path := range []struct {
		name string
		run  func([]byte, Preprocessing, []float32) error
	}{{"old", oldDecodePreprocess}, {"new", newDecodePreprocess}} {
		b.Run(path.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := processCPU()
			for b.Loop() {
				if err := path.run(data, p, dst); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
			runtime.ReadMemStats(&ms1)
			const minimum = 3000*3000*2 + 3000*3000*4
			perOp := float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(b.N)
			b.ReportMetric(perOp/1e6, "MB/op")
			b.ReportMetric(perOp/minimum, "x-minimum")
		})
	}
}

// BenchmarkOverlayRows: the rows of a marked 512-pixel preview of the
// 1024² JPEG Baseline chest radiograph (the bench's first sample; a CAM
// positive nearly everywhere, so every pixel is blended), drawn pixel by
// pixel as before (per-pixel, referenceOverlayRow) and from the CAM rows
// interpolated once (cam-rows, overlay.row), in the same run. The output is
// the same byte for byte (TestOverlayRowsAsPerPixel).
func BenchmarkOverlayRows(b *testing.B) {
	img, err := DecodeFile(testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm"))
	if err != nil {
		b.Fatal(err)
	}
	cam := make([]float32, 49)
	for i := range cam {
		cam[i] = float32(1 + i%5)
	}
	res := Result{Marked: true, CAM: cam, CAMWidth: 7, CAMHeight: 7,
		Crop: Preprocessing{Crop: CropCenterSquare}.CropRect(img.Width, img.Height), SourceWidth: img.Width, SourceHeight: img.Height}
	o, err := newOverlay(img, res, PreviewEdge, 0, true)
	if err != nil {
		b.Fatal(err)
	}
	defer o.release()
	pix := make([]byte, 4*o.w*o.h)
	for _, c := range []struct {
		name string
		row  func(o *overlay, y int, dst []byte, bpp int)
	}{{"per-pixel", referenceOverlayRow}, {"cam-rows", (*overlay).row}} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU()
			for b.Loop() {
				for y := 0; y < o.h; y++ {
					c.row(o, y, pix[4*y*o.w:4*(y+1)*o.w], 4)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}
