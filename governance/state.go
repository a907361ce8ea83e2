package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// State is an engine's standing on a route at a facility, as last
// changed. Every change is a new revision of its key in
// radgate_engine_state and a record in RADGATE_GOVERNANCE.
type State struct {
	Key
	Mode radgate.EngineMode `json:"mode"`
	// At is when it changed, By who changed it ("radgate" for the shadow a
	// route with acceptance minimums starts in), Why in their words.
	At  string `json:"at"`
	By  string `json:"by"`
	Why string `json:"why"`
	// Previous is the mode before this change ("" for the first).
	Previous radgate.EngineMode `json:"previous,omitempty"`
	// Evidence is the evaluation an activation rests on.
	Evidence *Evaluation `json:"evidence,omitempty"`
	// Drift are the drift alerts a suspension by a route's auto_suspend
	// rests on.
	Drift []DriftAlert `json:"drift,omitempty"`
	// Revision is the key's revision (its history holds the earlier ones).
	Revision uint64 `json:"revision"`
}

// Change is a state change as the Auditor is told of it.
type Change struct {
	State State `json:"state"`
	// LogSequence is the change's record in RADGATE_GOVERNANCE.
	LogSequence uint64 `json:"log_sequence"`
}

// Errors of Change. Each is wrapped with a message naming what was wrong.
var (
	// ErrUnknown: no such route, or no such engine loaded.
	ErrUnknown = errors.New("unknown route or engine")
	// ErrBadRequest: a change asked for wrongly (a missing field, an
	// unknown mode).
	ErrBadRequest = errors.New("bad state change")
	// ErrNotAccepted: the evaluation does not meet the route's minimums
	// (the Evaluation returned says which).
	ErrNotAccepted = errors.New("the engine does not meet the route's acceptance minimums")
)

// Mode is the mode an engine's result for st is in: EngineActive when the
// order's route declares no acceptance minimums; else the mode recorded
// for facility × route × engine × model version, which starts as
// EngineShadow the first time the engine (or a new version) is seen
// there.
func (g *Governance) Mode(ctx context.Context, st radgate.OrderStatus, e radgate.EngineInfo) (radgate.EngineMode, error) {
	if st.Route == nil || st.Route.Acceptance == nil {
		return radgate.EngineActive, nil
	}
	k := Key{Facility: facilityOf(st), Route: st.Route.Acceptance.Route, Engine: e.ID, Version: e.Version}
	s, err := g.state(ctx, k)
	if err != nil {
		return "", err
	}
	return s.Mode, nil
}

// state returns k's state, recording the initial shadow if k has none.
func (g *Governance) state(ctx context.Context, k Key) (State, error) {
	kv := g.o.Topology.EngineState
	for {
		var s State
		rev, err := getJSON(ctx, kv, k.stateKey(), &s)
		if err == nil {
			s.Revision = rev
			return s, nil
		}
		if !isNotFound(err) {
			return s, fmt.Errorf("reading the engine state of %s: %w", k, err)
		}
		s = State{Key: k, Mode: radgate.EngineShadow, At: g.now(), By: "radgate",
			Why: fmt.Sprintf("route %s declares acceptance minimums: every engine and model version starts in shadow", k.Route)}
		b, _ := json.Marshal(s)
		rev, err = kv.Create(ctx, k.stateKey(), b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another process recorded it first
		}
		if err != nil {
			return s, fmt.Errorf("recording the initial shadow of %s: %w", k, err)
		}
		s.Revision = rev
		if _, err := g.logRecord(ctx, "state."+k.token(), "state."+k.token()+".r"+strconv.FormatUint(rev, 10), s); err != nil {
			g.log.Warn("the initial shadow is recorded but not logged", "key", k.token(), "err", err)
		}
		g.log.Info("engine starts in shadow", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "version", k.Version)
		return s, nil
	}
}

func (g *Governance) now() string { return g.o.Now().UTC().Format(time.RFC3339Nano) }

