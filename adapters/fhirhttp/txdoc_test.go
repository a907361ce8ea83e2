package fhirhttp

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/report"
)

// bigResultBundle is the transaction of a marked result with its PDF
// report and a 512-pixel preview, as the sink builds it.
func bigResultBundle(t testing.TB) []byte {
	t.Helper()
	r := testResult(t, radgate.OutcomeScored)
	img := image.NewRGBA(image.Rect(0, 0, 512, 512))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 2048)
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}))
	r.Preview = buf.Bytes()
	in := ResultInput(r)
	var err error
	in.PDF, err = report.PDF(report.Input{Result: r})
	require.NoError(t, err)
	b, err := fhir.BuildResultBundle(in)
	require.NoError(t, err)
	return b
}

// edit does to a document what the sink does to a result's: the Device by
// reference, the revision identifier, the image notes, a copy of the
// report (as an amendment's edits might make).
func edit(t *testing.T, doc *txDoc) {
	t.Helper()
	dev := doc.find("Device")
	require.NotNil(t, dev)
	doc.remove(dev, "Device/dev-1")
	dr := doc.find("DiagnosticReport")
	if dr == nil {
		return
	}
	addIdentifier(dr.Resource, "urn:radgate:revision", "r-0001/2")
	dr.Resource["conclusion"] = str(dr.Resource["conclusion"]) + " Images scored: 1 of 1."
	doc.Entry = append(doc.Entry, &txEntry{FullURL: "urn:uuid:copy", Resource: dr.Resource, Request: dr.Request})
}

// Setting the attachments aside while a transaction is open changes no
// byte of what is posted: the same edits give the same body as decoding
// everything into the maps.
func TestTxDocHoldsAttachments(t *testing.T) {
	task, err := fhir.BuildTaskBundle(ResultInput(testResult(t, radgate.OutcomeNotApplicable)), fhir.TaskRejected)
	require.NoError(t, err)
	big := bigResultBundle(t)
	odd := bytes.Replace(big, []byte(`"conclusion":"`), []byte(`"conclusion":"radgate-attachment-0 `), 1)
	for name, b := range map[string][]byte{"result with PDF and preview": big, "task": task, "placeholder text present": odd} {
		t.Run(name, func(t *testing.T) {
			held, err := openTxHolding(b, true)
			require.NoError(t, err)
			plain, err := openTxHolding(b, false)
			require.NoError(t, err)
			if name == "result with PDF and preview" {
				require.Len(t, held.held, 2, "the PDF and the preview set aside")
			}
			if name == "placeholder text present" {
				require.Empty(t, held.held, "nothing set aside")
			}
			if held.find("Device") != nil {
				edit(t, held)
				edit(t, plain)
			}
			got, err := held.marshal()
			require.NoError(t, err)
			want, err := plain.marshal()
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			require.NotContains(t, string(got), `\u0000radgate-attachment`)
		})
	}
}

// BenchmarkTxDoc: opening a built result transaction (PDF and preview) and
// writing it back, with the attachments set aside ("held", what the sink
// does) and decoded into the maps ("plain", before issue 12), in one run.
func BenchmarkTxDoc(b *testing.B) {
	bundle := bigResultBundle(b)
	for _, hold := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "held"}[hold]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bundle)))
			for b.Loop() {
				doc, err := openTxHolding(bundle, hold)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := doc.marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
