package hl7v2

import (
	"encoding/base64"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/stretchr/testify/require"
)

const testDisclaimer = "AI decision support — not a diagnosis.\nReview the image yourself | ^ & ~ \\ #"

func sampleResult() radgate.Result {
	return radgate.Result{
		ID: "0123456789abcdef01234567",
		Order: radgate.OrderStatus{
			ID:             "order-1",
			Accession:      &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-778899"},
			ServiceRequest: &radgate.Reference{Identifier: &radgate.Identifier{System: "EHR", Value: "PLC-1001"}},
			Patient: &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN12345"},
				Display: "Doe, Jane"},
			ProcedureCodes:   []radgate.Coding{{System: "http://loinc.org", Code: "36643-5", Display: "XR Chest 2 Views"}},
			StudyInstanceUID: "1.2.3.4.5.6.7.8.9",
		},
		Engine: radgate.EngineInfo{ID: "cxr-pneumonia", Name: "CXR pneumonia DenseNet-121", Version: "1.2.0",
			Disclaimer: testDisclaimer,
			Finding:    radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"}},
		Outcome:          radgate.OutcomeScored,
		Probability:      0.87349,
		Tier:             "High",
		Marked:           true,
		StudyInstanceUID: "1.2.3.4.5.6.7.8.9",
		ScoredAt:         time.Date(2024, 1, 31, 14, 29, 0, 0, time.UTC),
	}
}

var oruOpts = ORUOptions{Time: fixedTime, ReceivingApplication: HD{Namespace: "RIS"}, ReceivingFacility: HD{Namespace: "HOSP"}}

