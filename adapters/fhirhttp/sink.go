package fhirhttp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// SinkOptions configures the FHIR result sink.
type SinkOptions = ClientOptions

// PDFFunc renders the human-readable report of a scored result (see package
// report). An error it wraps with radgate.Transient is retried; any other
// ends the delivery.
type PDFFunc func(ctx context.Context, r radgate.Result) ([]byte, error)

// SinkOption tunes a Sink.
type SinkOption func(*Sink)

// WithPDF attaches the PDF that f renders to every scored result's
// DiagnosticReport, as presentedForm (application/pdf).
func WithPDF(f PDFFunc) SinkOption { return func(s *Sink) { s.pdf = f } }

// Sink writes results to a FHIR server: a scored result as one transaction
// of Observation, Media (when marked), DiagnosticReport and Provenance; a
// result that was not scored as a transaction of Task and Provenance (see
// rfhir.BuildResultBundle and rfhir.BuildTaskBundle). Every entry is a
// conditional create on an identifier derived from radgate.Result.ID, so
// delivering the same result twice leaves one report.
//
// The engine's Device is looked up (or created) once per engine version
// and referenced by id (see device). An amended result (revision N ≥ 2)
// corrects the same DiagnosticReport (or Task) in place: a new version of
// it with status amended and a second identifier (system revisionSystem,
// value "<result-id>/r<N>") naming the revision, its Observation and Media
// likewise. A retracted result marks them entered-in-error, cancels the
// order's read Task and records a Provenance with the reason (see
// retract). Every identifier radgate writes keys on the result id, so a
// report is found again whatever the revision.
type Sink struct {
	*Client
	now func() time.Time
	pdf PDFFunc

	mu      sync.Mutex
	devices map[string]*deviceCall // by fhir.EngineIdentifier value
}

// deviceCall is one engine version's Device lookup: the first caller does
// it, the others wait for done.
type deviceCall struct {
	done chan struct{}
	ref  string
	err  error
}

var (
	_ radgate.Sink        = (*Sink)(nil)
	_ radgate.PictureUser = (*Sink)(nil)
)

// Pictures: the Media shows the preview of a marked result; the PDF
// report, when attached, shows the preview or the radiograph's thumbnail.
func (s *Sink) Pictures() radgate.Pictures {
	if s.pdf != nil {
		return radgate.PicturePreview | radgate.PictureThumbnail
	}
	return radgate.PicturePreview
}

// NewSink validates opts; it does no I/O.
func NewSink(opts SinkOptions, options ...SinkOption) (*Sink, error) {
	c, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	s := &Sink{Client: c, now: time.Now, devices: map[string]*deviceCall{}}
	for _, o := range options {
		o(s)
	}
	return s, nil
}

// revisionSystem is the system of the identifier that names a report's
// result revision ("<result-id>/r<N>"), beside its fhir.ResultIdentifier.
const revisionSystem = fhir.SystemResult + "/revision"

// RevisionIdentifier is the identifier naming revision rev of result id on
// its DiagnosticReport (or Task) and Observation.
func RevisionIdentifier(resultID string, rev int) fhir.Identifier {
	return fhir.Identifier{System: revisionSystem, Value: fmt.Sprintf("%s/r%d", resultID, rev)}
}

// maxConflicts bounds the re-reads of a report another writer changed
// between the sink's read and its write (HTTP 412 on If-Match).
const maxConflicts = 3

