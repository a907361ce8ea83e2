package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate/config"
)

// LoadFile reads and loads a route file; see Load.
func LoadFile(path string, reg Registry) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	return Load(path, b, reg)
}

// Load parses a route file (named name in errors) and checks it against
// reg: the engines and destinations it may name. On any finding it returns
// a nil Set and a config.Errors holding every finding of the file, each
// positioned at file:line:col, sorted by position.
func Load(name string, data []byte, reg Registry) (*Set, error) {
	p := &parser{file: name, reg: reg}
	s := p.parse(data)
	if len(p.errs) > 0 {
		config.SortErrors(p.errs)
		return nil, p.errs
	}
	s.file, s.digest = name, digest(data)
	return s, nil
}

// Keys of each mapping, in the order error messages list them.
var (
	topKeys       = []string{"match", "routes", "facilities", "unmatched"}
	routeKeys     = []string{"name", "when", "engines", "destinations", "read", "pushed", "acceptance", "unknown_age", "drift"}
	driftKeys     = []string{"disagreement_days", "psi_max", "psi_window", "min_daily_labels", "auto_suspend"}
	acceptKeys    = []string{"min_cases", "auc_lower_95", "sensitivity_at", "min_sensitivity", "min_specificity"}
	whenKeys      = []string{"modality", "body_part", "sop_class", "procedure_code", "facility", "priority"}
	codeKeys      = []string{"system", "code"}
	readKeys      = []string{"request", "from_tier", "group", "display"}
	facilityKeys  = []string{"destinations", "read"}
	unmatchedKeys = []string{"destinations"}
	priorities    = []string{"routine", "urgent", "asap", "stat"}
	readRequests  = []string{ReadNever, ReadAlways, ReadFromTier}
)

