package inference

import (
	"bytes"
	"compress/flate"
	"errors"
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
		filepath.Join("..", "testdata", "jp-charset", "*.dcm"), // Patient's Age 004Y
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
		if a := img.Meta.Age; a.Known && (a.Years < 0 || a.Years > 130 || a.Text == "" || a.Problem != "") ||
			!a.Known && (a.Years != 0 || a.Text != "") {
			t.Fatalf("age %+v: a known age is 0–130 years with a text, an unknown one has neither", a)
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

// FuzzDecodeDeflated feeds arbitrary data sets through the deflated path:
// data is deflated into a Deflated Explicit VR Little Endian Part 10 file
// (or, with raw, is itself the deflate stream) and decoded within small
// limits (256 KiB inflated, ratio 4). The streaming inflater must never
// panic or hang, must refuse exactly what inflates past the limit, and
// whatever decodes must be a usable image. Seeded with PneumoniaMNIST data
// sets, with and without private elements, and a small bomb.
//
//	go test ./inference -run '^$' -fuzz FuzzDecodeDeflated -fuzztime 120s
func FuzzDecodeDeflated(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "pneumoniamnist-val-dicom", "PMV000[0-3].dcm"))
	if err != nil || len(files) == 0 {
		f.Fatal("no seeds", err)
	}
	meta := buildDICOM(TSDeflatedExplicitVRLittleEndian)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		ts, start, err := readFileMeta(b)
		if err != nil || ts != TSExplicitVRLittleEndian {
			continue
		}
		f.Add(b[start:], false)
	}
	f.Add(buildDICOM(TSExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 4096))...)[len(meta):], false)
	f.Add(append(buildDICOM(TSExplicitVRLittleEndian, tiny16()...)[len(meta):], undefinedPrivateSQ()[:600]...), false)
	bomb := deflateFile(f, buildDICOM(TSDeflatedExplicitVRLittleEndian, withPrivate(tiny16(), make([]byte, 1<<20))...))
	f.Add(bomb[len(meta):], true)
	opts := DecodeOptions{MaxInflatedBytes: 256 << 10, MaxInflateRatio: 4}
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		stream := data
		if !raw {
			var buf bytes.Buffer
			zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
			_, _ = zw.Write(data)
			_ = zw.Close()
			stream = buf.Bytes()
		}
		file := append(append([]byte(nil), meta...), stream...)
		img, err := DecodeWith(file, opts)
		var le *InflateLimitError
		if errors.As(err, &le) {
			if !raw && int64(len(data)) <= le.Limit {
				t.Fatalf("%d inflated bytes refused by a limit of %d", len(data), le.Limit)
			}
			return
		}
		if err != nil {
			return
		}
		if !raw && int64(len(data)) > opts.inflateLimit(len(file)-len(meta)).Limit {
			t.Fatalf("%d inflated bytes decoded past the limit", len(data))
		}
		if img.Width <= 0 || img.Height <= 0 || len(img.Plane()) != img.Width*img.Height {
			t.Fatalf("decoded a %d × %d image with %d values", img.Width, img.Height, len(img.Plane()))
		}
	})
}
