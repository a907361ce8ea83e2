package fhirhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// fakeRecorder records verdicts as the governance recorder would: known
// accession numbers and orders have a scored result; a second verdict of
// a read replaces the first; err, when set, fails every call.
type fakeRecorder struct {
	mu       sync.Mutex
	verdicts []radgate.Verdict
	reads    map[string]radgate.Verdict
	known    map[string]string // accession value or order id → order id
	err      error
}

func newFakeRecorder() *fakeRecorder {
	return &fakeRecorder{reads: map[string]radgate.Verdict{}, known: map[string]string{"ACC-1": "ord-1", "ord-42": "ord-42"}}
}

func (f *fakeRecorder) Record(_ context.Context, v radgate.Verdict) (radgate.VerdictReceipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return radgate.VerdictReceipt{}, f.err
	}
	if v.ReadID == "" || v.ReceivedAt.IsZero() {
		return radgate.VerdictReceipt{}, fmt.Errorf("%w: no read id or time", radgate.ErrInvalidVerdict)
	}
	key := v.OrderID
	if v.Accession != nil {
		key = v.Accession.Value
	}
	order, ok := f.known[key]
	if !ok {
		return radgate.VerdictReceipt{}, fmt.Errorf("accession %s: %w", key, radgate.ErrUnknownResult)
	}
	rc := radgate.VerdictReceipt{OrderID: order, Engines: []string{"pneumonia-cxr"}}
	k := v.Source + "|" + v.ReadID
	if old, seen := f.reads[k]; seen {
		if old.Finding == v.Finding && old.Text == v.Text {
			rc.Duplicate = true
			return rc, nil
		}
		rc.Replaced = true
	}
	f.reads[k] = v
	f.verdicts = append(f.verdicts, v)
	return rc, nil
}

func (f *fakeRecorder) Verdicts() []radgate.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]radgate.Verdict(nil), f.verdicts...)
}

const drJSON = `{"resourceType":"DiagnosticReport","id":"rad-7","status":"final",
 "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},"value":"%s"}],
 "code":{"text":"XR chest"},
 "resultsInterpreter":[{"reference":"Practitioner/dr-lee"}],
 "conclusion":"Consolidation right lower lobe."%s}`

func dr(accession, extra string) string { return fmt.Sprintf(drJSON, accession, extra) }

const pneumonia = `,"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"233604007"}]}]`

func newVerdictIntake(t *testing.T) (*fakeRecorder, string) {
	t.Helper()
	rec := newFakeRecorder()
	_, srv := newTestIntake(t, IntakeOptions{Verdicts: rec})
	return rec, srv.URL
}

func TestVerdictDiagnosticReport(t *testing.T) {
	rec, url := newVerdictIntake(t)
	r := send(t, http.MethodPost, url+"/fhir/DiagnosticReport", "application/fhir+json", dr("ACC-1", pneumonia))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	require.Contains(t, outcome(t, r).Issues[0].Diagnostics, "verdict of DiagnosticReport rad-7 recorded for order ord-1 (engine pneumonia-cxr), finding present")
	vs := rec.Verdicts()
	require.Len(t, vs, 1)
	require.Equal(t, radgate.SourceFHIR, vs[0].Source)
	require.Equal(t, radgate.FindingPresent, vs[0].Finding)
	require.Equal(t, fixedNow, vs[0].ReceivedAt)

	// The same again: 200, nothing counted twice.
	r = send(t, http.MethodPut, url+"/fhir/DiagnosticReport/rad-7", "application/fhir+json", dr("ACC-1", pneumonia))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, outcome(t, r).Issues[0].Diagnostics, "already recorded")
	require.Len(t, rec.Verdicts(), 1)

	// Corrected, only free text now: replaces, unlabelled.
	r = send(t, http.MethodPut, url+"/fhir/DiagnosticReport/rad-7", "application/fhir+json",
		strings.Replace(dr("ACC-1", ""), `"final"`, `"corrected"`, 1))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, outcome(t, r).Issues[0].Diagnostics, "replaces the earlier verdict")
	vs = rec.Verdicts()
	require.Len(t, vs, 2)
	require.Equal(t, radgate.FindingUnlabelled, vs[1].Finding)
	require.Nil(t, vs[1].Code)
}

