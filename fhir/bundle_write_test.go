package fhir

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"strings"
	"testing"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/require"
)

// marshalPlain is the Bundle as encoding/json writes it from the entries
// (what txBundle.marshal did before issue 12): every resource compacted
// again by the Bundle's MarshalJSON and by json.Marshal around it.
func marshalPlain(b []byte) ([]byte, error) {
	var bundle r4.Bundle
	if err := json.Unmarshal(b, &bundle); err != nil {
		return nil, err
	}
	return json.Marshal(bundle)
}

// The bundles are the bytes encoding/json writes the plain way: read back
// into the FHIR model (each resource kept as its raw bytes) and written
// again, they come out the same — so each resource was compact and
// HTML-escaped as written, and the envelope is the model's own.
func TestBundleBytesAsPlainMarshal(t *testing.T) {
	marked := testInput(t, true)
	marked.PDF = testPDF
	marked.Engine.Name = `CXR <pneumonia> & "co" — ≥ 50 %` // escaped characters in the resources
	odd := testInput(t, true)
	odd.ID = "r\x00radgate-entry-0" // the envelope (ifNoneExist) holds the placeholder's text: written the plain way
	builds := map[string]func() ([]byte, error){
		"marked":     func() ([]byte, error) { return BuildResultBundle(marked) },
		"not marked": func() ([]byte, error) { return BuildResultBundle(testInput(t, false)) },
		"odd id":     func() ([]byte, error) { return BuildResultBundle(odd) },
		"task": func() ([]byte, error) {
			in := testInput(t, false)
			in.Reason = "lateral view; engine takes PA/AP"
			return BuildTaskBundle(in, TaskRejected)
		},
		"read task": func() ([]byte, error) {
			return BuildReadTaskBundle(testInput(t, true), ReadRequest{OrderID: "o-1", Report: "DiagnosticReport/dr-1", Owner: "CareTeam/chest"})
		},
	}
	for name, build := range builds {
		t.Run(name, func(t *testing.T) {
			b, err := build()
			require.NoError(t, err)
			plain, err := marshalPlain(b)
			require.NoError(t, err)
			require.Equal(t, string(plain), string(b))
			require.NotContains(t, string(b), `radgate-entry-1"`, "no placeholder left")
		})
	}
	b, err := BuildResultBundle(marked)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(b), `\u003cpneumonia\u003e \u0026 \"co\"`), "HTML-escaped as encoding/json writes it")
}

// BenchmarkResultBundle: the transaction of a marked result with a PDF
// report (a 40 kB stand-in) and a 512² preview JPEG of noise (larger than
// a real one), as the FHIR destination builds it;
// "envelope" and "resource" put the steps that changed beside what they
// were, in one run: plain is encoding/json around the models (every
// attachment's base64 compacted at each level), spliced/direct is
// txBundle.marshal and marshalResource.
func BenchmarkResultBundle(b *testing.B) {
	in := testInput(b, true)
	in.PDF = bytes.Repeat([]byte("%PDF-1.4 stand-in "), 40000/18)
	in.Preview = testJPEGBytes(b)
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			out, err := BuildResultBundle(in)
			if err != nil {
				b.Fatal(err)
			}
			n = len(out)
		}
		b.ReportMetric(float64(n)/1000, "kB")
	})
	built, err := BuildResultBundle(in)
	if err != nil {
		b.Fatal(err)
	}
	var bundle r4.Bundle
	if err := json.Unmarshal(built, &bundle); err != nil {
		b.Fatal(err)
	}
	tb := &txBundle{entries: bundle.Entry}
	b.Run("envelope/plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r4.Bundle{Type: r4.BundleTypeTransaction, Entry: tb.entries}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("envelope/spliced", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tb.marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	var dr r4.DiagnosticReport
	for _, e := range bundle.Entry {
		if bytes.Contains(e.Resource, []byte(`"resourceType":"DiagnosticReport"`)) {
			if err := json.Unmarshal(e.Resource, &dr); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("resource/plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(dr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("resource/direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalResource(dr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// testJPEGBytes is a 512² noisy JPEG, about the size of a preview.
func testJPEGBytes(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 512, 512))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7919 >> 3)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
