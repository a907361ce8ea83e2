package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
)

// SinkOptions configure a Sink: where the PACS is, what is stored there,
// and where the sink keeps what it stored.
type SinkOptions struct {
	// Name is the destination's name in radgate.yaml: what the sink
	// stored is remembered under it (BucketSent).
	Name string
	// Addr is the PACS's host:port; Dialer its AE title (CalledAE),
	// radgate's (CallingAE) and the timeout of each step.
	Addr   string
	Dialer Dialer
	// SC, SR, ParametricMap, SCWhenUnmarked and PDF choose the derived
	// objects, as for the dicomweb destination (derived.Derive).
	SC, SR, ParametricMap bool
	SCWhenUnmarked        string
	PDF                   func(ctx context.Context, r radgate.Result) ([]byte, error)
	// Images is where the scored instance is read
	// (radgate.DestinationContext.Images).
	Images radgate.StudySource
	// JetStream holds BucketSent, created at the first delivery with
	// SentMaxAge as its age limit.
	JetStream  jetstream.JetStream
	SentMaxAge time.Duration
	// Logger gets one line per stored result (identifiers only), and the
	// derived builders' warnings. Nil: not logged.
	Logger *slog.Logger
}

// Validate reports an option that cannot work.
func (o SinkOptions) Validate() error {
	if err := derived.CheckSCWhenUnmarked(o.SCWhenUnmarked); err != nil {
		return err
	}
	switch {
	case !o.SC && !o.SR && !o.ParametricMap && o.PDF == nil:
		return errors.New("dimse sink: nothing to store: enable sc, sr, parametric_map or pdf_report")
	case o.Name == "":
		return errors.New("dimse sink: no destination name")
	case o.Addr == "":
		return errors.New("dimse sink: no PACS address")
	case o.Images == nil:
		return errors.New("dimse sink: no image source to read the scored instance from")
	case o.JetStream == nil:
		return errors.New("dimse sink: no JetStream to remember what was stored in")
	}
	if err := checkAE(o.Dialer.CalledAE); err != nil {
		return fmt.Errorf("dimse sink: called AE: %w", err)
	}
	if err := checkAE(o.Dialer.CallingAE); err != nil {
		return fmt.Errorf("dimse sink: calling AE: %w", err)
	}
	return nil
}

// Sink stores results into the scored study on a PACS over DIMSE: it reads
// the scored instance from where the orders' images are, builds the
// derived objects (derived.Derive: Encapsulated PDF, Parametric Map,
// Secondary Capture, SR) and sends them with C-STORE on one association.
// *Sink implements radgate.Sink.
//
// Transfer syntax: the derived objects are written in Explicit VR Little
// Endian. Each SOP class is proposed twice, in Explicit and in Implicit VR
// Little Endian (the one every PACS accepts); Explicit is sent where
// accepted, else the data set is re-encoded to Implicit
// (ExplicitToImplicit). A PACS that accepts neither for a class gets
// nothing of the result: a permanent error names the class and the PACS.
//
// Idempotency: the objects' UIDs come from Result.ID and Result.Revision
// (derived.UIDsFor), so a redelivery stores the same instances; a status
// of success, a warning, or 0111H (duplicate SOP instance) counts as
// stored, and the PACS keeps one copy. What was stored is remembered
// (BucketSent) once the PACS took every object, so that an amendment or a
// retraction can reject exactly those objects.
//
// A result that was not scored stores no derived object (the PACS shows
// results only; failures are reported by the FHIR and HL7 destinations).
type Sink struct {
	opts SinkOptions

	mu   sync.Mutex
	sent *Sent
}

var (
	_ radgate.Sink        = (*Sink)(nil)
	_ radgate.PictureUser = (*Sink)(nil)
)

// NewSink returns a sink with opts. It does no I/O.
func NewSink(opts SinkOptions) (*Sink, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Sink{opts: opts}, nil
}

// Pictures: the Secondary Capture shows the heatmap at full resolution;
// the PDF report, when stored, shows the preview or the thumbnail.
func (s *Sink) Pictures() radgate.Pictures { return derived.PicturesFor(s.opts.SC, s.opts.PDF != nil) }

