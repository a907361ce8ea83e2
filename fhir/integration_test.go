package fhir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// These tests post what the builders write to the real FHIR test server
// (testenv/start.sh), which validates every resource on write.

type fhirServer struct {
	t    *testing.T
	base string
}

func realServer(t *testing.T) fhirServer {
	t.Helper()
	return fhirServer{t: t, base: testenv.FHIR(t).URL}
}

func (s fhirServer) do(method, path string, body []byte) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.base+"/"+path, rd)
	require.NoError(s.t, err)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, b
}

// post posts a transaction and requires success.
func (s fhirServer) post(bundle []byte) *TransactionResponse {
	s.t.Helper()
	status, body := s.do(http.MethodPost, "", bundle)
	require.Equal(s.t, http.StatusOK, status, "transaction refused: %s", body)
	tr, err := ParseTransactionResponse(body)
	require.NoError(s.t, err)
	return tr
}

// search returns the resources of type typ with identifier system|value.
func (s fhirServer) search(typ string, id Identifier) []map[string]any {
	s.t.Helper()
	status, body := s.do(http.MethodGet, typ+"?identifier="+url.QueryEscape(id.System+"|"+id.Value), nil)
	require.Equal(s.t, http.StatusOK, status, "%s", body)
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(s.t, json.Unmarshal(body, &b))
	var out []map[string]any
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

func (s fhirServer) read(ref string) map[string]any {
	s.t.Helper()
	status, body := s.do(http.MethodGet, ref, nil)
	require.Equal(s.t, http.StatusOK, status, "reading %s: %s", ref, body)
	var out map[string]any
	require.NoError(s.t, json.Unmarshal(body, &out))
	return out
}

func uniqueID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func TestRealServerValidates(t *testing.T) {
	s := realServer(t)
	status, body := s.do(http.MethodPost, "DiagnosticReport", []byte(`{"resourceType":"DiagnosticReport"}`))
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	o, err := ParseOperationOutcome(body)
	require.NoError(t, err)
	require.Contains(t, o.Text(), "DiagnosticReport.status")

	// A zero samply DiagnosticReport is what the builders must never send.
	status, body = s.do(http.MethodPost, "", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:6f1c2f8e-0000-4000-8000-000000000001","resource":{"resourceType":"DiagnosticReport","status":"registered","code":{}},
		 "request":{"method":"POST","url":"DiagnosticReport"}}]}`))
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
}

func TestRealServerResultBundles(t *testing.T) {
	s := realServer(t)
	for _, tc := range []struct {
		name   string
		build  func(in ResultInput) ([]byte, error)
		marked bool
		report string
	}{
		{"scored, marked", BuildResultBundle, true, "DiagnosticReport"},
		{"scored, not marked", BuildResultBundle, false, "DiagnosticReport"},
		{"not scored", func(in ResultInput) ([]byte, error) {
			in.Reason = "no CR or DX chest image in the study (found CT)"
			return BuildTaskBundle(in, TaskRejected)
		}, false, "Task"},
		{"failed", func(in ResultInput) ([]byte, error) {
			in.Reason = "study not in the PACS after 10m0s"
			return BuildTaskBundle(in, TaskFailed)
		}, false, "Task"},
		{"by identifier", func(in ResultInput) ([]byte, error) {
			in.ServiceRequest, in.ImagingStudy, in.Patient = nil, nil, &Reference{Identifier: &Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN-1"}}
			return BuildResultBundle(in)
		}, true, "DiagnosticReport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t, tc.marked)
			in.ID = uniqueID(t)
			bundle, err := tc.build(in)
			require.NoError(t, err)

			tr := s.post(bundle)
			rep, ok := tr.Find(tc.report)
			require.True(t, ok, "the response names the %s", tc.report)
			require.Equal(t, "201 Created", rep.Status)

			// Everything the report links to resolves on the server.
			res := s.read(rep.Reference)
			if tc.report == "DiagnosticReport" {
				require.True(t, strings.HasSuffix(res["conclusion"].(string), testDisclaimer))
				obs := s.read(ref(t, res["result"].([]any)[0]))
				require.Equal(t, "final", obs["status"])
				dev := s.read(ref(t, obs["device"]))
				require.Equal(t, "Device", dev["resourceType"])
				if tc.marked {
					media := s.read(ref(t, res["media"].([]any)[0].(map[string]any)["link"]))
					require.Equal(t, "image/png", media["content"].(map[string]any)["contentType"])
				} else {
					require.NotContains(t, res, "media")
				}
			} else {
				require.Equal(t, "Device", s.read(ref(t, res["owner"]))["resourceType"])
			}

			// Posting the same bundle again creates nothing.
			again := s.post(bundle)
			rep2, ok := again.Find(tc.report)
			require.True(t, ok)
			require.Equal(t, "200 OK", rep2.Status)
			require.Equal(t, rep.Reference, rep2.Reference)
			require.Len(t, s.search(tc.report, ResultIdentifier(in.ID)), 1)
			if tc.report == "DiagnosticReport" {
				require.Len(t, s.search("Observation", Identifier{System: SystemResult, Value: in.ID + "/observation"}), 1)
				wantMedia := 0
				if tc.marked {
					wantMedia = 1
				}
				require.Len(t, s.search("Media", Identifier{System: SystemResult, Value: in.ID + "/media"}), wantMedia)
			}
		})
	}
}

// TestRealServerSharedDevice checks that a second result of the same engine
// version links to the Device the first one created (the conditional create
// of the Device matches, and the server points the urn:uuid at it).
func TestRealServerSharedDevice(t *testing.T) {
	s := realServer(t)
	engine := testInput(t, false).Engine
	engine.Version = "test-" + uniqueID(t)
	var devices []string
	for range 2 {
		in := testInput(t, false)
		in.ID, in.Engine = uniqueID(t), engine
		bundle, err := BuildResultBundle(in)
		require.NoError(t, err)
		rep, ok := s.post(bundle).Find("DiagnosticReport")
		require.True(t, ok)
		obs := s.read(ref(t, s.read(rep.Reference)["result"].([]any)[0]))
		devices = append(devices, ref(t, obs["device"]))
	}
	require.Equal(t, devices[0], devices[1])
	require.Len(t, s.search("Device", EngineIdentifier(engine)), 1)
}

func TestRealServerCodeSystems(t *testing.T) {
	s := realServer(t)
	for _, cs := range CodeSystems() {
		status, body := s.do(http.MethodPut, "CodeSystem/"+cs.ID, cs.JSON)
		require.Contains(t, []int{http.StatusOK, http.StatusCreated}, status, "%s", body)
	}
}