func TestORU(t *testing.T) {
	m, err := ORU(sampleResult(), oruOpts)
	require.NoError(t, err)
	want := strings.Join([]string{
		`MSH|^~\&|RADGATE||RIS|HOSP|20240131143000+0000||ORU^R01^ORU_R01|8865fea8edb697169ac2|P|2.5.1||||||UNICODE UTF-8`,
		`PID|1||MRN12345^^^&1.2.3.4.9&ISO||^^^^^^U`,
		`ORC|RE|PLC-1001^EHR|ACC-778899^^1.2.3.4.5^ISO||CM`,
		`OBR|1|PLC-1001^EHR|ACC-778899^^1.2.3.4.5^ISO|36643-5^XR Chest 2 Views^LN|||20240131142900+0000|||||||||||ACC-778899||0123456789abcdef01234567||20240131143000+0000||RAD|F`,
		`OBX|1|NM|233604007^Pneumonia (AI confidence)^SCT|1|87.3|%^percent^UCUM|||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|2|CWE|confidence-tier^AI confidence tier^RADGATE|1|high^High^RADGATE-TIER||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|3|FT|conclusion^AI conclusion^RADGATE||Pneumonia: AI confidence 87.3 % (tier High), by CXR pneumonia DenseNet-121 1.2.0. The region of interest is marked on the AI heatmap.||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|4|FT|disclaimer^Disclaimer^RADGATE||AI decision support — not a diagnosis.\.br\Review the image yourself \F\ \S\ \T\ \R\ \E\ #||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|5|ST|algorithm-name^AI algorithm^RADGATE||CXR pneumonia DenseNet-121||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|6|ST|algorithm-version^AI algorithm version^RADGATE||1.2.0||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
		`OBX|7|ST|110180^Study Instance UID^DCM||1.2.3.4.5.6.7.8.9||||||F|||20240131142900+0000||||cxr-pneumonia@1.2.0^RADGATE`,
	}, "\r") + "\r"
	require.Equal(t, want, m.String())

	// Read back with the parser.
	back := mustParse(t, m.String())
	require.NoError(t, ValidateHeader(back))
	require.Equal(t, "ORU^R01^ORU_R01", back.Type().String())
	require.Equal(t, "MRN12345", back.Get("PID-3"))
	require.Equal(t, UnknownName, back.GetRaw("PID-5"), "present (required in v2.5.1), no name: name type U")

	// A name given for the send: escaped, never stored by ORU's callers.
	o := oruOpts
	o.PatientName = Name{Family: "O'Brien|Smith", Given: "Ann", Middle: "B C", Prefix: "Dr", Type: "L"}
	m, err = ORU(sampleResult(), o)
	require.NoError(t, err)
	require.Equal(t, `O'Brien\F\Smith^Ann^B C^^Dr^^L`, m.Segment("PID").String()[len("PID|1||MRN12345^^^&1.2.3.4.9&ISO||"):])
	require.Equal(t, "[patient name]", fmt.Sprint(o.PatientName), "a Name never prints itself")
	require.NotContains(t, m.String(), "Doe")
	require.Equal(t, "ACC-778899", back.Get("OBR-18"))
	require.Equal(t, "F", back.Get("OBR-25"))
	require.Equal(t, "87.3", back.Get("OBX(1)-5"))
	require.Equal(t, "high", back.Get("OBX(2)-5"))
	require.Equal(t, "RADGATE-TIER", back.Get("OBX(2)-5-3"))
	require.Equal(t, strings.ReplaceAll(testDisclaimer, "\r\n", "\n"), back.Get("OBX(4)-5"), "the disclaimer word for word")
	require.Equal(t, m.ControlID(), mustControlID(t), "the control id derives from the result id")

	// A new delivery of the same result carries the same control id; a
	// short id is used as is.
	r := sampleResult()
	r.ID = "abc123"
	m2, err := ORU(r, ORUOptions{})
	require.NoError(t, err)
	require.Equal(t, "abc123", m2.ControlID())
	require.Equal(t, "RADGATE", m2.SendingApplication().Namespace)
}

func mustControlID(t *testing.T) string {
	m, err := ORU(sampleResult(), ORUOptions{})
	require.NoError(t, err)
	return m.ControlID()
}

func TestORUWithPDFAndOtherDelimiters(t *testing.T) {
	pdf := []byte("%PDF-1.4\n% fake\n%%EOF\n")
	r := sampleResult()
	r.Order.ServiceRequest = nil
	r.Order.ProcedureCodes = nil
	r.Engine.Finding = radgate.Coding{}
	r.Marked = false
	d := Delimiters{FieldSep: '$', ComponentSep: '%', RepetitionSep: '@', EscapeChar: '*', SubcomponentSep: '&'}
	m, err := ORU(r, ORUOptions{Time: fixedTime, PDF: pdf, Delimiters: d, ControlID: "CTRL-1"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(m.String(), "MSH$%@*&$RADGATE$$$$20240131143000+0000$$ORU%R01%ORU_R01$CTRL-1$"), m.String())
	back := mustParse(t, m.String())
	require.Equal(t, "", back.Get("OBR-2"), "no placer order number")
	require.Equal(t, "ACC-778899", back.Get("OBR-3"))
	require.Equal(t, "18748-4", back.Get("OBR-4"), "LOINC Diagnostic imaging study without an ordered procedure")
	require.Equal(t, "233604007", back.Get("OBX(1)-3"), "SNOMED CT pneumonia by default")
	require.Equal(t, "1.2.0", back.Get("OBX(6)-5"))
	require.NotContains(t, back.Get("OBX(3)-5"), "heatmap")
	ed := back.Segments("OBX")[7]
	require.Equal(t, "ED", ed.Get("2"))
	require.Equal(t, "report-pdf", ed.Get("3"))
	require.Equal(t, "", ed.Get("5-1"))
	require.Equal(t, "application", ed.Get("5-2"))
	require.Equal(t, "pdf", ed.Get("5-3"))
	require.Equal(t, "Base64", ed.Get("5-4"))
	got, err := base64.StdEncoding.DecodeString(ed.Get("5-5"))
	require.NoError(t, err)
	require.Equal(t, pdf, got)
	require.Equal(t, testDisclaimer, back.Get("OBX(4)-5"))
	require.Contains(t, back.GetRaw("OBX(4)-5"), `|`, "'|' is plain text with '$' as field separator")
}

func TestORUNotScored(t *testing.T) {
	for _, c := range []struct {
		outcome radgate.Outcome
		reason  string
		want    string
	}{
		{radgate.OutcomeNotApplicable, "not a chest radiograph (body part: KNEE | modality MR)",
			`NTE|1|L|AI analysis by CXR pneumonia DenseNet-121 1.2.0 not applicable: not a chest radiograph (body part: KNEE \F\ modality MR)`},
		{radgate.OutcomeFailed, "study never arrived\nafter 24 h", `NTE|1|L|AI analysis by CXR pneumonia DenseNet-121 1.2.0 failed: study never arrived\.br\after 24 h`},
		{radgate.OutcomeFailed, "", `NTE|1|L|AI analysis by CXR pneumonia DenseNet-121 1.2.0 failed: no reason given`},
	} {
		t.Run(string(c.outcome), func(t *testing.T) {
			r := sampleResult()
			r.Outcome, r.Reason, r.Tier, r.Probability = c.outcome, c.reason, "", 0
			r.Order.Accession = nil
			r.Order.ServiceRequest = nil
			m, err := ORU(r, oruOpts)
			require.NoError(t, err)
			segs := strings.Split(strings.TrimSuffix(m.String(), "\r"), "\r")
			require.Len(t, segs, 5)
			require.Equal(t, "ORC|RE||0123456789abcdef01234567^RADGATE", segs[2], "the result id as filler order number without an order identifier")
			require.Equal(t, "OBR|1||0123456789abcdef01234567^RADGATE|36643-5^XR Chest 2 Views^LN|||20240131142900+0000|||||||||||||0123456789abcdef01234567||20240131143000+0000||RAD|X", segs[3])
			require.Equal(t, c.want, segs[4])
			require.Empty(t, m.Segments("OBX"))
		})
	}
}

func TestORUErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*radgate.Result)
		want string
	}{
		{"no patient", func(r *radgate.Result) { r.Order.Patient = nil }, "invalid result for ORU^R01: Result.Order.Patient: no patient identifier for PID-3"},
		{"literal patient reference only", func(r *radgate.Result) { r.Order.Patient = &radgate.Reference{Reference: "Patient/1"} },
			"invalid result for ORU^R01: Result.Order.Patient: no patient identifier for PID-3"},
		{"bad tier", func(r *radgate.Result) { r.Tier = "Severe" }, `invalid result for ORU^R01: Result.Tier: "Severe" is not Low, Mid or High`},
		{"NaN", func(r *radgate.Result) { r.Probability = math.NaN() }, "invalid result for ORU^R01: Result.Probability: NaN is outside 0..1"},
		{"above 1", func(r *radgate.Result) { r.Probability = 1.5 }, "invalid result for ORU^R01: Result.Probability: 1.5 is outside 0..1"},
		{"no disclaimer", func(r *radgate.Result) { r.Engine.Disclaimer = " " }, "invalid result for ORU^R01: Result.Engine.Disclaimer: empty (every result carries the disclaimer)"},
		{"unknown outcome", func(r *radgate.Result) { r.Outcome = "maybe" }, `invalid result for ORU^R01: Result.Outcome: "maybe" is not scored, not-applicable or failed`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sampleResult()
			c.edit(&r)
			_, err := ORU(r, oruOpts)
			require.EqualError(t, err, c.want)
			require.ErrorIs(t, err, ErrInvalidResult)
		})
	}
}

