package derived

import (
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SRSeriesDescription is the Series Description of the structured report.
const SRSeriesDescription = "AI pneumonia result (not a diagnosis)"

// Concepts of the report. DCM and SCT codes are standard; 99RADGATE is
// radgate's local scheme for what DICOM has no code for (the same concepts
// as the FHIR CodeSystem https://radgate.dev/fhir/CodeSystem/radgate).
var (
	conceptReport       = code{"126000", "DCM", "Imaging Measurement Report"}
	conceptLanguage     = code{"121049", "DCM", "Language of Content Item and Descendants"}
	valueEnglish        = code{"en-US", "RFC5646", "English (United States)"}
	conceptObserverType = code{"121005", "DCM", "Observer Type"}
	valueDevice         = code{"121007", "DCM", "Device"}
	conceptDeviceUID    = code{"121012", "DCM", "Device Observer UID"}
	conceptDeviceName   = code{"121013", "DCM", "Device Observer Name"}
	conceptDeviceMaker  = code{"121014", "DCM", "Device Observer Manufacturer"}
	conceptDeviceModel  = code{"121015", "DCM", "Device Observer Model Name"}
	conceptProcedure    = code{"121058", "DCM", "Procedure reported"}
	valueChestXRay      = code{"399208008", "SCT", "Plain chest X-ray"}
	conceptImageLibrary = code{"111028", "DCM", "Image Library"}
	conceptLibraryGroup = code{"126200", "DCM", "Image Library Group"}
	conceptSource       = code{"260753009", "SCT", "Source"}
	conceptMeasurements = code{"126010", "DCM", "Imaging Measurements"}
	conceptGroup        = code{"125007", "DCM", "Measurement Group"}
	conceptTrackingID   = code{"112039", "DCM", "Tracking Identifier"}
	conceptTrackingUID  = code{"112040", "DCM", "Tracking Unique Identifier"}
	conceptAlgoName     = code{"111001", "DCM", "Algorithm Name"}
	conceptAlgoVersion  = code{"111003", "DCM", "Algorithm Version"}
	conceptFinding      = code{"121071", "DCM", "Finding"}
	conceptConfidence   = code{"confidence", schemeRadgate, "AI confidence"}
	unitPercent         = code{"%", "UCUM", "percent"}
	conceptTier         = code{"confidence-tier", schemeRadgate, "AI confidence tier"}
	conceptConclusion   = code{"121077", "DCM", "Conclusion"}
	conceptDisclaimer   = code{"disclaimer", schemeRadgate, "Disclaimer"}
)

// tierCodes are the tier values (the FHIR CodeSystem ai-confidence-tier).
var tierCodes = map[string]code{
	"Low":  {"low", schemeRadgate, "Low"},
	"Mid":  {"mid", schemeRadgate, "Mid"},
	"High": {"high", schemeRadgate, "High"},
}

// node is one SR content item with its children.
type node struct {
	rel, vt  string
	concept  *code
	set      func(b *builder)
	children []*node
}

func (n *node) item(src *source) *builder {
	b := &builder{}
	if n.rel != "" {
		b.str(tag.RelationshipType, "CS", n.rel)
	}
	b.str(tag.ValueType, "CS", n.vt)
	if n.concept != nil {
		b.seq(tag.ConceptNameCodeSequence, n.concept.item())
	}
	if n.set != nil {
		n.set(b)
	}
	if len(n.children) > 0 {
		items := make([]*builder, len(n.children))
		for i, c := range n.children {
			items[i] = c.item(src)
		}
		b.seq(tag.ContentSequence, items...)
	}
	return b
}

func container(rel string, c code, children ...*node) *node {
	return &node{rel: rel, vt: "CONTAINER", concept: &c, children: children,
		set: func(b *builder) { b.str(tag.ContinuityOfContent, "CS", "SEPARATE") }}
}

func text(rel string, c code, v string) *node {
	return &node{rel: rel, vt: "TEXT", concept: &c, set: func(b *builder) { b.str(tag.TextValue, "UT", v) }}
}

func codeItem(rel string, c, v code) *node {
	return &node{rel: rel, vt: "CODE", concept: &c, set: func(b *builder) { b.seq(tag.ConceptCodeSequence, v.item()) }}
}

func uidref(rel string, c code, v string) *node {
	return &node{rel: rel, vt: "UIDREF", concept: &c, set: func(b *builder) { b.str(tag.UID, "UI", v) }}
}

func num(rel string, c code, v string, unit code, children ...*node) *node {
	return &node{rel: rel, vt: "NUM", concept: &c, children: children, set: func(b *builder) {
		mv := &builder{}
		mv.seq(tag.MeasurementUnitsCodeSequence, unit.item())
		mv.str(tag.NumericValue, "DS", v)
		b.seq(tag.MeasuredValueSequence, mv)
	}}
}

// StructuredReport builds a Comprehensive SR (SOP class
// 1.2.840.10008.5.1.4.1.1.88.33) for the result. Its tree follows the shape
// of TID 1500 (Measurement Report) without claiming conformance to it (no
// Content Template Sequence): the title (126000, DCM, "Imaging Measurement
// Report") is the one IHE AI Results uses for TID 1500 reports, so
// viewers that know it file the report with AI results.
//
//	CONTAINER (126000, DCM, "Imaging Measurement Report")
//	  HAS CONCEPT MOD  CODE   Language = en-US
//	  HAS OBS CONTEXT  CODE   Observer Type = Device; UIDREF Device Observer UID;
//	                   TEXT   Device Observer Name / Manufacturer ("radgate") / Model Name
//	  HAS CONCEPT MOD  CODE   Procedure reported = (399208008, SCT, "Plain chest X-ray")
//	  CONTAINS CONTAINER Image Library > Image Library Group > IMAGE (Source) → the source instance
//	  CONTAINS CONTAINER Imaging Measurements
//	    CONTAINS CONTAINER Measurement Group
//	      HAS OBS CONTEXT TEXT Tracking Identifier = result id; UIDREF Tracking Unique Identifier
//	      HAS CONCEPT MOD TEXT (111001, DCM, "Algorithm Name"); TEXT (111003, DCM, "Algorithm Version")   [TID 4019]
//	      CONTAINS CODE  (121071, DCM, "Finding") = the engine's finding (233604007, SCT, "Pneumonia")
//	      CONTAINS NUM   (confidence, 99RADGATE, "AI confidence") = NN.N, UCUM "%"
//	               INFERRED FROM IMAGE → the source instance
//	      CONTAINS CODE  (confidence-tier, 99RADGATE, "AI confidence tier") = Low | Mid | High
//	  CONTAINS TEXT (121077, DCM, "Conclusion") = the conclusion sentence
//	  CONTAINS TEXT (disclaimer, 99RADGATE, "Disclaimer") = DisclaimerHeadline + ". " + the engine's disclaimer, word for word
//
// Completion Flag COMPLETE, Verification Flag UNVERIFIED; Current Requested
// Procedure Evidence Sequence names the source; patient and study
// attributes are copied from it; UIDs from UIDsFor(in.ResultID).
func StructuredReport(src []byte, in Input) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	finding, _ := in.finding()
	u := UIDsFor(in.ResultID)
	image := func(rel string, c *code) *node {
		return &node{rel: rel, vt: "IMAGE", concept: c, set: func(b *builder) { b.seq(tag.ReferencedSOPSequence, s.ref()) }}
	}
	src2 := conceptSource
	deviceUID := hashUID("engine/" + in.Engine.ID + "@" + in.Engine.Version)
	model := in.Engine.ID
	if model == "" {
		model = in.engineName()
	}
	root := container("", conceptReport,
		codeItem("HAS CONCEPT MOD", conceptLanguage, valueEnglish),
		codeItem("HAS OBS CONTEXT", conceptObserverType, valueDevice),
		uidref("HAS OBS CONTEXT", conceptDeviceUID, deviceUID),
		text("HAS OBS CONTEXT", conceptDeviceName, in.engineName()),
		text("HAS OBS CONTEXT", conceptDeviceMaker, Manufacturer),
		text("HAS OBS CONTEXT", conceptDeviceModel, model),
		codeItem("HAS CONCEPT MOD", conceptProcedure, valueChestXRay),
		container("CONTAINS", conceptImageLibrary,
			container("CONTAINS", conceptLibraryGroup, image("CONTAINS", &src2))),
		container("CONTAINS", conceptMeasurements,
			container("CONTAINS", conceptGroup,
				text("HAS OBS CONTEXT", conceptTrackingID, in.ResultID),
				uidref("HAS OBS CONTEXT", conceptTrackingUID, hashUID("result/"+in.ResultID+"/tracking")),
				text("HAS CONCEPT MOD", conceptAlgoName, in.engineName()),
				text("HAS CONCEPT MOD", conceptAlgoVersion, in.Engine.Version),
				codeItem("CONTAINS", conceptFinding, finding),
				num("CONTAINS", conceptConfidence, in.ConfidencePercent(), unitPercent,
					image("INFERRED FROM", &src2)),
				codeItem("CONTAINS", conceptTier, tierCodes[in.Tier]),
			)),
		text("CONTAINS", conceptConclusion, in.conclusion()),
		text("CONTAINS", conceptDisclaimer, DisclaimerHeadline+". "+in.Engine.Disclaimer),
	)

	b := root.item(s)
	b.common(s, SOPClassComprehensiveSR, u.SR, "SR", u.SRSeries, SeriesNumberSR, SRSeriesDescription, in.time())
	b.seq(tag.ReferencedPerformedProcedureStepSequence)
	b.seq(tag.PerformedProcedureCodeSequence)
	b.str(tag.CompletionFlag, "CS", "COMPLETE")
	b.str(tag.VerificationFlag, "CS", "UNVERIFIED")
	series := &builder{}
	series.str(tag.SeriesInstanceUID, "UI", s.series)
	series.seq(tag.ReferencedSOPSequence, s.ref())
	evidence := &builder{}
	evidence.str(tag.StudyInstanceUID, "UI", s.studyUID())
	evidence.seq(tag.ReferencedSeriesSequence, series)
	b.seq(tag.CurrentRequestedProcedureEvidenceSequence, evidence)
	return b.part10(SOPClassComprehensiveSR, u.SR)
}