// Deliver writes r and returns the report's reference ("DiagnosticReport/12"
// or, for a result that was not scored, "Task/7"). It returns only once the
// server answered the transaction with success. Refused connections,
// timeouts, 408, 429 and 5xx are radgate.Transient; a result that cannot be
// written (4xx, an invalid result) is a permanent error, a *rfhir.OutcomeError
// when the server refused it.
//
// r.Status says what to write: the first result (final), a correction in
// place (amended: delivering the same revision again, or an older one,
// changes nothing), or the withdrawal of the result (retracted; a result
// never written here is nothing to withdraw: success, empty receipt).
func (s *Sink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	switch r.Status {
	case "", radgate.ResultFinal:
	case radgate.ResultAmended:
		if r.Revision < 2 {
			return radgate.Receipt{}, fmt.Errorf("delivering result %s: an amended result has revision 2 or later, not %d", r.ID, r.Revision)
		}
	case radgate.ResultRetracted:
		return s.retract(ctx, r)
	default:
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: unknown result status %q", r.ID, r.Status)
	}
	in := ResultInput(r)
	in.Issued = s.now()
	var (
		bundle []byte
		err    error
		want   string
	)
	switch r.Outcome {
	case radgate.OutcomeScored:
		want = "DiagnosticReport"
		if s.pdf != nil {
			if in.PDF, err = s.pdf(ctx, r); err != nil {
				return radgate.Receipt{}, fmt.Errorf("delivering result %s: rendering the PDF report: %w", r.ID, err)
			}
		}
		bundle, err = fhir.BuildResultBundle(in)
	case radgate.OutcomeNotApplicable:
		want = "Task"
		bundle, err = fhir.BuildTaskBundle(in, fhir.TaskRejected)
	case radgate.OutcomeFailed:
		want = "Task"
		bundle, err = fhir.BuildTaskBundle(in, fhir.TaskFailed)
	default:
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: unknown outcome %q", r.ID, r.Outcome)
	}
	if err != nil {
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: %w", r.ID, err)
	}
	ref, status, objects, err := s.write(ctx, r, bundle, want)
	if err != nil {
		s.log.Warn("result not delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
			"revision", r.EffectiveRevision(), "transient", radgate.IsTransient(err), "error", err)
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: %w", r.ID, err)
	}
	s.log.Info("result delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
		"outcome", r.Outcome, "revision", r.EffectiveRevision(), "result_status", cmp.Or(r.Status, radgate.ResultFinal),
		"report", ref, "status", status)
	if r.Outcome == radgate.OutcomeScored && r.Read.Wanted(r.Tier) {
		task, err := s.requestRead(ctx, r, in, ref)
		if err != nil {
			return radgate.Receipt{}, err
		}
		if task != "" {
			objects = append(objects, radgate.DeliveredObject{Kind: "Task", Ref: task})
		}
	}
	return radgate.Receipt{Report: ref, Objects: objects}, nil
}

// shown are the resource types a receipt lists, in the order it lists
// them: what a person opens to see the result (not the Device, Provenance
// or Binary behind it).
var shown = map[string]int{"DiagnosticReport": 1, "Observation": 2, "Media": 3, "Task": 4, "DocumentReference": 5}

// writtenObjects lists the resources of a transaction response that a
// receipt names, ordered by type (shown) and reference, so that delivering
// the same result again gives the same receipt. A resource the transaction
// withdrew (entered-in-error: an amended result's earlier heatmap) is left
// out; the response's entries answer doc's, one for one.
func writtenObjects(doc *txDoc, tr *fhir.TransactionResponse) []radgate.DeliveredObject {
	var out []radgate.DeliveredObject
	for i, e := range tr.Entries {
		if i < len(doc.Entry) && str(doc.Entry[i].Resource["status"]) == "entered-in-error" {
			continue
		}
		if shown[e.ResourceType] > 0 && e.Reference != "" {
			out = append(out, radgate.DeliveredObject{Kind: e.ResourceType, Ref: e.Reference})
		}
	}
	slices.SortFunc(out, func(a, b radgate.DeliveredObject) int {
		return cmp.Or(shown[a.Kind]-shown[b.Kind], strings.Compare(a.Ref, b.Ref))
	})
	return out
}