// Deliver stores what r's status asks for and returns the reference of the
// report, "studies/<study>/series/<series>/instances/<sop>": the SR when it
// is stored, else the SC, the Parametric Map or the PDF; for a retraction
// the rejection note. It returns once the PACS answered every C-STORE.
//
//   - final (or ""): the derived objects of revision r.Revision.
//   - amended (revision N ≥ 2): the derived objects of revision N, then an
//     IOCM rejection note (derived.RejectionNote) of the objects this
//     destination stored of revision N−1, on the same association.
//   - retracted (revision N): a rejection note of the objects it stored of
//     revision N.
//
// Nothing remembered, nothing rejected. The note copies patient and study
// from the smallest object stored of that revision, kept for it; its UIDs
// come from the result id and the rejected revision, so a redelivery
// stores the same note.
//
// Errors: connection refused, timeouts, aborts, an association rejected as
// transient and status A7xxH (out of resources) are radgate.Transient; an
// association rejected as permanent, a failure status (A9xxH, CxxxH and
// the others), no accepted transfer syntax, and a result or source that
// cannot become DICOM objects are permanent. Each names the PACS's AE.
func (s *Sink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	fail := func(err error) (radgate.Receipt, error) {
		return radgate.Receipt{}, fmt.Errorf("storing result %s on %s (%s): %w", r.ID, s.opts.Dialer.CalledAE, s.opts.Addr, err)
	}
	if err := s.opts.Validate(); err != nil {
		return fail(err)
	}
	rev := r.EffectiveRevision()
	var (
		objects []derived.Object
		note    *derived.Object
		study   string
		err     error
	)
	switch r.Status {
	case radgate.ResultFinal, "":
		objects, err = s.derive(ctx, r)
	case radgate.ResultAmended:
		if rev < 2 {
			return fail(fmt.Errorf("an amended result has revision %d: it must be 2 or more (it replaces revision %d)", rev, rev-1))
		}
		if objects, err = s.derive(ctx, r); err == nil {
			note, study, err = s.note(ctx, r, rev-1, fmt.Sprintf("AI result %s revision %d superseded by revision %d.", r.ID, rev-1, rev))
		}
	case radgate.ResultRetracted:
		why := fmt.Sprintf("AI result %s revision %d withdrawn", r.ID, rev)
		if reason := strings.TrimSpace(r.RetractReason); reason != "" {
			why += ": " + reason
		}
		note, study, err = s.note(ctx, r, rev, why+".")
	default:
		err = fmt.Errorf("unknown result status %q (known: %s, %s, %s)", r.Status, radgate.ResultFinal, radgate.ResultAmended, radgate.ResultRetracted)
	}
	if err != nil {
		return fail(err)
	}
	if len(objects) == 0 && note == nil {
		return radgate.Receipt{}, nil
	}
	if err := s.send(ctx, r, rev, objects, note); err != nil {
		return fail(err)
	}
	report := note
	if len(objects) > 0 {
		report, study = &objects[len(objects)-1], r.StudyInstanceUID
	}
	rec := radgate.Receipt{Report: "studies/" + study + "/series/" + report.SeriesInstanceUID + "/instances/" + report.SOPInstanceUID}
	for _, o := range objects {
		rec.Objects = append(rec.Objects, o.Delivered(r.StudyInstanceUID))
	}
	return rec, nil
}

