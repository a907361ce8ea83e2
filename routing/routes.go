package routing

import (
	"slices"
	"strings"

	"github.com/radgate/radgate/routing/route"
)

// RouterEngine is the engine key under which an order records an outcome
// that belongs to no engine: no route matched, or the study never arrived so
// no route could be chosen. Its answer goes to the route set's unmatched
// destinations.
const RouterEngine = "radgate-router"

// RouteDecision is what the route set decided for an order, recorded on the
// order the first time it is routed: a reload of the routes never changes
// the decision of an order already in flight.
type RouteDecision struct {
	Matched      bool         `json:"matched"`
	Routes       []string     `json:"routes,omitempty"`
	Engines      []string     `json:"engines,omitempty"`
	Destinations []string     `json:"destinations,omitempty"`
	Read         *ReadRequest `json:"read,omitempty"`
	// Facility names the facility override that applied, if any.
	Facility string `json:"facility,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// RoutesDigest identifies the route file that decided.
	RoutesDigest string `json:"routes_digest,omitempty"`
}

// ReadRequest asks for a radiologist read of a result: a FHIR Task for a
// reading group, with the AI result attached.
type ReadRequest struct {
	// When is never, always or from_tier.
	When string `json:"when"`
	// FromTier is the lowest tier (Low, Mid, High) that asks for a read.
	FromTier string `json:"from_tier,omitempty"`
	// Group is the reading group's FHIR reference (CareTeam/…,
	// Organization/…, PractitionerRole/…, HealthcareService/…).
	Group        string `json:"group,omitempty"`
	GroupDisplay string `json:"group_display,omitempty"`
}

// Wanted reports whether a result of this tier asks for a read.
func (r *ReadRequest) Wanted(tier string) bool {
	if r == nil {
		return false
	}
	return route.ReadRequest{When: r.When, FromTier: r.FromTier, Group: r.Group, GroupDisplay: r.GroupDisplay}.Wanted(tier)
}

func decisionOf(d route.Decision, digest string) *RouteDecision {
	out := &RouteDecision{Matched: d.Matched, Routes: d.Routes, Engines: d.Engines, Destinations: d.Destinations,
		Facility: d.Facility, Reason: d.Reason, RoutesDigest: digest}
	if d.Read.When != "" && d.Read.When != "never" {
		out.Read = &ReadRequest{When: d.Read.When, FromTier: d.Read.FromTier, Group: d.Read.Group, GroupDisplay: d.Read.GroupDisplay}
	}
	return out
}

// Facts gathers what an order and its study say, for the route set.
func Facts(st OrderStatus, study *Study) route.Facts {
	var f route.Facts
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
		f.ProcedureCodes = append(f.ProcedureCodes, route.Code{System: c.System, Code: c.Code})
	}
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
	set     *route.Set
	engines map[string]Engine
}

// SetRoutes swaps in a new route set (a reload), with the engines it needs
// added to those loaded. Orders already routed keep their decision.
func (p *Pipeline) SetRoutes(set *route.Set, engines []Engine) {
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	next := routeState{set: set, engines: map[string]Engine{}}
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

// engine returns a loaded engine by id.
func (p *Pipeline) engine(id string) (Engine, bool) {
	e, ok := p.routes().engines[id]
	return e, ok
}

// routerInfo is the EngineInfo of order-level answers (RouterEngine).
func routerInfo() EngineInfo {
	return EngineInfo{ID: RouterEngine, Name: "radgate router", Version: "1",
		Disclaimer: "No AI engine scored this study, for the reason given. radgate routes studies to AI engines; it makes no finding and no diagnosis."}
}

// orderEngines lists the engines an order waits for: those of its route
// decision, and any other engine it has recorded progress for.
func orderEngines(st OrderStatus) []string {
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
