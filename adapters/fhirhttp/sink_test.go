package fhirhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
	"github.com/stretchr/testify/require"
)

const testDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not " +
	"determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

func testPNG(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 32, 24))))
	return buf.Bytes()
}

func testResult(t testing.TB, outcome radgate.Outcome) radgate.Result {
	r := radgate.Result{
		ID: "r-0001",
		Order: radgate.OrderStatus{
			ID:               "0123456789abcdef01234567",
			Key:              "acsn|urn:oid:1.2.3.4.5|ACC-0001",
			Accession:        &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"},
			StudyInstanceUID: "1.2.826.0.1.3680043.8.498.1",
			ServiceRequest:   &radgate.Reference{Reference: "ServiceRequest/sr-1"},
			ImagingStudy:     &radgate.Reference{Reference: "ImagingStudy/is-1"},
			Patient:          &radgate.Reference{Reference: "Patient/p-1"},
		},
		Engine: radgate.EngineInfo{
			ID: "cxr-pneumonia-densenet121", Name: "CXR pneumonia DenseNet-121", Version: "1.0.0", Disclaimer: testDisclaimer,
			Finding: radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"},
		},
		Outcome:  outcome,
		ScoredAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	}
	switch outcome {
	case radgate.OutcomeScored:
		r.Probability, r.Tier, r.Marked, r.HeatmapPNG = 0.91, "High", true, testPNG(t)
		r.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1.1.1"
	case radgate.OutcomeNotApplicable:
		r.Reason = "no CR or DX chest image in the study (found CT)"
	case radgate.OutcomeFailed:
		r.Reason = "study not in the PACS after 10m0s"
	}
	return r
}

// fakeFHIR answers transactions the way a FHIR server does.
func fakeFHIR(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		handler(w, r, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func txResponse(types ...string) string {
	var entries []string
	for i, typ := range types {
		entries = append(entries, `{"response":{"status":"201 Created","location":"`+typ+`/id-`+string(rune('a'+i))+`/_history/1"}}`)
	}
	return `{"resourceType":"Bundle","type":"transaction-response","entry":[` + strings.Join(entries, ",") + `]}`
}

func TestSinkDeliver(t *testing.T) {
	for _, c := range []struct {
		outcome radgate.Outcome
		types   []string
		report  string
		objects []radgate.DeliveredObject // what a person opens, not the Device
	}{
		{radgate.OutcomeScored, []string{"Device", "Media", "Observation", "DiagnosticReport"}, "DiagnosticReport/id-d",
			[]radgate.DeliveredObject{{Kind: "DiagnosticReport", Ref: "DiagnosticReport/id-d"}, {Kind: "Observation", Ref: "Observation/id-c"}, {Kind: "Media", Ref: "Media/id-b"}}},
		{radgate.OutcomeNotApplicable, []string{"Device", "Task"}, "Task/id-b", []radgate.DeliveredObject{{Kind: "Task", Ref: "Task/id-b"}}},
		{radgate.OutcomeFailed, []string{"Device", "Task"}, "Task/id-b", []radgate.DeliveredObject{{Kind: "Task", Ref: "Task/id-b"}}},
	} {
		t.Run(string(c.outcome), func(t *testing.T) {
			var got []string
			srv := fakeFHIR(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
				require.Equal(t, http.MethodPost, r.Method)
				require.Equal(t, "/fhir/R4", r.URL.Path)
				require.Equal(t, "application/fhir+json", r.Header.Get("Content-Type"))
				require.Equal(t, "Bearer s3cret", r.Header.Get("Authorization"))
				var b struct {
					Type  string `json:"type"`
					Entry []struct {
						Resource struct {
							ResourceType string `json:"resourceType"`
							Status       string `json:"status"`
						} `json:"resource"`
					} `json:"entry"`
				}
				require.NoError(t, json.Unmarshal(body, &b))
				require.Equal(t, "transaction", b.Type)
				for _, e := range b.Entry {
					got = append(got, e.Resource.ResourceType+":"+e.Resource.Status)
				}
				require.Contains(t, string(body), `"reference":"Device/dev-1"`, "the Device is referenced by id")
				w.Header().Set("Content-Type", "application/fhir+json")
				_, _ = io.WriteString(w, txResponse(c.types...))
			})
			s, err := NewSink(SinkOptions{BaseURL: srv.URL + "/fhir/R4/", Token: "s3cret"})
			require.NoError(t, err)
			seedDevice(s, testResult(t, c.outcome).Engine, "Device/dev-1")
			rc, err := s.Deliver(t.Context(), testResult(t, c.outcome))
			require.NoError(t, err)
			require.Equal(t, radgate.Receipt{Report: c.report, Objects: c.objects}, rc)
			switch c.outcome {
			case radgate.OutcomeScored:
				require.Equal(t, []string{"Media:completed", "Observation:final", "DiagnosticReport:final", "Provenance:"}, got)
			case radgate.OutcomeNotApplicable:
				require.Equal(t, []string{"Task:rejected", "Provenance:"}, got)
			case radgate.OutcomeFailed:
				require.Equal(t, []string{"Task:failed", "Provenance:"}, got)
			}
		})
	}
}

// TestSinkErrors classifies what can go wrong: retry later (transient) or
// give up with the server's reason (permanent).
func TestSinkErrors(t *testing.T) {
	oo := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure","details":{"text":"Missing required property"},"expression":["DiagnosticReport.status"]}]}`
	for _, c := range []struct {
		name      string
		status    int
		body      string
		transient bool
		want      string
	}{
		{"500", 500, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","details":{"text":"Internal server error"}}]}`, true,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 500 Internal Server Error: error exception"},
		{"502 html", 502, "<html>bad gateway</html>", true,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 502 Bad Gateway (a text/html body of 24 bytes)"},
		{"503", 503, "", true, "delivering result r-0001: posting a transaction Bundle: FHIR server answered 503 Service Unavailable"},
		{"429", 429, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled","diagnostics":"slow down"}]}`, true,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 429 Too Many Requests: error throttled"},
		{"408", 408, "", true, "delivering result r-0001: posting a transaction Bundle: FHIR server answered 408 Request Timeout"},
		{"400", 400, oo, false,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 400 Bad Request: error structure at DiagnosticReport.status"},
		{"412", 412, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate","diagnostics":"multiple matches"}]}`, false,
			"delivering result r-0001: posting a transaction Bundle: FHIR server answered 412 Precondition Failed: error duplicate"},
		{"200, not a bundle", 200, `{"resourceType":"OperationOutcome","issue":[]}`, false,
			"delivering result r-0001: posting a transaction Bundle: reading the response: resourceType: expected a transaction-response Bundle, got OperationOutcome"},
		{"200, no report", 200, txResponse("Device", "Observation"), false,
			"delivering result r-0001: the transaction response names no DiagnosticReport"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := fakeFHIR(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			})
			s, err := NewSink(SinkOptions{BaseURL: srv.URL})
			require.NoError(t, err)
			seedDevice(s, testResult(t, radgate.OutcomeScored).Engine, "Device/dev-1")
			_, err = s.Deliver(t.Context(), testResult(t, radgate.OutcomeScored))
			require.EqualError(t, err, c.want)
			require.Equal(t, c.transient, radgate.IsTransient(err))
			if c.status != 200 {
				var oe *fhir.OutcomeError
				require.ErrorAs(t, err, &oe)
				require.Equal(t, c.status, oe.Status)
				require.ErrorIs(t, err, &fhir.OutcomeError{Status: c.status})
			}
		})
	}
}

func TestSinkTransportErrors(t *testing.T) {
	// Connection refused: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s, err := NewSink(SinkOptions{BaseURL: "http://" + addr + "/fhir"})
	require.NoError(t, err)
	_, err = s.Deliver(t.Context(), testResult(t, radgate.OutcomeScored))
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err), "%v", err)
	require.Contains(t, err.Error(), "connection refused")

	// A server that hangs past the client's timeout.
	var calls atomic.Int32
	release := make(chan struct{})
	srv := fakeFHIR(t, func(http.ResponseWriter, *http.Request, []byte) {
		calls.Add(1)
		<-release
	})
	defer close(release)
	s, err = NewSink(SinkOptions{BaseURL: srv.URL, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	_, err = s.Deliver(t.Context(), testResult(t, radgate.OutcomeNotApplicable))
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err), "%v", err)
	// The sink never retries by itself (the stage does, with backoff). On a
	// loaded machine the request may not even reach the server in time, so
	// the bound is at most one call, not exactly one.
	require.LessOrEqual(t, calls.Load(), int32(1))
}

