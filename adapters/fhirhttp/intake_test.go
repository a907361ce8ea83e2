package fhirhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// fakeIntake stands in for routing's intake: it records events and keys
// orders the way routing does.
type fakeIntake struct {
	mu       sync.Mutex
	events   []radgate.OrderEvent
	orders   map[string]radgate.OrderStatus
	acceptFn func(n int, ev radgate.OrderEvent) error // optional failure injection
	statusFn func(id string) error
}

func newFakeIntake() *fakeIntake { return &fakeIntake{orders: map[string]radgate.OrderStatus{}} }

func (f *fakeIntake) Accept(_ context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.acceptFn != nil {
		if err := f.acceptFn(len(f.events), ev); err != nil {
			return radgate.OrderStatus{}, err
		}
	}
	key, err := radgate.OrderKey(ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	f.events = append(f.events, ev)
	st := radgate.OrderStatus{ID: radgate.OrderID(key), Key: key, State: radgate.StateReceived,
		Accession: ev.Accession, StudyInstanceUID: ev.StudyInstanceUID, ReceivedAt: ev.ReceivedAt, UpdatedAt: ev.ReceivedAt}
	f.orders[st.ID] = st
	return st, nil
}

func (f *fakeIntake) Status(_ context.Context, id string) (radgate.OrderStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusFn != nil {
		if err := f.statusFn(id); err != nil {
			return radgate.OrderStatus{}, err
		}
	}
	st, ok := f.orders[id]
	if !ok {
		return radgate.OrderStatus{}, fmt.Errorf("order %s: %w", id, radgate.ErrOrderNotFound)
	}
	return st, nil
}

func (f *fakeIntake) Events() []radgate.OrderEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]radgate.OrderEvent(nil), f.events...)
}

var fixedNow = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

func newTestIntake(t *testing.T, opts IntakeOptions) (*fakeIntake, *httptest.Server) {
	t.Helper()
	f := newFakeIntake()
	opts.Now = func() time.Time { return fixedNow }
	srv := httptest.NewServer(NewIntake(f, opts))
	t.Cleanup(srv.Close)
	return f, srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, method, url, contentType string, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// outcome reads an OperationOutcome reply.
func outcome(t *testing.T, r reply) *fhir.Outcome {
	t.Helper()
	require.Contains(t, r.header.Get("Content-Type"), "application/fhir+json")
	o, err := fhir.ParseOperationOutcome(r.body)
	require.NoError(t, err, "%s", r.body)
	require.NotEmpty(t, o.Issues)
	return o
}

func TestIntakeServiceRequest(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	r := send(t, http.MethodPost, srv.URL+"/fhir/ServiceRequest", "application/fhir+json; charset=utf-8", fixture(t, "servicerequest.json"))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	key := "acsn|urn:oid:1.2.3.4.5|ACC-0001"
	require.Equal(t, "/orders/"+radgate.OrderID(key), r.header.Get("Location"))
	var st radgate.OrderStatus
	require.NoError(t, json.Unmarshal(r.body, &st))
	require.Equal(t, key, st.Key)
	require.Equal(t, radgate.StateReceived, st.State)

	require.Equal(t, []radgate.OrderEvent{{
		Source:         "fhir",
		ResourceType:   "ServiceRequest",
		ReceivedAt:     fixedNow,
		Accession:      &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"},
		ServiceRequest: &radgate.Reference{Reference: "ServiceRequest/sr-1"},
		Patient:        &radgate.Reference{Reference: "Patient/p-1"},
		ProcedureCodes: []radgate.Coding{
			{System: "http://loinc.org", Code: "36643-5", Display: "XR Chest 2 Views"},
			{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "DX"},
		},
		Modalities: []string{"DX"},
		Facility:   "General Hospital Radiology",
		Priority:   "urgent",
	}}, f.Events())

	// The order's state is served at the Location (without patient data:
	// no authenticated caller with the phi role).
	g := send(t, http.MethodGet, srv.URL+r.header.Get("Location"), "", "")
	require.Equal(t, http.StatusOK, g.status)
	want, err := json.Marshal(withoutPatientData(st))
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(g.body))
}