var (
	routeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	uidRE       = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$`)
	referenceRE = regexp.MustCompile(`^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$`)
)

// parser walks the yaml.v3 node tree, so that every finding has the
// position of the node it is about, and collects all of them.
type parser struct {
	file string
	reg  Registry
	errs config.Errors
}

// readOwnerTypes are the resource types FHIR R4 allows as Task.owner that
// stand for readers (a Group is not one of them).
var readOwnerTypes = []string{"CareTeam", "Organization", "PractitionerRole", "HealthcareService", "Practitioner"}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	e := config.Error{File: p.file, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// pair is one key of a mapping and its value.
type pair struct{ key, val *yaml.Node }

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// mapping checks that n is a mapping whose keys are all in known, each at
// most once, and returns its pairs by key. what prefixes messages
// ("route \"cxr\": read").
func (p *parser) mapping(n *yaml.Node, what string, known []string) map[string]pair {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s: expected a mapping (keys: %s), got %s", what, strings.Join(known, ", "), config.Describe(n))
		return nil
	}
	out := map[string]pair{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if !contains(known, k.Value) {
			hint := ""
			if s := closest(k.Value, known); s != "" {
				hint = fmt.Sprintf("did you mean %q? ", s)
			}
			p.errf(k, "%s: unknown key %q (%sknown: %s)", what, k.Value, hint, strings.Join(known, ", "))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			p.errf(k, "%s: key %q appears twice (first at line %d)", what, k.Value, prev.key.Line)
			continue
		}
		out[k.Value] = pair{k, v}
	}
	return out
}

// scalar returns n's text when n is a non-empty scalar.
func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.errf(n, "%s: expected a string, got %s", what, config.Describe(n))
		return "", false
	}
	v := strings.TrimSpace(n.Value)
	if n.Tag == "!!null" || v == "" {
		p.errf(n, "%s: must not be empty", what)
		return "", false
	}
	return v, true
}

// strNode is a scalar of a list with its node, for positioning.
type strNode struct {
	val  string
	node *yaml.Node
}

// list returns the scalars of a non-empty list. emptyMsg words why an
// empty list is wrong.
func (p *parser) list(n *yaml.Node, what, emptyMsg string) ([]strNode, bool) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s: expected a list, got %s", what, config.Describe(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		p.errf(n, "%s: %s", what, emptyMsg)
		return nil, false
	}
	ok := true
	var out []strNode
	for _, c := range n.Content {
		v, good := p.scalar(c, what)
		if !good {
			ok = false
			continue
		}
		out = append(out, strNode{v, resolve(c)})
	}
	return out, ok
}

func (p *parser) parse(data []byte) *Set {
	s := &Set{}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errs = append(p.errs, config.Error{File: p.file, Message: "the file is empty: it needs a routes list (see routes.example.yaml)"})
		} else {
			p.errs = append(p.errs, config.YAMLError(p.file, data, err))
		}
		return s
	}
	if len(doc.Content) == 0 {
		p.errs = append(p.errs, config.Error{File: p.file, Message: "the file is empty: it needs a routes list (see routes.example.yaml)"})
		return s
	}
	root := resolve(doc.Content[0])
	top := p.mapping(root, "the top level", topKeys)
	if top == nil {
		return s
	}
	if m, ok := top["match"]; ok {
		if v, ok := p.scalar(m.val, "match"); ok {
			switch v {
			case "first":
			case "all":
				s.matchAll = true
			default:
				p.errf(m.val, "match: unknown value %q (known: first, all)", v)
			}
		}
	}
	if r, ok := top["routes"]; ok {
		s.routes = p.routes(r.val, s.matchAll)
	} else {
		p.errf(root, "the top level: routes must be set: a list of routes, each with a name, engines and destinations")
	}
	if f, ok := top["facilities"]; ok {
		s.facilities = p.facilities(f.val)
	}
	if u, ok := top["unmatched"]; ok {
		if m := p.mapping(u.val, "unmatched", unmatchedKeys); m != nil {
			if d, ok := m["destinations"]; ok {
				s.unmatched = p.destinations(d.val, "unmatched.destinations", true)
			}
		}
	}
	return s
}

func (p *parser) routes(n *yaml.Node, matchAll bool) []rule {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "routes: expected a list, got %s", config.Describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errf(n, "routes: must list at least one route")
		return nil
	}
	var out []rule
	firstAt := map[string]int{}
	type parsed struct {
		r      rule
		nameAt *yaml.Node
		ok     bool // its when parsed cleanly, so it takes part in the reachability check
	}
	var all []parsed
	for i, rn := range n.Content {
		rn = resolve(rn)
		what := fmt.Sprintf("routes[%d]", i)
		// Name the route in every message about it when the name is usable.
		var nameNode *yaml.Node
		if rn.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(rn.Content); j += 2 {
				if rn.Content[j].Value == "name" {
					nameNode = resolve(rn.Content[j+1])
				}
			}
		}
		if nameNode != nil && nameNode.Kind == yaml.ScalarNode && strings.TrimSpace(nameNode.Value) != "" {
			what = fmt.Sprintf("route %q", strings.TrimSpace(nameNode.Value))
		}
		m := p.mapping(rn, what, routeKeys)
		if m == nil {
			continue
		}
		r := rule{line: rn.Line, read: ReadRequest{When: ReadNever}}
		ok := true
		if nm, has := m["name"]; has {
			if v, good := p.scalar(nm.val, what+": name"); good {
				r.name = v
				if !routeNameRE.MatchString(v) {
					p.errf(nm.val, "%s: a route name is letters, digits, '.', '-' and '_' (at most 63), starting with a letter or digit", what)
				}
				if line, dup := firstAt[v]; dup {
					p.errf(nm.val, "duplicate route name %q (first at line %d)", v, line)
				} else {
					firstAt[v] = nm.val.Line
				}
			}
		} else {
			p.errf(rn, "%s: name must be set (a unique name for logs, metrics and tests)", what)
		}
		if w, has := m["when"]; has {
			r.when, ok = p.when(w.val, what+": when")
		}
		if e, has := m["engines"]; has {
			r.engines = p.engines(e.val, what+": engines")
		} else {
			p.errf(rn, "%s: engines must be set: the engines that score the study (registered: %s)", what, known(p.reg.Engines))
		}
		if d, has := m["destinations"]; has {
			r.destinations = p.destinations(d.val, what+": destinations", false)
		} else {
			p.errf(rn, "%s: destinations must be set: where results go (defined: %s)", what, known(p.reg.Destinations))
		}
		if rd, has := m["read"]; has {
			if rr, good := p.read(rd.val, what+": read"); good {
				r.read = rr
			}
		}
		if pu, has := m["pushed"]; has {
			if v, good := p.scalar(pu.val, what+": pushed"); good {
				switch v {
				case PushedOnArrival:
				case PushedWithOrder:
					r.waitForOrder = true
				default:
					p.errf(pu.val, "%s: pushed must be %s (score a study pushed to radgate once it is stable) or %s (wait for its EHR/RIS order), got %q",
						what, PushedOnArrival, PushedWithOrder, v)
				}
			}
		}
		if ac, has := m["acceptance"]; has {
			if a, good := p.acceptance(ac.val, what+": acceptance"); good {
				a.Route = r.name
				r.acceptance = &a
			}
		}
		if dr, has := m["drift"]; has {
			if d, good := p.drift(dr.val, what+": drift"); good {
				if r.acceptance == nil {
					p.errf(dr.key, "%s: drift needs acceptance on the same route (drift watches governed engines; auto_suspend changes their mode)", what)
				} else {
					r.drift = &d
				}
			}
		}
		if ua, has := m["unknown_age"]; has {
			if v, good := p.scalar(ua.val, what+": unknown_age"); good {
				switch v {
				case UnknownAgeScore, UnknownAgeReject:
					r.unknownAge = v
				default:
					p.errf(ua.val, "%s: unknown_age must be %s (score an image of unknown patient age, with a caveat in every output) or %s (refuse it, naming the engine's age range), got %q",
						what, UnknownAgeScore, UnknownAgeReject, v)
				}
			}
		}
		out = append(out, r)
		all = append(all, parsed{r, nameNode, ok && r.name != ""})
	}
	if !matchAll {
		// Under match: first a route that an earlier route always takes
		// first can never decide anything.
		for j := range all {
			if !all[j].ok {
				continue
			}
			for i := 0; i < j; i++ {
				if !all[i].ok || !covers(all[i].r.when, all[j].r.when) {
					continue
				}
				at := all[j].nameAt
				if all[i].r.when.catchAll() {
					p.errf(at, "route %q is unreachable: route %q (line %d) matches every order and comes first (match: first); move it after the others or use match: all",
						all[j].r.name, all[i].r.name, all[i].r.line)
				} else {
					p.errf(at, "route %q is unreachable: every order it matches is taken first by route %q (line %d) (match: first); put the narrower route first",
						all[j].r.name, all[i].r.name, all[i].r.line)
				}
				break
			}
		}
	}
	return out
}

// covers reports whether every order b matches is also matched by a: each
// condition of a is also a condition of b with b's values among a's.
func covers(a, b when) bool {
	sub := func(av, bv []string, folded bool) bool {
		if av == nil {
			return true
		}
		if bv == nil {
			return false
		}
		for _, v := range bv {
			if folded {
				v = fold(v)
			}
			if !intersects(av, []string{v}, folded) {
				return false
			}
		}
		return true
	}
	if !sub(a.modality, b.modality, true) || !sub(a.bodyPart, b.bodyPart, true) || !sub(a.sopClass, b.sopClass, false) ||
		!sub(a.facility, b.facility, true) || !sub(a.priority, b.priority, true) {
		return false
	}
	if a.codes == nil {
		return true
	}
	if b.codes == nil {
		return false
	}
	for _, bc := range b.codes {
		covered := false
		for _, ac := range a.codes {
			// A code in any system is covered only by the same code in any system.
			if ac.Code == bc.Code && (ac.System == "" || (bc.System != "" && ac.System == bc.System)) {
				covered = true
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

func (p *parser) when(n *yaml.Node, what string) (when, bool) {
	var w when
	before := len(p.errs)
	m := p.mapping(n, what, whenKeys)
	if m == nil {
		return w, false
	}
	empty := func(key string) string {
		return fmt.Sprintf("an empty list matches nothing; leave %s out to match any", key)
	}
	folded := func(key string, check func(v string, n *yaml.Node)) []string {
		pr, has := m[key]
		if !has {
			return nil
		}
		vs, _ := p.list(pr.val, what+"."+key, empty(key))
		var out []string
		for _, v := range vs {
			if check != nil {
				check(v.val, v.node)
			}
			if !intersects(out, []string{fold(v.val)}, true) {
				out = append(out, v.val)
			}
		}
		if out == nil {
			return []string{} // an error was reported; never nil, so it matches nothing
		}
		return out
	}
	w.modality = folded("modality", nil)
	w.bodyPart = folded("body_part", nil)
	w.facility = folded("facility", nil)
	w.priority = folded("priority", func(v string, n *yaml.Node) {
		if !contains(priorities, strings.ToLower(v)) {
			p.errf(n, "%s.priority: unknown priority %q (known: %s)", what, v, strings.Join(priorities, ", "))
		}
	})
	if pr, has := m["sop_class"]; has {
		vs, _ := p.list(pr.val, what+".sop_class", empty("sop_class"))
		w.sopClass = []string{}
		for _, v := range vs {
			if !uidRE.MatchString(v.val) || len(v.val) > 64 {
				p.errf(v.node, "%s.sop_class: %q is not a DICOM UID (digits and dots, e.g. 1.2.840.10008.5.1.4.1.1.1)", what, v.val)
			}
			w.sopClass = append(w.sopClass, v.val)
		}
	}
	if pr, has := m["procedure_code"]; has {
		w.codes = p.codes(pr.val, what+".procedure_code")
	}
	return w, len(p.errs) == before
}

func (p *parser) codes(n *yaml.Node, what string) []Code {
	n = resolve(n)
	out := []Code{}
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s: expected a list of {system, code}, got %s", what, config.Describe(n))
		return out
	}
	if len(n.Content) == 0 {
		p.errf(n, "%s: an empty list matches nothing; leave procedure_code out to match any", what)
		return out
	}
	for i, c := range n.Content {
		cw := fmt.Sprintf("%s[%d]", what, i)
		m := p.mapping(c, cw, codeKeys)
		if m == nil {
			continue
		}
		var code Code
		if s, has := m["system"]; has {
			code.System, _ = p.scalar(s.val, cw+".system")
		}
		if k, has := m["code"]; has {
			code.Code, _ = p.scalar(k.val, cw+".code")
		} else {
			p.errf(c, "%s: code must be set (system is optional: without it the code matches in any system)", cw)
		}
		out = append(out, code)
	}
	return out
}

func (p *parser) engines(n *yaml.Node, what string) []string {
	vs, _ := p.list(n, what, fmt.Sprintf("must name at least one engine (registered: %s)", known(p.reg.Engines)))
	var out []string
	for _, v := range vs {
		if !contains(p.reg.Engines, v.val) {
			p.errf(v.node, "%s: unknown engine %q (%sregistered: %s)", what, v.val, didYouMean(v.val, p.reg.Engines), known(p.reg.Engines))
			continue
		}
		out = append(out, v.val)
	}
	return dedup(out)
}

// destinations checks a destination list; allowEmpty lets `[]` mean none.
func (p *parser) destinations(n *yaml.Node, what string, allowEmpty bool) []string {
	if rn := resolve(n); allowEmpty && rn.Kind == yaml.SequenceNode && len(rn.Content) == 0 {
		return []string{}
	}
	vs, _ := p.list(n, what, fmt.Sprintf("must name at least one destination (defined: %s)", known(p.reg.Destinations)))
	out := []string{}
	for _, v := range vs {
		if !contains(p.reg.Destinations, v.val) {
			p.errf(v.node, "%s: unknown destination %q (%sdefined in radgate.yaml: %s)", what, v.val, didYouMean(v.val, p.reg.Destinations), known(p.reg.Destinations))
			continue
		}
		out = append(out, v.val)
	}
	return dedup(out)
}

func (p *parser) read(n *yaml.Node, what string) (ReadRequest, bool) {
	before := len(p.errs)
	r := ReadRequest{When: ReadNever}
	m := p.mapping(n, what, readKeys)
	if m == nil {
		return r, false
	}
	if rq, has := m["request"]; has {
		if v, ok := p.scalar(rq.val, what+".request"); ok {
			if contains(readRequests, v) {
				r.When = v
			} else {
				p.errf(rq.val, "%s.request: unknown value %q (known: %s)", what, v, strings.Join(readRequests, ", "))
			}
		}
	} else {
		p.errf(n, "%s: request must be set (%s)", what, strings.Join(readRequests, ", "))
	}
	if ft, has := m["from_tier"]; has {
		if v, ok := p.scalar(ft.val, what+".from_tier"); ok {
			t := ""
			for _, x := range tiers {
				if strings.EqualFold(x, v) {
					t = x
				}
			}
			switch {
			case t == "":
				p.errf(ft.val, "%s.from_tier: unknown tier %q (known: %s)", what, v, strings.Join(tiers, ", "))
			case r.When != ReadFromTier && len(p.errs) == before:
				p.errf(ft.key, "%s: from_tier is used only with request: from_tier (request is %s)", what, r.When)
			default:
				r.FromTier = t
			}
		}
	} else if r.When == ReadFromTier {
		p.errf(m["request"].val, "%s: from_tier must be set with request: from_tier (%s)", what, strings.Join(tiers, ", "))
	}
	if g, has := m["group"]; has {
		if v, ok := p.scalar(g.val, what+".group"); ok {
			typ, _, _ := strings.Cut(v, "/")
			switch {
			case !referenceRE.MatchString(v):
				p.errf(g.val, "%s.group: %q is not a FHIR reference (Type/id, e.g. CareTeam/chest-readers)", what, v)
			case !slices.Contains(readOwnerTypes, typ):
				p.errf(g.val, "%s.group: %q: a read Task's owner must be a %s (FHIR R4 Task.owner)", what, v, strings.Join(readOwnerTypes, ", "))
			}
			r.Group = v
		}
	} else if r.When == ReadAlways || r.When == ReadFromTier {
		p.errf(m["request"].val, "%s: group must be set when a read is requested (the FHIR reference of the reading group, e.g. CareTeam/chest-readers)", what)
	}
	if d, has := m["display"]; has {
		r.GroupDisplay, _ = p.scalar(d.val, what+".display")
	}
	return r, len(p.errs) == before
}

func (p *parser) facilities(n *yaml.Node) []facilityOverride {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "facilities: expected a mapping of facility name to override, got %s", config.Describe(n))
		return nil
	}
	var out []facilityOverride
	firstAt := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		name, ok := p.scalar(k, "facilities: a facility name")
		if !ok {
			continue
		}
		what := fmt.Sprintf("facility %q", name)
		f := facilityOverride{name: name, folded: fold(name)}
		if line, dup := firstAt[f.folded]; dup {
			p.errf(k, "%s: appears twice (first at line %d; names are compared case-insensitively)", what, line)
			continue
		}
		firstAt[f.folded] = k.Line
		m := p.mapping(v, what, facilityKeys)
		if m == nil {
			continue
		}
		if len(m) == 0 && len(resolve(v).Content) == 0 {
			p.errf(v, "%s: set destinations and/or read (an empty override changes nothing)", what)
		}
		if d, has := m["destinations"]; has {
			f.destinations = p.destinations(d.val, what+": destinations", false)
		}
		if rd, has := m["read"]; has {
			if rr, good := p.read(rd.val, what+": read"); good {
				f.read = &rr
			}
		}
		out = append(out, f)
	}
	return out
}

func known(vs []string) string {
	if len(vs) == 0 {
		return "none"
	}
	return strings.Join(vs, ", ")
}

func didYouMean(v string, known []string) string {
	if s := closest(v, known); s != "" {
		return fmt.Sprintf("did you mean %q? ", s)
	}
	return ""
}

// closest is the known value within a small edit distance of v, if one is
// clearly nearest.
func closest(v string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		d := editDistance(strings.ToLower(v), strings.ToLower(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" && bestD > len(v)/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// acceptance parses a route's acceptance minimums.
func (p *parser) acceptance(n *yaml.Node, what string) (Acceptance, bool) {
	before := len(p.errs)
	var a Acceptance
	m := p.mapping(n, what, acceptKeys)
	if m == nil {
		return a, false
	}
	if mc, has := m["min_cases"]; has {
		if v, ok := p.scalar(mc.val, what+".min_cases"); ok {
			i, err := strconv.Atoi(v)
			if err != nil || i < 1 {
				p.errf(mc.val, "%s.min_cases: want a whole number of labelled cases, at least 1, got %q", what, v)
			}
			a.MinCases = i
		}
	} else {
		p.errf(n, "%s: min_cases must be set (the labelled cases an evaluation needs, e.g. 100)", what)
	}
	fraction := func(key string, dst *float64) {
		f, has := m[key]
		if !has {
			return
		}
		if v, ok := p.scalar(f.val, what+"."+key); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x <= 0 || x > 1 {
				p.errf(f.val, "%s.%s: want a fraction in (0, 1], e.g. 0.80, got %q", what, key, v)
				return
			}
			*dst = x
		}
	}
	fraction("auc_lower_95", &a.AUCLower95)
	fraction("min_sensitivity", &a.MinSensitivity)
	fraction("min_specificity", &a.MinSpecificity)
	if st, has := m["sensitivity_at"]; has {
		if v, ok := p.scalar(st.val, what+".sensitivity_at"); ok {
			for _, t := range tiers {
				if strings.EqualFold(t, v) {
					a.SensitivityAt = t
				}
			}
			if a.SensitivityAt == "" {
				p.errf(st.val, "%s.sensitivity_at: unknown tier %q (known: %s)", what, v, strings.Join(tiers, ", "))
			}
		}
	} else if a.MinSensitivity > 0 || a.MinSpecificity > 0 {
		p.errf(n, "%s: sensitivity_at must be set with min_sensitivity or min_specificity (the tier whose threshold they are measured at: %s)", what, strings.Join(tiers, ", "))
	}
	if a.AUCLower95 == 0 && a.MinSensitivity == 0 && a.MinSpecificity == 0 && len(p.errs) == before {
		p.errf(n, "%s: declares no minimum: set auc_lower_95, min_sensitivity or min_specificity", what)
	}
	return a, len(p.errs) == before
}

// drift parses a route's drift rule.
func (p *parser) drift(n *yaml.Node, what string) (Drift, bool) {
	before := len(p.errs)
	d := Drift{PSIWindow: 7 * 24 * time.Hour}
	m := p.mapping(n, what, driftKeys)
	if m == nil {
		return d, false
	}
	whole := func(key string, dst *int, least int, unit string) {
		f, has := m[key]
		if !has {
			return
		}
		if v, ok := p.scalar(f.val, what+"."+key); ok {
			i, err := strconv.Atoi(v)
			if err != nil || i < least {
				p.errf(f.val, "%s.%s: want a whole number of %s, at least %d, got %q", what, key, unit, least, v)
				return
			}
			*dst = i
		}
	}
	whole("disagreement_days", &d.DisagreementDays, 1, "consecutive days")
	whole("min_daily_labels", &d.MinDailyLabels, 1, "labelled results a day")
	if f, has := m["psi_max"]; has {
		if v, ok := p.scalar(f.val, what+".psi_max"); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || !(x > 0) || math.IsInf(x, 0) {
				p.errf(f.val, "%s.psi_max: want a PSI above 0, e.g. 0.25 (a major shift), got %q", what, v)
			} else {
				d.PSIMax = x
			}
		}
	}
	if f, has := m["psi_window"]; has {
		if v, ok := p.scalar(f.val, what+".psi_window"); ok {
			w, err := parseWindow(v)
			if err != nil {
				p.errf(f.val, "%s.psi_window: %v", what, err)
			} else {
				d.PSIWindow = w
			}
		}
	}
	if f, has := m["auto_suspend"]; has {
		if v, ok := p.scalar(f.val, what+".auto_suspend"); ok {
			switch v {
			case "true":
				d.AutoSuspend = true
			case "false":
			default:
				p.errf(f.val, "%s.auto_suspend: want true or false, got %q", what, v)
			}
		}
	}
	if d.DisagreementDays == 0 && d.PSIMax == 0 && len(p.errs) == before {
		p.errf(n, "%s: declares no rule: set disagreement_days, psi_max or both", what)
	}
	return d, len(p.errs) == before
}

// parseWindow reads a window as days ("7d") or a Go duration ("36h"), at
// least an hour.
func parseWindow(v string) (time.Duration, error) {
	var w time.Duration
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("want days (7d) or a duration (36h), got %q", v)
		}
		w = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if w, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("want days (7d) or a duration (36h), got %q", v)
		}
	}
	if w < time.Hour {
		return 0, fmt.Errorf("want at least an hour, got %q", v)
	}
	return w, nil
}
