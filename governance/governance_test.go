package governance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/broker/brokertest"
	"github.com/radgate/radgate/routing"
)

const routesYAML = `routes:
  - name: adult-chest
    when: {facility: [Adult Clinic]}
    engines: [eng, eng2]
    destinations: [fhir]
    acceptance: {min_cases: 4, auc_lower_95: 0.80, sensitivity_at: Mid, min_sensitivity: 0.90}
  - name: rest
    engines: [eng]
    destinations: [fhir]
`

type auditLog struct {
	mu      sync.Mutex
	changes []Change
}

func (a *auditLog) AuditChange(_ context.Context, c Change) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.changes = append(a.changes, c)
	return "AuditEvent/test-" + string(c.State.Mode), nil
}

type fixture struct {
	g     *Governance
	topo  *broker.Topology
	audit *auditLog
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, topo := brokertest.Topology(t)
	set, err := routing.Load("routes.yaml", []byte(routesYAML), routing.Registry{Engines: []string{"eng", "eng2"}, Destinations: []string{"fhir"}})
	require.NoError(t, err)
	f := &fixture{topo: topo, audit: &auditLog{}, now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	f.g = New(Options{Topology: topo, Routes: func() *routing.Set { return set }, Audit: f.audit,
		Version: func(e string) (string, bool) { return "1.0", e == "eng" || e == "eng2" },
		Now:     func() time.Time { f.now = f.now.Add(time.Second); return f.now }})
	return f
}

// order is an order of the Adult Clinic routed to adult-chest.
func order(n string) radgate.OrderStatus {
	return radgate.OrderStatus{ID: "order-" + n, FacilityID: "adult-clinic",
		Accession:        &radgate.Identifier{System: "urn:acc", Value: "ACC-" + n},
		StudyInstanceUID: "1.2.3." + strings.TrimLeft(n, "x"),
		Route: &radgate.RouteDecision{Matched: true, Routes: []string{"adult-chest"}, Engines: []string{"eng"},
			Acceptance: &radgate.Acceptance{Route: "adult-chest", MinCases: 4, AUCLower95: 0.8, SensitivityAt: "Mid", MinSensitivity: 0.9}}}
}

func (f *fixture) measure(t *testing.T, st radgate.OrderStatus, engine string, p float64, tier string) {
	t.Helper()
	r := radgate.Result{ID: st.ID + "-" + engine, Order: st, Engine: radgate.EngineInfo{ID: engine, Version: "1.0"},
		Outcome: radgate.OutcomeScored, Probability: p, Tier: tier, ScoredAt: f.now}
	mode, err := f.g.Mode(t.Context(), st, r.Engine)
	require.NoError(t, err)
	require.NoError(t, f.g.Measure(t.Context(), r, mode))
}

func verdict(read, acc, finding string) radgate.Verdict {
	return radgate.Verdict{Source: radgate.SourceFHIR, ReadID: read, Accession: &radgate.Identifier{System: "urn:acc", Value: acc},
		Finding: finding, ReceivedAt: time.Now()}
}

func TestModeStartsInShadowPerFacilityRouteAndVersion(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	eng := radgate.EngineInfo{ID: "eng", Version: "1.0"}

	plain := order("1")
	plain.Route = &radgate.RouteDecision{Matched: true, Routes: []string{"rest"}, Engines: []string{"eng"}}
	m, err := f.g.Mode(ctx, plain, eng)
	require.NoError(t, err)
	require.Equal(t, radgate.EngineActive, m, "a route without acceptance keeps its engines active")

	m, err = f.g.Mode(ctx, order("2"), eng)
	require.NoError(t, err)
	require.Equal(t, radgate.EngineShadow, m)
	m, err = f.g.Mode(ctx, order("3"), radgate.EngineInfo{ID: "eng", Version: "2.0"})
	require.NoError(t, err)
	require.Equal(t, radgate.EngineShadow, m, "a new model version starts in shadow too")

	states, err := f.g.States(ctx, "adult-clinic", "")
	require.NoError(t, err)
	require.Len(t, states, 2)
	require.Equal(t, "radgate", states[0].By)
	require.Contains(t, states[0].Why, "route adult-chest declares acceptance minimums")
	require.Empty(t, f.audit.changes, "the initial shadow is no one's change")
}

func TestVerdictsBecomeLabelsOnceEach(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l := f.g.Labels()
	a, b := order("1"), order("2")
	f.measure(t, a, "eng", 0.9, "High")
	f.measure(t, a, "eng2", 0.7, "Mid")
	f.measure(t, b, "eng", 0.2, "Low")
	oos := order("3")
	require.NoError(t, f.g.Measure(ctx, radgate.Result{ID: "r3", Order: oos, Engine: radgate.EngineInfo{ID: "eng", Version: "1.0"},
		Outcome: radgate.OutcomeNotApplicable, Reason: "patient age 86 y is outside the engine's intended use: 1–5 y"}, radgate.EngineShadow))

	// Scored in shadow although outside the intended use: recorded as out
	// of scope, and labelled like any other.
	adult := order("4")
	require.NoError(t, f.g.Measure(ctx, radgate.Result{ID: "r4", Order: adult, Engine: radgate.EngineInfo{ID: "eng", Version: "1.0"},
		Outcome: radgate.OutcomeScored, Probability: 0.99, Tier: "High", OutOfScope: "patient age 86 y is outside the engine's intended use: 1–5 y"}, radgate.EngineShadow))
	scores, err := f.g.scoresOf(ctx, "order-4")
	require.NoError(t, err)
	require.False(t, scores["eng"].InScope)
	require.Contains(t, scores["eng"].OutOfScope, "patient age 86 y")
	_, err = l.Record(ctx, verdict("DR-4", "ACC-4", radgate.FindingAbsent))
	require.NoError(t, err)

	// By accession with its system: both engines of the order.
	rc, err := l.Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingPresent))
	require.NoError(t, err)
	require.Equal(t, radgate.VerdictReceipt{OrderID: "order-1", Engines: []string{"eng", "eng2"}}, rc)
	// Redelivered (received again later): nothing changes.
	rc, err = l.Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingPresent))
	require.NoError(t, err)
	require.True(t, rc.Duplicate)
	// The same read corrected: replaces, the first kept in the history.
	rc, err = l.Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingAbsent))
	require.NoError(t, err)
	require.True(t, rc.Replaced)
	require.False(t, rc.Duplicate)
	hist, err := f.topo.Labels.History(ctx, labelKey("adult-clinic", "eng", "order-1", radgate.SourceFHIR, "DR-1"))
	require.NoError(t, err)
	require.Len(t, hist, 2)

	// By accession value alone, by Study Instance UID, by order id + engine.
	v := verdict("ORU-2", "ACC-2", radgate.FindingAbsent)
	v.Source, v.Accession.System = radgate.SourceHL7v2, ""
	rc, err = l.Record(ctx, v)
	require.NoError(t, err)
	require.Equal(t, "order-2", rc.OrderID)
	rc, err = l.Record(ctx, radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "DR-2b", StudyInstanceUID: "urn:oid:1.2.3.2", Finding: radgate.FindingUnlabelled, Text: "see report"})
	require.NoError(t, err)
	require.Equal(t, "order-2", rc.OrderID)
	rc, err = l.Record(ctx, radgate.Verdict{Source: radgate.SourceTask, ReadID: "Task/9", OrderID: "order-1", Engine: "eng2", Finding: radgate.FindingPresent, Agreement: radgate.AgreementAgree})
	require.NoError(t, err)
	require.Equal(t, []string{"eng2"}, rc.Engines)

	// What cannot be matched or is wrong is refused, naming it.
	for _, c := range []struct {
		v    radgate.Verdict
		err  error
		text string
	}{
		{verdict("DR-9", "ACC-404", radgate.FindingPresent), radgate.ErrUnknownResult, `accession "ACC-404"`},
		{radgate.Verdict{Source: radgate.SourceTask, ReadID: "t", OrderID: "order-1", Engine: "other", Finding: radgate.FindingPresent}, radgate.ErrUnknownResult, `engine "other" has no result for order order-1 (engines: eng, eng2)`},
		{radgate.Verdict{Source: radgate.SourceTask, ReadID: "t", OrderID: "order-77", Finding: radgate.FindingPresent}, radgate.ErrUnknownResult, "order order-77 has no engine result yet"},
		{verdict("DR-3", "ACC-3", radgate.FindingPresent), radgate.ErrUnknownResult, "patient age 86 y"},
		{verdict("", "ACC-1", radgate.FindingPresent), radgate.ErrInvalidVerdict, "no read id"},
		{verdict("DR-1", "ACC-1", "maybe"), radgate.ErrInvalidVerdict, `unknown finding "maybe"`},
		{radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "x", Finding: radgate.FindingPresent}, radgate.ErrInvalidVerdict, "names no order"},
	} {
		_, err := l.Record(ctx, c.v)
		require.ErrorIs(t, err, c.err, c.text)
		require.ErrorContains(t, err, c.text)
	}
}