// write adapts the built transaction and posts it: the Device by id, the
// revision identifier, the image notes; for an amended result, the report
// (of type want) updated in place unless it holds this revision or a later
// one already. It returns the report's reference, the entry's status and
// the resources written (writtenObjects).
func (s *Sink) write(ctx context.Context, r radgate.Result, bundle []byte, want string) (ref, status string, objects []radgate.DeliveredObject, err error) {
	rev := r.EffectiveRevision()
	for attempt := 1; ; attempt++ {
		doc, err := openTx(bundle)
		if err != nil {
			return "", "", nil, err
		}
		if err := s.useDevice(ctx, doc); err != nil {
			return "", "", nil, err
		}
		report := doc.find(want)
		if report == nil {
			return "", "", nil, fmt.Errorf("the built transaction has no %s", want)
		}
		revID := RevisionIdentifier(r.ID, rev)
		addIdentifier(report.Resource, revID.System, revID.Value)
		notes := imagesText(r.Images)
		if notes != "" {
			if want == "DiagnosticReport" {
				report.Resource["conclusion"] = str(report.Resource["conclusion"]) + " " + notes
			} else {
				n, _ := report.Resource["note"].([]any)
				report.Resource["note"] = append(n, map[string]any{"text": notes})
			}
		}
		if r.Status == radgate.ResultAmended {
			done, objects, err := s.amend(ctx, r, doc, report, want)
			if err != nil {
				return "", "", nil, err
			}
			if done != "" {
				return done, "unchanged", objects, nil
			}
		}
		body, err := doc.marshal()
		if err != nil {
			return "", "", nil, fmt.Errorf("writing the transaction: %w", err)
		}
		tr, err := s.Transaction(ctx, body)
		if isConflict(err) && attempt < maxConflicts {
			// Another writer changed the report since it was read
			// (If-Match): read it again.
			s.log.Info("report changed while amending; reading it again", "result_id", r.ID, "attempt", attempt)
			continue
		}
		if err != nil {
			return "", "", nil, err
		}
		e, ok := tr.Find(want)
		if !ok || e.Reference == "" {
			return "", "", nil, fmt.Errorf("the transaction response names no %s", want)
		}
		return e.Reference, e.Status, writtenObjects(doc, tr), nil
	}
}

// amend turns the transaction of an amended result into a correction in
// place. It returns the report's reference, with nothing to write, when the
// server holds this revision or a later one already.
func (s *Sink) amend(ctx context.Context, r radgate.Result, doc *txDoc, report *txEntry, want string) (string, []radgate.DeliveredObject, error) {
	rev := r.EffectiveRevision()
	cur, err := s.findOne(ctx, want, fhir.ResultIdentifier(r.ID))
	if err != nil {
		return "", nil, err
	}
	amended := "amended"
	if want == "Task" {
		amended = "" // a Task keeps its status (rejected, failed)
	}
	if amended != "" {
		report.Resource["status"] = amended
	}
	for _, e := range doc.Entry {
		switch e.resourceType() {
		case "Observation":
			e.Resource["status"] = amended
			revID := RevisionIdentifier(r.ID, rev)
			addIdentifier(e.Resource, revID.System, revID.Value)
			e.putByIdentifier()
		case "Media":
			e.putByIdentifier()
		case "Provenance":
			// One Provenance per revision: the first one stays.
			id := fmt.Sprintf("%s-r%d", fhir.ProvenanceID(r.ID), rev)
			e.putAt("Provenance/"+id, "")
		}
	}
	if cur == nil {
		// Revision 1 never reached this server: the report is written
		// now, as this revision.
		return "", nil, nil
	}
	switch {
	case cur.status == "entered-in-error":
		return "", nil, fmt.Errorf("%s of result %s was retracted (entered-in-error); revision %d is not written over it", cur.ref, r.ID, rev)
	case cur.revision() >= rev:
		s.log.Info("amended result already written", "result_id", r.ID, "report", cur.ref, "revision", rev, "current", cur.revision())
		objects := []radgate.DeliveredObject{{Kind: want, Ref: cur.ref}}
		for _, o := range cur.refs("result", "") {
			objects = append(objects, radgate.DeliveredObject{Kind: "Observation", Ref: o})
		}
		for _, m := range cur.refs("media", "link") {
			objects = append(objects, radgate.DeliveredObject{Kind: "Media", Ref: m})
		}
		return cur.ref, objects, nil
	}
	report.putAt(cur.ref, cur.version)
	if want == "DiagnosticReport" && doc.find("Media") == nil {
		// This revision is not marked: the earlier heatmap is withdrawn.
		for _, m := range cur.refs("media", "link") {
			if err := s.addStatusUpdate(ctx, doc, m, "entered-in-error", nil); err != nil {
				return "", nil, err
			}
		}
	}
	return "", nil, nil
}

// addStatusUpdate reads ref and adds to doc its update to status (and mod,
// when set), unless it has that status already.
func (s *Sink) addStatusUpdate(ctx context.Context, doc *txDoc, ref, status string, mod func(map[string]any)) error {
	raw, err := s.Read(ctx, ref)
	if err != nil {
		return err
	}
	st, err := readStored(raw)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ref, err)
	}
	if st.status == status {
		return nil
	}
	st.body["status"] = status
	if mod != nil {
		mod(st.body)
	}
	delete(st.body, "meta")
	e := &txEntry{Resource: st.body}
	e.putAt(st.ref, st.version)
	doc.Entry = append(doc.Entry, e)
	return nil
}

