package pipeline

import (
	"slices"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/routing"
)

func decisionOf(d routing.Decision, digest string) *radgate.RouteDecision {
	out := &radgate.RouteDecision{Matched: d.Matched, Routes: d.Routes, Engines: d.Engines, Destinations: d.Destinations,
		Facility: d.Facility, Reason: d.Reason, RoutesDigest: digest, UnknownAge: d.UnknownAge}
	if d.Read.When != "" && d.Read.When != "never" {
		out.Read = &radgate.ReadRequest{When: d.Read.When, FromTier: d.Read.FromTier, Group: d.Read.Group, GroupDisplay: d.Read.GroupDisplay}
	}
	if a := d.Acceptance; a != nil {
		out.Acceptance = &radgate.Acceptance{Route: a.Route, MinCases: a.MinCases, AUCLower95: a.AUCLower95,
			SensitivityAt: a.SensitivityAt, MinSensitivity: a.MinSensitivity, MinSpecificity: a.MinSpecificity}
	}
	return out
}

// Facts gathers what an order and its study say, for the route set.
func Facts(st radgate.OrderStatus, study *radgate.Study) routing.Facts {
	var f routing.Facts
	add := func(list *[]string, v string, upper bool) {
		v = strings.TrimSpace(v)
		if upper {
			v = strings.ToUpper(v)
		}
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for _, m := range st.Modalities {
		add(&f.Modalities, m, true)
	}
	for _, c := range st.ProcedureCodes {
		f.ProcedureCodes = append(f.ProcedureCodes, routing.Code{System: c.System, Code: c.Code})
	}
	add(&f.Facilities, st.FacilityID, false) // the configured facility's id first
	add(&f.Facilities, st.Facility, false)
	f.Priority = strings.ToLower(strings.TrimSpace(st.Priority))
	if study == nil {
		return f
	}
	add(&f.Facilities, study.InstitutionName, false)
	orderPart := BodyPartFromProcedure(st.ProcedureCodes)
	for _, s := range study.Series {
		add(&f.Modalities, s.Modality, true)
		part := s.BodyPartExamined
		if strings.TrimSpace(part) == "" {
			part = orderPart
		}
		add(&f.BodyParts, part, true)
		for _, in := range s.Instances {
			add(&f.SOPClasses, in.SOPClassUID, false)
		}
	}
	return f
}

// routeState is the active route set and the engines this process runs.
type routeState struct {
	set     *routing.Set
	engines map[string]radgate.Engine
}

// SetRoutes swaps in a new route set (a reload), with the engines it needs
// added to those loaded. Orders already routed keep their decision.
func (p *Pipeline) SetRoutes(set *routing.Set, engines []radgate.Engine) {
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	next := routeState{set: set, engines: map[string]radgate.Engine{}}
	for id, e := range p.rs.engines {
		next.engines[id] = e
	}
	for _, e := range engines {
		next.engines[e.Info().ID] = e
	}
	p.rs = next
}

func (p *Pipeline) routes() routeState {
	p.routesMu.RLock()
	defer p.routesMu.RUnlock()
	return p.rs
}

// RouteSet is the route set in force.
func (p *Pipeline) RouteSet() *routing.Set { return p.routes().set }

// EngineVersion is the model version of a loaded engine; ok is false for
// an engine this process has not loaded.
func (p *Pipeline) EngineVersion(id string) (version string, ok bool) {
	e, ok := p.engine(id)
	if !ok {
		return "", false
	}
	return e.Info().Version, true
}

// engine returns a loaded engine by id.
func (p *Pipeline) engine(id string) (radgate.Engine, bool) {
	e, ok := p.routes().engines[id]
	return e, ok
}

// routerInfo is the EngineInfo of order-level answers (RouterEngine).
func routerInfo() radgate.EngineInfo {
	return radgate.EngineInfo{ID: radgate.RouterEngine, Name: "radgate router", Version: "1",
		Disclaimer: "No AI engine scored this study, for the reason given. radgate routes studies to AI engines; it makes no finding and no diagnosis."}
}

// orderEngines lists the engines an order waits for: those of its route
// decision, and any other engine it has recorded progress for.
func orderEngines(st radgate.OrderStatus) []string {
	var out []string
	if st.Route != nil {
		out = append(out, st.Route.Engines...)
	}
	keys := make([]string, 0, len(st.Engines))
	for k := range st.Engines {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
