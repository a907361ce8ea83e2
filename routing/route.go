// Package routing is radgate's route language: a YAML file in which an
// integration engineer decides which studies go to which engines, where
// their results go, and whether a radiologist read is requested.
// routes.example.yaml at the repository root documents the file; Load turns
// it into an immutable Set, reporting every mistake at file:line:col, and
// Set.Decide answers one order. LoadCases and Set.Run check a Set against
// golden cases (radgate test).
package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Code is a coded procedure: a system URI and a code. An empty System in a
// route matches the code in any system.
type Code struct{ System, Code string }

func (c Code) String() string {
	if c.System == "" {
		return c.Code
	}
	return c.System + "|" + c.Code
}

// Facts is what an order and its study say (the router fills it from the
// order and a QIDO-RS query).
type Facts struct {
	Modalities     []string // the order's and every series' modality (CR, DX, CT…)
	BodyParts      []string // every series' Body Part Examined, upper case (plus the one derived from the procedure code when a series has none)
	SOPClasses     []string // SOP Class UIDs of the study's instances
	ProcedureCodes []Code   // ServiceRequest.code / ImagingStudy.procedureCode / OBR-4
	Facilities     []string // ordering or performing organisation from the order, and DICOM Institution Name(s)
	Priority       string   // routine | urgent | asap | stat (FHIR request priority); empty counts as routine
}

// Read request values.
const (
	ReadNever    = "never"
	ReadAlways   = "always"
	ReadFromTier = "from_tier"
)

// Tiers, lowest first.
var tiers = []string{"Low", "Mid", "High"}

func tierRank(t string) int {
	for i, x := range tiers {
		if x == t {
			return i
		}
	}
	return -1
}

// ReadRequest says whether a radiologist read (a FHIR Task for a reading
// group, the AI result attached) is requested.
type ReadRequest struct {
	When         string // "never" | "always" | "from_tier"
	FromTier     string // "Low" | "Mid" | "High" when When == "from_tier"
	Group        string // FHIR reference of the reading group, e.g. "CareTeam/chest-readers" or "Organization/..."
	GroupDisplay string
}

// Wanted reports whether a result of the given tier asks for a read: never
// → false; always → true; from_tier → the tier is at or above FromTier
// (Low < Mid < High). An empty tier (nothing scored) is never wanted.
func (r ReadRequest) Wanted(tier string) bool {
	if tier == "" {
		return false
	}
	switch r.When {
	case ReadAlways:
		return true
	case ReadFromTier:
		t, from := tierRank(tier), tierRank(r.FromTier)
		return t >= 0 && from >= 0 && t >= from
	}
	return false
}

// demand orders read requests by how many results they ask a read for:
// never < from_tier High < from_tier Mid < from_tier Low < always.
func (r ReadRequest) demand() int {
	switch r.When {
	case ReadAlways:
		return len(tiers) + 1
	case ReadFromTier:
		return len(tiers) - tierRank(r.FromTier)
	}
	return 0
}

// Decision is what a Set decides for one order.
type Decision struct {
	Matched      bool
	Routes       []string    // names of the matched routes (one under match: first)
	Engines      []string    // in declared order, de-duplicated
	Destinations []string    // after facility override, de-duplicated
	Read         ReadRequest // after facility override
	Facility     string      // the facility override applied, "" if none
	// WaitForOrder: a matched route says pushed: with_order, so a study
	// pushed to radgate is scored only once its EHR/RIS order came.
	WaitForOrder bool
	// Acceptance is the first matched route's acceptance minimums (nil:
	// none of the matched routes declares any; engines stay active).
	Acceptance *Acceptance
	// UnknownAge is UnknownAgeReject when a matched route says
	// unknown_age: reject (the stricter rule wins under match: all), else
	// "" (score: the default).
	UnknownAge string
	// Reason, when !Matched, is one sentence an engineer can act on, naming
	// what the order/study had and the nearest route's unmet conditions.
	Reason string
}

// Registry is what route files may name.
type Registry struct {
	Engines      []string // engine ids available (from the models directory)
	Destinations []string // destination names defined in radgate.yaml (config.Config.DestinationNames())
}

