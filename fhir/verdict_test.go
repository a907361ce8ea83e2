package fhir

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// report is a radiologist's final DiagnosticReport for accession ACC-1,
// with edits applied to its JSON object.
func report(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"resourceType": "DiagnosticReport",
		"id":           "rad-7",
		"status":       "final",
		"identifier": []any{map[string]any{
			"type":   map[string]any{"coding": []any{map[string]any{"system": SystemV20203, "code": "ACSN"}}},
			"system": "urn:oid:1.2.3", "value": "ACC-1",
		}},
		"code":               map[string]any{"text": "XR chest"},
		"resultsInterpreter": []any{map[string]any{"reference": "Practitioner/dr-lee"}},
		"conclusion":         "Right lower lobe consolidation.",
		"conclusionCode": []any{map[string]any{"coding": []any{map[string]any{
			"system": SystemSNOMED, "code": "233604007", "display": "Pneumonia"}}}},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestParseReportVerdictCoded(t *testing.T) {
	v, err := ParseVerdict(report(t, nil), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, &radgate.Verdict{
		Source: radgate.SourceFHIR, ReadID: "rad-7",
		Accession: &radgate.Identifier{System: "urn:oid:1.2.3", Value: "ACC-1"},
		Finding:   radgate.FindingPresent,
		Code:      &radgate.Coding{System: SystemSNOMED, Code: "233604007", Display: "Pneumonia"},
		Reader:    &radgate.Reference{Reference: "Practitioner/dr-lee"},
		Text:      "Right lower lobe consolidation.",
	}, v)

	// A coded absence; the PUT's id stands in for a missing one.
	v, err = ParseVerdict(report(t, func(m map[string]any) {
		delete(m, "id")
		m["status"] = "corrected"
		m["conclusionCode"] = []any{map[string]any{"coding": []any{
			map[string]any{"system": "http://example.org/local", "code": "X1"},
			map[string]any{"system": SystemSNOMED, "code": "373572006"}}}}
	}), VerdictOptions{ID: "put-9"})
	require.NoError(t, err)
	require.Equal(t, radgate.FindingAbsent, v.Finding)
	require.Equal(t, "put-9", v.ReadID)

	// The route's own codes.
	codes := VerdictCodes{{System: "http://example.org/rad", Code: "PNA-YES", Finding: radgate.FindingPresent}}
	require.NoError(t, codes.Check())
	v, err = ParseVerdict(report(t, func(m map[string]any) {
		m["conclusionCode"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://example.org/rad", "code": "PNA-YES"}}}}
	}), VerdictOptions{Codes: codes})
	require.NoError(t, err)
	require.Equal(t, radgate.FindingPresent, v.Finding)
}

func TestParseReportVerdictFreeTextIsUnlabelled(t *testing.T) {
	v, err := ParseVerdict(report(t, func(m map[string]any) { delete(m, "conclusionCode") }), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, radgate.FindingUnlabelled, v.Finding)
	require.Nil(t, v.Code)
	require.Equal(t, "Right lower lobe consolidation.", v.Text)
}

func TestParseReportVerdictKeys(t *testing.T) {
	// basedOn a ServiceRequest by accession; an ImagingStudy by UID.
	v, err := ParseVerdict(report(t, func(m map[string]any) {
		delete(m, "identifier")
		m["basedOn"] = []any{map[string]any{"identifier": map[string]any{
			"type":  map[string]any{"coding": []any{map[string]any{"system": SystemV20203, "code": "ACSN"}}},
			"value": "ACC-2"}}}
		m["imagingStudy"] = []any{map[string]any{"identifier": map[string]any{"system": SystemDICOMUID, "value": "urn:oid:1.2.840.99.1"}}}
	}), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "ACC-2", v.Accession.Value)
	require.Equal(t, "1.2.840.99.1", v.StudyInstanceUID)
}

func TestParseReportVerdictRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"unknown code": {func(m map[string]any) {
			m["conclusionCode"] = []any{map[string]any{"coding": []any{map[string]any{"system": SystemSNOMED, "code": "60046008"}}}}
		}, `DiagnosticReport.conclusionCode[0]: code 60046008 in system http://snomed.info/sct is not a known verdict code`},
		"conflicting codes": {func(m map[string]any) {
			m["conclusionCode"] = []any{map[string]any{"coding": []any{
				map[string]any{"system": SystemSNOMED, "code": "233604007"}, map[string]any{"system": SystemSNOMED, "code": "260413007"}}}}
		}, "one read, one finding"},
		"no reader": {func(m map[string]any) {
			m["resultsInterpreter"] = []any{map[string]any{"reference": "Organization/rad"}}
		}, "DiagnosticReport.resultsInterpreter: no Practitioner or PractitionerRole"},
		"no key": {func(m map[string]any) { delete(m, "identifier") }, "DiagnosticReport.identifier: no accession number"},
		"no conclusion": {func(m map[string]any) {
			delete(m, "conclusion")
			delete(m, "conclusionCode")
		}, "DiagnosticReport.conclusion: no conclusionCode and no conclusion"},
		"withdrawn":     {func(m map[string]any) { m["status"] = "entered-in-error" }, "DiagnosticReport.status: entered-in-error"},
		"control chars": {func(m map[string]any) { m["id"] = "a\x01b" }, "DiagnosticReport.id"},
		"bad uid": {func(m map[string]any) {
			delete(m, "identifier")
			m["imagingStudy"] = []any{map[string]any{"identifier": map[string]any{"system": SystemDICOMUID, "value": "1.02.x"}}}
		}, "DiagnosticReport.imagingStudy[0].identifier.value"},
		"wrong type": {func(m map[string]any) { m["conclusion"] = 7 }, "DiagnosticReport.conclusion"},
	} {
		_, err := ParseVerdict(report(t, c.edit), VerdictOptions{})
		require.Error(t, err, name)
		require.NotErrorIs(t, err, ErrNotAVerdict, name)
		require.Contains(t, err.Error(), c.want, name)
	}
	_, err := ParseVerdict(report(t, nil), VerdictOptions{ID: "other"})
	require.ErrorContains(t, err, `DiagnosticReport.id: rad-7 differs from the id in the URL (other)`)
}

