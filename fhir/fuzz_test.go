package fhir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate"
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
		`{"resourceType":"DiagnosticReport","status":"final","basedOn":[{"reference":"urn:uuid:1"}],"resultsInterpreter":[{"reference":"urn:uuid:2"}],"conclusion":"x"}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"ServiceRequest","identifier":[{"type":{"coding":[{"code":"ACSN"}]},"value":"A"}]}},` +
			`{"fullUrl":"urn:uuid:2","resource":{"resourceType":"Practitioner","identifier":[{"value":"P"}]}},` +
			`{"resource":{"resourceType":"DiagnosticReport","status":"final","basedOn":[{"reference":"urn:uuid:1"}],"resultsInterpreter":[{"reference":"urn:uuid:2"}],"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"233604007"}]}]}}]}`,
		`{"resourceType":"Task","status":"completed","identifier":[{"system":"https://radgate.dev/fhir/sid/read-request","value":"o"}],"output":[{"type":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"finding"}]},"valueCodeableConcept":{"coding":[{}]}}]}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseResource: any bytes POSTed to the intake parse to an order or to
// an error naming what is wrong — never a panic, never an order without the
// key it needs; read as a verdict (ParseVerdict), to a verdict naming its
// result, reader and finding, or an error.
func FuzzParseResource(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkVerdict(t, b)
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
// orders each carry the key an order needs, whose verdicts name their
// result, and never two of an order, a verdict, a not-a-verdict and an
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
			n := 0
			for _, set := range []bool{e.Order != nil, e.Verdict != nil, e.NotVerdict != "", e.Err != nil} {
				if set {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("entry %d is more than one of order, verdict, not-a-verdict and error: %+v", i, e)
			}
			if e.Verdict != nil {
				verdictInvariants(t, e.Verdict)
			}
		}
	})
}

// checkVerdict: any bytes PUT to the verdict endpoints parse to a verdict
// with what a recorder needs, to a *NotVerdictError, or to an error naming
// what is wrong — never a panic.
func checkVerdict(t *testing.T, b []byte) {
	t.Helper()
	v, err := ParseVerdict(b, VerdictOptions{})
	if err != nil {
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
		return
	}
	verdictInvariants(t, v)
}

func verdictInvariants(t *testing.T, v *radgate.Verdict) {
	t.Helper()
	switch {
	case v == nil:
		t.Fatal("nil verdict without an error")
	case v.ReadID == "":
		t.Fatalf("a verdict without read id: %+v", v)
	case v.Accession == nil && v.StudyInstanceUID == "" && v.OrderID == "":
		t.Fatalf("a verdict naming no result: %+v", v)
	case v.Finding != radgate.FindingPresent && v.Finding != radgate.FindingAbsent && v.Finding != radgate.FindingUnlabelled:
		t.Fatalf("finding %q", v.Finding)
	case (v.Finding == radgate.FindingUnlabelled) != (v.Code == nil) && v.Source == radgate.SourceFHIR:
		t.Fatalf("coded %v but finding %s", v.Code, v.Finding)
	case v.Source == radgate.SourceFHIR && v.Reader == nil:
		t.Fatalf("a report verdict without reader: %+v", v)
	}
}
