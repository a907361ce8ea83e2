package httpauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/pipeline"
)

// idle stands in for the PACS, the engine and the result sink of a
// pipeline that is never started: this test only accepts orders and reads
// their status, which touch the order store alone.
type idle struct{}

var errIdle = errors.New("not used by this test")

func (idle) FindStudy(context.Context, radgate.StudyQuery) (*radgate.Study, error) {
	return nil, errIdle
}
func (idle) RetrieveInstance(context.Context, string, string, string) ([]byte, error) {
	return nil, errIdle
}
func (idle) Info() radgate.EngineInfo { return radgate.EngineInfo{ID: "cxr", Version: "1"} }
func (idle) Modalities() []string     { return []string{"DX"} }
func (idle) BodyParts() []string      { return []string{"CHEST"} }
func (idle) Views() []string          { return nil }
func (idle) Score(context.Context, [][]byte) ([]radgate.ImageScore, error) {
	return nil, errIdle
}
func (idle) Deliver(context.Context, radgate.Result) (radgate.Receipt, error) {
	return radgate.Receipt{}, errIdle
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// orderBundle is an EHR's transaction: a Patient with an MRN, and a
// ServiceRequest naming the patient with a display name.
const orderBundle = `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:5a8c7d20-0000-4000-8000-0000000000a1",
  "resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4.9","value":"MRN-4471902"}],
   "name":[{"family":"Testpatient","given":["Zyxwa"]}]},
  "request":{"method":"POST","url":"Patient"}},
 {"fullUrl":"urn:uuid:5a8c7d20-0000-4000-8000-0000000000a2",
  "resource":{"resourceType":"ServiceRequest","status":"active","intent":"order",
   "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},
     "system":"urn:oid:1.2.3.4.5","value":"ACC-ROLES-31"}],
   "code":{"coding":[{"system":"http://loinc.org","code":"36643-5"}]},
   "subject":{"reference":"urn:uuid:5a8c7d20-0000-4000-8000-0000000000a1","display":"Zyxwa Testpatient"}},
  "request":{"method":"POST","url":"ServiceRequest"}}]}`

// identifying are the values no caller without phi may see.
var identifying = []string{"MRN-4471902", "Zyxwa", "Testpatient", "ACC-ROLES-31"}

// The real HTTP intake (authentication middleware, FHIR intake, routing's
// order store on an embedded JetStream) with static tokens of each role:
// every authenticated caller sends orders and reads their state; only
// callers with phi see the patient; only operators pass RequireRole
// (operator).
func TestRolesThroughTheIntake(t *testing.T) {
	srvNATS, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srvNATS.Shutdown)
	nc, err := broker.Connect(srvNATS.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	pipe, err := pipeline.NewPipeline(pipeline.Options{Topology: topo, Source: idle{}, Engines: []radgate.Engine{idle{}},
		Sinks: map[string]radgate.Sink{"fhir": idle{}}, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)

	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte(`# name token roles
tok-legacy-1c7e
ehr tok-ehr-83d1
dash tok-dash-0b2f viewer
ops tok-ops-66a0 operator
rad tok-rad-d4e9 phi
admin tok-admin-5f10 viewer,operator,phi
`), 0o600))
	logs := &logBuffer{}
	handler := func(cfg config.IntakeAuth) http.Handler {
		a, err := httpauth.New(cfg, httpauth.Options{Logger: slogTo(logs)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, a.Close()) })
		mux := http.NewServeMux()
		intake := fhirhttp.NewIntake(pipe, fhirhttp.IntakeOptions{Logger: slogTo(logs)})
		mux.Handle("/fhir", intake)
		mux.Handle("/orders/", intake)
		// What a later operator endpoint (dead-letter replay) will look like.
		mux.Handle("POST /admin/replay", httpauth.RequireRole(httpauth.RoleOperator)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})))
		return a.Middleware(mux)
	}
	static := handler(config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens})

	do := func(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:5555"
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	// A viewer (legacy line) sends the order.
	rec := do(static, "POST", "/fhir", "tok-ehr-83d1", orderBundle)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var resp struct {
		Entry []struct {
			Response struct{ Status, Location string }
		}
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
	loc := resp.Entry[1].Response.Location
	require.True(t, strings.HasPrefix(loc, "/orders/"), loc)

	for _, tc := range []struct {
		name, token   string
		phi, operator bool
	}{
		{"legacy token line", "tok-legacy-1c7e", false, false},
		{"legacy name token line", "tok-ehr-83d1", false, false},
		{"viewer", "tok-dash-0b2f", false, false},
		{"operator", "tok-ops-66a0", false, true},
		{"phi", "tok-rad-d4e9", true, false},
		{"all three", "tok-admin-5f10", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(static, "GET", loc, tc.token, "")
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var st radgate.OrderStatus
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			require.Equal(t, radgate.StateReceived, st.State, "every role reads the order's state")
			require.Equal(t, strings.TrimPrefix(loc, "/orders/"), st.ID)
			if tc.phi {
				require.NotNil(t, st.Patient)
				require.Empty(t, st.Patient.Display, "radgate never stores the name: not even phi reads it from radgate")
				require.NotContains(t, rec.Body.String(), "Zyxwa")
				require.Equal(t, "MRN-4471902", st.Patient.Identifier.Value)
				require.Equal(t, "ACC-ROLES-31", st.Accession.Value)
			} else {
				require.Nil(t, st.Patient)
				require.Nil(t, st.Accession)
				for _, v := range identifying {
					require.NotContains(t, rec.Body.String(), v)
				}
			}

			rec = do(static, "POST", "/admin/replay", tc.token, "")
			if tc.operator {
				require.Equal(t, http.StatusNoContent, rec.Code)
				return
			}
			require.Equal(t, http.StatusForbidden, rec.Code)
			oo, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
			require.NoError(t, err)
			require.Equal(t, fhir.IssueCode("forbidden"), oo.Issues[0].Code)
			require.Contains(t, oo.Issues[0].Diagnostics, "POST /admin/replay needs the role operator; caller ")
			require.NotContains(t, rec.Body.String(), tc.token)
		})
	}

	// No token: 401 before any role is looked at.
	require.Equal(t, http.StatusUnauthorized, do(static, "GET", loc, "", "").Code)

	// Mode none (loopback only): whoever reaches the intake has every role.
	open := handler(config.IntakeAuth{Mode: config.AuthNone})
	rec = do(open, "GET", loc, "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "MRN-4471902")
	require.Equal(t, http.StatusNoContent, do(open, "POST", "/admin/replay", "", "").Code)

	all := logs.String()
	for _, v := range append(identifying, "tok-") {
		require.NotContains(t, all, v, "logs carry no patient data and no token")
	}
}