// crashingKV fails the writes after the first n, as a process killed
// between two labels would leave the bucket.
type crashingKV struct {
	jetstream.KeyValue
	left int
}

func (k *crashingKV) Create(ctx context.Context, key string, v []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if k.left == 0 {
		return 0, errors.New("killed")
	}
	k.left--
	return k.KeyValue.Create(ctx, key, v, opts...)
}

// A crash between the labels of a verdict's two engines, then the sender's
// retry: each label once, none lost.
func TestLabelsSurviveACrashBetweenWrites(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a := order("1")
	f.measure(t, a, "eng", 0.9, "High")
	f.measure(t, a, "eng2", 0.7, "Mid")
	real := f.topo.Labels
	f.topo.Labels = &crashingKV{KeyValue: real, left: 1}
	_, err := f.g.Labels().Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingPresent))
	require.ErrorContains(t, err, "killed")
	f.topo.Labels = real
	rc, err := f.g.Labels().Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingPresent))
	require.NoError(t, err)
	require.False(t, rc.Duplicate, "one label was still missing")
	require.Equal(t, []string{"eng", "eng2"}, rc.Engines)
	rc, err = f.g.Labels().Record(ctx, verdict("DR-1", "ACC-1", radgate.FindingPresent))
	require.NoError(t, err)
	require.True(t, rc.Duplicate)
	for _, e := range []string{"eng", "eng2"} {
		ev, err := f.g.Evaluate(ctx, Key{Facility: "adult-clinic", Route: "adult-chest", Engine: e, Version: "1.0"}, radgate.Acceptance{MinCases: 1})
		require.NoError(t, err)
		require.Equal(t, 1, ev.Labelled, e)
	}
}