func TestParseReportVerdictNotAVerdict(t *testing.T) {
	for name, edit := range map[string]func(m map[string]any){
		"radgate's own": func(m map[string]any) {
			m["identifier"] = append(m["identifier"].([]any), map[string]any{"system": SystemResult, "value": "abc"})
		},
		"radgate's tag": func(m map[string]any) {
			m["meta"] = map[string]any{"tag": []any{map[string]any{"system": CodeSystemRadgate, "code": "ai-analysis"}}}
		},
		"preliminary": func(m map[string]any) { m["status"] = "preliminary" },
	} {
		_, err := ParseVerdict(report(t, edit), VerdictOptions{})
		require.ErrorIs(t, err, ErrNotAVerdict, name)
	}
	// radgate's own result bundle, as BuildResultBundle writes it: its
	// DiagnosticReport is never a verdict.
	in := testInput(t, false)
	b, err := BuildResultBundle(in)
	require.NoError(t, err)
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(b, &bundle))
	found := false
	for _, e := range bundle.Entry {
		if strings.Contains(string(e.Resource), `"resourceType":"DiagnosticReport"`) {
			found = true
			_, err := ParseVerdict(e.Resource, VerdictOptions{})
			require.ErrorIs(t, err, ErrNotAVerdict)
		}
	}
	require.True(t, found)
}

// readTask is radgate's read Task as the reader completes it.
func readTask(t *testing.T, status string, outputs ...[2]string) []byte {
	t.Helper()
	m := map[string]any{
		"resourceType": "Task", "id": "task-3", "status": status, "intent": "order",
		"identifier": []any{map[string]any{"system": SystemReadRequest, "value": "ord-42"}},
		"owner":      map[string]any{"reference": "Practitioner/dr-lee"},
		"input": []any{
			map[string]any{"type": map[string]any{"text": "AI result"}, "valueReference": map[string]any{"reference": "DiagnosticReport/12"}},
			map[string]any{"type": map[string]any{"coding": []any{map[string]any{"system": CodeSystemReadVerdict, "code": CodeVerdictEngine}}},
				"valueIdentifier": map[string]any{"system": SystemEngine, "value": "pneumonia-cxr@1.2"}},
		},
	}
	var outs []any
	for _, o := range outputs {
		outs = append(outs, map[string]any{
			"type":                 map[string]any{"coding": []any{map[string]any{"system": CodeSystemReadVerdict, "code": o[0]}}},
			"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": CodeSystemReadVerdict, "code": o[1]}}},
		})
	}
	if outs != nil {
		m["output"] = outs
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestParseTaskVerdict(t *testing.T) {
	v, err := ParseVerdict(readTask(t, "completed", [2]string{"agreement", "disagree"}, [2]string{"finding", "absent"}), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, &radgate.Verdict{
		Source: radgate.SourceTask, ReadID: "task-3", OrderID: "ord-42", Engine: "pneumonia-cxr",
		Finding: radgate.FindingAbsent, Agreement: radgate.AgreementDisagree,
		Code:   &radgate.Coding{System: CodeSystemReadVerdict, Code: "absent", Display: "Finding absent"},
		Reader: &radgate.Reference{Reference: "Practitioner/dr-lee"},
	}, v)

	v, err = ParseVerdict(readTask(t, "completed", [2]string{"agreement", "agree"}), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, radgate.FindingUnlabelled, v.Finding)
	require.Equal(t, radgate.AgreementAgree, v.Agreement)

	_, err = ParseVerdict(readTask(t, "in-progress"), VerdictOptions{})
	require.ErrorIs(t, err, ErrNotAVerdict)
	_, err = ParseVerdict(readTask(t, "completed"), VerdictOptions{})
	require.ErrorContains(t, err, "Task.output: a completed read Task needs an output")
	_, err = ParseVerdict(readTask(t, "completed", [2]string{"agreement", "maybe"}), VerdictOptions{})
	require.ErrorContains(t, err, "Task.output[0].valueCodeableConcept: code maybe")
	_, err = ParseVerdict(readTask(t, "completed", [2]string{"finding", "unsure"}), VerdictOptions{})
	require.ErrorContains(t, err, `Task.output[0].valueCodeableConcept: code unsure in system `+CodeSystemReadVerdict+` is not a known verdict code`)
	_, err = ParseVerdict([]byte(`{"resourceType":"Task","status":"completed"}`), VerdictOptions{})
	require.ErrorIs(t, err, ErrNotAVerdict)
}

// The read Task radgate writes names its engine, so that completed it is
// a verdict on that engine's result.
func TestReadTaskCompletedIsVerdict(t *testing.T) {
	in := testInput(t, false)
	b, err := BuildReadTaskBundle(in, ReadRequest{Owner: "CareTeam/chest", Report: "DiagnosticReport/12", OrderID: "ord-42"})
	require.NoError(t, err)
	var bundle struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(b, &bundle))
	task := bundle.Entry[0].Resource
	task["id"], task["status"] = "t1", "completed"
	task["output"] = []any{map[string]any{
		"type":                 map[string]any{"coding": []any{map[string]any{"system": CodeSystemReadVerdict, "code": "finding"}}},
		"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": SystemSNOMED, "code": "233604007"}}},
	}}
	raw, err := json.Marshal(task)
	require.NoError(t, err)
	v, err := ParseVerdict(raw, VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "ord-42", v.OrderID)
	require.Equal(t, in.Engine.ID, v.Engine)
	require.Equal(t, radgate.FindingPresent, v.Finding)
}