func TestAuthorities(t *testing.T) {
	a := Authorities{"HOSP": "https://hosp.example/mrn"}
	for _, c := range []struct {
		hd     HD
		system string
	}{
		{HD{Namespace: "HOSP"}, "https://hosp.example/mrn"},
		{HD{Namespace: "OTHER"}, "OTHER"},
		{HD{UniversalID: "1.2.3", UniversalIDType: "ISO"}, "urn:oid:1.2.3"},
		{HD{UniversalID: "1.2.3"}, "urn:oid:1.2.3"},
		{HD{UniversalID: "0B8F1E0A-0C1D-4E2F-9A3B-5C6D7E8F9A0B", UniversalIDType: "UUID"}, "urn:uuid:0b8f1e0a-0c1d-4e2f-9a3b-5c6d7e8f9a0b"},
		{HD{UniversalID: "https://ids.example/acc", UniversalIDType: "URI"}, "https://ids.example/acc"},
		{HD{}, ""},
	} {
		require.Equal(t, c.system, a.System(c.hd), "%+v", c.hd)
	}
	require.Equal(t, HD{Namespace: "HOSP"}, a.HD("https://hosp.example/mrn"))
	require.Equal(t, HD{UniversalID: "1.2.3", UniversalIDType: "ISO"}, a.HD("urn:oid:1.2.3"))
	require.Equal(t, HD{UniversalID: "https://x.example", UniversalIDType: "URI"}, a.HD("https://x.example"))
	require.Equal(t, HD{Namespace: "EHR"}, a.HD("EHR"))

	require.Equal(t, "http://loinc.org", CodingSystemURI("LN"))
	require.Equal(t, "http://terminology.hl7.org/CodeSystem/v2-0074", CodingSystemURI("HL70074"))
	require.Equal(t, "99LOCAL", CodingSystemURI("99LOCAL"))
	require.Equal(t, "SCT", CodingSystemName("http://snomed.info/sct"))
	require.Equal(t, "C4", CodingSystemName("http://www.ama-assn.org/go/cpt"))
	require.Equal(t, "RADGATE-TIER", CodingSystemName("https://radgate.dev/fhir/CodeSystem/ai-confidence-tier"))
	require.Equal(t, "HL70074", CodingSystemName("http://terminology.hl7.org/CodeSystem/v2-0074"))
}

