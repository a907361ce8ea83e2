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
