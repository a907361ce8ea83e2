package testenv

// Tests of the real peers started by testenv/start.sh: they check that the
// peers behave the way radgate's other tests rely on. Every test uses unique
// identifiers, so they can run against peers shared with other packages and
// be re-run against the same peers (go test -count=2).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var client = &http.Client{Timeout: 15 * time.Second}

func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// fhirDo sends a FHIR JSON request and decodes the JSON answer (if any) into a map.
func fhirDo(t *testing.T, method, u string, body any, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "answer to %s %s is not JSON: %s", method, u, raw)
	}
	return resp, out
}

func issues(oo map[string]any) string {
	b, _ := json.Marshal(oo["issue"])
	return string(b)
}

func TestFHIRValidationRefusesInvalidResources(t *testing.T) {
	fhir := FHIR(t)
	id := unique(t)

	invalid := map[string]map[string]any{
		"missing code": {
			"resourceType": "DiagnosticReport",
			"status":       "final",
			"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test", "value": id}},
		},
		"missing status": {
			"resourceType": "DiagnosticReport",
			"code":         map[string]any{"text": "Chest X-ray AI triage"},
			"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test", "value": id}},
		},
		"status not in the required value set": {
			"resourceType": "DiagnosticReport",
			"status":       "done",
			"code":         map[string]any{"text": "Chest X-ray AI triage"},
			"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test", "value": id}},
		},
	}
	for name, res := range invalid {
		t.Run(name, func(t *testing.T) {
			resp, body := fhirDo(t, http.MethodPost, fhir.URL+"/DiagnosticReport", res, nil)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Equal(t, "OperationOutcome", body["resourceType"])
			require.Contains(t, issues(body), `"severity":"error"`)
		})
	}

	// None of them was stored.
	resp, bundle := fhirDo(t, http.MethodGet, fhir.URL+"/DiagnosticReport?identifier="+url.QueryEscape("urn:radgate:peers-test|"+id), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 0, bundle["total"])

	valid := map[string]any{
		"resourceType": "DiagnosticReport",
		"status":       "final",
		"code":         map[string]any{"text": "Chest X-ray AI triage"},
		"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test", "value": id}},
	}
	resp, created := fhirDo(t, http.MethodPost, fhir.URL+"/DiagnosticReport", valid, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%v", created)
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, fhir.URL+"/DiagnosticReport/"), "Location %q", loc)
	require.NotEmpty(t, created["id"])

	resp, read := fhirDo(t, http.MethodGet, fhir.URL+"/DiagnosticReport/"+created["id"].(string), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "final", read["status"])
}

