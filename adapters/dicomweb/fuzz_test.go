package dicomweb

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/internal/testenv"
)

// FuzzParseMultipart feeds the WADO-RS multipart parser arbitrary bodies and
// Content-Types. It must never panic, never return more than the limit, and
// classify every error as transient, malformed or too large.
//
//	go test ./adapters/dicomweb -run '^$' -fuzz FuzzParseMultipart -fuzztime 60s
func FuzzParseMultipart(f *testing.F) {
	const boundary = "833b6d3d-7c02-46db-80b5-11a2b2f2cb77-76bec399-6566-480b-b274-91a7d8c99"
	ct := multipartType(boundary)
	// A real file in the framing Orthanc 1.10 uses (headers, Content-Length,
	// MIME-Version, CRLFs), as captured from its WADO-RS answer.
	if real, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-jpegls-near-lossless.dcm")); err == nil {
		f.Add(ct, orthancMultipart(boundary, real))
		f.Add(ct, orthancMultipart(boundary, real)[:len(real)/2])
		f.Add(ct, orthancMultipart(boundary, real[:300]))
	}
	small := fakePart10(40)
	f.Add(ct, orthancMultipart(boundary, small))
	f.Add(ct, orthancMultipart(boundary, small, small))
	f.Add(multipartType("B"), []byte("--B\r\nContent-Type: application/dicom; transfer-syntax=*\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+string(small)+"\r\n--B--"))
	f.Add(multipartType("B"), []byte("preamble\r\n--B\r\n\r\n\r\n--B--\r\n"))
	f.Add(`multipart/related; boundary="a:b"`, []byte("--a:b--"))
	f.Add("application/dicom", small)
	f.Add("", []byte{})

	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		file, err := readFirstPart(contentType, strings.NewReader(string(body)), limit)
		if err == nil {
			if len(file) > limit || len(file) < 132 || string(file[128:132]) != "DICM" {
				t.Fatalf("accepted %d bytes that are not a bounded Part 10 file", len(file))
			}
			return
		}
		if !radgate.IsTransient(err) && !errors.Is(err, ErrMalformedResponse) && !errors.Is(err, ErrInstanceTooLarge) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

// FuzzParseDatasets feeds the QIDO-RS / metadata JSON reader arbitrary
// answers. It must never panic; a view it reads is either a View Position
// or a code with a code value, never both; a settled view of an instance
// without View Position comes with a View Code Sequence in the answer.
//
//	go test ./adapters/dicomweb -run '^$' -fuzz FuzzParseDatasets -fuzztime 60s
func FuzzParseDatasets(f *testing.F) {
	f.Add([]byte(`[{"00080018":{"vr":"UI","Value":["1.2.3"]},"00185101":{"vr":"CS","Value":["PA"]}}]`))
	f.Add([]byte(`[{"00540220":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["399348003"]},"00080102":{"vr":"SH","Value":["SCT"]},"00080104":{"vr":"LO","Value":["postero-anterior"]}}]}}]`))
	f.Add([]byte(`[{"00540220":{"vr":"SQ","Value":[{"00080100":{"vr":"SH"}}, 3, null]},"00185101":{"vr":"CS","Value":[null]}}]`))
	f.Add([]byte(`[{"00540220":{"vr":"SQ"}},{"00540220":{"vr":"CS","Value":["x"]}},{"00185101":{"vr":"CS","Value":[1.5e400]}}]`))
	f.Add([]byte(`[{"0020000d":{"vr":"UI","Value":["1.2"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"A^B"}]}}]`))
	f.Add([]byte(``))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := parseDatasets(body)
		if err != nil {
			return
		}
		for _, d := range list {
			pos, code, settled := d.view()
			switch {
			case pos != "" && (code != nil || !settled):
				t.Fatalf("View Position %q with code %v, settled %v", pos, code, settled)
			case code != nil && code.Code == "":
				t.Fatalf("a view code without a code value: %+v", code)
			}
			if _, has := d[tagViewCodeSequence]; pos == "" && settled && !has {
				t.Fatalf("settled without View Position or View Code Sequence")
			}
			_ = d.str(tagSOPInstanceUID)
			_, _ = d.integer(tagInstanceNumber)
			_ = parseStoreResult(d)
		}
	})
}
