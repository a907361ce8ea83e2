package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
)

// SinkOptions chooses what the PACS result sink stores.
type SinkOptions struct {
	// SC stores a Secondary Capture image: the heatmap (marked results) or
	// the windowed radiograph, with the result burned in (derived.SecondaryCapture).
	SC bool
	// SR stores a Comprehensive 3D SR (TID 1500, IHE AI Results) with the
	// finding, confidence, tier, algorithm identification and disclaimer
	// (derived.StructuredReport).
	SR bool
	// ParametricMap stores the class activation map of a marked result as
	// a Parametric Map on the source's pixel grid, for viewers that overlay
	// it with adjustable opacity (derived.ParametricMap). A result without
	// a map (not marked) stores none.
	ParametricMap bool
	// SCWhenUnmarked: what the Secondary Capture shows below the marking
	// threshold: "image" (default, ""), "text" or "none" (no SC).
	SCWhenUnmarked string
	// PDF, when set, renders the result's PDF report; it is stored as an
	// Encapsulated PDF (derived.EncapsulatedPDF). Its errors are passed on
	// as they are (wrap with radgate.Transient what is worth retrying).
	PDF func(ctx context.Context, r radgate.Result) ([]byte, error)
	// Images is where the scored instance is read to derive the objects
	// from (radgate.DestinationContext.Images); nil: this PACS.
	Images radgate.StudySource
	// Logger receives a warning for each source attribute left out of the
	// derived objects for an invalid value (tag and keyword, never the
	// value). Nil: not logged.
	Logger *slog.Logger
}

// Validate reports an option that cannot work: an unknown SCWhenUnmarked,
// or nothing to store at all.
func (o SinkOptions) Validate() error {
	if err := derived.CheckSCWhenUnmarked(o.SCWhenUnmarked); err != nil {
		return err
	}
	if !o.SC && !o.SR && !o.ParametricMap && o.PDF == nil {
		return errors.New("dicomweb sink: nothing to store: enable sc, sr, parametric_map or pdf")
	}
	return nil
}

// Sink stores results into the scored study on the PACS: it retrieves the
// scored instance (WADO-RS, as stored), builds the derived objects from it
// (package derived) and sends them with one STOW-RS request. *Sink
// implements radgate.Sink.
//
// Idempotency: every derived object's Series and SOP Instance UIDs come
// from Result.ID and Result.Revision (derived.UIDsFor), so a redelivery
// sends the same instances; the PACS keeps one copy (Orthanc answers "AlreadyStored"; a
// failure reason 0x0111, duplicate SOP instance, is taken as stored too).
//
// A result that was not scored (Outcome not radgate.OutcomeScored: not
// applicable, failed) stores no derived object: Deliver returns an empty
// Receipt and no error (amended and retracted ones may still store a
// rejection note for an earlier revision's objects, see Deliver). The PACS shows results only; failures are reported by the FHIR
// and HL7 destinations.
type Sink struct {
	c    *Client
	opts SinkOptions
}

var (
	_ radgate.Sink        = (*Sink)(nil)
	_ radgate.PictureUser = (*Sink)(nil)
)

// Pictures: the Secondary Capture shows the heatmap at full resolution
// (an unmarked result's SC is made from the scored instance itself); the
// PDF report, when stored, shows the preview or the thumbnail.
func (s *Sink) Pictures() radgate.Pictures { return derived.PicturesFor(s.opts.SC, s.opts.PDF != nil) }

// NewSink returns a sink that stores through c. It does no I/O; opts are
// checked by Deliver (and by SinkOptions.Validate, which configuration
// loading should call).
func NewSink(c *Client, opts SinkOptions) *Sink {
	return &Sink{c: c, opts: opts}
}

// duplicateSOPInstance is the STOW-RS failure reason "Duplicate SOP
// Instance" (PS3.4 Annex GG, 0111H).
const duplicateSOPInstance = 0x0111

