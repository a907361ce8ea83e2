package routing

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// repo is the repository root, found from this file.
func repo(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), ".."}, parts...)...)
}

// testReg is what the shipped models and testdata/routes/radgate.yaml
// define (TestRegistryMatchesTheShippedFiles in cmd/radgate keeps them in step).
var testReg = Registry{
	Engines:      []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"},
	Destinations: []string{"fhir", "fhir-stmary", "pacs", "ris"},
}

// Every bad file yields exactly these findings, in this order.
var badFiles = map[string][]string{
	"misspelled-key.bad.yaml": {
		`misspelled-key.bad.yaml:4:7: route "chest-xray": when: unknown key "modalty" (did you mean "modality"? known: modality, body_part, sop_class, procedure_code, facility, priority)`,
	},
	"wrong-type.bad.yaml": {
		`wrong-type.bad.yaml:4:17: route "chest-xray": when.modality: expected a list, got "CR"`,
	},
	"unknown-engine.bad.yaml": {
		`unknown-engine.bad.yaml:3:15: route "chest-xray": engines: unknown engine "cxr-pneumonia-densenet12" (did you mean "cxr-pneumonia-densenet121"? registered: cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224)`,
	},
	"unknown-destination.bad.yaml": {
		`unknown-destination.bad.yaml:4:26: route "chest-xray": destinations: unknown destination "riss" (did you mean "ris"? defined in radgate.yaml: fhir, fhir-stmary, pacs, ris)`,
	},
	"two-errors.bad.yaml": {
		`two-errors.bad.yaml:6:24: route "chest-xray": when.priority: unknown priority "soon" (known: routine, urgent, asap, stat)`,
		`two-errors.bad.yaml:9:21: route "chest-xray": read.request: unknown value "sometimes" (known: never, always, from_tier)`,
	},
	"duplicate-name.bad.yaml": {
		`duplicate-name.bad.yaml:7:11: duplicate route name "chest-xray" (first at line 2)`,
	},
	"bad-tier.bad.yaml": {
		`bad-tier.bad.yaml:7:18: route "chest-xray": read.from_tier: unknown tier "Medium" (known: Low, Mid, High)`,
	},
	"unreachable.bad.yaml": {
		`unreachable.bad.yaml:5:11: route "chest-xray" is unreachable: route "everything" (line 2) matches every order and comes first (match: first); move it after the others or use match: all`,
	},
	"shadowed.bad.yaml": {
		`shadowed.bad.yaml:7:11: route "dx-chest" is unreachable: every order it matches is taken first by route "xray" (line 2) (match: first); put the narrower route first`,
	},
	"empty-lists.bad.yaml": {
		`empty-lists.bad.yaml:4:18: route "chest-xray": when.body_part: an empty list matches nothing; leave body_part out to match any`,
		`empty-lists.bad.yaml:5:14: route "chest-xray": engines: must name at least one engine (registered: cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224)`,
		`empty-lists.bad.yaml:6:19: route "chest-xray": destinations: must name at least one destination (defined: fhir, fhir-stmary, pacs, ris)`,
		`empty-lists.bad.yaml:7:5: route "no-destinations": destinations must be set: where results go (defined: fhir, fhir-stmary, pacs, ris)`,
	},
	"read-errors.bad.yaml": {
		`read-errors.bad.yaml:6:21: route "a": read: from_tier must be set with request: from_tier (Low, Mid, High)`,
		`read-errors.bad.yaml:6:39: route "a": read.group: "chest-readers" is not a FHIR reference (Type/id, e.g. CareTeam/chest-readers)`,
		`read-errors.bad.yaml:11:21: route "b": read: group must be set when a read is requested (the FHIR reference of the reading group, e.g. CareTeam/chest-readers)`,
		`read-errors.bad.yaml:16:28: route "c": read: from_tier is used only with request: from_tier (request is never)`,
	},
	"top-level.bad.yaml": {
		`top-level.bad.yaml:1:1: the top level: routes must be set: a list of routes, each with a name, engines and destinations`,
		`top-level.bad.yaml:1:8: match: unknown value "any" (known: first, all)`,
		`top-level.bad.yaml:2:1: the top level: unknown key "route" (did you mean "routes"? known: match, routes, facilities, unmatched)`,
		`top-level.bad.yaml:6:5: facility "St Mary Hospital": unknown key "destination" (did you mean "destinations"? known: destinations, read)`,
		`top-level.bad.yaml:7:3: facility "st mary hospital": appears twice (first at line 5; names are compared case-insensitively)`,
		`top-level.bad.yaml:10:17: unmatched.destinations: expected a list, got "fhir"`,
	},
	"codes-and-uids.bad.yaml": {
		`codes-and-uids.bad.yaml:4:46: route "chest-xray": when.sop_class: "CR Image Storage" is not a DICOM UID (digits and dots, e.g. 1.2.840.10008.5.1.4.1.1.1)`,
		`codes-and-uids.bad.yaml:6:11: route "chest-xray": when.procedure_code[0]: code must be set (system is optional: without it the code matches in any system)`,
		`codes-and-uids.bad.yaml:7:11: route "chest-xray": when.procedure_code[1]: expected a mapping (keys: system, code), got "36643-5"`,
		`codes-and-uids.bad.yaml:8:12: route "chest-xray": when.procedure_code[2]: unknown key "sytem" (did you mean "system"? known: system, code)`,
	},
	// Syntax errors, at the line:col of the mistake (yaml.v3 alone said
	// "syntax.bad.yaml:2: did not find expected ',' or ']'": a line early,
	// no column).
	"syntax.bad.yaml": {
		`syntax.bad.yaml:3:14: '[' is not closed (expected ',' or ']' before 4:5)`,
	},
	"unclosed-brace.bad.yaml": {
		`unclosed-brace.bad.yaml:3:11: '{' is not closed (expected ',' or '}' before 4:5)`,
	},
	"bad-indent.bad.yaml": {
		`bad-indent.bad.yaml:4:4: "destinations" is indented to column 4, where no key or list item above it starts`,
	},
	"over-indent.bad.yaml": {
		`over-indent.bad.yaml:6:14: mapping values are not allowed in this context (is this line indented too far?)`,
	},
	"tab-indent.bad.yaml": {
		`tab-indent.bad.yaml:3:1: found a tab character: YAML indents with spaces only`,
	},
	"unterminated-string.bad.yaml": {
		`unterminated-string.bad.yaml:2:11: this double-quoted string is never closed`,
	},
	"duplicate-key.bad.yaml": {
		`duplicate-key.bad.yaml:5:5: route "chest-xray": key "engines" appears twice (first at line 3)`,
	},
	"unknown-age.bad.yaml": {
		`unknown-age.bad.yaml:6:18: route "chest-xray": unknown_age must be score (score an image of unknown patient age, with a caveat in every output) or reject (refuse it, naming the engine's age range), got "refuse"`,
		`unknown-age.bad.yaml:10:18: route "other": unknown_age: expected a string, got a list`,
	},
	"empty.bad.yaml": {
		`empty.bad.yaml: the file is empty: it needs a routes list (see routes.example.yaml)`,
	},
}