// findOne returns the resource of a type with an identifier: the oldest
// when there are several, nil when none.
func (s *Sink) findOne(ctx context.Context, resourceType string, id fhir.Identifier) (*stored, error) {
	found, err := s.Search(ctx, resourceType, url.Values{"identifier": {id.System + "|" + id.Value}})
	if err != nil {
		return nil, err
	}
	var list []*stored
	for _, raw := range found {
		st, err := readStored(raw)
		if err != nil {
			return nil, fmt.Errorf("searching %s: %w", resourceType, err)
		}
		list = append(list, st)
	}
	return oldest(list), nil
}

func isConflict(err error) bool {
	return errors.Is(err, &fhir.OutcomeError{Status: http.StatusPreconditionFailed}) ||
		errors.Is(err, &fhir.OutcomeError{Status: http.StatusConflict})
}

// useDevice takes the engine's Device out of the transaction and points
// its references at the Device on the server (see device).
func (s *Sink) useDevice(ctx context.Context, doc *txDoc) error {
	e := doc.find("Device")
	if e == nil {
		return nil
	}
	ref, err := s.device(ctx, e.Resource)
	if err != nil {
		return err
	}
	doc.remove(e, ref)
	return nil
}

// device returns the "Device/id" of the engine version that res (a Device
// as fhir's builders write it) describes: looked up by its identifier, or
// created, once per engine version and Sink; concurrent deliveries wait for
// the one lookup. When the server holds several Devices of the identifier
// (an older radgate's race), the oldest is used.
func (s *Sink) device(ctx context.Context, res map[string]any) (string, error) {
	ids, _ := res["identifier"].([]any)
	var ident fhir.Identifier
	if len(ids) > 0 {
		m, _ := ids[0].(map[string]any)
		ident = fhir.Identifier{System: str(m["system"]), Value: str(m["value"])}
	}
	if ident.Value == "" {
		return "", errors.New("the built Device has no identifier")
	}
	for {
		s.mu.Lock()
		c, ok := s.devices[ident.Value]
		if !ok {
			c = &deviceCall{done: make(chan struct{})}
			s.devices[ident.Value] = c
			s.mu.Unlock()
			c.ref, c.err = s.lookupDevice(ctx, res, ident)
			if c.err != nil {
				s.mu.Lock()
				delete(s.devices, ident.Value)
				s.mu.Unlock()
			}
			close(c.done)
			return c.ref, c.err
		}
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return "", radgate.Transient(fmt.Errorf("waiting for the engine's Device: %w", ctx.Err()))
		}
		if c.err == nil {
			return c.ref, nil
		}
		// That lookup failed (and was forgotten): try again here.
	}
}

func (s *Sink) lookupDevice(ctx context.Context, res map[string]any, ident fhir.Identifier) (string, error) {
	found, err := s.findOne(ctx, "Device", ident)
	if err != nil {
		return "", fmt.Errorf("looking up the engine's Device: %w", err)
	}
	if found == nil {
		b, err := json.Marshal(res)
		if err != nil {
			return "", fmt.Errorf("writing the engine's Device: %w", err)
		}
		ref, err := s.Create(ctx, b, fhir.IfNoneExist(ident))
		if err == nil {
			s.log.Info("engine Device created", "device", ref, "engine", ident.Value)
			return ref, nil
		}
		if !errors.Is(err, &fhir.OutcomeError{Status: http.StatusPreconditionFailed}) {
			return "", fmt.Errorf("creating the engine's Device: %w", err)
		}
		// Several appeared since the search (other writers): take the oldest.
		if found, err = s.findOne(ctx, "Device", ident); err != nil || found == nil {
			return "", fmt.Errorf("looking up the engine's Device after a conflict: %w", cmp.Or(err, errors.New("none found")))
		}
	}
	s.log.Info("engine Device found", "device", found.ref, "engine", ident.Value)
	return found.ref, nil
}

// maxImageNotes bounds the skipped images a report lists one by one.
const maxImageNotes = 20