// Deliver stores the derived objects of r into r's study and returns the
// path of the report, "studies/<study>/series/<series>/instances/<sop>":
// the SR when it is stored, else the SC, else the Parametric Map, else the
// PDF. It returns once the PACS answered that every object is stored. Transport failures, timeouts,
// 408/429/5xx are radgate.Transient (as the Client classifies them); a
// result or source that cannot become DICOM objects, and 4xx answers, are
// permanent.
//
// What is stored depends on r.Status (see radgate.Sink):
//
//   - final (or ""): the derived objects of revision r.Revision.
//   - amended (Revision N ≥ 2): the derived objects of revision N (the SR
//     names revision N−1's as its predecessor), then an IOCM rejection note
//     (derived.RejectionNote) withdrawing the objects of revision N−1 that
//     the PACS holds, so that it has one current result. A result that is
//     no longer scored stores only the note.
//   - retracted (Revision N): only a rejection note withdrawing the objects
//     of revision N that the PACS holds; the Receipt names the note.
//
// The PACS is asked (QIDO-RS, per derived series) which objects of the
// revision it holds; the note references exactly those, and none is
// stored when it holds none. The note copies patient and study from one of
// them, so it needs neither the scored instance nor a scored result. Its
// UIDs come from the result id and the rejected revision: a redelivery
// stores the same note (and one already stored is not stored again).
func (s *Sink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	fail := func(err error) (radgate.Receipt, error) {
		return radgate.Receipt{}, fmt.Errorf("storing result %s on the PACS: %w", r.ID, err)
	}
	if err := s.opts.Validate(); err != nil {
		return fail(err)
	}
	rev := r.EffectiveRevision()
	switch r.Status {
	case radgate.ResultFinal, "":
		return s.store(ctx, r)
	case radgate.ResultAmended:
		if rev < 2 {
			return fail(fmt.Errorf("an amended result has revision %d: it must be 2 or more (it replaces revision %d)", rev, rev-1))
		}
		rec, err := s.store(ctx, r)
		if err != nil {
			return rec, err
		}
		if _, err := s.reject(ctx, r, rev-1, fmt.Sprintf("AI result %s revision %d superseded by revision %d.", r.ID, rev-1, rev)); err != nil {
			return fail(err)
		}
		return rec, nil
	case radgate.ResultRetracted:
		why := fmt.Sprintf("AI result %s revision %d withdrawn", r.ID, rev)
		if reason := strings.TrimSpace(r.RetractReason); reason != "" {
			why += ": " + reason
		}
		rec, err := s.reject(ctx, r, rev, why+".")
		if err != nil {
			return fail(err)
		}
		return rec, nil
	default:
		return fail(fmt.Errorf("unknown result status %q (known: %s, %s, %s)", r.Status, radgate.ResultFinal, radgate.ResultAmended, radgate.ResultRetracted))
	}
}