func TestVerdictRefusals(t *testing.T) {
	rec, url := newVerdictIntake(t)
	for name, c := range map[string]struct {
		path, body string
		status     int
		detail     string
		diag       string
	}{
		"unknown code": {"/fhir/DiagnosticReport", dr("ACC-1", `,"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"60046008"}]}]`),
			http.StatusUnprocessableEntity, fhir.DetailUnknownVerdictCode,
			"DiagnosticReport.conclusionCode[0]: code 60046008 in system http://snomed.info/sct is not a known verdict code"},
		"unknown result": {"/fhir/DiagnosticReport", dr("ACC-404", pneumonia), http.StatusConflict, fhir.DetailUnknownResult,
			"DiagnosticReport rad-7: radgate has no AI result for it (accession number ACC-404 unknown"},
		"invalid": {"/fhir/DiagnosticReport", strings.Replace(dr("ACC-1", pneumonia), `"reference":"Practitioner/dr-lee"`, `"reference":"Organization/x"`, 1),
			http.StatusUnprocessableEntity, fhir.DetailInvalidVerdict, "DiagnosticReport.resultsInterpreter: no Practitioner"},
		"malformed": {"/fhir/DiagnosticReport", `{"resourceType":"DiagnosticReport","status":"final","conclusion":[1]}`,
			http.StatusBadRequest, fhir.DetailInvalidResource, "DiagnosticReport.conclusion: expected a string"},
		"wrong type": {"/fhir/Task", dr("ACC-1", pneumonia), http.StatusUnprocessableEntity, fhir.DetailInvalidResource, "expected Task, got DiagnosticReport"},
		"id mismatch": {"/fhir/DiagnosticReport/other", dr("ACC-1", pneumonia), http.StatusUnprocessableEntity, fhir.DetailInvalidResource,
			"DiagnosticReport.id: rad-7 differs from the id in the URL (other)"},
	} {
		method := http.MethodPost
		if strings.Count(c.path, "/") == 3 {
			method = http.MethodPut
		}
		r := send(t, method, url+c.path, "application/fhir+json", c.body)
		require.Equal(t, c.status, r.status, "%s: %s", name, r.body)
		o := outcome(t, r)
		require.Equal(t, c.detail, o.Issues[0].Detail, name)
		require.Contains(t, o.Text(), c.diag, name)
	}
	require.Empty(t, rec.Verdicts(), "nothing recorded")

	// Transient: 503 with Retry-After; the recorder's text is not shown.
	rec.err = errors.New("nats: timeout on kv radgate_labels")
	r := send(t, http.MethodPost, url+"/fhir/DiagnosticReport", "application/fhir+json", dr("ACC-1", pneumonia))
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "5", r.header.Get("Retry-After"))
	require.NotContains(t, string(r.body), "nats")
	require.Equal(t, fhir.DetailVerdictStoreUnavailable, outcome(t, r).Issues[0].Detail)

	rec.err = fmt.Errorf("%w: reader unknown", radgate.ErrInvalidVerdict)
	r = send(t, http.MethodPost, url+"/fhir/DiagnosticReport", "application/fhir+json", dr("ACC-1", pneumonia))
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Contains(t, outcome(t, r).Text(), "reader unknown")
}

func TestVerdictNotAVerdict(t *testing.T) {
	rec, url := newVerdictIntake(t)
	own := strings.Replace(dr("ACC-1", pneumonia), `"identifier":[`, `"identifier":[{"system":"`+fhir.SystemResult+`","value":"abc"},`, 1)
	for _, path := range []string{"/fhir/DiagnosticReport", "/fhir/notify"} {
		r := send(t, http.MethodPost, url+path, "application/fhir+json", own)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		o := outcome(t, r)
		require.Equal(t, fhir.DetailNotAVerdict, o.Issues[0].Detail)
		require.Contains(t, o.Issues[0].Diagnostics, "radgate's own AI result")
	}
	prelim := strings.Replace(dr("ACC-1", pneumonia), `"final"`, `"preliminary"`, 1)
	r := send(t, http.MethodPost, url+"/fhir/notify", "application/fhir+json", prelim)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, outcome(t, r).Issues[0].Diagnostics, "status preliminary is not a final read")
	require.Empty(t, rec.Verdicts())
}

func TestVerdictsDisabled(t *testing.T) {
	_, srv := newTestIntake(t, IntakeOptions{})
	r := send(t, http.MethodPost, srv.URL+"/fhir/DiagnosticReport", "application/fhir+json", dr("ACC-1", pneumonia))
	require.Equal(t, http.StatusNotImplemented, r.status)
	o := outcome(t, r)
	require.Equal(t, fhir.DetailVerdictsDisabled, o.Issues[0].Detail)
	require.Contains(t, o.Issues[0].Diagnostics, "verdicts are not enabled")
	r = send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", verdictBundle("transaction", dr("ACC-1", pneumonia)))
	require.Equal(t, http.StatusNotImplemented, r.status, "%s", r.body)
}

