package pipeline

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/routing"
)

// A route with acceptance minimums keeps its engine in shadow: the result
// is recorded, goes to no destination, asks no read, and the order ends
// delivered with the mode in the engine's progress. Once activated on the
// facility's labels, the next order is delivered as usual.
func TestShadowResultsAreRecordedNotDelivered(t *testing.T) {
	var p *Pipeline
	var gov *governance.Governance
	h := newHarness(t, func(o *Options) {
		o.Routes = loadRoutes(t, `routes:
  - name: chest
    engines: [eng-a]
    destinations: [fhir]
    read: {request: always, group: CareTeam/chest-readers}
    acceptance: {min_cases: 2, sensitivity_at: High, min_sensitivity: 0.5}
`)
		gov = governance.New(governance.Options{Topology: o.Topology,
			Routes:  func() *routing.Set { return p.RouteSet() },
			Version: func(e string) (string, bool) { return p.EngineVersion(e) }})
		o.Governance = gov
	})
	p = h.p
	ctx := t.Context()
	for i, acsn := range []string{"S1", "S2"} {
		h.arch.add(acsn, "8."+acsn, "CR", "CHEST", []string{"sop-1", "sop-2"}[i])
		ev := sr(acsn, "s"+acsn)
		ev.Facility = "General Hospital"
		st, err := h.p.Accept(ctx, ev)
		require.NoError(t, err)
		st = h.waitState(t, st.ID, radgate.StateDelivered)
		eng := st.Engines["eng-a"]
		require.Equal(t, radgate.EngineShadow, eng.Mode)
		require.Contains(t, eng.Reason, "shadow: scored and recorded for measurement, not delivered (route chest: engine eng-a version 1 awaits acceptance")
		require.NotNil(t, eng.Probability)
		require.Empty(t, eng.Deliveries, "no destination was asked")
		require.Equal(t, radgate.EngineShadow, st.Route.Modes["eng-a"])
		require.True(t, st.Route.Shadow("eng-a"))
	}
	require.Empty(t, h.sink.results(), "nothing delivered in shadow")

	for acsn, finding := range map[string]string{"S1": radgate.FindingPresent, "S2": radgate.FindingAbsent} {
		rc, err := gov.Labels().Record(ctx, radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "DR-" + acsn,
			Accession: &radgate.Identifier{System: "urn:acsn", Value: acsn}, Finding: finding})
		require.NoError(t, err)
		require.Equal(t, []string{"eng-a"}, rc.Engines)
	}
	_, err := gov.Change(ctx, governance.ChangeRequest{Facility: "", Route: "chest", Engine: "eng-a", Mode: radgate.EngineActive, By: "op"})
	require.ErrorIs(t, err, governance.ErrBadRequest, "facility must be named")
	res, err := gov.Change(ctx, governance.ChangeRequest{Facility: "General Hospital", Route: "chest", Engine: "eng-a", Mode: radgate.EngineActive, By: "op"})
	require.NoError(t, err, "%+v", res.Evaluation)
	require.Equal(t, 2, res.Evaluation.Labelled)

	h.arch.add("S3", "8.S3", "CR", "CHEST", "sop-3")
	ev := sr("S3", "sS3")
	ev.Facility = "General Hospital"
	st, err := h.p.Accept(ctx, ev)
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.Empty(t, st.Engines["eng-a"].Mode)
	require.Equal(t, radgate.StateDelivered, st.Engines["eng-a"].Deliveries["fhir"].State)
	require.Len(t, h.sink.results(), 1)
}