// derive builds the derived objects of a scored result from its scored
// instance (none for a result that was not scored).
func (s *Sink) derive(ctx context.Context, r radgate.Result) ([]derived.Object, error) {
	if r.Outcome != radgate.OutcomeScored {
		return nil, nil
	}
	for what, v := range map[string]string{"Study Instance UID": r.StudyInstanceUID, "Series Instance UID": r.SeriesInstanceUID, "SOP Instance UID": r.SOPInstanceUID} {
		if err := radgate.CheckUID(what, v); err != nil {
			return nil, fmt.Errorf("the result names no scored instance: %w", err)
		}
	}
	src, err := s.opts.Images.RetrieveInstance(ctx, r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
	if err != nil {
		return nil, fmt.Errorf("retrieving the scored instance: %w", err)
	}
	m, err := inference.ReadHeader(src)
	if err != nil {
		return nil, fmt.Errorf("reading the retrieved instance %s: %w", r.SOPInstanceUID, err)
	}
	if m.StudyInstanceUID != r.StudyInstanceUID || m.SOPInstanceUID != r.SOPInstanceUID {
		return nil, fmt.Errorf("the image source answered instance %s of study %s for instance %s of study %s",
			m.SOPInstanceUID, m.StudyInstanceUID, r.SOPInstanceUID, r.StudyInstanceUID)
	}
	in := derived.FromResult(r)
	in.SCWhenUnmarked, in.Logger = s.opts.SCWhenUnmarked, s.opts.Logger
	set := derived.Set{SC: s.opts.SC, SR: s.opts.SR, ParametricMap: s.opts.ParametricMap}
	if s.opts.PDF != nil {
		if set.PDF, err = s.opts.PDF(ctx, r); err != nil {
			return nil, fmt.Errorf("rendering the PDF report: %w", err)
		}
		if set.PDF == nil {
			set.PDF = []byte{} // a renderer that gave nothing: refused by derived as no PDF
		}
	}
	return derived.Derive(src, in, set)
}

// note builds the rejection note of the objects this destination stored of
// revision rev of r, and returns it with their study; nil when it stored
// none (or no longer remembers them).
func (s *Sink) note(ctx context.Context, r radgate.Result, rev int, why string) (*derived.Object, string, error) {
	sent, err := s.sentStore(ctx)
	if err != nil {
		return nil, "", err
	}
	rec, kept, ok, err := sent.Get(ctx, s.opts.Name, r.ID, rev)
	if err != nil {
		return nil, "", radgate.Transient(err)
	}
	if !ok || len(rec.Objects) == 0 {
		return nil, "", nil
	}
	in := derived.Input{ResultID: r.ID, Engine: r.Engine, Time: time.Now().UTC(), Logger: s.opts.Logger}
	f, err := derived.RejectionNote(kept, in, derived.Rejection{Revision: rev, Objects: rec.Objects, Description: why})
	if err != nil {
		return nil, "", fmt.Errorf("the rejection note of revision %d: %w", rev, err)
	}
	u := derived.UIDsFor(r.ID, rev)
	return &derived.Object{SeriesInstanceUID: u.KOSSeries, SOPInstanceUID: u.KOS, SOPClassUID: derived.SOPClassKeyObjectSelection, File: f}, rec.StudyInstanceUID, nil
}

// sentStore opens BucketSent at first use (and again after a failure).
func (s *Sink) sentStore(ctx context.Context) (*Sent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		sent, err := OpenSent(ctx, s.opts.JetStream, s.opts.SentMaxAge)
		if err != nil {
			return nil, radgate.Transient(err)
		}
		s.sent = sent
	}
	return s.sent, nil
}