func TestParseBundleVerdicts(t *testing.T) {
	dr := report(t, func(m map[string]any) {
		delete(m, "identifier")
		m["basedOn"] = []any{map[string]any{"reference": "urn:uuid:sr"}}
		m["resultsInterpreter"] = []any{map[string]any{"reference": "urn:uuid:dr"}}
	})
	own := report(t, func(m map[string]any) {
		m["identifier"] = []any{map[string]any{"system": SystemResult, "value": "r1"}}
	})
	b := `{"resourceType":"Bundle","type":"batch","entry":[
	 {"fullUrl":"urn:uuid:sr","resource":{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
	   "identifier":[{"type":{"coding":[{"system":"` + SystemV20203 + `","code":"ACSN"}]},"value":"ACC-5"}]}},
	 {"fullUrl":"urn:uuid:dr","resource":{"resourceType":"Practitioner","identifier":[{"system":"urn:npi","value":"123"}]}},
	 {"resource":` + string(dr) + `},
	 {"resource":` + string(own) + `},
	 {"resource":` + string(report(t, func(m map[string]any) { delete(m, "resultsInterpreter") })) + `}]}`
	got, err := ParseBundle([]byte(b))
	require.NoError(t, err)
	require.NotNil(t, got.Entries[0].Order)
	require.True(t, got.Entries[1].Ignored())
	v := got.Entries[2].Verdict
	require.NotNil(t, v, "%v", got.Entries[2].Err)
	require.Equal(t, "ACC-5", v.Accession.Value)
	require.Equal(t, &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:npi", Value: "123"}}, v.Reader)
	require.Contains(t, got.Entries[3].NotVerdict, "radgate's own")
	require.ErrorContains(t, got.Entries[4].Err, "Bundle.entry[4].resource.resultsInterpreter: no Practitioner")
}

// A report keyed by its study alone, without id or identifier: its read is
// the study (found by FuzzParseResource: the read id was empty).
func TestParseReportVerdictStudyOnly(t *testing.T) {
	v, err := ParseVerdict(report(t, func(m map[string]any) {
		delete(m, "id")
		delete(m, "identifier")
		m["imagingStudy"] = []any{map[string]any{"identifier": map[string]any{"system": SystemDICOMUID, "value": "1.2.3"}}}
	}), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "study:1.2.3", v.ReadID)

	// "Practitioner/" names no one.
	_, err = ParseVerdict(report(t, func(m map[string]any) {
		m["resultsInterpreter"] = []any{map[string]any{"reference": "Practitioner/"}}
	}), VerdictOptions{})
	require.ErrorContains(t, err, "DiagnosticReport.resultsInterpreter: no Practitioner")
	v, err = ParseVerdict(report(t, func(m map[string]any) {
		m["resultsInterpreter"] = []any{map[string]any{"reference": "https://ehr.example/fhir/PractitionerRole/7"}}
	}), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "https://ehr.example/fhir/PractitionerRole/7", v.Reader.Reference)
}