// store stores the derived objects of r's revision (final and amended).
func (s *Sink) store(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	if r.Outcome != radgate.OutcomeScored {
		return radgate.Receipt{}, nil
	}
	fail := func(err error) (radgate.Receipt, error) {
		return radgate.Receipt{}, fmt.Errorf("storing result %s on the PACS: %w", r.ID, err)
	}
	for what, v := range map[string]string{"Study Instance UID": r.StudyInstanceUID, "Series Instance UID": r.SeriesInstanceUID, "SOP Instance UID": r.SOPInstanceUID} {
		if err := checkUID(what, v); err != nil {
			return fail(fmt.Errorf("the result names no scored instance: %w", err))
		}
	}
	images := radgate.StudySource(s.c)
	if s.opts.Images != nil {
		images = s.opts.Images
	}
	src, err := images.RetrieveInstance(ctx, r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
	if err != nil {
		return fail(fmt.Errorf("retrieving the scored instance: %w", err))
	}
	if err := checkStudy(src, r); err != nil {
		return fail(err)
	}

	in := derived.FromResult(r)
	in.SCWhenUnmarked = s.opts.SCWhenUnmarked
	in.Logger = s.opts.Logger
	set := derived.Set{SC: s.opts.SC, SR: s.opts.SR, ParametricMap: s.opts.ParametricMap}
	if s.opts.PDF != nil {
		if set.PDF, err = s.opts.PDF(ctx, r); err != nil {
			return fail(fmt.Errorf("rendering the PDF report: %w", err))
		}
		if set.PDF == nil {
			set.PDF = []byte{} // refused by derived as no PDF, as before Set existed
		}
	}
	objects, err := derived.Derive(src, in, set)
	if err != nil {
		return fail(err)
	}
	if len(objects) == 0 {
		return radgate.Receipt{}, nil
	}
	files := make([][]byte, len(objects))
	for i, o := range objects {
		files[i] = o.File
	}
	last := objects[len(objects)-1]
	report := "studies/" + r.StudyInstanceUID + "/series/" + last.SeriesInstanceUID + "/instances/" + last.SOPInstanceUID
	res, err := s.c.Store(ctx, files...)
	if err != nil && !onlyDuplicates(res, len(files)) {
		return fail(err)
	}
	rec := radgate.Receipt{Report: report}
	for _, o := range objects {
		rec.Objects = append(rec.Objects, o.Delivered(r.StudyInstanceUID))
	}
	return rec, nil
}

// checkStudy refuses a retrieved instance of another study: the derived
// objects would file into the wrong study.
func checkStudy(src []byte, r radgate.Result) error {
	m, err := inference.ReadHeader(src)
	if err != nil {
		return fmt.Errorf("reading the retrieved instance %s: %w", r.SOPInstanceUID, err)
	}
	if m.StudyInstanceUID != r.StudyInstanceUID || m.SOPInstanceUID != r.SOPInstanceUID {
		return fmt.Errorf("the PACS answered instance %s of study %s for instance %s of study %s",
			m.SOPInstanceUID, m.StudyInstanceUID, r.SOPInstanceUID, r.StudyInstanceUID)
	}
	return nil
}

// onlyDuplicates reports whether every file the PACS did not list as stored
// failed as a duplicate SOP instance: it holds them already.
func onlyDuplicates(res StoreResult, n int) bool {
	if len(res.Failed) == 0 || len(res.Stored)+len(res.Failed) != n {
		return false
	}
	for _, f := range res.Failed {
		if f.FailureReason != duplicateSOPInstance {
			return false
		}
	}
	return true
}

// rejectionSources are the derived objects a rejection note may find, in
// the order they are tried as the note's source of patient and study
// attributes (smallest first).
var rejectionSources = []struct {
	what     string
	sopClass string
	uids     func(u derived.UIDs) (series, sop string)
}{
	{"SR", derived.SOPClassComprehensive3DSR, func(u derived.UIDs) (string, string) { return u.SRSeries, u.SR }},
	{"PDF", derived.SOPClassEncapsulatedPDF, func(u derived.UIDs) (string, string) { return u.PDFSeries, u.PDF }},
	{"Parametric Map", derived.SOPClassParametricMap, func(u derived.UIDs) (string, string) { return u.PMSeries, u.PM }},
	{"SC", derived.SOPClassSecondaryCapture, func(u derived.UIDs) (string, string) { return u.SCSeries, u.SC }},
}

// reject stores the rejection note of revision rev of r: it lists which
// derived objects of that revision the PACS holds and, when it holds any,
// stores a note rejecting them. The Receipt names the note (empty when
// there was nothing to reject).
func (s *Sink) reject(ctx context.Context, r radgate.Result, rev int, why string) (radgate.Receipt, error) {
	study := r.StudyInstanceUID
	if study == "" {
		study = radgate.StripUIDPrefix(r.Order.StudyInstanceUID)
	}
	if study == "" {
		// No study: nothing of this result was ever stored.
		return radgate.Receipt{}, nil
	}
	if err := checkUID("Study Instance UID", study); err != nil {
		return radgate.Receipt{}, fmt.Errorf("rejecting revision %d: %w", rev, err)
	}
	u := derived.UIDsFor(r.ID, rev)
	notePath := "studies/" + study + "/series/" + u.KOSSeries + "/instances/" + u.KOS
	held, err := s.holds(ctx, study, u.KOSSeries, u.KOS)
	if err != nil {
		return radgate.Receipt{}, fmt.Errorf("looking for the rejection note of revision %d: %w", rev, err)
	}
	if held != "" {
		return radgate.Receipt{Report: notePath}, nil
	}
	var objects []derived.ObjectRef
	for _, k := range rejectionSources {
		series, sop := k.uids(u)
		class, err := s.holds(ctx, study, series, sop)
		if err != nil {
			return radgate.Receipt{}, fmt.Errorf("looking for the %s of revision %d: %w", k.what, rev, err)
		}
		if class != "" {
			objects = append(objects, derived.ObjectRef{SeriesInstanceUID: series, SOPClassUID: class, SOPInstanceUID: sop})
		}
	}
	if len(objects) == 0 {
		return radgate.Receipt{}, nil
	}
	first := objects[0]
	src, err := s.c.RetrieveInstance(ctx, study, first.SeriesInstanceUID, first.SOPInstanceUID)
	if err != nil {
		return radgate.Receipt{}, fmt.Errorf("retrieving object %s of revision %d for the rejection note: %w", first.SOPInstanceUID, rev, err)
	}
	if m, err := inference.ReadHeader(src); err != nil || m.StudyInstanceUID != study {
		return radgate.Receipt{}, fmt.Errorf("the PACS answered an instance of another study (or none it could read) for object %s of study %s", first.SOPInstanceUID, study)
	}
	in := derived.Input{ResultID: r.ID, Engine: r.Engine, Time: time.Now().UTC(), Logger: s.opts.Logger}
	note, err := derived.RejectionNote(src, in, derived.Rejection{Revision: rev, Objects: objects, Description: why})
	if err != nil {
		return radgate.Receipt{}, err
	}
	res, err := s.c.Store(ctx, note)
	if err != nil && !onlyDuplicates(res, 1) {
		return radgate.Receipt{}, fmt.Errorf("storing the rejection note of revision %d: %w", rev, err)
	}
	if s.opts.Logger != nil {
		s.opts.Logger.Info("rejection note stored", "result", r.ID, "revision", rev, "objects", len(objects), "sop_instance_uid", u.KOS)
	}
	return radgate.Receipt{Report: notePath}, nil
}

// holds reports the SOP Class UID of instance sop of the series when the
// PACS lists it (QIDO-RS), else "". A series or study the PACS does not
// know is no instance.
func (s *Sink) holds(ctx context.Context, study, series, sop string) (string, error) {
	list, err := s.c.qido(ctx, "instances", s.c.endpoint(url.Values{"SOPInstanceUID": {sop}}, "studies", study, "series", series, "instances"))
	switch {
	case errors.Is(err, radgate.ErrStudyNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	for _, d := range list {
		if d.str(tagSOPInstanceUID) == sop {
			class := d.str(tagSOPClassUID)
			if class == "" {
				return "", fmt.Errorf("dicomweb: QIDO-RS instances of series %s: %w: instance %s without SOP Class UID", series, ErrMalformedResponse, sop)
			}
			return class, nil
		}
	}
	return "", nil
}