// send stores objects, remembers them, then stores note, on one
// association.
func (s *Sink) send(ctx context.Context, r radgate.Result, rev int, objects []derived.Object, note *derived.Object) error {
	sent, err := s.sentStore(ctx)
	if err != nil {
		return err
	}
	all := slices.Clone(objects)
	if note != nil {
		all = append(all, *note)
	}
	var contexts []PresentationContext
	for _, o := range all {
		if slices.ContainsFunc(contexts, func(pc PresentationContext) bool { return pc.AbstractSyntax == o.SOPClassUID }) {
			continue
		}
		contexts = append(contexts,
			PresentationContext{AbstractSyntax: o.SOPClassUID, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			PresentationContext{AbstractSyntax: o.SOPClassUID, TransferSyntaxes: []string{ImplicitVRLittleEndian}})
	}
	d := s.opts.Dialer
	if d.Logger == nil {
		d.Logger = s.opts.Logger
	}
	as, err := d.Dial(ctx, s.opts.Addr, contexts)
	if err != nil {
		return s.dialError(err)
	}
	released := false
	defer func() {
		if !released {
			_ = as.Abort()
		}
	}()
	for _, o := range objects {
		if err := s.store(ctx, as, o); err != nil {
			return err
		}
	}
	if len(objects) > 0 {
		kept := slices.MinFunc(objects, func(a, b derived.Object) int { return len(a.File) - len(b.File) })
		rec := SentRecord{Destination: s.opts.Name, ResultID: r.ID, Revision: rev, StudyInstanceUID: r.StudyInstanceUID,
			Kept: kept.SOPInstanceUID, StoredAt: time.Now().UTC()}
		for _, o := range objects {
			rec.Objects = append(rec.Objects, o.Ref())
		}
		if err := sent.Put(ctx, rec, kept.File); err != nil {
			return radgate.Transient(err)
		}
	}
	if note != nil {
		if err := s.store(ctx, as, *note); err != nil {
			return fmt.Errorf("the rejection note: %w", err)
		}
	}
	released = true
	if err := as.Release(ctx); err != nil && s.opts.Logger != nil {
		// Every object is stored: a failed release loses nothing.
		s.opts.Logger.Warn("dimse: release after storing failed", "result", r.ID, "assoc", as.ID(), "err", err)
	}
	if s.opts.Logger != nil {
		s.opts.Logger.Info("dimse: result stored", "result", r.ID, "revision", rev, "status", string(r.Status),
			"objects", len(objects), "rejection_note", note != nil, "called_ae", s.opts.Dialer.CalledAE, "assoc", as.ID())
	}
	return nil
}

// store sends one object with C-STORE: in its own transfer syntax where
// accepted, else re-encoded to Implicit VR Little Endian.
func (s *Sink) store(ctx context.Context, as *Association, o derived.Object) error {
	meta, ds, err := SplitPart10(o.File)
	if err != nil {
		return fmt.Errorf("the %s %s: %w", className(o.SOPClassUID), o.SOPInstanceUID, err)
	}
	accepted := as.Accepted(o.SOPClassUID)
	ts := meta.TransferSyntaxUID
	switch {
	case slices.Contains(accepted, ts):
	case ts == ExplicitVRLittleEndian && slices.Contains(accepted, ImplicitVRLittleEndian):
		if ds, err = ExplicitToImplicit(ds); err != nil {
			return fmt.Errorf("the %s %s: %w", className(o.SOPClassUID), o.SOPInstanceUID, err)
		}
		ts = ImplicitVRLittleEndian
	default:
		return fmt.Errorf("%s accepts no transfer syntax radgate can send a %s in (proposed: Explicit and Implicit VR Little Endian; answers: %s)",
			s.opts.Dialer.CalledAE, className(o.SOPClassUID), contextAnswers(as, o.SOPClassUID))
	}
	st, err := as.Store(ctx, o.SOPClassUID, o.SOPInstanceUID, ts, bytes.NewReader(ds))
	if err != nil {
		return radgate.Transient(fmt.Errorf("C-STORE of the %s %s: %w", className(o.SOPClassUID), o.SOPInstanceUID, err))
	}
	switch {
	case st.IsSuccess(), st == StatusDuplicateSOPInstance:
		return nil
	case st.IsWarning():
		if s.opts.Logger != nil {
			s.opts.Logger.Warn("dimse: C-STORE answered a warning; the object is stored", "sop_instance_uid", o.SOPInstanceUID, "status", st.String(), "assoc", as.ID())
		}
		return nil
	}
	err = fmt.Errorf("%s answered %s to the C-STORE of the %s %s", s.opts.Dialer.CalledAE, st, className(o.SOPClassUID), o.SOPInstanceUID)
	if st&0xFF00 == 0xA700 {
		return radgate.Transient(err)
	}
	return err
}

// dialError classifies a failed association request: a permanent
// rejection is a configuration to fix (called AE, calling AE registered
// at the PACS); everything else — refused, timed out, aborted, rejected
// as transient — may pass.
func (s *Sink) dialError(err error) error {
	var rj *RejectError
	if errors.As(err, &rj) {
		err = fmt.Errorf("%s at %s rejected the association from %s: %w", s.opts.Dialer.CalledAE, s.opts.Addr, s.opts.Dialer.CallingAE, err)
		if rj.Reject.Result == RejectPermanent {
			return err
		}
	}
	return radgate.Transient(err)
}

// contextAnswers says how the PACS answered the contexts of a SOP class.
func contextAnswers(as *Association, sopClass string) string {
	var out []string
	for _, pc := range as.Contexts() {
		if pc.AbstractSyntax == sopClass {
			out = append(out, fmt.Sprintf("%v %s", pc.TransferSyntaxes, contextResultString(pc.Result)))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

// className names a derived object's SOP class in messages.
func className(uid string) string {
	switch uid {
	case derived.SOPClassSecondaryCapture:
		return "Secondary Capture"
	case derived.SOPClassComprehensive3DSR:
		return "SR"
	case derived.SOPClassEncapsulatedPDF:
		return "Encapsulated PDF"
	case derived.SOPClassParametricMap:
		return "Parametric Map"
	case derived.SOPClassKeyObjectSelection:
		return "rejection note"
	}
	return "object of SOP class " + uid
}
