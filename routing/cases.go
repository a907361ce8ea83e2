package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate/config"
)

// Case is one golden route test: the facts of an order and the decision a
// route set must make for it. A case file is YAML:
//
//	name: stat chest from St Mary     # optional; default: the file name
//	description: why this case exists # optional
//	facts:                            # what the order and its study say
//	  modality: [DX]
//	  body_part: [CHEST]
//	  sop_class: [1.2.840.10008.5.1.4.1.1.1.1]
//	  procedure_code: [{system: http://loinc.org, code: 36643-5}]
//	  facility: ["St Mary Hospital"]
//	  priority: stat                  # routine (default), urgent, asap, stat
//	expect:                           # matched is required; every other key is checked only when present
//	  matched: true
//	  routes: [chest-xray]
//	  engines: [cxr-pneumonia-densenet121]
//	  destinations: [fhir-stmary]
//	  read: {request: always, group: CareTeam/stmary-readers}   # from_tier and group compared exactly
//	  facility: St Mary Hospital      # the facility override applied ("" for none)
//	  reason_contains: modality CT    # unmatched: a part of Decision.Reason
type Case struct {
	File   string
	Line   int // of the case's first key
	Name   string
	Facts  Facts
	Expect Expect
}

// Expect is a case's expected decision. Nil fields are not checked; an
// empty non-nil list expects an empty list.
type Expect struct {
	Matched        bool
	Routes         []string
	Engines        []string
	Destinations   []string
	Read           *ReadRequest // When, FromTier and Group compared
	Facility       *string
	ReasonContains string
}

var (
	caseKeys   = []string{"name", "description", "facts", "expect"}
	factKeys   = []string{"modality", "body_part", "sop_class", "procedure_code", "facility", "priority"}
	expectKeys = []string{"matched", "routes", "engines", "destinations", "read", "facility", "reason_contains"}
	expReadKey = []string{"request", "from_tier", "group"}
)

// LoadCases loads every *.yaml file in dir as one case, sorted by file
// name. Findings in case files come back together as a config.Errors
// (file:line:col: message), with the cases that loaded.
func LoadCases(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing cases: %w", err)
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("reading cases: %w", err)
		}
		return nil, fmt.Errorf("no *.yaml case files in %s", dir)
	}
	sort.Strings(files)
	var cases []Case
	var errs config.Errors
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, config.Error{File: f, Message: err.Error()})
			continue
		}
		p := &parser{file: f}
		c, ok := p.parseCase(b)
		errs = append(errs, p.errs...)
		if ok && len(p.errs) == 0 {
			cases = append(cases, c)
		}
	}
	if len(errs) > 0 {
		config.SortErrors(errs)
		return cases, errs
	}
	return cases, nil
}

func (p *parser) parseCase(data []byte) (Case, bool) {
	c := Case{File: p.file, Name: strings.TrimSuffix(filepath.Base(p.file), ".yaml")}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errs = append(p.errs, config.Error{File: p.file, Message: "the case file is empty: it needs facts and expect"})
		} else {
			p.errs = append(p.errs, config.YAMLError(p.file, data, err))
		}
		return c, false
	}
	if len(doc.Content) == 0 {
		p.errs = append(p.errs, config.Error{File: p.file, Message: "the case file is empty: it needs facts and expect"})
		return c, false
	}
	root := resolve(doc.Content[0])
	c.Line = root.Line
	m := p.mapping(root, "the top level", caseKeys)
	if m == nil {
		return c, false
	}
	if n, ok := m["name"]; ok {
		if v, ok := p.scalar(n.val, "name"); ok {
			c.Name = v
		}
	}
	if d, ok := m["description"]; ok {
		p.scalar(d.val, "description")
	}
	if f, ok := m["facts"]; ok {
		c.Facts = p.facts(f.val)
	} else {
		p.errf(root, "the top level: facts must be set (keys: %s)", strings.Join(factKeys, ", "))
	}
	if e, ok := m["expect"]; ok {
		c.Expect = p.expect(e.val)
	} else {
		p.errf(root, "the top level: expect must be set (at least matched: true or false)")
	}
	return c, true
}

// optList reads a list of strings that may be empty.
func (p *parser) optList(n *yaml.Node, what string) []string {
	if rn := resolve(n); rn.Kind == yaml.SequenceNode && len(rn.Content) == 0 {
		return []string{}
	}
	vs, _ := p.list(n, what, "")
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.val)
	}
	return out
}

func (p *parser) facts(n *yaml.Node) Facts {
	var f Facts
	m := p.mapping(n, "facts", factKeys)
	if m == nil {
		return f
	}
	if v, ok := m["modality"]; ok {
		f.Modalities = p.optList(v.val, "facts.modality")
	}
	if v, ok := m["body_part"]; ok {
		f.BodyParts = p.optList(v.val, "facts.body_part")
	}
	if v, ok := m["sop_class"]; ok {
		f.SOPClasses = p.optList(v.val, "facts.sop_class")
	}
	if v, ok := m["facility"]; ok {
		f.Facilities = p.optList(v.val, "facts.facility")
	}
	if v, ok := m["procedure_code"]; ok {
		if rn := resolve(v.val); !(rn.Kind == yaml.SequenceNode && len(rn.Content) == 0) {
			f.ProcedureCodes = p.codes(v.val, "facts.procedure_code")
		}
	}
	if v, ok := m["priority"]; ok {
		if s, ok := p.scalar(v.val, "facts.priority"); ok {
			if !contains(priorities, strings.ToLower(s)) {
				p.errf(v.val, "facts.priority: unknown priority %q (known: %s)", s, strings.Join(priorities, ", "))
			}
			f.Priority = s
		}
	}
	return f
}

