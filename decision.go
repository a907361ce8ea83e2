package radgate

import "slices"

// Tiers are the confidence tiers, lowest first.
var Tiers = []string{"Low", "Mid", "High"}

// TierRank is a tier's position in Tiers (Low 0, Mid 1, High 2), or -1 for
// anything else.
func TierRank(tier string) int { return slices.Index(Tiers, tier) }

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
	// UnknownAge is what the inference stage does with an image whose
	// patient age is unknown, for an engine whose intended use has an age
	// range: UnknownAgeScore (the default, "" too: scored with a caveat)
	// or UnknownAgeReject (not scored, the reason naming the rule).
	UnknownAge string `json:"unknown_age,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// RoutesDigest identifies the route file that decided.
	RoutesDigest string `json:"routes_digest,omitempty"`
	// Acceptance is the first matched route's acceptance minimums; nil:
	// none declared, every engine active.
	Acceptance *Acceptance `json:"acceptance,omitempty"`
	// Modes is each engine's mode when the order was routed (set only
	// with Acceptance); see ModeOf.
	Modes map[string]EngineMode `json:"modes,omitempty"`
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
	switch r.When {
	case "always":
		return TierRank(tier) >= 0
	case "from_tier":
		t, from := TierRank(tier), TierRank(r.FromTier)
		return t >= 0 && from >= 0 && t >= from
	}
	return false
}

// What a route does with an unknown patient age (RouteDecision.UnknownAge).
const (
	UnknownAgeScore  = "score"
	UnknownAgeReject = "reject"
)

// Acceptance is what a route asks of an engine on a facility's own
// labelled cases before its results reach clinicians (routes.example.yaml,
// key acceptance). A route that declares it starts every engine, and every
// new model version, in EngineShadow.
type Acceptance struct {
	// Route is the route that declared the minimums.
	Route string `json:"route"`
	// MinCases is the least number of labelled cases (finding present or
	// absent) an evaluation needs.
	MinCases int `json:"min_cases"`
	// AUCLower95, when > 0, is the least lower bound of the AUC's DeLong
	// 95 % interval.
	AUCLower95 float64 `json:"auc_lower_95,omitempty"`
	// SensitivityAt is the tier (Low, Mid, High) whose threshold
	// MinSensitivity and MinSpecificity are measured at.
	SensitivityAt  string  `json:"sensitivity_at,omitempty"`
	MinSensitivity float64 `json:"min_sensitivity,omitempty"`
	MinSpecificity float64 `json:"min_specificity,omitempty"`
}

// EngineMode is an engine's standing on one route × facility × model
// version: whether its results reach clinical destinations.
type EngineMode string

// Engine modes.
const (
	// EngineActive: results are delivered (a route without acceptance
	// minimums keeps every engine active).
	EngineActive EngineMode = "active"
	// EngineShadow: results are scored, stored and measured, never
	// delivered to any destination, and no read is requested.
	EngineShadow EngineMode = "shadow"
	// EngineSuspended: results are scored and recorded for measurement,
	// never delivered.
	EngineSuspended EngineMode = "suspended"
)

// Delivered reports whether results in this mode go to destinations.
func (m EngineMode) Delivered() bool { return m == "" || m == EngineActive }

// ModeOf is the mode recorded for engine when the order was routed
// (Modes): EngineActive when the route declares no acceptance minimums or
// the engine has no recorded mode. The inference stage may ask it to score
// studies outside an engine's intended use while the engine is in shadow
// (and record them as out of scope); delivery asks the live state again.
func (d *RouteDecision) ModeOf(engine string) EngineMode {
	if d == nil || d.Modes == nil {
		return EngineActive
	}
	if m, ok := d.Modes[engine]; ok {
		return m
	}
	return EngineActive
}

// Shadow reports whether engine was in shadow when the order was routed.
func (d *RouteDecision) Shadow(engine string) bool { return d.ModeOf(engine) == EngineShadow }
