package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/governance"
)

// fakeGov keeps states in memory; activation is refused with one check
// unmet, as governance refuses it without enough labels.
type fakeGov struct {
	states  []governance.State
	changes []governance.ChangeRequest
}

func (g *fakeGov) States(context.Context, string, string) ([]governance.State, error) {
	return g.states, nil
}

func (g *fakeGov) Change(_ context.Context, req governance.ChangeRequest) (governance.ChangeResult, error) {
	g.changes = append(g.changes, req)
	if req.Mode == radgate.EngineActive {
		ev := &governance.Evaluation{Labelled: 3, Positives: 1, Negatives: 2, Checks: []governance.Check{
			{Name: "min_cases", Value: 3, Minimum: 10, Text: "labelled cases 3 (1 with the finding, 2 without) < minimum 10"},
			{Name: "auc_lower_95", Value: 0.91, Minimum: 0.8, Met: true, Text: "AUC lower bound 0.91 ≥ minimum 0.80"}}}
		return governance.ChangeResult{Evaluation: ev}, fmt.Errorf("%w: %s", governance.ErrNotAccepted, strings.Join(ev.Failures(), "; "))
	}
	for i, s := range g.states {
		if s.Facility == req.Facility && s.Route == req.Route && s.Engine == req.Engine {
			next := s
			next.Mode, next.Previous, next.By, next.Why = req.Mode, s.Mode, req.By, req.Why
			g.states[i] = next
			return governance.ChangeResult{State: next, Audit: "AuditEvent/radgate-engine-state-7"}, nil
		}
	}
	return governance.ChangeResult{}, fmt.Errorf("%w: no such state", governance.ErrUnknown)
}

func (g *fakeGov) Monitor(_ context.Context, q governance.MonitorQuery) (*governance.Monitor, error) {
	auc, psi := 0.83, 0.31
	return &governance.Monitor{Facility: q.Facility, Engine: q.Engine, Version: "1.0.0", Results: 12, Scored: 11, NotScored: 1,
		TierMix:   []evaluation.TierShare{{Tier: "Low", Count: 5, Proportion: 5.0 / 11}, {Tier: "High", Count: 6, Proportion: 6.0 / 11}},
		Histogram: []int{5, 0, 0, 0, 0, 0, 0, 0, 0, 6}, Labelled: 4, Disagreeing: 1,
		Agreement: &evaluation.Interval{K: 3, N: 4, Rate: 0.75, Lower: 0.3, Upper: 0.95},
		AUC:       &auc, AUCCI: [2]float64{0.6, 0.99},
		ROC: []governance.ROCXY{{FPR: 0, TPR: 0}, {FPR: 0.5, TPR: 1}, {FPR: 1, TPR: 1}},
		Daily: []governance.MonitorDay{{Day: "2026-12-01", Results: 4, Labelled: 2, Disagreeing: 1, PSI: &psi},
			{Day: "2026-12-02", Results: 8}, {Day: "2026-12-03", Labelled: 2}}}, nil
}

func engineEnv(t *testing.T) (*env, *fakeGov) {
	t.Helper()
	g := &fakeGov{states: []governance.State{{Key: governance.Key{Facility: "kids", Route: "chest", Engine: "cxr", Version: "1.0.0"},
		Mode: radgate.EngineShadow, At: "2026-12-01T10:00:00Z", By: "radgate", Why: "new engine version"},
		{Key: governance.Key{Facility: "north", Route: "chest", Engine: "cxr", Version: "1.0.0"}, Mode: radgate.EngineSuspended,
			At: "2026-12-02T08:00:00Z", By: "radgate", Why: "auto_suspend", Previous: radgate.EngineActive,
			Drift: []governance.DriftAlert{{Rule: "psi", Firing: true, Text: "PSI 0.41 over 7 d > psi_max 0.25"}}}}}
	e := areaEnv(t, Options{Governance: g, Engines: func() []EngineInfo {
		return []EngineInfo{
			{ID: "cxr", Name: "Chest pneumonia", Version: "1.0.0", Modalities: []string{"CR", "DX"}, BodyParts: []string{"CHEST"},
				Accepts: []string{"age_years 1–5 y"}, Finding: "Pneumonia", TierMid: 0.3, TierHigh: 0.65, Mark: 0.5,
				IntendedUse: "Paediatric chest radiographs.", Card: "# cxr — model card\n\nA chest classifier.\n\n## Files\nx\n\n## Limits\n**Not for adults.**\n"},
			{ID: "other", Name: "Other", Version: "2"},
		}
	}})
	return e, g
}

