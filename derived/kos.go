package derived

import (
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOPClassKeyObjectSelection is the Key Object Selection Document SOP class.
const SOPClassKeyObjectSelection = "1.2.840.10008.5.1.4.1.1.88.59"

// SeriesNumberKOS is the Series Number of the rejection notes.
const SeriesNumberKOS = 9905

// KOSSeriesDescription is the Series Description of the rejection notes.
const KOSSeriesDescription = "AI result rejection notes (IOCM)"

// Concepts of the rejection note.
var (
	// TitleRejectedForPatientSafety is the document title of an IHE IOCM
	// rejection note for instances that must not be used (PS3.16 CID 7011).
	TitleRejectedForPatientSafety = code{"113037", "DCM", "Rejected for Patient Safety Reasons"}
	conceptKeyObjectDescription   = code{"113012", "DCM", "Key Object Description"}
)

// ObjectRef names one stored instance: its series, SOP class and SOP
// instance.
type ObjectRef struct {
	SeriesInstanceUID, SOPClassUID, SOPInstanceUID string
}

func (r ObjectRef) item() *builder {
	it := &builder{}
	it.str(tag.ReferencedSOPClassUID, "UI", r.SOPClassUID)
	it.str(tag.ReferencedSOPInstanceUID, "UI", r.SOPInstanceUID)
	return it
}

// Rejection is what a rejection note withdraws.
type Rejection struct {
	// Revision is the result revision whose objects are rejected (0
	// counts as 1): the note's UIDs come from it (UIDs.KOS).
	Revision int
	// Objects are the rejected instances, all in the source's study
	// (derived objects of that revision: SC, SR, PDF, Parametric Map).
	Objects []ObjectRef
	// Description is the Key Object Description: why (identifiers only,
	// "revision 1 superseded by revision 2"). Empty: none.
	Description string
}

// RejectionNote builds an IHE IOCM rejection note: a Key Object Selection
// Document (SOP class 1.2.840.10008.5.1.4.1.1.88.59, TID 2010) titled
// (113037, DCM, "Rejected for Patient Safety Reasons") that references
// rej.Objects — in the Current Requested Procedure Evidence Sequence and
// as IMAGE (SC, Parametric Map) or COMPOSITE (SR, PDF) content items — so
// that an IOCM-aware PACS hides them and tells its clients to. It files
// into the source's study (patient and study attributes copied from src,
// which may be the scored instance or one of the rejected objects), in a
// series of its own (Modality KO, Series Number SeriesNumberKOS, Instance
// Number the rejected revision); its UIDs are UIDsFor(in.ResultID,
// rej.Revision).KOSSeries and .KOS, so rejecting a revision twice gives the
// same instance. Content date and
// time are in.Time.
//
//	CONTAINER (113037, DCM, "Rejected for Patient Safety Reasons")
//	  CONTAINS TEXT (113012, DCM, "Key Object Description") = rej.Description
//	  CONTAINS IMAGE | COMPOSITE → each rejected object
//
// Only in.ResultID and the engine's name or id are needed of in (a
// retracted result need not have been scored).
func RejectionNote(src []byte, in Input, rej Rejection) ([]byte, error) {
	switch {
	case strings.TrimSpace(in.ResultID) == "":
		return nil, fmt.Errorf("%w: no result id", ErrInput)
	case in.Engine.Name == "" && in.Engine.ID == "":
		return nil, fmt.Errorf("%w: result %s: the engine has neither name nor id", ErrInput, in.ResultID)
	case len(rej.Objects) == 0:
		return nil, fmt.Errorf("%w: result %s: a rejection note for revision %d names no object", ErrInput, in.ResultID, max(rej.Revision, 1))
	}
	for _, o := range rej.Objects {
		for what, v := range map[string]string{"Series Instance UID": o.SeriesInstanceUID, "SOP Class UID": o.SOPClassUID, "SOP Instance UID": o.SOPInstanceUID} {
			if why := validUI(v); why != "" {
				return nil, fmt.Errorf("%w: result %s: rejected object %s: %s %q is invalid: %s", ErrInput, in.ResultID, o.SOPInstanceUID, what, v, why)
			}
		}
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	u := UIDsFor(in.ResultID, rej.Revision)

	var children []*node
	if d := strings.TrimSpace(rej.Description); d != "" {
		children = append(children, text("CONTAINS", conceptKeyObjectDescription, d))
	}
	for _, o := range rej.Objects {
		vt := "COMPOSITE"
		if imageClasses[o.SOPClassUID] {
			vt = "IMAGE"
		}
		children = append(children, &node{rel: "CONTAINS", vt: vt, set: func(b *builder) { b.seq(tag.ReferencedSOPSequence, o.item()) }})
	}
	root := container("", TitleRejectedForPatientSafety, children...)
	b := root.item(s)
	tmpl := &builder{}
	tmpl.str(tag.MappingResource, "CS", "DCMR")
	tmpl.str(tag.MappingResourceUID, "UI", dcmrUID)
	tmpl.str(tag.TemplateIdentifier, "CS", "2010")
	b.seq(tag.ContentTemplateSequence, tmpl)
	in.Revision = rej.Revision // the note's Instance Number is the revision it rejects
	b.common(s, &in, SOPClassKeyObjectSelection, u.KOS, "KO", u.KOSSeries, SeriesNumberKOS, KOSSeriesDescription)
	b.seq(tag.ReferencedPerformedProcedureStepSequence)
	b.seq(tag.CurrentRequestedProcedureEvidenceSequence, studyRef(s.studyUID(), rej.Objects))
	return b.part10(SOPClassKeyObjectSelection, u.KOS)
}

// imageClasses are the SOP classes among the derived objects that are
// images (referenced by IMAGE content items; the others by COMPOSITE).
var imageClasses = map[string]bool{
	SOPClassSecondaryCapture: true,
	SOPClassParametricMap:    true,
}

// studyRef is an item of the Hierarchical SOP Instance Reference Macro
// (PS3.3 Table C.17-3) for instances of one study: Study Instance UID, and
// per series (in the order they first appear) a Referenced Series Sequence
// item with its Referenced SOP Sequence.
func studyRef(study string, refs []ObjectRef) *builder {
	var order []string
	bySeries := map[string][]*builder{}
	for _, r := range refs {
		if _, ok := bySeries[r.SeriesInstanceUID]; !ok {
			order = append(order, r.SeriesInstanceUID)
		}
		bySeries[r.SeriesInstanceUID] = append(bySeries[r.SeriesInstanceUID], r.item())
	}
	series := make([]*builder, len(order))
	for i, uid := range order {
		se := &builder{}
		se.str(tag.SeriesInstanceUID, "UI", uid)
		se.seq(tag.ReferencedSOPSequence, bySeries[uid]...)
		series[i] = se
	}
	it := &builder{}
	it.str(tag.StudyInstanceUID, "UI", study)
	it.seq(tag.ReferencedSeriesSequence, series...)
	return it
}