// TestORURevisions: amended results are corrections (OBR-25 C, OBX-11 C),
// retractions post the observations again as wrong (OBR-25 X, OBX-11 W)
// with the reason, and each revision and retraction has its own MSH-10.
func TestORURevisions(t *testing.T) {
	obxStatuses := func(m *Message) []string {
		var out []string
		for _, s := range m.Segments("OBX") {
			out = append(out, s.Get("11"))
		}
		return out
	}
	ntes := func(m *Message) []string {
		var out []string
		for _, s := range m.Segments("NTE") {
			out = append(out, s.Get("3"))
		}
		return out
	}
	final, err := ORU(sampleResult(), oruOpts)
	require.NoError(t, err)

	r := sampleResult()
	r.Revision, r.Status = 2, radgate.ResultAmended
	amended, err := ORU(r, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "C", amended.Get("OBR-25"))
	require.Equal(t, "CM", amended.Get("ORC-5"))
	require.Equal(t, []string{"C", "C", "C", "C", "C", "C", "C"}, obxStatuses(amended))
	require.Equal(t, []string{"AI result revision 2: it replaces revision 1."}, ntes(amended))
	require.Equal(t, final.Get("OBX(1)-5"), amended.Get("OBX(1)-5"))
	require.Equal(t, "8865fea8edb697169-r2", amended.ControlID(), "the final's control id, cut to fit the suffix")
	require.Equal(t, "MSH|PID|ORC|OBR|NTE|OBX|OBX|OBX|OBX|OBX|OBX|OBX", segmentNames(amended))

	r.Status, r.RetractReason = radgate.ResultRetracted, "order cancelled: HL7 ORC-1 CA | by the RIS"
	retracted, err := ORU(r, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "X", retracted.Get("OBR-25"))
	require.Equal(t, "", retracted.Get("ORC-5"), "nothing completed")
	require.Equal(t, []string{"W", "W", "W", "W", "W", "W", "W"}, obxStatuses(retracted), "every observation posted again as wrong")
	require.Equal(t, final.Get("OBX(1)-5"), retracted.Get("OBX(1)-5"), "the withdrawn value itself")
	require.Equal(t, []string{"AI result retracted (revision 2): order cancelled: HL7 ORC-1 CA | by the RIS"}, ntes(retracted))
	require.Contains(t, retracted.String(), `NTE|1|L|AI result retracted (revision 2): order cancelled: HL7 ORC-1 CA \F\ by the RIS`+"\r")
	require.Equal(t, "8865fea8edb69716-r2x", retracted.ControlID())

	// Retracting the first result; a retraction without a reason.
	r.Revision, r.RetractReason = 0, ""
	retracted1, err := ORU(r, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "8865fea8edb69716-r1x", retracted1.ControlID())
	require.Equal(t, []string{"AI result retracted (revision 1): no reason given"}, ntes(retracted1))

	// Each copy its own MSH-10, at most 20 characters; the final's
	// unchanged.
	ids := map[string]bool{}
	for _, c := range []struct {
		rev    int
		status radgate.ResultStatus
	}{{0, ""}, {1, radgate.ResultFinal}, {1, radgate.ResultRetracted}, {2, radgate.ResultAmended}, {2, radgate.ResultRetracted},
		{3, radgate.ResultAmended}, {123, radgate.ResultRetracted}} {
		for _, id := range []string{sampleResult().ID, "abc123", "0123456789abcdef"} {
			r := sampleResult()
			r.ID, r.Revision, r.Status = id, c.rev, c.status
			m, err := ORU(r, ORUOptions{})
			require.NoError(t, err)
			require.LessOrEqual(t, len(m.ControlID()), 20, m.ControlID())
			ids[m.ControlID()] = true
		}
	}
	require.Len(t, ids, 3*6, "final without status and final revision 1 are one copy; all others distinct")
	short := sampleResult()
	short.ID, short.Revision, short.Status = "abc123", 2, radgate.ResultRetracted
	m, err := ORU(short, ORUOptions{})
	require.NoError(t, err)
	require.Equal(t, "abc123-r2x", m.ControlID())
	require.Equal(t, mustControlID(t), final.ControlID())

	// Not scored: an amended one is a correction too; a retracted one X.
	ns := sampleResult()
	ns.Outcome, ns.Reason, ns.Tier, ns.Probability = radgate.OutcomeNotApplicable, "lateral view only", "", 0
	ns.Revision, ns.Status = 2, radgate.ResultAmended
	m, err = ORU(ns, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "C", m.Get("OBR-25"))
	require.Empty(t, m.Segments("OBX"))
	require.Equal(t, []string{"AI result revision 2: it replaces revision 1.",
		"AI analysis by CXR pneumonia DenseNet-121 1.2.0 not applicable: lateral view only"}, ntes(m))
	ns.Status, ns.RetractReason = radgate.ResultRetracted, "order cancelled"
	m, err = ORU(ns, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "X", m.Get("OBR-25"))
	require.Equal(t, []string{"AI result retracted (revision 2): order cancelled",
		"AI analysis by CXR pneumonia DenseNet-121 1.2.0 not applicable: lateral view only"}, ntes(m))

	for _, c := range []struct {
		rev    int
		status radgate.ResultStatus
		want   string
	}{
		{2, radgate.ResultFinal, "invalid result for ORU^R01: Result.Status: final with Revision 2: a revision after the first is amended (or retracted)"},
		{2, "", "invalid result for ORU^R01: Result.Status: final with Revision 2: a revision after the first is amended (or retracted)"},
		{1, radgate.ResultAmended, "invalid result for ORU^R01: Result.Status: amended with Revision 1: an amended result replaces Revision-1, so its Revision is 2 or more"},
		{0, radgate.ResultAmended, "invalid result for ORU^R01: Result.Status: amended with Revision 0: an amended result replaces Revision-1, so its Revision is 2 or more"},
		{1, "superseded", `invalid result for ORU^R01: Result.Status: "superseded" is not final, amended or retracted`},
	} {
		r := sampleResult()
		r.Revision, r.Status = c.rev, c.status
		_, err := ORU(r, oruOpts)
		require.EqualError(t, err, c.want)
		require.ErrorIs(t, err, ErrInvalidResult)
	}
}

