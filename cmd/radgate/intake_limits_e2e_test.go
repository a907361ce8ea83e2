package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// postJSON posts a resource to radgate serve's intake.
func postJSON(t *testing.T, base, path string, res any) (int, http.Header, []byte) {
	t.Helper()
	b, err := json.Marshal(res)
	require.NoError(t, err)
	resp, err := http.Post(base+path, "application/fhir+json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

// requireNoInternals fails if an answer carries the broker's, PACS's or a
// peer's own text.
func requireNoInternals(t *testing.T, rg *running, body []byte) {
	t.Helper()
	for _, internal := range []string{"nats:", "maximum payload", "/dicom-web", rg.cfg.PACS.DICOMwebURL, rg.cfg.FHIR.BaseURL} {
		require.NotContains(t, string(body), internal)
	}
}

// TestServeRefusesControlCharactersInIdentifiers: the probe's ESC in an
// accession number. radgate serve refuses the order at intake (400 naming
// the element) and stores nothing, while a clean order for the same study
// gets its DiagnosticReport on the real FHIR server.
func TestServeRefusesControlCharactersInIdentifiers(t *testing.T) {
	rg := startRadgate(t, nil)
	ctx := t.Context()
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	clone, meta, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+6)
	require.NoError(t, err)
	c := &demo.Case{File: "control-characters.dcm", Data: clone, Path: demo.ViaDirectPost}
	require.NoError(t, rg.env.LoadImages(ctx, []*demo.Case{c}))

	subject := map[string]any{"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-ESC"}}
	for _, bad := range []string{meta.AccessionNumber + "\x1b[2J", meta.AccessionNumber + "\x00"} {
		m := *meta
		m.AccessionNumber = bad
		code, _, body := postJSON(t, rg.url, "/fhir/ServiceRequest", demo.ServiceRequest(&m, subject))
		require.Equal(t, http.StatusBadRequest, code, "%s", body)
		o, err := fhir.ParseOperationOutcome(body)
		require.NoError(t, err)
		require.Equal(t, []string{"ServiceRequest.identifier[0].value"}, o.Issues[0].Expression)
		require.Equal(t, fhir.DetailInvalidIdentifier, o.Issues[0].Detail)

		key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: bad}})
		require.NoError(t, err)
		_, err = rg.env.OrderStatus(ctx, radgate.OrderID(key))
		require.ErrorContains(t, err, "HTTP 404", "nothing was stored")
	}
	require.NotContains(t, rg.logs.String(), "\x1b", "nor logged")

	require.NoError(t, rg.env.Order(ctx, []*demo.Case{c}))
	require.NoError(t, rg.env.Wait(ctx, []*demo.Case{c}, 2*time.Minute))
	require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)
	require.NoError(t, rg.env.ReadReports(ctx, []*demo.Case{c}, t.TempDir()))
	require.NotNil(t, c.Report)
	require.Equal(t, "final", c.Report.Raw["status"])
}

// TestServeIntakeLimits: the http.limits keys reach radgate serve's intake.
// A Bundle over max_bundle_entries is 413 naming the key; an order the
// broker refuses as too large is 413, not 503 (a client that obeys 503
// would resend it forever), with no broker text; a client over its rate
// gets 429 with Retry-After.
func TestServeIntakeLimits(t *testing.T) {
	rg := startRadgate(t, func(c *config.Config) {
		c.HTTP.Limits = config.IntakeLimits{MaxBundleEntries: 2, OrdersPerSecond: 0.001, OrderBurst: 4, MaxClients: 100}
		c.Orders.MaxBodyBytes = 16 << 20 // room for an order over the broker's 8 MiB payload limit
	})
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 8
	_, meta, err := demo.Clone(src, seed)
	require.NoError(t, err)
	subject := map[string]any{"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-LIMITS"}}
	sr := demo.ServiceRequest(meta, subject)

	// 1. A Bundle of three entries (one token).
	entry := map[string]any{"resource": sr, "request": map[string]any{"method": "POST", "url": "ServiceRequest"}}
	code, _, body := postJSON(t, rg.url, "/fhir", map[string]any{"resourceType": "Bundle", "type": "transaction",
		"entry": []any{entry, entry, entry}})
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)
	o, err := fhir.ParseOperationOutcome(body)
	require.NoError(t, err)
	require.Equal(t, fhir.DetailBundleTooLarge, o.Issues[0].Detail)
	require.Contains(t, o.Issues[0].Diagnostics, "at most 2 in one Bundle (http.limits.max_bundle_entries)")

	// 2. An order beyond the broker's payload limit (8 MiB) but within the
	// body limit: 9,000 procedure codes with 1,000-character displays, each
	// of them valid (one token).
	big := demo.ServiceRequest(meta, subject)
	var codings []any
	display := strings.Repeat("Chest X-ray, two views. ", 42)[:1000]
	for i := range 9_000 {
		codings = append(codings, map[string]any{"system": "http://example.org/local-codes", "code": fmt.Sprintf("XR-%05d", i), "display": display})
	}
	big["code"] = map[string]any{"coding": codings}
	code, h, body := postJSON(t, rg.url, "/fhir/ServiceRequest", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%.500s", body)
	require.Empty(t, h.Get("Retry-After"))
	o, err = fhir.ParseOperationOutcome(body)
	require.NoError(t, err)
	require.Equal(t, fhir.IssueTooCostly, o.Issues[0].Code)
	require.Equal(t, fhir.DetailOrderTooLarge, o.Issues[0].Detail)
	requireNoInternals(t, rg, body)
	require.Contains(t, rg.logs.String(), "maximum payload", "the broker's reason is in the log")
	key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: meta.AccessionNumber}})
	require.NoError(t, err)
	_, err = rg.env.OrderStatus(t.Context(), radgate.OrderID(key))
	require.ErrorContains(t, err, "HTTP 404", "nothing of it was stored")

	// 3. Two ordinary orders fit the rest of the burst; the next is refused.
	for range 2 {
		code, _, body = postJSON(t, rg.url, "/fhir/ServiceRequest", sr)
		require.Equal(t, http.StatusAccepted, code, "%s", body)
		requireNoInternals(t, rg, body)
	}
	code, h, body = postJSON(t, rg.url, "/fhir/ServiceRequest", sr)
	require.Equal(t, http.StatusTooManyRequests, code, "%s", body)
	require.NotEmpty(t, h.Get("Retry-After"))
	o, err = fhir.ParseOperationOutcome(body)
	require.NoError(t, err)
	require.Equal(t, fhir.DetailRateLimited, o.Issues[0].Detail)
	require.True(t, strings.Contains(o.Issues[0].Diagnostics, "http.limits.orders_per_second"), o.Issues[0].Diagnostics)
}