func TestBadRouteFilesReportEveryFindingAtItsPosition(t *testing.T) {
	files, err := filepath.Glob(repo("testdata", "routes", "*.bad.yaml"))
	require.NoError(t, err)
	require.Len(t, files, len(badFiles), "every testdata/routes/*.bad.yaml has its expected findings here")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := badFiles[name]
			require.True(t, ok, "no expected findings for %s", name)
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			s, err := Load(name, b, testReg)
			require.Nil(t, s)
			var errs config.Errors
			require.ErrorAs(t, err, &errs)
			require.Equal(t, want, strings.Split(err.Error(), "\n"))
			require.Len(t, errs, len(want))
		})
	}
}

func TestGoodRouteFilesLoad(t *testing.T) {
	files, err := filepath.Glob(repo("testdata", "routes", "*.good.yaml"))
	require.NoError(t, err)
	files = append(files, repo("routes.example.yaml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := LoadFile(f, testReg)
			require.NoError(t, err)
			require.Equal(t, f, s.File())
			require.Len(t, s.Digest(), 64)
		})
	}
}

func TestExampleSet(t *testing.T) {
	s, err := LoadFile(repo("routes.example.yaml"), testReg)
	require.NoError(t, err)
	require.False(t, s.MatchAll())
	require.Equal(t, []string{"chest-xray-urgent", "chest-xray", "chest-xray-by-code"}, s.Routes())
	require.Equal(t, []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"}, s.Engines())
	require.Equal(t, []string{"fhir", "fhir-stmary", "ris"}, s.Destinations())
	require.Equal(t, []string{"fhir"}, s.Unmatched())

	// The example names destinations that only testdata/routes/radgate.yaml
	// defines: against the default config it names them all as unknown.
	_, err = LoadFile(repo("routes.example.yaml"), Registry{Engines: testReg.Engines, Destinations: config.Default().DestinationNames()})
	require.ErrorContains(t, err, `unknown destination "ris" (defined in radgate.yaml: fhir)`)
	require.ErrorContains(t, err, `unknown destination "fhir-stmary" (defined in radgate.yaml: fhir)`)
}

func load(t *testing.T, src string) *Set {
	t.Helper()
	s, err := Load("t.yaml", []byte(src), testReg)
	require.NoError(t, err)
	return s
}

func TestDecide(t *testing.T) {
	first := load(t, `
routes:
  - name: stat-chest
    when: {modality: [CR, DX], body_part: [CHEST], priority: [stat]}
    engines: [cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224]
    destinations: [fhir, ris]
    read: {request: always, group: CareTeam/chest-readers}
  - name: chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    read: {request: from_tier, from_tier: Mid, group: CareTeam/chest-readers}
  - name: general-hospital-dx
    when: {modality: [DX], facility: [General Hospital]}
    engines: [cxr-pneumonia-densenet121-k224]
    destinations: [pacs]
  - name: by-code
    when:
      sop_class: [1.2.840.10008.5.1.4.1.1.1]
      procedure_code: [{system: http://loinc.org, code: 36643-5}, {code: "71046"}]
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
facilities:
  St Mary Hospital:
    destinations: [fhir-stmary]
  Clinic B:
    read: {request: never}
unmatched:
  destinations: [fhir, ris]
`)
	all, err := Load("all.yaml", mustRead(t, repo("testdata", "routes", "match-all.good.yaml")), testReg)
	require.NoError(t, err)

	never := ReadRequest{When: ReadNever}
	chestMid := ReadRequest{When: ReadFromTier, FromTier: "Mid", Group: "CareTeam/chest-readers"}
	tests := []struct {
		name string
		set  *Set
		f    Facts
		want Decision
	}{
		{"first: the first matching route decides", first,
			Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Facilities: []string{"General Hospital"}, Priority: "stat"},
			Decision{Matched: true, Routes: []string{"stat-chest"}, Engines: []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"},
				Destinations: []string{"fhir", "ris"}, Read: ReadRequest{When: ReadAlways, Group: "CareTeam/chest-readers"}}},
		{"first: no priority is routine", first,
			Facts{Modalities: []string{"CR"}, BodyParts: []string{"CHEST"}},
			Decision{Matched: true, Routes: []string{"chest"}, Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}, Read: chestMid}},
		{"case-insensitive modality, body part, facility", first,
			Facts{Modalities: []string{"dx"}, BodyParts: []string{"pelvis"}, Facilities: []string{"general  HOSPITAL"}},
			Decision{Matched: true, Routes: []string{"general-hospital-dx"}, Engines: []string{"cxr-pneumonia-densenet121-k224"}, Destinations: []string{"pacs"}, Read: never}},
		{"any series' modality counts", first,
			Facts{Modalities: []string{"PR", "DX"}, BodyParts: []string{"CHEST"}},
			Decision{Matched: true, Routes: []string{"chest"}, Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}, Read: chestMid}},
		{"code without system matches any system; SOP class exact", first,
			Facts{Modalities: []string{"CR"}, SOPClasses: []string{"1.2.840.10008.5.1.4.1.1.1"}, ProcedureCodes: []Code{{System: "urn:oid:2.16.840.1.113883.6.12", Code: "71046"}}},
			Decision{Matched: true, Routes: []string{"by-code"}, Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}, Read: never}},
		{"facility override replaces destinations only", first,
			Facts{Modalities: []string{"CR"}, BodyParts: []string{"CHEST"}, Facilities: []string{"Other", "st mary hospital"}},
			Decision{Matched: true, Routes: []string{"chest"}, Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir-stmary"}, Read: chestMid, Facility: "St Mary Hospital"}},
		{"facility override replaces read only", first,
			Facts{Modalities: []string{"CR"}, BodyParts: []string{"CHEST"}, Facilities: []string{"CLINIC B"}},
			Decision{Matched: true, Routes: []string{"chest"}, Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}, Read: never, Facility: "Clinic B"}},
		{"unmatched: the reason names the facts and the nearest route", first,
			Facts{Modalities: []string{"CT"}, BodyParts: []string{"HEAD"}, Facilities: []string{"Clinic B"}, Priority: "routine"},
			Decision{}},
		{"all: engines and destinations merged in route order, most demanding read", all,
			Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Priority: "stat"},
			Decision{Matched: true, Routes: []string{"all-chest", "dx", "stat"}, Engines: []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"},
				Destinations: []string{"fhir", "pacs", "ris"}, Read: ReadRequest{When: ReadFromTier, FromTier: "Low", Group: "CareTeam/dx-readers"}}},
		{"all: one route", all,
			Facts{Modalities: []string{"CR"}, BodyParts: []string{"CHEST"}},
			Decision{Matched: true, Routes: []string{"all-chest"}, Engines: []string{"cxr-pneumonia-densenet121"},
				Destinations: []string{"fhir"}, Read: ReadRequest{When: ReadFromTier, FromTier: "High", Group: "CareTeam/chest-readers"}}},
		{"all: facility override after merging", all,
			Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Facilities: []string{"Clinic B"}},
			Decision{Matched: true, Routes: []string{"all-chest", "dx"}, Engines: []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"},
				Destinations: []string{"fhir", "pacs"}, Read: never, Facility: "Clinic B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.set.Decide(tt.f)
			if !tt.want.Matched {
				require.False(t, got.Matched)
				require.Empty(t, got.Engines)
				require.Empty(t, got.Destinations)
				require.Equal(t, `no route matches: modality CT, body part HEAD, facility "Clinic B", priority routine; nearest route "chest" wants modality CR or DX and body part CHEST`, got.Reason)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, []string{"fhir", "ris"}, first.Unmatched())
	require.Equal(t, []string{"fhir", "fhir-stmary", "pacs", "ris"}, first.Destinations())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestUnmatchedReasonWithoutFacts(t *testing.T) {
	s := load(t, `
routes:
  - name: chest
    when: {modality: [CR, DX, DR], body_part: [CHEST], procedure_code: [{code: "71046"}]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
`)
	d := s.Decide(Facts{Priority: "STAT"})
	require.False(t, d.Matched)
	require.Equal(t, `no route matches: no modality, no body part, no facility, priority stat; nearest route "chest" wants modality CR, DX or DR and body part CHEST and procedure code 71046`, d.Reason)
	require.Empty(t, s.Unmatched())
}

func TestReadWanted(t *testing.T) {
	tests := []struct {
		r                    ReadRequest
		none, low, mid, high bool
	}{
		{ReadRequest{When: ReadNever}, false, false, false, false},
		{ReadRequest{}, false, false, false, false},
		{ReadRequest{When: ReadAlways}, false, true, true, true},
		{ReadRequest{When: ReadFromTier, FromTier: "Low"}, false, true, true, true},
		{ReadRequest{When: ReadFromTier, FromTier: "Mid"}, false, false, true, true},
		{ReadRequest{When: ReadFromTier, FromTier: "High"}, false, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.r.When+" "+tt.r.FromTier, func(t *testing.T) {
			require.Equal(t, tt.none, tt.r.Wanted(""))
			require.Equal(t, tt.low, tt.r.Wanted("Low"))
			require.Equal(t, tt.mid, tt.r.Wanted("Mid"))
			require.Equal(t, tt.high, tt.r.Wanted("High"))
			if tt.r.When == ReadFromTier {
				require.False(t, tt.r.Wanted("Medium"), "an unknown tier is below every tier")
			}
		})
	}
}

func TestDefaultMatchesEveryOrder(t *testing.T) {
	s := Default([]string{"cxr-pneumonia-densenet121"}, []string{"fhir"})
	for _, f := range []Facts{{}, {Modalities: []string{"CT"}, BodyParts: []string{"HEAD"}, Priority: "stat"}} {
		require.Equal(t, Decision{Matched: true, Routes: []string{"default"}, Engines: []string{"cxr-pneumonia-densenet121"},
			Destinations: []string{"fhir"}, Read: ReadRequest{When: ReadNever}}, s.Decide(f))
	}
	require.Equal(t, "", s.File())
	require.Len(t, s.Digest(), 64)
	require.NotEqual(t, s.Digest(), Default([]string{"cxr-pneumonia-densenet121-k224"}, []string{"fhir"}).Digest())
	require.Equal(t, []string{"fhir"}, s.Unmatched(), "order-level answers (a study that never arrived) go to the default destinations")
	require.Equal(t, []string{"cxr-pneumonia-densenet121"}, s.Engines())
	require.Equal(t, []string{"fhir"}, s.Destinations())
}

// A Set is immutable: any number of goroutines decide at once (run with -race).
func TestDecideConcurrently(t *testing.T) {
	s, err := LoadFile(repo("routes.example.yaml"), testReg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				d := s.Decide(Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Facilities: []string{"St Mary Hospital"}})
				if !d.Matched || d.Destinations[0] != "fhir-stmary" {
					t.Errorf("unexpected decision %+v", d)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestGoldenCasesPassAgainstTheExample(t *testing.T) {
	s, err := LoadFile(repo("routes.example.yaml"), testReg)
	require.NoError(t, err)
	cases, err := LoadCases(repo("testdata", "routes", "cases"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), 9)
	for _, c := range cases {
		require.Empty(t, s.Run(c), "case %s (%s)", c.Name, c.File)
	}
}

func TestRunReportsEveryMismatch(t *testing.T) {
	s, err := LoadFile(repo("routes.example.yaml"), testReg)
	require.NoError(t, err)
	dir := t.TempDir()
	write(t, dir, "wrong.yaml", `
facts: {modality: [DX], body_part: [CHEST], facility: [St Mary Hospital]}
expect:
  matched: true
  routes: [chest-xray-urgent]
  engines: [cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224]
  destinations: [fhir]
  read: {request: from_tier, from_tier: Mid, group: CareTeam/chest-readers}
  facility: ""
`)
	write(t, dir, "wrong-unmatched.yaml", `
name: CT is unmatched
facts: {modality: [DX], body_part: [CHEST]}
expect: {matched: false, reason_contains: modality CT}
`)
	cases, err := LoadCases(dir)
	require.NoError(t, err)
	require.Len(t, cases, 2)
	require.Equal(t, "CT is unmatched", cases[0].Name)
	require.Equal(t, []string{`matched: want false, got true (routes [chest-xray])`,
		`reason: want it to contain "modality CT", got ""`}, s.Run(cases[0]))
	require.Equal(t, "wrong", cases[1].Name)
	require.Equal(t, []string{
		`routes: want [chest-xray-urgent], got [chest-xray]`,
		`engines: want [cxr-pneumonia-densenet121 cxr-pneumonia-densenet121-k224], got [cxr-pneumonia-densenet121]`,
		`destinations: want [fhir], got [fhir-stmary]`,
		`read: want {request: from_tier, from_tier: Mid, group: CareTeam/chest-readers}, got {request: always, group: CareTeam/stmary-readers}`,
		`facility: want "", got "St Mary Hospital"`,
	}, s.Run(cases[1]))
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
}

func TestBadCaseFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `facts:
  modalty: [CR]
  priority: soon
expect:
  matched: yes
  engines: cxr-pneumonia-densenet121
`)
	write(t, dir, "b.yaml", `facts: {modality: [CR]}
expect: {routes: [x], reason_contains: CR}
`)
	write(t, dir, "c.yaml", "name: fine\nfacts: {}\nexpect: {matched: false}\n")
	cases, err := LoadCases(dir)
	require.Len(t, cases, 1, "the good case still loads")
	p := func(s string) string { return filepath.Join(dir, s) }
	require.Equal(t, []string{
		p("a.yaml") + `:2:3: facts: unknown key "modalty" (did you mean "modality"? known: modality, body_part, sop_class, procedure_code, facility, priority)`,
		p("a.yaml") + `:3:13: facts.priority: unknown priority "soon" (known: routine, urgent, asap, stat)`,
		p("a.yaml") + `:5:12: expect.matched: expected true or false, got "yes"`,
		p("a.yaml") + `:6:12: expect.engines: expected a list, got "cxr-pneumonia-densenet121"`,
		p("b.yaml") + `:2:9: expect: matched must be set (true or false)`,
	}, strings.Split(err.Error(), "\n"))

	_, err = LoadCases(t.TempDir())
	require.ErrorContains(t, err, "no *.yaml case files in")
}

// FHIR R4 Task.owner cannot be a Group: the read request's group must be a
// resource a Task may be owned by.
func TestReadGroupMustBeATaskOwnerType(t *testing.T) {
	src := `routes:
  - name: chest
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    read: {request: always, group: Group/chest-readers}
`
	_, err := Load("g.yaml", []byte(src), Registry{Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}})
	require.EqualError(t, err, `g.yaml:5:36: route "chest": read.group: "Group/chest-readers": a read Task's owner must be a CareTeam, Organization, PractitionerRole, HealthcareService, Practitioner (FHIR R4 Task.owner)`)
}

func TestUnknownAgeRejectWinsUnderMatchAll(t *testing.T) {
	s := load(t, `match: all
routes:
  - name: a
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
  - name: b
    when: {modality: [DX]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    unknown_age: reject
  - name: c
    when: {modality: [CR]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
    unknown_age: score
`)
	require.Equal(t, "", s.Decide(Facts{Modalities: []string{"CR"}}).UnknownAge, "score is the default and the explicit score")
	require.Equal(t, UnknownAgeReject, s.Decide(Facts{Modalities: []string{"DX"}}).UnknownAge, "a matched route that rejects decides")
	require.Equal(t, "", Default([]string{"e"}, []string{"fhir"}).Decide(Facts{}).UnknownAge)
}
