package fhir

import (
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are the intake fixtures plus small hostile shapes.
func fuzzSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":null}]}`,
		`{"resourceType":"ServiceRequest","identifier":[{"type":{"coding":[{}]}}]}`,
		`{"resourceType":"ImagingStudy","identifier":[{"system":"urn:dicom:uid","value":"urn:oid:"}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"ServiceRequest","basedOn":[{"reference":"urn:uuid:1"}]}}]}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseResource: any bytes POSTed to the intake parse to an order or to
// an error naming what is wrong — never a panic, never an order without the
// key it needs.
func FuzzParseResource(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseResource(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if o == nil {
			t.Fatal("nil order without an error")
		}
		if o.Accession == nil && o.StudyInstanceUID == "" {
			t.Fatalf("accepted a %s with neither accession nor study UID", o.ResourceType)
		}
	})
}

// FuzzParseBundle: a Bundle either fails as a whole or yields entries whose
// orders each carry the key an order needs, and never both an order and an
// error.
func FuzzParseBundle(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := ParseBundle(b)
		if err != nil {
			return
		}
		for i, e := range bundle.Entries {
			if e.Order != nil && e.Err != nil {
				t.Fatalf("entry %d has both an order and an error", i)
			}
			if o := e.Order; o != nil && o.Accession == nil && o.StudyInstanceUID == "" {
				t.Fatalf("entry %d: accepted a %s with neither accession nor study UID", i, o.ResourceType)
			}
		}
	})
}