// The engines page: manifests, card summary, state per facility × route,
// live figures with the inline drift chart and the plots; an operator
// gets the change links, a viewer none.
func TestEnginesPage(t *testing.T) {
	e, _ := engineEnv(t)
	e.signIn(t, "tok-ops")
	r, body := e.get(t, "/console/engines")
	require.Equal(t, http.StatusOK, r.StatusCode)
	for _, want := range []string{`<code>cxr</code>`, `<code>other</code>`, "age_years 1–5 y", "Paediatric chest radiographs.",
		"A chest classifier.", "<h3>Limits</h3>", "<p>Not for adults.</p>", `<span class="mode mode-shadow">shadow</span>`,
		"Live figures at kids", "agreement 75 % (95 % CI 30–95 %)", "<dt>AUC</dt><dd>0.830 (95 % CI 0.600–0.990)", `<svg class="chart"`, `<polyline class="disagree"`,
		`src="/console/engines/plot?engine=cxr&amp;facility=kids&amp;kind=roc"`,
		`href="/console/engines/change?facility=kids&amp;route=chest&amp;engine=cxr&amp;mode=suspended">Suspend</a>`,
		`mode=active">Activate</a>`, "Live figures at north", "drift psi: PSI 0.41 over 7 d &gt; psi_max 0.25"} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, "<h3>Files</h3>", "the summary keeps the card's intro and its limits")

	v, _ := engineEnv(t)
	v.signIn(t, "tok-viewer")
	_, body = v.get(t, "/console/engines")
	assert.Contains(t, body, "Live figures at kids")
	assert.NotContains(t, body, "/console/engines/change", "a viewer gets no action")
}

func TestEnginePlotIsPNG(t *testing.T) {
	e, _ := engineEnv(t)
	e.signIn(t, "tok-viewer")
	for _, kind := range []string{"roc", "histogram", "agreement"} {
		r, body := e.get(t, "/console/engines/plot?engine=cxr&facility=kids&kind="+kind)
		require.Equal(t, http.StatusOK, r.StatusCode, kind)
		assert.Equal(t, "image/png", r.Header.Get("Content-Type"))
		assert.True(t, strings.HasPrefix(body, "\x89PNG"), kind)
	}
	r, _ := e.get(t, "/console/engines/plot?engine=cxr&facility=kids&kind=reliability")
	assert.Equal(t, http.StatusNotFound, r.StatusCode, "no calibration bins: no plot")
}

// An operator suspends through a confirmation form with a required
// reason; the change goes to governance as the operator.
func TestOperatorSuspends(t *testing.T) {
	e, g := engineEnv(t)
	e.signIn(t, "tok-ops")
	r, form := e.get(t, "/console/engines/change?facility=kids&route=chest&engine=cxr&mode=suspended")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, form, `name="why"`)
	assert.Contains(t, form, "required")
	change := url.Values{"csrf": {csrf(t, form)}, "facility": {"kids"}, "route": {"chest"}, "engine": {"cxr"}, "mode": {"suspended"}}

	r, body := e.post(t, "/console/engines/change", change)
	assert.Equal(t, http.StatusBadRequest, r.StatusCode, "no reason")
	assert.Contains(t, body, "Give a reason")
	assert.Empty(t, g.changes)

	change.Set("why", "drift at kids")
	r, body = e.post(t, "/console/engines/change", change)
	require.Equal(t, http.StatusOK, r.StatusCode, body)
	assert.Contains(t, body, "shadow → <span class=\"mode mode-suspended\">suspended</span>, by ops-olga (drift at kids)")
	assert.Contains(t, body, "AuditEvent/radgate-engine-state-7")
	require.Len(t, g.changes, 1)
	assert.Equal(t, governance.ChangeRequest{Facility: "kids", Route: "chest", Engine: "cxr", Mode: radgate.EngineSuspended,
		By: "ops-olga", Why: "drift at kids"}, g.changes[0])
}

// A refused activation shows each figure against its minimum.
func TestRefusedActivationShowsFigures(t *testing.T) {
	e, _ := engineEnv(t)
	e.signIn(t, "tok-ops")
	_, form := e.get(t, "/console/engines/change?facility=kids&route=chest&engine=cxr&mode=active")
	r, body := e.post(t, "/console/engines/change", url.Values{"csrf": {csrf(t, form)}, "facility": {"kids"}, "route": {"chest"},
		"engine": {"cxr"}, "mode": {"active"}, "why": {"validated"}})
	assert.Equal(t, http.StatusConflict, r.StatusCode)
	assert.Contains(t, body, "Not changed")
	assert.Contains(t, body, "labelled cases 3 (1 with the finding, 2 without) &lt; minimum 10")
	assert.Contains(t, body, `<span class="unmet">not met</span>`)
	assert.Contains(t, body, `<span class="met">met</span>`)
}

// A viewer may not change a state: no form, and 403 on POST even with a
// good CSRF token.
func TestViewerCannotChangeState(t *testing.T) {
	e, g := engineEnv(t)
	e.signIn(t, "tok-viewer")
	r, _ := e.get(t, "/console/engines/change?facility=kids&route=chest&engine=cxr&mode=suspended")
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	_, page := e.get(t, "/console/engines")
	r, body := e.post(t, "/console/engines/change", url.Values{"csrf": {csrf(t, page)}, "facility": {"kids"}, "route": {"chest"},
		"engine": {"cxr"}, "mode": {"suspended"}, "why": {"x"}})
	assert.Equal(t, http.StatusForbidden, r.StatusCode)
	assert.Contains(t, body, "needs the operator role")
	assert.Empty(t, g.changes)
	assert.Equal(t, radgate.EngineShadow, g.states[0].Mode)
	assert.Equal(t, radgate.EngineSuspended, g.states[1].Mode)
}

func TestCardSummary(t *testing.T) {
	s := CardSummary("# t — model card\n\nIntro **bold**.\n\n| a | b |\n## Population\nKids 1–5.\n## Training\nlots\n")
	assert.Equal(t, []CardSection{{Lines: []string{"Intro bold."}}, {Title: "Population", Lines: []string{"Kids 1–5."}}}, s)
}