// TestORUImages: the images the engine was offered, as NTEs: how many were
// scored, and each one that was not with its SOP Instance UID, view and
// reason.
func TestORUImages(t *testing.T) {
	r := sampleResult()
	r.Images = []radgate.ImageNote{
		{SeriesInstanceUID: "1.2.3.1", SOPInstanceUID: "1.2.3.1.1", View: "PA", Scored: true},
		{SeriesInstanceUID: "1.2.3.1", SOPInstanceUID: "1.2.3.1.2", View: "LL", Reason: "lateral view | not scored by this engine"},
		{SeriesInstanceUID: "1.2.3.2", SOPInstanceUID: "1.2.3.2.1", Reason: "matrix 512×512 below the engine's minimum 1024"},
		{SeriesInstanceUID: "1.2.3.2", SOPInstanceUID: "1.2.3.2.2"},
	}
	m, err := ORU(r, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "MSH|PID|ORC|OBR|NTE|NTE|NTE|NTE|OBX|OBX|OBX|OBX|OBX|OBX|OBX", segmentNames(m))
	segs := strings.Split(m.String(), "\r")
	require.Equal(t, []string{
		"NTE|1|L|AI images: 1 of 4 images scored.",
		`NTE|2|L|Not scored: 1.2.3.1.2 (view LL): lateral view \F\ not scored by this engine`,
		"NTE|3|L|Not scored: 1.2.3.2.1: matrix 512×512 below the engine's minimum 1024",
		"NTE|4|L|Not scored: 1.2.3.2.2: no reason given",
	}, segs[4:8])
	require.Equal(t, "UNICODE UTF-8", m.Get("MSH-18"), "× is not ASCII")
	require.Equal(t, "F", m.Get("OBR-25"))

	// A not-applicable result: the reason, then the images.
	r.Outcome, r.Reason, r.Tier = radgate.OutcomeNotApplicable, "no frontal view", ""
	r.Images = r.Images[1:2]
	m, err = ORU(r, oruOpts)
	require.NoError(t, err)
	require.Equal(t, "MSH|PID|ORC|OBR|NTE|NTE|NTE", segmentNames(m))
	require.Equal(t, "AI images: 0 of 1 image scored.", m.Get("NTE(2)-3"))
	require.Equal(t, "Not scored: 1.2.3.1.2 (view LL): lateral view | not scored by this engine", m.Get("NTE(3)-3"))
	require.NotContains(t, m.String(), "Doe")
}

func segmentNames(m *Message) string {
	var names []string
	for _, s := range m.All() {
		names = append(names, s.Name())
	}
	return strings.Join(names, "|")
}

// A result scored with a caveat (an unknown patient age) carries it as an
// FT OBX beside the conclusion, before the disclaimer.
func TestORUCaveat(t *testing.T) {
	const caveat = "patient age unknown: engine cxr-pneumonia's intended use is 1–5 y (accepts.age_years); the result was not checked against it"
	r := sampleResult()
	r.Caveats = []string{caveat}
	m, err := ORU(r, oruOpts)
	require.NoError(t, err)
	back := mustParse(t, m.String())
	require.Equal(t, "conclusion", back.Get("OBX(3)-3"))
	require.Equal(t, "caveat", back.Get("OBX(4)-3"))
	require.Equal(t, "FT", back.Get("OBX(4)-2"))
	require.Equal(t, caveat, back.Get("OBX(4)-5"))
	require.Equal(t, "disclaimer", back.Get("OBX(5)-3"))
}
