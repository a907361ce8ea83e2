package derived

import (
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/report"
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
	conceptQualitative  = code{"C0034375", "UMLS", "Qualitative Evaluations"}
	conceptConclusion   = code{"121077", "DCM", "Conclusion"}
	conceptDisclaimer   = code{"disclaimer", schemeRadgate, "Disclaimer"}
	conceptCaveat       = code{"caveat", schemeRadgate, "Caveat"}
	conceptImages       = code{"images-scored", schemeRadgate, "Images scored"}
	conceptSkipped      = code{"image-not-scored", schemeRadgate, "Image not scored"}
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

// StructuredReport builds a Comprehensive 3D SR (SOP class
// 1.2.840.10008.5.1.4.1.1.88.34) conforming to TID 1500 (Measurement
// Report), the form IHE AI Results (AIR) prescribes for AI measurements and
// evaluations: Content Template Sequence DCMR 1500, and a Contributing
// Equipment Sequence item naming the algorithm (purpose 1630, 99IHE,
// "Processing Algorithm"; Device UID from the engine id and version).
//
//	CONTAINER (126000, DCM, "Imaging Measurement Report")              TID 1500
//	  HAS CONCEPT MOD  CODE   Language = en-US                         TID 1204
//	  HAS OBS CONTEXT  CODE   Observer Type = Device; UIDREF Device Observer UID;
//	                   TEXT   Device Observer Name / Manufacturer ("radgate") / Model Name   TID 1004
//	  HAS CONCEPT MOD  CODE   Procedure reported = (399208008, SCT, "Plain chest X-ray")
//	  CONTAINS CONTAINER Image Library > Image Library Group > IMAGE → the source instance   TID 1600/1601
//	  CONTAINS CONTAINER Imaging Measurements
//	    CONTAINS CONTAINER Measurement Group                           TID 1501
//	      HAS OBS CONTEXT TEXT Tracking Identifier = result id; UIDREF Tracking Unique Identifier   TID 4108
//	      CONTAINS CODE  (121071, DCM, "Finding") = the engine's finding (233604007, SCT, "Pneumonia")
//	      CONTAINS NUM   (confidence, 99RADGATE, "AI confidence") = NN.N, UCUM "%"      TID 300
//	        HAS CONCEPT MOD TEXT (111001, DCM, "Algorithm Name"); TEXT (111003, DCM, "Algorithm Version")   TID 4019
//	        INFERRED FROM IMAGE → the source instance                  TID 320
//	      CONTAINS CODE  (confidence-tier, 99RADGATE, "AI confidence tier") = Low | Mid | High
//	  CONTAINS CONTAINER (C0034375, UMLS, "Qualitative Evaluations")
//	    CONTAINS TEXT (121077, DCM, "Conclusion") = the conclusion sentence
//	    CONTAINS TEXT (caveat, 99RADGATE, "Caveat") = one per in.Caveats ("patient age unknown: …")
//	    CONTAINS TEXT (disclaimer, 99RADGATE, "Disclaimer") = DisclaimerHeadline + ". " + the engine's disclaimer, word for word
//	    CONTAINS TEXT (images-scored, 99RADGATE, "Images scored") = "Images scored: 1 of 2."   (when in.Images is set)
//	    CONTAINS TEXT (image-not-scored, 99RADGATE, "Image not scored") = "Not scored: <SOP UID> (view LL): <reason>", one per skipped image
//
// Completion Flag COMPLETE, Verification Flag UNVERIFIED; Current Requested
// Procedure Evidence Sequence names the source; patient and study
// attributes are copied from it (valid values only); UIDs from
// UIDsFor(in.ResultID, in.Revision), Instance Number the revision. From
// revision 2 on, the Predecessor Documents Sequence names revision−1's SR
// (same study and SR series, its SOP Instance UID): the document amends it.
func StructuredReport(src []byte, in Input) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	finding, _ := in.finding()
	u := in.UIDs()
	image := func(rel string, c *code) *node {
		return &node{rel: rel, vt: "IMAGE", concept: c, set: func(b *builder) { b.seq(tag.ReferencedSOPSequence, s.ref()) }}
	}
	src2 := conceptSource
	model := in.Engine.ID
	if model == "" {
		model = in.engineName()
	}
	qualitative := []*node{text("CONTAINS", conceptConclusion, in.conclusion())}
	for _, c := range in.Caveats {
		qualitative = append(qualitative, text("CONTAINS", conceptCaveat, c))
	}
	qualitative = append(qualitative, text("CONTAINS", conceptDisclaimer, DisclaimerHeadline+". "+in.Engine.Disclaimer))
	for i, l := range report.ImageLines(in.Images, 0) {
		c := conceptSkipped
		if i == 0 {
			c = conceptImages
		}
		qualitative = append(qualitative, text("CONTAINS", c, l))
	}
	root := container("", conceptReport,
		codeItem("HAS CONCEPT MOD", conceptLanguage, valueEnglish),
		codeItem("HAS OBS CONTEXT", conceptObserverType, valueDevice),
		uidref("HAS OBS CONTEXT", conceptDeviceUID, in.DeviceUID()),
		text("HAS OBS CONTEXT", conceptDeviceName, in.engineName()),
		text("HAS OBS CONTEXT", conceptDeviceMaker, Manufacturer),
		text("HAS OBS CONTEXT", conceptDeviceModel, model),
		codeItem("HAS CONCEPT MOD", conceptProcedure, valueChestXRay),
		container("CONTAINS", conceptImageLibrary,
			container("CONTAINS", conceptLibraryGroup, image("CONTAINS", nil))),
		container("CONTAINS", conceptMeasurements,
			container("CONTAINS", conceptGroup,
				text("HAS OBS CONTEXT", conceptTrackingID, in.ResultID),
				uidref("HAS OBS CONTEXT", conceptTrackingUID, hashUID("result/"+in.ResultID+"/tracking")),
				codeItem("CONTAINS", conceptFinding, finding),
				num("CONTAINS", conceptConfidence, in.ConfidencePercent(), unitPercent,
					text("HAS CONCEPT MOD", conceptAlgoName, in.engineName()),
					text("HAS CONCEPT MOD", conceptAlgoVersion, in.softwareVersion()),
					image("INFERRED FROM", &src2)),
				codeItem("CONTAINS", conceptTier, tierCodes[in.Tier]),
			)),
		container("CONTAINS", conceptQualitative, qualitative...),
	)

	b := root.item(s)
	tmpl := &builder{}
	tmpl.str(tag.MappingResource, "CS", "DCMR")
	tmpl.str(tag.MappingResourceUID, "UI", dcmrUID)
	tmpl.str(tag.TemplateIdentifier, "CS", "1500")
	b.seq(tag.ContentTemplateSequence, tmpl)
	b.common(s, &in, SOPClassComprehensive3DSR, u.SR, "SR", u.SRSeries, SeriesNumberSR, SRSeriesDescription)
	b.enhancedEquipment(&in)
	b.seq(tag.ReferencedPerformedProcedureStepSequence)
	b.seq(tag.PerformedProcedureCodeSequence)
	b.str(tag.CompletionFlag, "CS", "COMPLETE")
	b.str(tag.VerificationFlag, "CS", "UNVERIFIED")
	if rev := in.revision(); rev > 1 {
		// This document amends revision rev-1's SR (PS3.3 C.17.2: the
		// Predecessor Documents Sequence is required for a revised
		// document).
		prev := UIDsFor(in.ResultID, rev-1)
		b.seq(tag.PredecessorDocumentsSequence, studyRef(s.studyUID(), []ObjectRef{{prev.SRSeries, SOPClassComprehensive3DSR, prev.SR}}))
	}
	series := &builder{}
	series.str(tag.SeriesInstanceUID, "UI", s.series)
	series.seq(tag.ReferencedSOPSequence, s.ref())
	evidence := &builder{}
	evidence.str(tag.StudyInstanceUID, "UI", s.studyUID())
	evidence.seq(tag.ReferencedSeriesSequence, series)
	b.seq(tag.CurrentRequestedProcedureEvidenceSequence, evidence)
	return b.part10(SOPClassComprehensive3DSR, u.SR)
}

// dcmrUID is the Mapping Resource UID of DCMR, the DICOM Content Mapping
// Resource (PS3.16).
const dcmrUID = "1.2.840.10008.8.1.1"
