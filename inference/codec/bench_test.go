package codec

import "testing"

// BenchmarkDecode decodes each re-encoding of the 440² 10-bit chest
// radiograph, and two full-size radiographs (2140 × 1760 JPEG Lossless,
// 1955 × 1841 lossy JPEG 2000). Bytes/s is decoded output.
//
//	go test ./inference/codec -run '^$' -bench . -benchmem
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, file string }{
		{"rle-440", "cr-chest-mono1-10bit-rle.dcm"},
		{"jpeg-lossless-sv1-440", "cr-chest-mono1-10bit-jpeg-lossless-sv1.dcm"},
		{"jpeg-extended-12bit-440", "cr-chest-mono1-10bit-jpeg-extended-12bit.dcm"},
		{"jpegls-lossless-440", "cr-chest-mono1-10bit-jpegls-lossless.dcm"},
		{"jpegls-near-lossless-440", "cr-chest-mono1-10bit-jpegls-near-lossless.dcm"},
		{"jpeg2000-lossless-440", "cr-chest-mono1-10bit-jpeg2000-lossless.dcm"},
		{"jpeg-baseline-1024", "cr-chest-pa-jpeg-baseline.dcm"},
		{"jpeg-lossless-sv1-2140x1760", "cr-hip-jpeg-lossless.dcm"},
		{"jpeg2000-lossy-1955x1841", "cr-chest-mono1-jpeg2000-lossy.dcm"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := loadFixture(b, bc.file).Frame
			if !Supported(f.TransferSyntaxUID) {
				b.Skipf("%s not supported in this build", Name(f.TransferSyntaxUID))
			}
			b.SetBytes(int64(f.Rows * f.Columns * f.SamplesPerPixel * f.BitsAllocated / 8))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