// when holds a route's conditions as written; a nil list matches anything.
// modality, body part, facility and priority compare case-insensitively
// (fold), SOP classes and codes exactly.
type when struct {
	modality, bodyPart, sopClass, facility, priority []string
	codes                                            []Code
}

func (w when) catchAll() bool {
	return w.modality == nil && w.bodyPart == nil && w.sopClass == nil && w.facility == nil &&
		w.priority == nil && w.codes == nil
}

type rule struct {
	name         string
	line         int
	when         when
	engines      []string
	destinations []string
	read         ReadRequest
	waitForOrder bool
	acceptance   *Acceptance
	unknownAge   string // "" (score), UnknownAgeScore or UnknownAgeReject
	drift        *Drift
}

// Drift is a route's drift rule: when live monitoring raises an alert on
// an engine at a facility (see governance.CheckDrift).
type Drift struct {
	// DisagreementDays: the daily disagreement rate above the upper bound
	// of its reference's 95 % interval on this many consecutive days (days
	// with fewer than MinDailyLabels labelled results skipped); 0: not
	// checked.
	DisagreementDays int
	// MinDailyLabels is the least number of labelled results a day needs
	// to count (1 when not set).
	MinDailyLabels int
	// PSIMax: the PSI of the scores of the last PSIWindow against the
	// engine's reference distribution above it; 0: not checked.
	PSIMax    float64
	PSIWindow time.Duration
	// AutoSuspend: an alert suspends the engine on the route at the
	// facility (through governance's Change, audited).
	AutoSuspend bool
}

// Drift returns the drift rule route declares (ok false when none or no
// such route).
func (s *Set) Drift(route string) (d Drift, ok bool) {
	for _, r := range s.routes {
		if r.name == route && r.drift != nil {
			return *r.drift, true
		}
	}
	return Drift{}, false
}

// Acceptance is a route's acceptance minimums: what an engine must show on
// a facility's own labelled cases before its results are delivered. A
// route that declares them starts every engine, and every new model
// version, in shadow (scored and measured, never delivered).
type Acceptance struct {
	Route          string  // the route that declared them
	MinCases       int     // labelled cases (finding present or absent) needed, ≥ 1
	AUCLower95     float64 // least lower bound of the AUC's DeLong 95 % interval; 0: not checked
	SensitivityAt  string  // tier (Low, Mid, High) the sensitivity and specificity are measured at
	MinSensitivity float64 // 0: not checked
	MinSpecificity float64 // 0: not checked
}

// Acceptance returns the acceptance minimums route declares: declared is
// false when it declares none, known false when the set has no such route.
func (s *Set) Acceptance(route string) (a Acceptance, declared, known bool) {
	for _, r := range s.routes {
		if r.name == route {
			if r.acceptance == nil {
				return Acceptance{}, false, true
			}
			return *r.acceptance, true, true
		}
	}
	return Acceptance{}, false, false
}

// Values of a route's unknown_age key: what the inference stage does with
// an image whose patient age neither its header nor its order gives, for an
// engine whose intended use has an age range (accepts.age_years).
const (
	// UnknownAgeScore (the default): scored, with a caveat in every output.
	UnknownAgeScore = "score"
	// UnknownAgeReject: not scored; the answer names the engine's range.
	UnknownAgeReject = "reject"
)

// Values of a route's pushed key: what becomes of a study pushed to
// radgate (DICOM C-STORE) that no EHR or RIS order has named yet.
const (
	// PushedOnArrival (the default): it is an order of its own, scored
	// once stable (orders.stable_after).
	PushedOnArrival = "on_arrival"
	// PushedWithOrder: it waits for its order (matched by accession
	// number or Study Instance UID) and is scored when that comes.
	PushedWithOrder = "with_order"
)

type facilityOverride struct {
	name         string // as written
	folded       string
	destinations []string     // nil: keep the route's
	read         *ReadRequest // nil: keep the route's
}

// Set is a loaded route file. It is immutable after Load, so one Set may be
// used by any number of goroutines and swapped whole on reload.
type Set struct {
	file       string
	digest     string
	matchAll   bool
	routes     []rule
	facilities []facilityOverride
	unmatched  []string
}