func TestFHIRTransactionConditionalCreateKeepsOneCopy(t *testing.T) {
	fhir := FHIR(t)
	id := unique(t)
	patientURN := "urn:uuid:6a3f9c1e-0000-4000-8000-" + id
	bundle := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			map[string]any{
				"fullUrl": patientURN,
				"resource": map[string]any{
					"resourceType": "Patient",
					"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test:mrn", "value": id}},
				},
				"request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:radgate:peers-test:mrn|" + id},
			},
			map[string]any{
				"fullUrl": "urn:uuid:6a3f9c1e-0001-4000-8000-" + id,
				"resource": map[string]any{
					"resourceType": "ServiceRequest",
					"status":       "active",
					"intent":       "order",
					"subject":      map[string]any{"reference": patientURN},
					"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test:acc", "value": id}},
				},
				"request": map[string]any{"method": "POST", "url": "ServiceRequest", "ifNoneExist": "identifier=urn:radgate:peers-test:acc|" + id},
			},
		},
	}

	entryStatuses := func(resp map[string]any) []string {
		var out []string
		for _, e := range resp["entry"].([]any) {
			out = append(out, e.(map[string]any)["response"].(map[string]any)["status"].(string))
		}
		return out
	}

	resp, first := fhirDo(t, http.MethodPost, fhir.URL, bundle, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", first)
	require.Equal(t, "transaction-response", first["type"])
	for _, s := range entryStatuses(first) {
		require.True(t, strings.HasPrefix(s, "201"), "first post: entry status %q", s)
	}
	firstEntries := first["entry"].([]any)
	patientID := firstEntries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
	sr := firstEntries[1].(map[string]any)["resource"].(map[string]any)
	require.Equal(t, "Patient/"+patientID, sr["subject"].(map[string]any)["reference"], "urn:uuid reference rewritten")

	resp, second := fhirDo(t, http.MethodPost, fhir.URL, bundle, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", second)
	for _, s := range entryStatuses(second) {
		require.True(t, strings.HasPrefix(s, "200"), "second post: entry status %q", s)
	}
	require.Equal(t, sr["id"], second["entry"].([]any)[1].(map[string]any)["resource"].(map[string]any)["id"])

	for _, q := range []string{"Patient?identifier=urn:radgate:peers-test:mrn|" + id, "ServiceRequest?identifier=urn:radgate:peers-test:acc|" + id} {
		parts := strings.SplitN(q, "?", 2)
		resp, found := fhirDo(t, http.MethodGet, fhir.URL+"/"+parts[0]+"?identifier="+url.QueryEscape(strings.TrimPrefix(parts[1], "identifier=")), nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.EqualValues(t, 1, found["total"], "one copy of %s", q)
	}
}

type notification struct {
	auth        string
	contentType string
	body        map[string]any
}

func TestFHIRRestHookSubscription(t *testing.T) {
	fhir := FHIR(t)
	id := unique(t)
	token := "Bearer peers-test-" + id

	got := make(chan notification, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		n := notification{auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
		_ = json.Unmarshal(raw, &n.body)
		got <- n
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	require.True(t, strings.HasPrefix(hook.URL, "http://127.0.0.1:"), hook.URL)

	ident := "urn:radgate:peers-test:acc|" + id
	sub := map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "radgate peers test",
		"criteria":     "ServiceRequest?status=active&identifier=" + ident,
		"channel": map[string]any{
			"type":     "rest-hook",
			"endpoint": hook.URL + "/fhir/notify",
			"payload":  "application/fhir+json",
			"header":   []any{"Authorization: " + token},
		},
	}
	resp, created := fhirDo(t, http.MethodPost, fhir.URL+"/Subscription", sub, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%v", created)
	require.Equal(t, "active", created["status"])
	subID := created["id"].(string)
	t.Cleanup(func() {
		resp, _ := fhirDo(t, http.MethodDelete, fhir.URL+"/Subscription/"+subID, nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	serviceRequest := func(status string) map[string]any {
		return map[string]any{
			"resourceType": "ServiceRequest",
			"status":       status,
			"intent":       "order",
			"subject":      map[string]any{"display": "test subject"},
			"identifier":   []any{map[string]any{"system": "urn:radgate:peers-test:acc", "value": id}},
		}
	}

	// Not matching (status draft): no notification. Deliveries of one
	// subscription are sent in order, so had it matched, it would arrive first.
	resp, _ = fhirDo(t, http.MethodPost, fhir.URL+"/ServiceRequest", serviceRequest("draft"), nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	resp, active := fhirDo(t, http.MethodPost, fhir.URL+"/ServiceRequest", serviceRequest("active"), nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	wait := func() notification {
		t.Helper()
		select {
		case n := <-got:
			return n
		case <-time.After(5 * time.Second):
			t.Fatal("no rest-hook notification within 5 s")
		}
		return notification{}
	}
	n := wait()
	require.Equal(t, token, n.auth, "channel.header sent")
	require.Contains(t, n.contentType, "application/fhir+json")
	require.Equal(t, "ServiceRequest", n.body["resourceType"])
	require.Equal(t, active["id"], n.body["id"], "the matching resource is the body")
	require.Equal(t, "active", n.body["status"])

	// Created inside a transaction: notified too.
	tx := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{map[string]any{
			"fullUrl":  "urn:uuid:6a3f9c1e-0002-4000-8000-" + id,
			"resource": serviceRequest("active"),
			"request":  map[string]any{"method": "POST", "url": "ServiceRequest"},
		}},
	}
	resp, txResp := fhirDo(t, http.MethodPost, fhir.URL, tx, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", txResp)
	txID := txResp["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["id"]
	n = wait()
	require.Equal(t, txID, n.body["id"])

	select {
	case extra := <-got:
		t.Fatalf("unexpected notification for %v/%v (status %v)", extra.body["resourceType"], extra.body["id"], extra.body["status"])
	case <-time.After(300 * time.Millisecond):
	}
}

func TestOrthancSTOWThenQIDO(t *testing.T) {
	pacs := Orthanc(t)
	const (
		accession = "RGS0004"
		studyUID  = "1.2.276.0.7230010.3.1.2.8323328.3800.1795771631.895301"
		sopUID    = "1.2.276.0.7230010.3.1.4.8323328.3800.1795771631.895303"
	)
	dcm, err := os.ReadFile(Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	require.NoError(t, err)
	_, err = part.Write(dcm)
	require.NoError(t, err)
	require.NoError(t, mw.Close())

	req, err := http.NewRequest(http.MethodPost, pacs.DICOMweb+"/studies", &body)
	require.NoError(t, err)
	req.SetBasicAuth(pacs.Username, pacs.Password)
	req.Header.Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, mw.Boundary()))
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := client.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "STOW-RS: %s", raw)
	var stow map[string]any
	require.NoError(t, json.Unmarshal(raw, &stow))
	// Orthanc always sends FailedSOPSequence (0008,1198), empty when nothing failed.
	if failed, ok := stow["00081198"].(map[string]any); ok {
		require.Empty(t, failed["Value"], "FailedSOPSequence: %s", raw)
	}
	// Stored now or by an earlier run ("AlreadyStored"): referenced either way.
	require.Contains(t, string(raw), sopUID)

	qido := func(level string) []map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, pacs.DICOMweb+"/"+level+"?AccessionNumber="+accession, nil)
		require.NoError(t, err)
		req.SetBasicAuth(pacs.Username, pacs.Password)
		req.Header.Set("Accept", "application/dicom+json")
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "QIDO-RS %s: %s", level, raw)
		var out []map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		return out
	}
	value := func(ds map[string]any, tag string) any {
		el, ok := ds[tag].(map[string]any)
		if !ok {
			return nil
		}
		v, _ := el["Value"].([]any)
		if len(v) == 0 {
			return nil
		}
		return v[0]
	}

	studies := qido("studies")
	require.Len(t, studies, 1)
	require.Equal(t, accession, value(studies[0], "00080050"))
	require.Equal(t, studyUID, value(studies[0], "0020000D"))

	instances := qido("instances")
	require.Len(t, instances, 1)
	require.Equal(t, sopUID, value(instances[0], "00080018"))

	// Unauthenticated requests are refused.
	resp, err = client.Get(pacs.DICOMweb + "/studies?AccessionNumber=" + accession)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