// States lists the recorded states, sorted by facility, route, engine and
// version; facility and route, when not empty, filter.
func (g *Governance) States(ctx context.Context, facility, route string) ([]State, error) {
	kv := g.o.Topology.EngineState
	lister, err := kv.ListKeysFiltered(ctx, "s.>")
	if err != nil {
		return nil, fmt.Errorf("listing engine states: %w", err)
	}
	var out []State
	for key := range lister.Keys() {
		var s State
		rev, err := getJSON(ctx, kv, key, &s)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if (facility != "" && !strings.EqualFold(s.Facility, facility)) || (route != "" && s.Route != route) {
			continue
		}
		s.Revision = rev
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.token() < out[j].Key.token() })
	return out, nil
}

// History lists every recorded revision of k's state, oldest first (as
// many as the bucket keeps: broker.GovernanceHistory; RADGATE_GOVERNANCE
// keeps all).
func (g *Governance) History(ctx context.Context, k Key) ([]State, error) {
	es, err := g.o.Topology.EngineState.History(ctx, k.stateKey())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the history of %s: %w", k, err)
	}
	var out []State
	for _, e := range es {
		var s State
		if json.Unmarshal(e.Value(), &s) == nil {
			s.Revision = e.Revision()
			out = append(out, s)
		}
	}
	return out, nil
}

// ChangeRequest asks to change an engine's mode.
type ChangeRequest struct {
	Facility string             `json:"facility"`
	Route    string             `json:"route"`
	Engine   string             `json:"engine"`
	Mode     radgate.EngineMode `json:"mode"`
	// By is who asks (the authenticated caller's name); Why their reason.
	By  string `json:"by"`
	Why string `json:"why,omitempty"`
}

// Change moves an engine to req.Mode on req.Route at req.Facility (its
// loaded model version). Activation measures the facility's labels first
// and records that evaluation; it is refused with ErrNotAccepted, the
// evaluation saying which minimum failed, unless every minimum is met.
// Shadow and suspension need no evaluation. The change is durable before
// Change returns; the Auditor is told afterwards (its failure is logged
// and returned in AuditError: the change stands).
func (g *Governance) Change(ctx context.Context, req ChangeRequest) (ChangeResult, error) {
	return g.change(ctx, req, nil)
}