const taskJSON = `{"resourceType":"Task","id":"task-3","status":"completed","intent":"order",
 "identifier":[{"system":"https://radgate.dev/fhir/sid/read-request","value":"ord-42"}],
 "input":[{"type":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"engine"}]},
   "valueIdentifier":{"system":"https://radgate.dev/fhir/sid/engine","value":"pneumonia-cxr@1.2"}}],
 "output":[{"type":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"agreement"}]},
   "valueCodeableConcept":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"disagree"}]}},
  {"type":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"finding"}]},
   "valueCodeableConcept":{"coding":[{"system":"https://radgate.dev/fhir/CodeSystem/read-verdict","code":"absent"}]}}]}`

func TestVerdictReadTask(t *testing.T) {
	rec, url := newVerdictIntake(t)
	r := send(t, http.MethodPut, url+"/fhir/Task/task-3", "application/fhir+json", taskJSON)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	vs := rec.Verdicts()
	require.Len(t, vs, 1)
	require.Equal(t, radgate.Verdict{Source: radgate.SourceTask, ReadID: "task-3", ReceivedAt: fixedNow, OrderID: "ord-42", Engine: "pneumonia-cxr",
		Finding: radgate.FindingAbsent, Agreement: radgate.AgreementDisagree,
		Code: &radgate.Coding{System: fhir.CodeSystemReadVerdict, Code: "absent", Display: "Finding absent"}}, vs[0])

	// Through the rest-hook, a Task still requested is no verdict.
	r = send(t, http.MethodPost, url+"/fhir/notify", "application/fhir+json", strings.Replace(taskJSON, `"completed"`, `"requested"`, 1))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, fhir.DetailNotAVerdict, outcome(t, r).Issues[0].Detail)
	require.Len(t, rec.Verdicts(), 1)
}

func verdictBundle(typ string, resources ...string) string {
	var entries []string
	for _, r := range resources {
		entries = append(entries, `{"resource":`+r+`,"request":{"method":"POST","url":"DiagnosticReport"}}`)
	}
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func TestVerdictBundle(t *testing.T) {
	rec, url := newVerdictIntake(t)
	// A transaction: the order and its verdict (based on the order's
	// entry), radgate's own report ignored.
	own := strings.Replace(dr("ACC-1", pneumonia), `"identifier":[`, `"identifier":[{"system":"`+fhir.SystemResult+`","value":"abc"},`, 1)
	b := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:sr-1","resource":` + fixture(t, "servicerequest.json") + `,"request":{"method":"POST","url":"ServiceRequest"}},
	 {"resource":` + dr("ACC-1", pneumonia) + `,"request":{"method":"POST","url":"DiagnosticReport"}},
	 {"resource":` + own + `,"request":{"method":"POST","url":"DiagnosticReport"}}]}`
	r := send(t, http.MethodPost, url+"/fhir", "application/fhir+json", b)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, string(r.body), `"status":"202 Accepted"`)
	require.Contains(t, string(r.body), `"status":"201 Created"`)
	require.Contains(t, string(r.body), "radgate's own AI result")
	require.Len(t, rec.Verdicts(), 1)

	// A transaction with an unknown code: 422, nothing recorded.
	r = send(t, http.MethodPost, url+"/fhir", "application/fhir+json",
		verdictBundle("transaction", dr("ACC-1", `,"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"1"}]}]`)))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
	require.Contains(t, outcome(t, r).Text(), "Bundle.entry[0].resource.conclusionCode[0]: code 1 in system http://snomed.info/sct is not a known verdict code")

	// A batch: each entry stands alone.
	r = send(t, http.MethodPost, url+"/fhir", "application/fhir+json",
		verdictBundle("batch", strings.Replace(dr("ACC-404", pneumonia), "rad-7", "rad-8", 1), dr("ACC-1", ""),
			dr("ACC-1", `,"conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"1"}]}]`)))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Contains(t, string(r.body), `"status":"409 Conflict"`)
	require.Contains(t, string(r.body), `"status":"200 OK"`) // rad-7 again, now free text: replaces
	require.Contains(t, string(r.body), `"status":"422 Unprocessable Entity"`)
	require.Len(t, rec.Verdicts(), 2)
}
