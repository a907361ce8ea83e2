package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
// from Result.ID (derived.UIDsFor), so a redelivery sends the same
// instances; the PACS keeps one copy (Orthanc answers "AlreadyStored"; a
// failure reason 0x0111, duplicate SOP instance, is taken as stored too).
//
// A result that was not scored (Outcome not radgate.OutcomeScored: not
// applicable, failed) stores nothing: Deliver returns an empty Receipt and
// no error. The PACS shows results only; failures are reported by the FHIR
// and HL7 destinations.
type Sink struct {
	c    *Client
	opts SinkOptions
}

var _ radgate.Sink = (*Sink)(nil)

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
// PDF. It returns once the
// PACS answered that every object is stored. Transport failures, timeouts,
// 408/429/5xx are radgate.Transient (as the Client classifies them); a
// result or source that cannot become DICOM objects, and 4xx answers, are
// permanent.
func (s *Sink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	if r.Outcome != radgate.OutcomeScored {
		return radgate.Receipt{}, nil
	}
	fail := func(err error) (radgate.Receipt, error) {
		return radgate.Receipt{}, fmt.Errorf("storing result %s on the PACS: %w", r.ID, err)
	}
	if err := s.opts.Validate(); err != nil {
		return fail(err)
	}
	for what, v := range map[string]string{"Study Instance UID": r.StudyInstanceUID, "Series Instance UID": r.SeriesInstanceUID, "SOP Instance UID": r.SOPInstanceUID} {
		if err := checkUID(what, v); err != nil {
			return fail(fmt.Errorf("the result names no scored instance: %w", err))
		}
	}
	src, err := s.c.RetrieveInstance(ctx, r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
	if err != nil {
		return fail(fmt.Errorf("retrieving the scored instance: %w", err))
	}
	if err := checkStudy(src, r); err != nil {
		return fail(err)
	}

	in := derived.FromResult(r)
	in.SCWhenUnmarked = s.opts.SCWhenUnmarked
	in.Logger = s.opts.Logger
	u := derived.UIDsFor(r.ID)
	var (
		files  [][]byte
		report string
	)
	path := func(series, sop string) string {
		return "studies/" + r.StudyInstanceUID + "/series/" + series + "/instances/" + sop
	}
	if s.opts.PDF != nil {
		doc, err := s.opts.PDF(ctx, r)
		if err != nil {
			return fail(fmt.Errorf("rendering the PDF report: %w", err))
		}
		f, err := derived.EncapsulatedPDF(src, in, doc)
		if err != nil {
			return fail(err)
		}
		files, report = append(files, f), path(u.PDFSeries, u.PDF)
	}
	if s.opts.ParametricMap {
		f, err := derived.ParametricMap(src, in)
		switch {
		case errors.Is(err, derived.ErrNoParametricMap):
		case err != nil:
			return fail(err)
		default:
			files, report = append(files, f), path(u.PMSeries, u.PM)
		}
	}
	if s.opts.SC {
		f, err := derived.SecondaryCapture(src, in)
		switch {
		case errors.Is(err, derived.ErrNoSecondaryCapture):
		case err != nil:
			return fail(err)
		default:
			files, report = append(files, f), path(u.SCSeries, u.SC)
		}
	}
	if s.opts.SR {
		f, err := derived.StructuredReport(src, in)
		if err != nil {
			return fail(err)
		}
		files, report = append(files, f), path(u.SRSeries, u.SR)
	}
	if len(files) == 0 {
		return radgate.Receipt{}, nil
	}
	res, err := s.c.Store(ctx, files...)
	if err != nil && !onlyDuplicates(res, len(files)) {
		return fail(err)
	}
	return radgate.Receipt{Report: report}, nil
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