// Default is the built-in set used when no routes file is configured: one
// route "default" matching every order, scored by engines, results to
// destinations, no read requested; order-level answers (a study that never
// arrived, so no route could be chosen) go to the same destinations.
func Default(engines, destinations []string) *Set {
	r := rule{name: "default", engines: dedup(engines), destinations: dedup(destinations), read: ReadRequest{When: ReadNever}}
	src := fmt.Sprintf("# built-in\nmatch: first\nroutes:\n  - name: default\n    engines: [%s]\n    destinations: [%s]\n",
		strings.Join(r.engines, ", "), strings.Join(r.destinations, ", "))
	// Its order-level answers (a study that never arrived) go to the same
	// destinations.
	return &Set{digest: digest([]byte(src)), routes: []rule{r}, unmatched: r.destinations}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// File is the name the set was loaded from ("" for Default).
func (s *Set) File() string { return s.file }

// Digest is the hex sha256 of the source bytes, for logs and metrics.
func (s *Set) Digest() string { return s.digest }

// MatchAll reports whether every matching route runs (match: all) rather
// than the first.
func (s *Set) MatchAll() bool { return s.matchAll }

// Routes lists the route names in declared order.
func (s *Set) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.name
	}
	return out
}

// Engines lists every engine any route names, sorted.
func (s *Set) Engines() []string {
	var all []string
	for _, r := range s.routes {
		all = append(all, r.engines...)
	}
	return sortedSet(all)
}

// Destinations lists every destination named anywhere (routes, facility
// overrides, unmatched), sorted.
func (s *Set) Destinations() []string {
	var all []string
	for _, r := range s.routes {
		all = append(all, r.destinations...)
	}
	for _, f := range s.facilities {
		all = append(all, f.destinations...)
	}
	all = append(all, s.unmatched...)
	return sortedSet(all)
}

// Unmatched lists the destinations that receive the "no route matched"
// answer; empty means the order's status only.
func (s *Set) Unmatched() []string { return append([]string(nil), s.unmatched...) }

// Decide routes one order. Under match: first the first matching route
// decides; under match: all every matching route contributes its engines
// and destinations (in route order, de-duplicated) and the most demanding
// read request wins (the first of equals). A facility override (the first
// of Facts.Facilities that has one) then replaces destinations and/or read.
func (s *Set) Decide(f Facts) Decision {
	nf := normalize(f)
	var d Decision
	for _, r := range s.routes {
		if len(r.when.unmet(nf)) > 0 {
			continue
		}
		if !d.Matched {
			d.Matched, d.Read = true, r.read
		} else if r.read.demand() > d.Read.demand() {
			d.Read = r.read
		}
		d.Routes = append(d.Routes, r.name)
		d.WaitForOrder = d.WaitForOrder || r.waitForOrder
		if d.Acceptance == nil && r.acceptance != nil {
			a := *r.acceptance
			d.Acceptance = &a
		}
		if r.unknownAge == UnknownAgeReject {
			d.UnknownAge = UnknownAgeReject
		}
		d.Engines = append(d.Engines, r.engines...)
		d.Destinations = append(d.Destinations, r.destinations...)
		if !s.matchAll {
			break
		}
	}
	if !d.Matched {
		d.Reason = s.reason(nf)
		return d
	}
	d.Engines, d.Destinations = dedup(d.Engines), dedup(d.Destinations)
	if o := s.override(nf); o != nil {
		d.Facility = o.name
		if o.destinations != nil {
			d.Destinations = append([]string(nil), o.destinations...)
		}
		if o.read != nil {
			d.Read = *o.read
		}
	}
	return d
}

func (s *Set) override(nf facts) *facilityOverride {
	for _, f := range nf.facilities {
		for i := range s.facilities {
			if s.facilities[i].folded == f {
				return &s.facilities[i]
			}
		}
	}
	return nil
}

// facts is Facts with case-insensitive values folded.
type facts struct {
	Facts
	modalities, bodyParts, facilities []string
	priority                          string
}

func normalize(f Facts) facts {
	nf := facts{Facts: f, priority: fold(f.Priority)}
	if nf.priority == "" {
		nf.priority = "ROUTINE"
	}
	for _, m := range f.Modalities {
		nf.modalities = append(nf.modalities, fold(m))
	}
	for _, b := range f.BodyParts {
		nf.bodyParts = append(nf.bodyParts, fold(b))
	}
	for _, x := range f.Facilities {
		nf.facilities = append(nf.facilities, fold(x))
	}
	return nf
}