func TestSinkInvalidResult(t *testing.T) {
	srv := fakeFHIR(t, func(http.ResponseWriter, *http.Request, []byte) { t.Error("nothing may be posted") })
	s, err := NewSink(SinkOptions{BaseURL: srv.URL})
	require.NoError(t, err)
	for name, mod := range map[string]func(*radgate.Result){
		"no disclaimer":   func(r *radgate.Result) { r.Engine.Disclaimer = "" },
		"marked, no PNG":  func(r *radgate.Result) { r.HeatmapPNG = nil },
		"unknown outcome": func(r *radgate.Result) { r.Outcome = "maybe" },
	} {
		r := testResult(t, radgate.OutcomeScored)
		mod(&r)
		_, err := s.Deliver(t.Context(), r)
		require.Error(t, err, name)
		require.False(t, radgate.IsTransient(err), name)
	}
	r := testResult(t, radgate.OutcomeScored)
	r.HeatmapPNG = nil
	_, err = s.Deliver(t.Context(), r)
	require.True(t, errors.Is(err, fhir.ErrInvalidResult))
}

func TestNewClientErrors(t *testing.T) {
	for base, want := range map[string]string{
		"":                           "FHIR base URL: empty",
		"ftp://x/fhir":               `FHIR base URL "ftp://x/fhir": want http:// or https:// with a host`,
		"http:///fhir":               `FHIR base URL "http:///fhir": want http:// or https:// with a host`,
		"http://x/fhir?_format=json": `FHIR base URL "http://x/fhir?_format=json": must not carry a query or fragment`,
	} {
		_, err := NewClient(ClientOptions{BaseURL: base})
		require.EqualError(t, err, want)
	}
	c, err := NewClient(ClientOptions{BaseURL: "http://127.0.0.1:8103/fhir/R4/"})
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8103/fhir/R4", c.BaseURL())
}

// seedDevice gives a Sink the engine's Device as if it had looked it up,
// for tests whose fake server answers transactions only.
func seedDevice(s *Sink, e radgate.EngineInfo, ref string) {
	c := &deviceCall{done: make(chan struct{}), ref: ref}
	close(c.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices[fhir.EngineIdentifier(fhir.Engine{ID: e.ID, Version: e.Version}).Value] = c
}
