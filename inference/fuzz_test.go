package inference

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through what the inference stage does to
// a file from the PACS: Part 10 parsing, the checks, the stored-word fast
// path (which reads native Pixel Data in place at offsets taken from the
// file), the PS3.3 pipeline and preprocessing. It must return an error for
// anything it cannot use — never panic, never hang, never produce a
// non-finite input value. Seeded with the small real files of testdata: the
// PneumoniaMNIST radiographs (MONOCHROME1/2, windowed 12-bit encodings) and
// the malformed files of dicom-negative.
//
//	go test ./inference -run '^$' -fuzz FuzzDecode -fuzztime 120s
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{
		filepath.Join("..", "testdata", "pneumoniamnist-val-dicom", "PMV000*.dcm"),
		filepath.Join("..", "testdata", "dicom-negative", "*.dcm"),
	} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	pre := []Preprocessing{
		{Crop: CropCenterSquare, Size: 28, Resize: ResizeArea},
		{Crop: CropNone, Size: 32, Resize: ResizeAreaExact},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data)
		if err != nil {
			return
		}
		if img.Width <= 0 || img.Height <= 0 {
			t.Fatalf("decoded a %d × %d image without an error", img.Width, img.Height)
		}
		for _, p := range pre {
			dst := make([]float32, p.Size*p.Size)
			if _, err := p.Preprocess(img, dst); err != nil {
				continue
			}
			for i, v := range dst {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("input value %d is %v", i, v)
				}
			}
		}
		if plane := img.Plane(); len(plane) != img.Width*img.Height {
			t.Fatalf("plane of %d values for a %d × %d image", len(plane), img.Width, img.Height)
		}
	})
}
