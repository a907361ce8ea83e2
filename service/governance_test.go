package service

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker/brokertest"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/routing"
)

// Only the operator role changes an engine's state; anyone may list.
func TestEngineStateChangesNeedTheOperatorRole(t *testing.T) {
	_, topo := brokertest.Topology(t)
	set, err := routing.Load("routes.yaml", []byte("routes:\n  - name: chest\n    engines: [eng]\n    destinations: [fhir]\n    acceptance: {min_cases: 10, auc_lower_95: 0.8}\n"),
		routing.Registry{Engines: []string{"eng"}, Destinations: []string{"fhir"}})
	require.NoError(t, err)
	gov := governance.New(governance.Options{Topology: topo, Routes: func() *routing.Set { return set },
		Version: func(e string) (string, bool) { return "1", e == "eng" }})
	h := engineStateHandler(gov, slog.New(slog.DiscardHandler))
	// An order of the facility routed to the route: the engine is in shadow there.
	_, err = gov.Mode(t.Context(), radgate.OrderStatus{ID: "o1", FacilityID: "adult-clinic",
		Route: &radgate.RouteDecision{Acceptance: &radgate.Acceptance{Route: "chest"}}}, radgate.EngineInfo{ID: "eng", Version: "1"})
	require.NoError(t, err)

	do := func(p httpauth.Principal, method, body string) (int, string) {
		r := httptest.NewRequest(method, "/engines/state", strings.NewReader(body))
		r = r.WithContext(httpauth.ContextWithPrincipal(r.Context(), p))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	viewer := httpauth.Principal{Name: "bob"}
	operator := httpauth.Principal{Name: "alice", Roles: []httpauth.Role{httpauth.RoleOperator}}
	suspend := `{"facility": "adult-clinic", "route": "chest", "engine": "eng", "mode": "suspended", "why": "drift"}`

	code, body := do(viewer, http.MethodPost, suspend)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, `POST /engines/state needs the role operator; caller \"bob\" has: viewer`)
	code, body = do(viewer, http.MethodGet, "")
	require.Equal(t, http.StatusOK, code)
	var list struct{ States []governance.State }
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.States, 1)
	require.Equal(t, radgate.EngineShadow, list.States[0].Mode, "the refused change left it as it was")

	code, body = do(operator, http.MethodPost, strings.Replace(suspend, "{", `{"by": "mallory", `, 1))
	require.Equal(t, http.StatusOK, code, body)
	var res governance.ChangeResult
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	require.Equal(t, "alice", res.State.By, "who changed it is the authenticated caller, not what the body says")
	require.Equal(t, "suspended", string(res.State.Mode))

	code, body = do(operator, http.MethodPost, `{"facility": "adult-clinic", "route": "chest", "engine": "eng", "mode": "active"}`)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body, "labelled cases 0 (0 with the finding, 0 without) \u003c minimum 10")
	code, _ = do(operator, http.MethodPost, `{"facility": "adult-clinic", "route": "x", "engine": "eng", "mode": "active"}`)
	require.Equal(t, http.StatusNotFound, code)
}

// GET /engines/monitor answers the figures, 400 naming what is missing.
func TestEngineMonitorHandler(t *testing.T) {
	_, topo := brokertest.Topology(t)
	gov := governance.New(governance.Options{Topology: topo, Version: func(e string) (string, bool) { return "1", e == "eng" }})
	st := radgate.OrderStatus{ID: "o1", FacilityID: "kids", Age: &radgate.PatientAge{Years: 70}}
	require.NoError(t, gov.Measure(t.Context(), radgate.Result{ID: "r1", Order: st, Engine: radgate.EngineInfo{ID: "eng", Version: "1"},
		Outcome: radgate.OutcomeScored, Probability: 0.7, Tier: "High", Input: &radgate.InputMix{Modality: "DX"}}, radgate.EngineActive))
	h := engineMonitorHandler(gov, slog.New(slog.DiscardHandler))
	do := func(q string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/engines/monitor?"+q, nil))
		return w.Code, w.Body.String()
	}
	code, body := do("facility=kids&engine=eng&days=3")
	require.Equal(t, http.StatusOK, code, body)
	var m governance.Monitor
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	require.Equal(t, 1, m.Results)
	require.Equal(t, "1", m.Version)
	require.Equal(t, map[string]int{"≥65": 1}, m.Inputs.AgeBand)
	require.Len(t, m.Daily, 3)
	code, body = do("engine=eng")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "facility and engine must be set")
	code, body = do("facility=kids&engine=eng&days=0")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `days: want a whole number of days, at least 1, got \"0\"`)
}

// The site's own verdict codes (verdicts.codes) are read beside the
// built-in ones by both intakes.
func TestVerdictCodesFromConfig(t *testing.T) {
	cfg := config.Config{Verdicts: config.Verdicts{Codes: []config.VerdictCode{{System: "99RIS", Code: "PNEU-NEG", Finding: "absent"}}}}
	codes := verdictCodes(cfg)
	vc, ok := codes.Lookup("99RIS", "PNEU-NEG")
	require.True(t, ok)
	require.Equal(t, radgate.FindingAbsent, vc.Finding)
	vc, ok = codes.Lookup(fhir.SystemSNOMED, "233604007")
	require.True(t, ok, "the built-in codes stay")
	require.Equal(t, radgate.FindingPresent, vc.Finding)
	require.NoError(t, codes.Check())
	_, ok = verdictCodes(config.Config{}).Lookup("99RIS", "PNEU-NEG")
	require.False(t, ok)
}