func (p *parser) expect(n *yaml.Node) Expect {
	var e Expect
	m := p.mapping(n, "expect", expectKeys)
	if m == nil {
		return e
	}
	if v, ok := m["matched"]; ok {
		rn := resolve(v.val)
		if rn.Kind != yaml.ScalarNode || rn.Tag != "!!bool" {
			p.errf(rn, "expect.matched: expected true or false, got %s", config.Describe(rn))
		} else {
			e.Matched = rn.Value == "true"
		}
	} else {
		p.errf(n, "expect: matched must be set (true or false)")
	}
	if v, ok := m["routes"]; ok {
		e.Routes = p.optList(v.val, "expect.routes")
	}
	if v, ok := m["engines"]; ok {
		e.Engines = p.optList(v.val, "expect.engines")
	}
	if v, ok := m["destinations"]; ok {
		e.Destinations = p.optList(v.val, "expect.destinations")
	}
	if v, ok := m["facility"]; ok {
		rn := resolve(v.val)
		if rn.Kind != yaml.ScalarNode {
			p.errf(rn, "expect.facility: expected a string, got %s", config.Describe(rn))
		} else {
			s := strings.TrimSpace(rn.Value)
			if rn.Tag == "!!null" {
				s = ""
			}
			e.Facility = &s
		}
	}
	if v, ok := m["reason_contains"]; ok {
		if s, ok := p.scalar(v.val, "expect.reason_contains"); ok {
			e.ReasonContains = s
			if e.Matched {
				p.errf(v.key, "expect: reason_contains is for unmatched cases (matched: false)")
			}
		}
	}
	if v, ok := m["read"]; ok {
		rm := p.mapping(v.val, "expect.read", expReadKey)
		if rm != nil {
			r := ReadRequest{}
			if q, ok := rm["request"]; ok {
				if s, ok := p.scalar(q.val, "expect.read.request"); ok {
					if !contains(readRequests, s) {
						p.errf(q.val, "expect.read.request: unknown value %q (known: %s)", s, strings.Join(readRequests, ", "))
					}
					r.When = s
				}
			} else {
				p.errf(v.val, "expect.read: request must be set (%s)", strings.Join(readRequests, ", "))
			}
			if t, ok := rm["from_tier"]; ok {
				if s, ok := p.scalar(t.val, "expect.read.from_tier"); ok {
					if tierRank(s) < 0 {
						p.errf(t.val, "expect.read.from_tier: unknown tier %q (known: %s)", s, strings.Join(tiers, ", "))
					}
					r.FromTier = s
				}
			}
			if g, ok := rm["group"]; ok {
				r.Group, _ = p.scalar(g.val, "expect.read.group")
			}
			e.Read = &r
		}
	}
	return e
}

// Run decides c's facts with s and compares the decision with c's
// expectation. It returns one line per mismatch ("engines: want [a b], got
// [a]"), none when the case passes.
func (s *Set) Run(c Case) []string {
	d := s.Decide(c.Facts)
	e := c.Expect
	var out []string
	if d.Matched != e.Matched {
		line := fmt.Sprintf("matched: want %t, got %t", e.Matched, d.Matched)
		if d.Matched {
			line += fmt.Sprintf(" (routes %v)", d.Routes)
		} else {
			line += " (" + d.Reason + ")"
		}
		out = append(out, line)
	}
	list := func(key string, want, got []string) {
		if want == nil {
			return
		}
		if got == nil {
			got = []string{}
		}
		if !equal(want, got) {
			out = append(out, fmt.Sprintf("%s: want %v, got %v", key, want, got))
		}
	}
	list("routes", e.Routes, d.Routes)
	list("engines", e.Engines, d.Engines)
	list("destinations", e.Destinations, d.Destinations)
	if e.Read != nil {
		got := d.Read
		if got.When != e.Read.When || got.FromTier != e.Read.FromTier || got.Group != e.Read.Group {
			out = append(out, fmt.Sprintf("read: want %s, got %s", readString(*e.Read), readString(got)))
		}
	}
	if e.Facility != nil && *e.Facility != d.Facility {
		out = append(out, fmt.Sprintf("facility: want %q, got %q", *e.Facility, d.Facility))
	}
	if e.ReasonContains != "" && !strings.Contains(d.Reason, e.ReasonContains) {
		out = append(out, fmt.Sprintf("reason: want it to contain %q, got %q", e.ReasonContains, d.Reason))
	}
	return out
}

func readString(r ReadRequest) string {
	parts := []string{"request: " + r.When}
	if r.FromTier != "" {
		parts = append(parts, "from_tier: "+r.FromTier)
	}
	if r.Group != "" {
		parts = append(parts, "group: "+r.Group)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