func TestIntakeImagingStudy(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	r := send(t, http.MethodPost, srv.URL+"/fhir/ImagingStudy", "application/json", fixture(t, "imagingstudy.json"))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	ev := f.Events()[0]
	require.Equal(t, "ImagingStudy", ev.ResourceType)
	require.Equal(t, "1.2.826.0.1.3680043.8.498.1", ev.StudyInstanceUID)
	require.Equal(t, &radgate.Reference{Reference: "ImagingStudy/is-1"}, ev.ImagingStudy)
	require.Equal(t, &radgate.Reference{Reference: "ServiceRequest/sr-1"}, ev.ServiceRequest, "the one request the study is based on")
	require.Equal(t, []radgate.Reference{{Reference: "ServiceRequest/sr-1"}}, ev.BasedOn)
	require.Equal(t, []string{"CR", "DX"}, ev.Modalities)
	require.Equal(t, "X-ray room 2", ev.Facility)
}

// TestIntakeRejects is the table of bad requests: each gets its status and an
// OperationOutcome naming the fault, and nothing reaches routing.
func TestIntakeRejects(t *testing.T) {
	const acsn = `{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},"value":"A1"}`
	big := `{"resourceType":"ServiceRequest","note":[{"text":"` + strings.Repeat("x", 8192) + `"}]}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            fhir.IssueCode
		expression                      string
		diagnostics                     string
	}{
		{"malformed JSON", "POST", "/fhir/ServiceRequest", "application/fhir+json", `{"resourceType":`, 400, fhir.IssueStructure, "",
			"malformed JSON at byte 16: unexpected end of JSON input"},
		{"wrong resourceType", "POST", "/fhir/ServiceRequest", "application/fhir+json", `{"resourceType":"Patient"}`, 400, fhir.IssueInvalid,
			"resourceType", "resourceType: expected ServiceRequest, got Patient"},
		{"study at the request endpoint", "POST", "/fhir/ServiceRequest", "", fixture(t, "imagingstudy.json"), 400, fhir.IssueInvalid,
			"resourceType", "resourceType: expected ServiceRequest, got ImagingStudy"},
		{"no accession", "POST", "/fhir/ServiceRequest", "application/fhir+json",
			`{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`, 400, fhir.IssueRequired,
			"ServiceRequest.identifier", "ServiceRequest.identifier: no accession number (identifier with type ACSN)"},
		{"no study UID", "POST", "/fhir/ImagingStudy", "application/fhir+json",
			`{"resourceType":"ImagingStudy","status":"available","identifier":[` + acsn + `]}`, 400, fhir.IssueRequired,
			"ImagingStudy.identifier", "ImagingStudy.identifier: no Study Instance UID (system urn:dicom:uid)"},
		{"unknown status", "POST", "/fhir/ServiceRequest", "application/fhir+json",
			`{"resourceType":"ServiceRequest","status":"bogus","intent":"order","identifier":[` + acsn + `]}`, 400, fhir.IssueValue,
			"ServiceRequest.status", `ServiceRequest.status: unknown code "bogus" (RequestStatus)`},
		{"Patient at notify", "POST", "/fhir/notify", "application/fhir+json", `{"resourceType":"Patient"}`, 400, fhir.IssueNotSupported,
			"resourceType", "resourceType: expected ServiceRequest or ImagingStudy, got Patient"},
		{"collection bundle", "POST", "/fhir", "application/fhir+json", `{"resourceType":"Bundle","type":"collection"}`, 400, fhir.IssueNotSupported,
			"Bundle.type", "Bundle.type: expected transaction or batch, got collection"},
		{"not a bundle", "POST", "/fhir", "application/fhir+json", fixture(t, "servicerequest.json"), 400, fhir.IssueInvalid,
			"resourceType", "resourceType: expected Bundle, got ServiceRequest"},
		{"too large", "POST", "/fhir/ServiceRequest", "application/fhir+json", big, 413, fhir.IssueTooCostly, "",
			"request body larger than 4096 bytes"},
		{"XML", "POST", "/fhir/ServiceRequest", "application/fhir+xml", `<ServiceRequest/>`, 415, fhir.IssueNotSupported, "",
			"Content-Type application/fhir+xml not supported: radgate reads FHIR JSON (application/fhir+json or application/json)"},
		{"GET a post endpoint", "GET", "/fhir/ServiceRequest", "", "", 405, fhir.IssueNotSupported, "",
			"method GET not allowed on /fhir/ServiceRequest (allowed: POST)"},
		{"DELETE an order", "DELETE", "/orders/abc", "", "", 405, fhir.IssueNotSupported, "",
			"method DELETE not allowed on /orders/abc (allowed: GET, HEAD)"},
		{"unknown resource endpoint", "POST", "/fhir/Patient", "application/fhir+json", `{"resourceType":"Patient"}`, 404, fhir.IssueNotFound, "",
			"no such endpoint: /fhir/Patient (radgate serves POST /fhir, /fhir/ServiceRequest, /fhir/ImagingStudy, /fhir/DiagnosticReport, /fhir/Task, /fhir/notify, PUT /fhir/DiagnosticReport/{id}, /fhir/Task/{id} and GET /orders/{id}, /orders/{id}/history)"},
		{"unknown order", "GET", "/orders/0123456789abcdef01234567", "", "", 404, fhir.IssueNotFound, "",
			`order "0123456789abcdef01234567" not found`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, srv := newTestIntake(t, IntakeOptions{MaxBodyBytes: 4096})
			r := send(t, c.method, srv.URL+c.path, c.ctype, c.body)
			require.Equal(t, c.status, r.status, "%s", r.body)
			o := outcome(t, r)
			require.Len(t, o.Issues, 1)
			require.Equal(t, c.code, o.Issues[0].Code)
			require.Equal(t, fhir.SeverityError, o.Issues[0].Severity)
			require.Equal(t, c.diagnostics, o.Issues[0].Diagnostics)
			if c.expression != "" {
				require.Equal(t, []string{c.expression}, o.Issues[0].Expression)
			} else {
				require.Empty(t, o.Issues[0].Expression)
			}
			if c.status == 405 {
				require.NotEmpty(t, r.header.Get("Allow"))
			}
			require.Empty(t, f.Events())
		})
	}
}

// TestIntakeAcceptErrors: what Accept's failures are answered with. The
// sender gets a stable detail code and a message written for them, never
// the broker's error text; an order the broker refuses as too large is
// the sender's (413), not an outage to retry (503).
func TestIntakeAcceptErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   fhir.IssueCode
		detail string
		text   string // in the diagnostics
	}{
		{"invalid order", fmt.Errorf("%w: no accession number and no Study Instance UID", radgate.ErrInvalidOrder), 400, fhir.IssueInvalid,
			fhir.DetailInvalidOrder, "no accession number and no Study Instance UID"},
		{"store down", errors.New("nats: no responders available for request"), 503, fhir.IssueTransient,
			fhir.DetailOrderStoreUnavailable, "the order store is unavailable; nothing was accepted: send it again later"},
		{"timeout", fmt.Errorf("publishing: %w", context.DeadlineExceeded), 503, fhir.IssueTransient,
			fhir.DetailOrderStoreUnavailable, "the order could not be stored in time"},
		{"over the client's max payload", fmt.Errorf("publishing order 0123: %w", nats.ErrMaxPayload), 413, fhir.IssueTooCostly,
			fhir.DetailOrderTooLarge, "sending it again unchanged cannot succeed"},
		{"over the stream's max message size", fmt.Errorf("writing order 0123: %w", jetstream.ErrStreamMessageExceedsMaximum), 413, fhir.IssueTooCostly,
			fhir.DetailOrderTooLarge, "larger than radgate's message store takes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, srv := newTestIntake(t, IntakeOptions{})
			f.acceptFn = func(int, radgate.OrderEvent) error { return c.err }
			for _, post := range []struct{ path, body string }{
				{"/fhir/ServiceRequest", fixture(t, "servicerequest.json")},
				{"/fhir", fixture(t, "transaction.json")},
			} {
				r := send(t, http.MethodPost, srv.URL+post.path, "application/fhir+json", post.body)
				require.Equal(t, c.status, r.status)
				o := outcome(t, r)
				require.Equal(t, c.code, o.Issues[0].Code)
				require.Equal(t, c.detail, o.Issues[0].Detail)
				require.Contains(t, o.Issues[0].Diagnostics, c.text)
				require.NotContains(t, string(r.body), "nats:")
				require.NotContains(t, string(r.body), "publishing")
				if c.status == 503 {
					require.Equal(t, "5", r.header.Get("Retry-After"))
				} else {
					require.Empty(t, r.header.Get("Retry-After"), "no retry for what cannot succeed")
				}
				require.Empty(t, r.header.Get("Location"))
			}
		})
	}
}

// responseBundle reads a transaction-response or batch-response.
type responseBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Response struct {
			Status   string          `json:"status"`
			Location string          `json:"location"`
			Outcome  json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

func TestIntakeTransaction(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", fixture(t, "transaction.json"))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var b responseBundle
	require.NoError(t, json.Unmarshal(r.body, &b))
	require.Equal(t, "transaction-response", b.Type)
	require.Len(t, b.Entry, 3)
	require.Equal(t, "200 OK", b.Entry[0].Response.Status, "the Patient is read, not stored")
	o, err := fhir.ParseOperationOutcome(b.Entry[0].Response.Outcome)
	require.NoError(t, err)
	require.Contains(t, o.Text(), "not stored")
	orderID := radgate.OrderID("acsn|urn:oid:1.2.3.4.5|ACC-0002")
	for _, i := range []int{1, 2} {
		require.Equal(t, "202 Accepted", b.Entry[i].Response.Status)
		require.Equal(t, "/orders/"+orderID, b.Entry[i].Response.Location, "request and study are one order")
	}
	evs := f.Events()
	require.Len(t, evs, 2)
	patient := &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN-123"}}
	require.Equal(t, patient, evs[0].Patient)
	require.Equal(t, patient, evs[1].Patient)
	require.Equal(t, &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0002"}}, evs[0].ServiceRequest)
	require.Equal(t, evs[0].ServiceRequest, evs[1].ServiceRequest)
}

func TestIntakeTransactionAllOrNothing(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	body := strings.Replace(fixture(t, "transaction.json"), `"urn:dicom:uid"`, `"urn:ietf:rfc:3986"`, 1)
	r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", body)
	require.Equal(t, http.StatusBadRequest, r.status)
	o := outcome(t, r)
	require.Equal(t, []string{"Bundle.entry[2].resource.identifier"}, o.Issues[0].Expression)
	require.Equal(t, "Bundle.entry[2].resource.identifier: no Study Instance UID (system urn:dicom:uid)", o.Issues[0].Diagnostics)
	require.Empty(t, f.Events(), "the valid request in the same transaction was not accepted either")

	// The store fails half way: 503, and the client resends.
	f.acceptFn = func(n int, _ radgate.OrderEvent) error {
		if n == 1 {
			return errors.New("nats: timeout")
		}
		return nil
	}
	r = send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", fixture(t, "transaction.json"))
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	o = outcome(t, r)
	require.Equal(t, []string{"Bundle.entry[2]"}, o.Issues[0].Expression)
	require.Contains(t, o.Issues[0].Diagnostics, "1 earlier entries were accepted; resending the whole Bundle is safe")
}

func TestIntakeBatch(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	f.acceptFn = func(_ int, ev radgate.OrderEvent) error {
		if ev.StudyInstanceUID == "1.2.3.503" {
			return errors.New("nats: timeout")
		}
		return nil
	}
	r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"1.2.3.1"}]}},
		{"resource":{"resourceType":"ImagingStudy","status":"available","identifier":[]}},
		{"resource":{"resourceType":"ImagingStudy","status":"available","identifier":[{"system":"urn:dicom:uid","value":"1.2.3.503"}]}}]}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var b responseBundle
	require.NoError(t, json.Unmarshal(r.body, &b))
	require.Equal(t, "batch-response", b.Type)
	require.Equal(t, "202 Accepted", b.Entry[0].Response.Status)
	require.Equal(t, "/orders/"+radgate.OrderID("study|1.2.3.1"), b.Entry[0].Response.Location)
	require.Equal(t, "400 Bad Request", b.Entry[1].Response.Status)
	o, err := fhir.ParseOperationOutcome(b.Entry[1].Response.Outcome)
	require.NoError(t, err)
	require.Equal(t, "Bundle.entry[1].resource.identifier: no Study Instance UID (system urn:dicom:uid)", o.Text())
	require.Equal(t, "503 Service Unavailable", b.Entry[2].Response.Status)
	require.Len(t, f.Events(), 1)
}

func TestIntakeNotify(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	// A heartbeat (R4 rest-hook without payload) has no body.
	r := send(t, http.MethodPost, srv.URL+"/fhir/notify", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, fhir.SeverityInformation, outcome(t, r).Issues[0].Severity)

	r = send(t, http.MethodPost, srv.URL+"/fhir/notify", "application/fhir+json", fixture(t, "servicerequest.json"))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	r = send(t, http.MethodPut, srv.URL+"/fhir/notify/ImagingStudy/is-1", "application/fhir+json", fixture(t, "imagingstudy.json"))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	require.Len(t, f.Events(), 2)
	require.Equal(t, r.header.Get("Location"), "/orders/"+radgate.OrderID("acsn|urn:oid:1.2.3.4.5|ACC-0001"), "same order")
}

func TestIntakeStatusErrors(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	f.statusFn = func(string) error { return errors.New("kv: bucket unavailable") }
	r := send(t, http.MethodGet, srv.URL+"/orders/abc", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, fhir.IssueTransient, outcome(t, r).Issues[0].Code)
}