// change is Change with the drift alerts a suspension rests on.
func (g *Governance) change(ctx context.Context, req ChangeRequest, drift []DriftAlert) (ChangeResult, error) {
	var res ChangeResult
	if req.Facility == "" || req.Route == "" || req.Engine == "" || req.By == "" {
		return res, fmt.Errorf("%w: facility, route, engine and by must be set", ErrBadRequest)
	}
	switch req.Mode {
	case radgate.EngineActive, radgate.EngineShadow, radgate.EngineSuspended:
	default:
		return res, fmt.Errorf("%w: unknown mode %q (known: active, shadow, suspended)", ErrBadRequest, req.Mode)
	}
	if g.o.Routes == nil || g.o.Version == nil {
		return res, errors.New("governance: Change needs Options.Routes and Options.Version")
	}
	set := g.o.Routes()
	acc, declared, known := set.Acceptance(req.Route)
	if !known {
		return res, fmt.Errorf("%w: no route %q in %s (routes: %s)", ErrUnknown, req.Route, orBuiltIn(set.File()), strings.Join(set.Routes(), ", "))
	}
	if !declared {
		return res, fmt.Errorf("%w: route %q declares no acceptance minimums, so its engines are always active; add acceptance: to the route to govern them", ErrBadRequest, req.Route)
	}
	version, ok := g.o.Version(req.Engine)
	if !ok {
		return res, fmt.Errorf("%w: engine %q is not loaded", ErrUnknown, req.Engine)
	}
	k := Key{Facility: req.Facility, Route: req.Route, Engine: req.Engine, Version: version}
	var cur State
	rev, err := getJSON(ctx, g.o.Topology.EngineState, k.stateKey(), &cur)
	if isNotFound(err) {
		// No result of this engine version on this route at this facility
		// yet: most likely the facility is misspelt.
		known, lerr := g.States(ctx, "", req.Route)
		if lerr != nil {
			return res, lerr
		}
		var facs []string
		for _, s := range known {
			if s.Engine == req.Engine && s.Version == version && !slices.Contains(facs, s.Facility) {
				facs = append(facs, fmt.Sprintf("%q", s.Facility))
			}
		}
		return res, fmt.Errorf("%w: engine %s version %s has no result on route %s at facility %q yet (facilities it has: %s)",
			ErrUnknown, req.Engine, version, req.Route, req.Facility, cmpOr(strings.Join(facs, ", "), "none"))
	}
	if err != nil {
		return res, fmt.Errorf("reading the engine state of %s: %w", k, err)
	}
	cur.Revision = rev
	next := State{Key: k, Mode: req.Mode, At: g.now(), By: req.By, Why: req.Why, Previous: cur.Mode, Drift: drift}
	if req.Mode == radgate.EngineActive {
		ev, err := g.Evaluate(ctx, k, radgate.Acceptance{Route: acc.Route, MinCases: acc.MinCases, AUCLower95: acc.AUCLower95,
			SensitivityAt: acc.SensitivityAt, MinSensitivity: acc.MinSensitivity, MinSpecificity: acc.MinSpecificity})
		if err != nil {
			return res, err
		}
		res.Evaluation = ev
		if !ev.Meets {
			g.log.Warn("activation refused: acceptance minimums not met", "facility", k.Facility, "route", k.Route, "engine", k.Engine,
				"version", k.Version, "by", req.By, "labelled", ev.Labelled, "evaluation", ev.LogSequence)
			return res, fmt.Errorf("%w: %s", ErrNotAccepted, strings.Join(ev.Failures(), "; "))
		}
		next.Evidence = ev
		if next.Why == "" {
			next.Why = "acceptance minimums met on the facility's labelled cases"
		}
	}
	if cur.Mode == req.Mode {
		res.State, res.Unchanged = cur, true
		return res, nil
	}
	b, _ := json.Marshal(next)
	rev, err = g.o.Topology.EngineState.Update(ctx, k.stateKey(), b, cur.Revision)
	if err != nil {
		if broker.IsWrongSequence(err) {
			return res, fmt.Errorf("the state of %s changed meanwhile; ask again", k)
		}
		return res, fmt.Errorf("recording the state of %s: %w", k, err)
	}
	next.Revision = rev
	seq, err := g.logRecord(ctx, "state."+k.token(), "state."+k.token()+".r"+strconv.FormatUint(rev, 10), next)
	if err != nil {
		// The bucket's history keeps the change; the log misses it.
		g.log.Error("engine state changed but not logged", "key", k.token(), "err", err)
	}
	res.State = next
	g.log.Info("engine state changed", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "version", k.Version,
		"from", cur.Mode, "to", next.Mode, "by", req.By, "revision", rev)
	if a := g.o.Audit; a != nil {
		ref, err := a.AuditChange(ctx, Change{State: next, LogSequence: seq})
		if err != nil {
			g.log.Error("engine state changed but its audit record was not written", "key", k.token(), "err", err)
			res.AuditError = err.Error()
		}
		res.Audit = ref
	}
	return res, nil
}

// ChangeResult is what Change did.
type ChangeResult struct {
	State State `json:"state"`
	// Unchanged: the engine was in that mode already.
	Unchanged bool `json:"unchanged,omitempty"`
	// Evaluation is the evaluation an activation measured (refused or not).
	Evaluation *Evaluation `json:"evaluation,omitempty"`
	// Audit is the audit record written (a FHIR reference, AuditEvent/…).
	Audit string `json:"audit,omitempty"`
	// AuditError says why the audit record was not written, if it was not.
	AuditError string `json:"audit_error,omitempty"`
}

func orBuiltIn(file string) string {
	if file == "" {
		return "the built-in routes"
	}
	return file
}
