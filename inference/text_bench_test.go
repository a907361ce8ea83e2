package inference

import (
	"os"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// BenchmarkTextCapture: what keeping the raw text values costs the
// structure check every ReadHeader and Decode runs (nothing kept, the two
// Meta reads, every string element as ReadText keeps), on a jp-charset
// radiograph. Compare the three within one run.
func BenchmarkTextCapture(b *testing.B) {
	data, err := os.ReadFile(jpPath("jp-ir87-kanji.dcm"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		keep func(tag.Tag) bool
	}{
		{"none", nil},
		{"meta", func(t tag.Tag) bool { return t == tag.SpecificCharacterSet || t == tag.InstitutionName }},
		{"all", func(tag.Tag) bool { return true }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := checkStructure(data, DecodeOptions{}, c.keep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("ReadHeader", func(b *testing.B) {
		for b.Loop() {
			if _, err := ReadHeader(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