func TestActivationNeedsTheMinimums(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l := f.g.Labels()
	probs := []struct {
		p    float64
		tier string
	}{{0.95, "High"}, {0.6, "Mid"}, {0.1, "Low"}, {0.05, "Low"}, {0.02, "Low"}}
	for i, c := range probs {
		f.measure(t, order(string(rune('1'+i))), "eng", c.p, c.tier)
	}
	// A poor engine: the high scores are the healthy ones.
	truth := []string{radgate.FindingAbsent, radgate.FindingAbsent, radgate.FindingPresent, radgate.FindingPresent, radgate.FindingAbsent}
	for i, fnd := range truth {
		_, err := l.Record(ctx, verdict("DR-"+string(rune('1'+i)), "ACC-"+string(rune('1'+i)), fnd))
		require.NoError(t, err)
	}
	req := ChangeRequest{Facility: "adult-clinic", Route: "adult-chest", Engine: "eng", Mode: radgate.EngineActive, By: "alice"}
	res, err := f.g.Change(ctx, req)
	require.ErrorIs(t, err, ErrNotAccepted)
	require.NotNil(t, res.Evaluation)
	require.False(t, res.Evaluation.Meets)
	require.NotZero(t, res.Evaluation.LogSequence, "the evaluation is recorded")
	require.Equal(t, 5, res.Evaluation.Labelled)
	require.Contains(t, err.Error(), "AUC 0.33 (95 % CI 0.00–0.99): lower bound 0.00 < minimum 0.80")
	require.Contains(t, err.Error(), "sensitivity at Mid 0.00 (0/2) < minimum 0.90")
	m, err := f.g.Mode(ctx, order("1"), radgate.EngineInfo{ID: "eng", Version: "1.0"})
	require.NoError(t, err)
	require.Equal(t, radgate.EngineShadow, m, "refused: still in shadow")

	// The reads corrected (same reads): the engine is good after all.
	truth = []string{radgate.FindingPresent, radgate.FindingPresent, radgate.FindingAbsent, radgate.FindingAbsent, radgate.FindingAbsent}
	for i, fnd := range truth {
		rc, err := l.Record(ctx, verdict("DR-"+string(rune('1'+i)), "ACC-"+string(rune('1'+i)), fnd))
		require.NoError(t, err)
		require.True(t, rc.Replaced || fnd == radgate.FindingAbsent && i == 4)
	}
	res, err = f.g.Change(ctx, req)
	require.NoError(t, err)
	require.True(t, res.Evaluation.Meets, "%v", res.Evaluation.Checks)
	require.Equal(t, radgate.EngineActive, res.State.Mode)
	require.Equal(t, radgate.EngineShadow, res.State.Previous)
	require.NotNil(t, res.State.Evidence)
	require.Equal(t, "AuditEvent/test-active", res.Audit)
	m, err = f.g.Mode(ctx, order("1"), radgate.EngineInfo{ID: "eng", Version: "1.0"})
	require.NoError(t, err)
	require.Equal(t, radgate.EngineActive, m)

	// Suspended at an operator's word; every change kept.
	req.Mode, req.Why = radgate.EngineSuspended, "drift suspected"
	res, err = f.g.Change(ctx, req)
	require.NoError(t, err)
	require.Equal(t, radgate.EngineSuspended, res.State.Mode)
	hist, err := f.g.History(ctx, res.State.Key)
	require.NoError(t, err)
	var modes []radgate.EngineMode
	for _, s := range hist {
		modes = append(modes, s.Mode)
	}
	require.Equal(t, []radgate.EngineMode{radgate.EngineShadow, radgate.EngineActive, radgate.EngineSuspended}, modes)
	require.Len(t, f.audit.changes, 2)
	require.Equal(t, "drift suspected", f.audit.changes[1].State.Why)

	// Bad asks are refused naming what was wrong.
	_, err = f.g.Change(ctx, ChangeRequest{Facility: "adult-clinic", Route: "nope", Engine: "eng", Mode: radgate.EngineActive, By: "alice"})
	require.ErrorIs(t, err, ErrUnknown)
	require.ErrorContains(t, err, `no route "nope"`)
	_, err = f.g.Change(ctx, ChangeRequest{Facility: "adult-clinic", Route: "rest", Engine: "eng", Mode: radgate.EngineActive, By: "alice"})
	require.ErrorIs(t, err, ErrBadRequest)
	require.ErrorContains(t, err, `route "rest" declares no acceptance minimums`)
	_, err = f.g.Change(ctx, ChangeRequest{Facility: "adult-clinic", Route: "adult-chest", Engine: "ghost", Mode: radgate.EngineActive, By: "alice"})
	require.ErrorIs(t, err, ErrUnknown)
	_, err = f.g.Change(ctx, ChangeRequest{Facility: "Adult Clinic", Route: "adult-chest", Engine: "eng", Mode: radgate.EngineSuspended, By: "alice"})
	require.ErrorIs(t, err, ErrUnknown)
	require.ErrorContains(t, err, `engine eng version 1.0 has no result on route adult-chest at facility "Adult Clinic" yet (facilities it has: "adult-clinic")`)
}

