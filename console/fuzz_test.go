package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/routing"
)

// fuzzConsole is a console with every page's source faked, in mode none
// (the loopback user is viewer and operator), so that a request needs no
// session: the fuzzer reaches every handler and every form.
func fuzzConsole(t testing.TB) *Console {
	a, err := httpauth.New(config.IntakeAuth{Mode: config.AuthNone}, httpauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := fullOrder()
	f := &pageOrders{fakeOrders: fakeOrders{orders: []radgate.OrderStatus{o, order()}}, hist: fullHistory(o.ID)}
	set, err := routing.Load("/etc/radgate/routes.yaml", []byte(testRoutes),
		routing.Registry{Engines: []string{"cxr", "ct"}, Destinations: []string{"fhir", "pacs"}})
	if err != nil {
		t.Fatal(err)
	}
	con, err := New(Options{Auth: a, Orders: f, Order: f, Now: func() time.Time { return now },
		Pictures:     pictures{"res-1.png": pngOf(t, 64, 48), "res-1.jpg": pngOf(t, 64, 48)},
		Destinations: map[string]DestinationLink{"fhir": {Type: "fhir", URL: "https://ehr.example/fhir/"}},
		Routes:       fakeRoutes{set: set, st: RouteStatus{File: "r.yaml", Source: []byte(testRoutes), Digest: set.Digest()}},
		Governance: &fakeGov{states: []governance.State{{Key: governance.Key{Facility: "kids", Route: "chest", Engine: "cxr", Version: "1.0.0"},
			Mode: radgate.EngineShadow, At: "2026-12-01T10:00:00Z", By: "radgate"}}},
		Engines: func() []EngineInfo {
			return []EngineInfo{{ID: "cxr", Name: "Chest", Version: "1.0.0", Card: "# card\n\ntext\n"}}
		},
		Usage: fakeUsage{"2026-12": []billing.UsageRow{{Facility: "kids", Engine: "cxr", Analyses: 3}}},
		DLQ: &fakeDLQ{dls: []broker.DeadLetter{{Seq: 7, Time: now.Add(-5 * time.Minute), Stage: "deliver-fhir", OrderID: o.ID,
			Attempts: 4, Reason: "refused"}}},
		Outbox: &fakeOutbox{msgs: []OutboxMessage{{Key: "res-bad-r2", OrderID: o.ID, ControlID: "C2", Destination: "ris:2575",
			State: "not acknowledged", Failed: true}}},
		Audit:  &fakeAuditor{},
		Health: fakeHealth{lh: lastHour()},
		Peers:  fakePeers{{What: "connect pacs"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return con
}

// FuzzConsoleRequest sends any method, path, query and form to the
// console's pages and actions: no panic, no server error, and no input
// comes back as markup (every value reaches the page through
// html/template's escaping).
func FuzzConsoleRequest(f *testing.F) {
	f.Add("GET", "/console/orders", "state=delivered&facility=kids&q=ACC-42&since=2026-12-01&limit=20&cursor=abc", "")
	f.Add("GET", "/console/orders/"+fullOrder().ID, "", "")
	f.Add("GET", "/console/orders/"+fullOrder().ID+"/heatmap/cxr", "", "")
	f.Add("GET", "/console/routes", "modality=DX&body_part=CHEST&facility=kids&priority=stat&procedure=http://loinc.org|36643-5", "")
	f.Add("GET", "/console/engines", "facility=kids&days=14", "")
	f.Add("GET", "/console/engines/plot", "engine=cxr&facility=kids&kind=roc", "")
	f.Add("GET", "/console/engines/change", "engine=cxr&facility=kids&route=chest&version=1.0.0&mode=suspended", "")
	f.Add("POST", "/console/engines/change", "", "engine=cxr&facility=kids&route=chest&version=1.0.0&mode=active&why=ok&confirm=yes")
	f.Add("GET", "/console/usage", "month=2026-12&facility=kids", "")
	f.Add("GET", "/console/usage.csv", "month=2026-13", "")
	f.Add("GET", "/console/failures", "limit=5&hl7=all", "")
	f.Add("POST", "/console/failures/replay", "", "seq=7&seq=x&confirm=yes")
	f.Add("POST", "/console/failures/replay", "", "seq=7")
	f.Add("POST", "/console/failures/resend", "", "key=res-bad-r2&key=%3Cb%3E&confirm=yes")
	f.Add("GET", "/console/health", "", "")
	f.Add("POST", "/console/signin", "", "token=<script>")
	con := fuzzConsole(f)
	csrf := con.open
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		switch method {
		case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete:
		default:
			return
		}
		if !strings.HasPrefix(path, "/console/") || strings.HasPrefix(path, "/console/events") {
			return // the SSE stream is tested on its own; it does not end
		}
		u := &url.URL{Path: path, RawQuery: query}
		target := u.RequestURI()
		if !strings.HasPrefix(target, "/console/") {
			return
		}
		form, err := url.ParseQuery(body)
		if err != nil {
			form = url.Values{}
		}
		form.Set("csrf", csrf)
		req := httptest.NewRequest(method, "http://127.0.0.1/console/", strings.NewReader(form.Encode()))
		req.URL, req.RequestURI = u, target // any bytes, as a client may send them
		req.RemoteAddr = "127.0.0.1:4000"
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
		defer cancel()
		w := httptest.NewRecorder()
		con.ServeHTTP(w, req.WithContext(ctx))
		if os.Getenv("FUZZ_DEBUG") != "" {
			t.Logf("%s %s → %d", method, target, w.Code)
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d\n%s", method, target, w.Code, w.Body.String())
		}
		out := w.Body.String()
		for _, in := range append(append([]string{}, form["q"]...), queryValues(query)...) {
			if len(in) >= 3 && strings.ContainsAny(in, "<>") && strings.Contains(out, in) {
				t.Fatalf("%s %s: the input %q came back unescaped", method, target, in)
			}
		}
	})
}

func queryValues(q string) []string {
	v, err := url.ParseQuery(q)
	if err != nil {
		return nil
	}
	var out []string
	for _, vs := range v {
		out = append(out, vs...)
	}
	return out
}
