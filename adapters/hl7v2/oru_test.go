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
