package fhirhttp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

var testLimitKeys = LimitKeys{MaxBodyBytes: "orders.max_body_bytes", MaxBundleEntries: "http.limits.max_bundle_entries",
	OrdersPerSecond: "http.limits.orders_per_second", Burst: "http.limits.order_burst"}

// serviceRequestJSON is a ServiceRequest with this accession number.
func serviceRequestJSON(t testing.TB, accession string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order",
		"identifier": []any{map[string]any{
			"type":   map[string]any{"coding": []any{map[string]any{"system": fhir.SystemV20203, "code": "ACSN"}}},
			"system": "urn:oid:1.2.3.4.5", "value": accession}},
		"subject": map[string]any{"reference": "Patient/p-1"},
	})
	require.NoError(t, err)
	return b
}

// bundleJSON is a Bundle of n ServiceRequests.
func bundleJSON(t testing.TB, typ string, n int) string {
	t.Helper()
	entries := make([]any, n)
	for i := range entries {
		entries[i] = map[string]any{"resource": serviceRequestJSON(t, fmt.Sprintf("ACC-%05d", i)),
			"request": map[string]any{"method": "POST", "url": "ServiceRequest"}}
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries})
	require.NoError(t, err)
	return string(b)
}

// TestIntakeBundleEntryLimit: the probe's 10,000-order Bundles (transaction
// and batch) are refused 413 before any entry is read, naming the limit
// and its key; a Bundle at the limit is taken.
func TestIntakeBundleEntryLimit(t *testing.T) {
	for _, typ := range []string{"transaction", "batch"} {
		t.Run(typ, func(t *testing.T) {
			f, srv := newTestIntake(t, IntakeOptions{LimitKeys: testLimitKeys})
			for _, n := range []int{10_000, DefaultMaxBundleEntries + 1} {
				r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", bundleJSON(t, typ, n))
				require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
				o := outcome(t, r)
				require.Len(t, o.Issues, 1)
				require.Equal(t, fhir.IssueTooCostly, o.Issues[0].Code)
				require.Equal(t, fhir.DetailBundleTooLarge, o.Issues[0].Detail)
				require.Equal(t, []string{"Bundle.entry"}, o.Issues[0].Expression)
				require.Equal(t, fmt.Sprintf("the Bundle has %d entries; radgate takes at most 100 in one Bundle "+
					"(http.limits.max_bundle_entries): send them in Bundles of at most 100", n), o.Issues[0].Diagnostics)
				require.Empty(t, f.Events(), "nothing of it is accepted")
			}
			r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", bundleJSON(t, typ, DefaultMaxBundleEntries))
			require.Equal(t, http.StatusOK, r.status, "%.300s", r.body)
			require.Len(t, f.Events(), DefaultMaxBundleEntries)
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sendAs posts as the client named in X-Test-Client.
func sendAs(t *testing.T, client, url, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("X-Test-Client", client)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

// TestIntakeRateLimit: each client has its own token bucket of orders. One
// client over its rate gets 429 with Retry-After and an OperationOutcome,
// nothing of the refused request is accepted, and other clients are not
// slowed down by it.
func TestIntakeRateLimit(t *testing.T) {
	clk := &clock{t: fixedNow}
	f := newFakeIntake()
	srv := httptest.NewServer(NewIntake(f, IntakeOptions{
		Now: clk.Now, MaxBundleEntries: 5, LimitKeys: testLimitKeys,
		Rate:      RateLimit{OrdersPerSecond: 2, Burst: 5},
		ClientKey: func(r *http.Request) string { return r.Header.Get("X-Test-Client") },
	}))
	t.Cleanup(srv.Close)
	sr := func(i int) string { return string(serviceRequestJSON(t, fmt.Sprintf("ACC-%d", i))) }

	for i := range 5 {
		r := sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", sr(i))
		require.Equal(t, http.StatusAccepted, r.status, "order %d is within the burst", i)
	}
	r := sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", sr(5))
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "1", r.header.Get("Retry-After"), "one order at 2/s: half a second, rounded up")
	o := outcome(t, r)
	require.Equal(t, fhir.IssueThrottled, o.Issues[0].Code)
	require.Equal(t, fhir.DetailRateLimited, o.Issues[0].Detail)
	require.Equal(t, "too many orders from this client: radgate takes 2 orders per second from one client, up to 5 at once "+
		"(http.limits.orders_per_second, http.limits.order_burst); nothing of this request was accepted: send it again in 1 s",
		o.Issues[0].Diagnostics)
	require.Len(t, f.Events(), 5)

	// Another client is not held up by the first.
	r = sendAs(t, "b", srv.URL+"/fhir", bundleJSON(t, "transaction", 5))
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, f.Events(), 10)

	// A Bundle costs one token per order: after a second, client a has 2,
	// so a Bundle of 5 waits for 3 more (1.5 s → 2) and none of it is taken.
	clk.Add(time.Second)
	for _, typ := range []string{"transaction", "batch"} {
		r = sendAs(t, "a", srv.URL+"/fhir", bundleJSON(t, typ, 5))
		require.Equal(t, http.StatusTooManyRequests, r.status, typ)
		require.Equal(t, "2", r.header.Get("Retry-After"))
	}
	require.Len(t, f.Events(), 10)
	for i := range 2 {
		require.Equal(t, http.StatusAccepted, sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", sr(10+i)).status)
	}
	require.Equal(t, http.StatusTooManyRequests, sendAs(t, "a", srv.URL+"/fhir/notify", sr(12)).status, "notifications count too")
	// A request that is refused for its content still costs a token.
	clk.Add(500 * time.Millisecond)
	require.Equal(t, http.StatusBadRequest, sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", `{"resourceType":"ServiceRequest"}`).status)
	require.Equal(t, http.StatusTooManyRequests, sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", sr(13)).status)
	// Heartbeats are free.
	require.Equal(t, http.StatusOK, sendAs(t, "a", srv.URL+"/fhir/notify", "").status)

	// With time the bucket refills to its burst, no further.
	clk.Add(time.Hour)
	r = sendAs(t, "a", srv.URL+"/fhir", bundleJSON(t, "batch", 5))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, http.StatusTooManyRequests, sendAs(t, "a", srv.URL+"/fhir/ServiceRequest", sr(20)).status)
}

// TestClientLimiterBounded: the map of clients stays within MaxClients
// however many distinct clients come; forgetting a client whose bucket is
// full again changes nothing for it, and a client that spent its bucket
// is forgotten only after the least recently seen.
func TestClientLimiterBounded(t *testing.T) {
	l := newClientLimiter(RateLimit{OrdersPerSecond: 0.01, Burst: 10, MaxClients: 100}, 0) // refills in 1000 s
	t0 := fixedNow
	require.Zero(t, l.take("hot", 10, t0))
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		require.Zero(t, l.take(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256), 1, now), "a new client has a full bucket")
		if i%50 == 0 {
			require.NotZero(t, l.take("hot", 10, now), "the hot client is still out of tokens")
		}
		require.LessOrEqual(t, l.size(), 100)
	}
	require.NotZero(t, l.take("hot", 10, t0.Add(10*time.Second)), "kept: seen recently, bucket not yet full")

	// Once their buckets have refilled, the old clients are all forgotten
	// when the map is next full; the new ones, which spent tokens, stay.
	later := t0.Add(2000 * time.Second)
	fresh := 100 - l.size()
	for i := range fresh + 1 {
		require.Zero(t, l.take(fmt.Sprintf("new-%d", i), 1, later))
	}
	require.Equal(t, fresh+1, l.size())
}

func TestClientKeys(t *testing.T) {
	req := func(auth string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/fhir", nil)
		r.RemoteAddr = "192.0.2.7:50123"
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	jwt := func(claims string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
	}
	require.Equal(t, "ip:192.0.2.7", RemoteClientKey(req("")))
	require.Equal(t, "ip:192.0.2.7", BearerClientKey(req("")), "no token: the address")
	a1 := BearerClientKey(req("Bearer " + jwt(`{"iss":"https://idp","sub":"ris-a","exp":1}`)))
	a2 := BearerClientKey(req("Bearer " + jwt(`{"iss":"https://idp","sub":"ris-a","exp":2}`)))
	b := BearerClientKey(req("Bearer " + jwt(`{"iss":"https://idp","sub":"ris-b","exp":1}`)))
	require.Equal(t, a1, a2, "one principal, whichever token it holds")
	require.NotEqual(t, a1, b)
	require.True(t, strings.HasPrefix(a1, "sub:"))
	s1, s2 := BearerClientKey(req("Bearer static-token-one")), BearerClientKey(req("bearer static-token-two"))
	require.NotEqual(t, s1, s2)
	require.True(t, strings.HasPrefix(s1, "token:"))
	require.NotContains(t, s1, "static-token", "the token itself is never the key")
}

// TestIntakeRefusesBadIdentifiers: an order whose identifiers radgate could
// not send on (control characters, over 64 characters) is refused 400
// naming the element, before anything is stored, and the answer does not
// echo the value.
func TestIntakeRefusesBadIdentifiers(t *testing.T) {
	long := strings.Repeat("9", 10_000)
	for _, c := range []struct {
		name, path, body, want string
		code                   fhir.IssueCode
	}{
		{"ESC in accession", "/fhir/ServiceRequest", string(serviceRequestJSON(t, "ACC\x1b[31m1")), "ServiceRequest.identifier[0].value", fhir.IssueValue},
		{"NUL in accession", "/fhir/ServiceRequest", string(serviceRequestJSON(t, "ACC\x001")), "ServiceRequest.identifier[0].value", fhir.IssueValue},
		{"10 kB accession", "/fhir/ServiceRequest", string(serviceRequestJSON(t, long)), "ServiceRequest.identifier[0].value", fhir.IssueTooLong},
		{"in a transaction", "/fhir", strings.Replace(bundleJSON(t, "transaction", 3), "ACC-00001", `ACC\u001b`, 1),
			"Bundle.entry[1].resource.identifier[0].value", fhir.IssueValue},
		{"at notify", "/fhir/notify", string(serviceRequestJSON(t, long)), "ServiceRequest.identifier[0].value", fhir.IssueTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, srv := newTestIntake(t, IntakeOptions{})
			r := send(t, http.MethodPost, srv.URL+c.path, "application/fhir+json", c.body)
			require.Equal(t, http.StatusBadRequest, r.status)
			o := outcome(t, r)
			require.Equal(t, []string{c.want}, o.Issues[0].Expression)
			require.Equal(t, c.code, o.Issues[0].Code)
			require.Equal(t, fhir.DetailInvalidIdentifier, o.Issues[0].Detail)
			require.Less(t, len(r.body), 1024, "the value is not echoed")
			require.NotContains(t, string(r.body), "\x1b")
			require.Empty(t, f.Events(), "nothing stored")
		})
	}

	// The batch refuses the bad entry alone.
	f, srv := newTestIntake(t, IntakeOptions{})
	r := send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json",
		strings.Replace(bundleJSON(t, "batch", 3), "ACC-00001", `ACC\u0000`, 1))
	require.Equal(t, http.StatusOK, r.status)
	var b responseBundle
	require.NoError(t, json.Unmarshal(r.body, &b))
	require.Equal(t, "400 Bad Request", b.Entry[1].Response.Status)
	require.Len(t, f.Events(), 2)
	for _, ev := range f.Events() {
		require.NoError(t, radgate.CheckIdentifier("accession", ev.Accession.Value, 0))
	}
}

// reasonIntake answers every order with a status that has failed: its
// reasons hold what peers said, as the pipeline records them.
type reasonIntake struct{ statusErr error }

const (
	pacsReason = "study not retrieved from the PACS: GET /dicom-web/studies?AccessionNumber=ACC-1&includefield=00081030: " +
		"500 Internal Server Error: {\"Message\":\"Orthanc internal error\"}"
	fhirReason = "delivering result r-1: posting a transaction Bundle: FHIR server answered 400 Bad Request: Invalid string format"
)

func (ri *reasonIntake) Accept(_ context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	key, err := radgate.OrderKey(ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	return radgate.OrderStatus{ID: radgate.OrderID(key), Key: key, State: radgate.StateFailed, Reason: pacsReason,
		Engines: map[string]radgate.EngineProgress{"cxr": {State: radgate.StateFailed, Reason: pacsReason,
			Deliveries: map[string]radgate.DeliveryProgress{"fhir": {State: radgate.StateFailed, Reason: fhirReason}}}}}, nil
}

func (ri *reasonIntake) Status(context.Context, string) (radgate.OrderStatus, error) {
	return radgate.OrderStatus{}, ri.statusErr
}

// TestIntakeAnswersCarryNoInternals: no answer of the intake carries the
// broker's error text, a PACS query path or a peer's error text, whatever
// the order store holds or fails with.
func TestIntakeAnswersCarryNoInternals(t *testing.T) {
	ri := &reasonIntake{statusErr: errors.New("nats: timeout reading order 0123 from bucket ORDERS_STATE")}
	srv := httptest.NewServer(NewIntake(ri, IntakeOptions{}))
	t.Cleanup(srv.Close)
	var bodies []string
	r := send(t, http.MethodPost, srv.URL+"/fhir/ServiceRequest", "application/fhir+json", string(serviceRequestJSON(t, "ACC-1")))
	require.Equal(t, http.StatusAccepted, r.status)
	var st radgate.OrderStatus
	require.NoError(t, json.Unmarshal(r.body, &st))
	require.Equal(t, radgate.StateFailed, st.State, "the state is told")
	require.Equal(t, radgate.StateFailed, st.Engines["cxr"].Deliveries["fhir"].State)
	bodies = append(bodies, string(r.body))
	r = send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", bundleJSON(t, "batch", 2))
	require.Equal(t, http.StatusOK, r.status)
	bodies = append(bodies, string(r.body))
	r = send(t, http.MethodGet, srv.URL+"/orders/0123", "", "")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	o := outcome(t, r)
	require.Equal(t, fhir.DetailOrderStoreUnavailable, o.Issues[0].Detail)
	bodies = append(bodies, string(r.body))
	for _, b := range bodies {
		for _, internal := range []string{"nats:", "ORDERS_STATE", "/dicom-web", "includefield", "Orthanc", "Invalid string format", "Internal Server Error"} {
			require.NotContains(t, b, internal)
		}
	}
}