func TestFiguresAgainstMinimums(t *testing.T) {
	ev := figures(Key{}, radgate.Acceptance{MinCases: 10, AUCLower95: 0.8, SensitivityAt: "Mid", MinSensitivity: 0.9},
		[]float64{0.9, 0.8}, []bool{true, true}, []string{"High", "Mid"})
	require.False(t, ev.Meets)
	require.Equal(t, []string{
		"labelled cases 2 (2 with the finding, 0 without) < minimum 10",
		"AUC not measurable (needs both positive and negative cases): minimum lower bound 0.80",
	}, ev.Failures())
}

// A study scored in shadow outside the engine's intended use is labelled
// like any other, but activation leaves it out: an active engine is never
// given it.
func TestEvaluationLeavesOutStudiesOutsideTheIntendedUse(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for i, p := range []float64{0.9, 0.8, 0.1, 0.2} {
		f.measure(t, order(string(rune('1'+i))), "eng", p, "High")
	}
	out := order("9")
	r := radgate.Result{ID: out.ID + "-eng", Order: out, Engine: radgate.EngineInfo{ID: "eng", Version: "1.0"}, Outcome: radgate.OutcomeScored,
		Probability: 0.99, Tier: "High", ScoredAt: f.now, OutOfScope: "patient age 86 y is outside engine eng's intended use: 1–5 y (accepts.age_years)"}
	require.NoError(t, f.g.Measure(ctx, r, radgate.EngineShadow))
	for i, fnd := range []string{radgate.FindingPresent, radgate.FindingPresent, radgate.FindingAbsent, radgate.FindingAbsent, radgate.FindingAbsent} {
		n := string(rune('1' + i))
		if i == 4 {
			n = "9"
		}
		_, err := f.g.Labels().Record(ctx, verdict("DR-"+n, "ACC-"+n, fnd))
		require.NoError(t, err)
	}
	ev, err := f.g.Evaluate(ctx, Key{Facility: "adult-clinic", Route: "adult-chest", Engine: "eng", Version: "1.0"}, *order("1").Route.Acceptance)
	require.NoError(t, err)
	require.Equal(t, 4, ev.Labelled)
	require.Equal(t, 1, ev.OutOfScope)
	require.NotNil(t, ev.AUC)
	require.InDelta(t, 1.0, *ev.AUC, 1e-9, "the out-of-scope false positive is not counted")
	var b strings.Builder
	require.NoError(t, WriteEvaluation(&b, ev))
	require.Contains(t, b.String(), "left out: 1 labelled studies outside the engine's intended use")
}