// imagesText says which images a result was scored on and which were
// skipped, and why: "Images: 1 of 2 scored. Skipped: 1.2.3 (view LL):
// lateral view LL: engine takes PA/AP." ("" without image notes).
func imagesText(images []radgate.ImageNote) string {
	if len(images) == 0 {
		return ""
	}
	scored := radgate.ScoredImages(images)
	var skipped []string
	for _, im := range images {
		if im.Scored {
			continue
		}
		if len(skipped) == maxImageNotes {
			skipped = append(skipped, "…")
			break
		}
		skipped = append(skipped, im.Skipped())
	}
	text := fmt.Sprintf("Images: %d of %d scored.", scored, len(images))
	if n := len(images) - scored; n > 0 {
		text += fmt.Sprintf(" Skipped (%d): %s.", n, strings.Join(skipped, "; "))
	}
	return text
}

// requestRead writes the route's radiologist read request: a Task for the
// reading group with the report as focus and input. It is a conditional
// create of its own (after the report, which it points at), so a retry after
// a failure here finds the report written and adds the Task once.
func (s *Sink) requestRead(ctx context.Context, r radgate.Result, in fhir.ResultInput, report string) (string, error) {
	bundle, err := fhir.BuildReadTaskBundle(in, fhir.ReadRequest{
		Owner: r.Read.Group, OwnerDisplay: r.Read.GroupDisplay, Report: report, Priority: r.Order.Priority, OrderID: r.Order.ID,
	})
	if err != nil {
		return "", fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	tr, err := s.Transaction(ctx, bundle)
	if err != nil {
		s.log.Warn("read request not written", "result_id", r.ID, "order_id", r.Order.ID,
			"transient", radgate.IsTransient(err), "error", err)
		return "", fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	task, _ := tr.Find("Task")
	s.log.Info("radiologist read requested", "result_id", r.ID, "order_id", r.Order.ID, "task", task.Reference,
		"group", r.Read.Group, "tier", r.Tier)
	return task.Reference, nil
}

// ResultInput maps a radgate.Result to the values the fhir package builds
// resources from (Issued is left zero: the builders use ScoredAt).
func ResultInput(r radgate.Result) fhir.ResultInput {
	in := fhir.ResultInput{
		ID:                r.ID,
		ServiceRequest:    fromRoutingRef(r.Order.ServiceRequest),
		ImagingStudy:      fromRoutingRef(r.Order.ImagingStudy),
		Patient:           fromRoutingRef(r.Order.Patient),
		StudyInstanceUID:  r.StudyInstanceUID,
		SeriesInstanceUID: r.SeriesInstanceUID,
		SOPInstanceUID:    r.SOPInstanceUID,
		Engine: fhir.Engine{
			ID: r.Engine.ID, Name: r.Engine.Name, Version: r.Engine.Version, Disclaimer: r.Engine.Disclaimer,
			Finding: fhir.Coding{System: r.Engine.Finding.System, Code: r.Engine.Finding.Code, Display: r.Engine.Finding.Display},
		},
		Probability:   r.Probability,
		Tier:          r.Tier,
		Marked:        r.Marked,
		Preview:       r.Preview,
		PreviewWidth:  r.PreviewWidth,
		PreviewHeight: r.PreviewHeight,
		HeatmapPNG:    r.HeatmapPNG,
		HeatmapWidth:  r.HeatmapWidth,
		HeatmapHeight: r.HeatmapHeight,
		Reason:        r.Reason,
		Caveats:       r.Caveats,
		ScoredAt:      r.ScoredAt,
	}
	if in.StudyInstanceUID == "" {
		in.StudyInstanceUID = r.Order.StudyInstanceUID
	}
	if a := r.Order.Accession; a != nil {
		in.Accession = &fhir.Identifier{System: a.System, Value: a.Value}
	}
	if in.Reason == "" && r.Outcome != radgate.OutcomeScored {
		in.Reason = r.Order.Reason
	}
	return in
}

func fromRoutingRef(r *radgate.Reference) *fhir.Reference {
	if r == nil {
		return nil
	}
	out := &fhir.Reference{Reference: r.Reference, Display: r.Display}
	if r.Identifier != nil {
		out.Identifier = &fhir.Identifier{System: r.Identifier.System, Value: r.Identifier.Value}
	}
	return out
}