// fold is the comparison form of case-insensitive values.
func fold(s string) string { return strings.ToUpper(strings.Join(strings.Fields(s), " ")) }

// unmet names the conditions of w the facts do not meet, in key order.
func (w when) unmet(f facts) []string {
	var out []string
	check := func(key string, want []string, have []string, folded, quote bool) {
		if want == nil || intersects(want, have, folded) {
			return
		}
		out = append(out, key+" "+orList(want, quote))
	}
	check("modality", w.modality, f.modalities, true, false)
	check("body part", w.bodyPart, f.bodyParts, true, false)
	check("SOP class", w.sopClass, f.SOPClasses, false, false)
	if w.codes != nil && !codesMatch(w.codes, f.ProcedureCodes) {
		var cs []string
		for _, c := range w.codes {
			cs = append(cs, c.String())
		}
		out = append(out, "procedure code "+orList(cs, false))
	}
	check("facility", w.facility, f.facilities, true, true)
	check("priority", w.priority, []string{f.priority}, true, false)
	return out
}

func codesMatch(want, have []Code) bool {
	for _, w := range want {
		for _, h := range have {
			if w.Code == h.Code && (w.System == "" || w.System == h.System) {
				return true
			}
		}
	}
	return false
}

// intersects reports whether a wanted value is among have; folded: compare
// fold(want) with have, which is folded already.
func intersects(want, have []string, folded bool) bool {
	for _, w := range want {
		if folded {
			w = fold(w)
		}
		for _, h := range have {
			if w == h {
				return true
			}
		}
	}
	return false
}

func orList(vs []string, quote bool) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		if quote {
			v = fmt.Sprintf("%q", v)
		}
		q[i] = v
	}
	switch len(q) {
	case 1:
		return q[0]
	case 2:
		return q[0] + " or " + q[1]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// reason words why no route matched: what the order had, then the nearest
// route (fewest unmet conditions, the first of equals) and what it wants.
func (s *Set) reason(nf facts) string {
	list := func(vs []string, quote bool) string {
		if quote {
			q := make([]string, len(vs))
			for i, v := range vs {
				q[i] = fmt.Sprintf("%q", v)
			}
			vs = q
		}
		return strings.Join(vs, "/")
	}
	var had []string
	add := func(key string, vs []string, quote bool) {
		if len(vs) == 0 {
			had = append(had, "no "+key)
			return
		}
		had = append(had, key+" "+list(vs, quote))
	}
	add("modality", upperAll(nonEmpty(nf.Modalities)), false)
	add("body part", upperAll(nonEmpty(nf.BodyParts)), false)
	if s.uses(func(w when) bool { return w.sopClass != nil }) && len(nf.SOPClasses) > 0 {
		add("SOP class", nf.SOPClasses, false)
	}
	if len(nf.ProcedureCodes) > 0 {
		var cs []string
		for _, c := range nf.ProcedureCodes {
			cs = append(cs, c.String())
		}
		add("procedure code", cs, false)
	}
	add("facility", nonEmpty(nf.Facilities), true)
	had = append(had, "priority "+strings.ToLower(nf.priority))
	msg := "no route matches: " + strings.Join(had, ", ")
	best, bestN := -1, 0
	for i, r := range s.routes {
		if n := len(r.when.unmet(nf)); best < 0 || n < bestN {
			best, bestN = i, n
		}
	}
	if best >= 0 {
		msg += fmt.Sprintf("; nearest route %q wants %s", s.routes[best].name, strings.Join(s.routes[best].when.unmet(nf), " and "))
	}
	return msg
}

func (s *Set) uses(pred func(when) bool) bool {
	for _, r := range s.routes {
		if pred(r.when) {
			return true
		}
	}
	return false
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return dedup(out)
}

func upperAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.ToUpper(v)
	}
	return dedup(out)
}

// dedup keeps the first of each value, in order.
func dedup(vs []string) []string {
	if vs == nil {
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sortedSet(vs []string) []string {
	out := dedup(vs)
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return out
}
