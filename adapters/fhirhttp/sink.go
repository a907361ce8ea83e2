package fhirhttp

import (
	"context"
	"fmt"
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
// of Device, Observation, Media (when marked) and DiagnosticReport; a result
// that was not scored as a transaction of Device and Task (see
// rfhir.BuildResultBundle and rfhir.BuildTaskBundle). Every entry is a
// conditional create on an identifier derived from radgate.Result.ID, so
// delivering the same result twice leaves one report.
type Sink struct {
	*Client
	now func() time.Time
	pdf PDFFunc
}

var _ radgate.Sink = (*Sink)(nil)

// NewSink validates opts; it does no I/O.
func NewSink(opts SinkOptions, options ...SinkOption) (*Sink, error) {
	c, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	s := &Sink{Client: c, now: time.Now}
	for _, o := range options {
		o(s)
	}
	return s, nil
}

// Deliver writes r and returns the report's reference ("DiagnosticReport/12"
// or, for a result that was not scored, "Task/7"). It returns only once the
// server answered the transaction with success. Refused connections,
// timeouts, 408, 429 and 5xx are radgate.Transient; a result that cannot be
// written (4xx, an invalid result) is a permanent error, a *rfhir.OutcomeError
// when the server refused it.
func (s *Sink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
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
	tr, err := s.Transaction(ctx, bundle)
	if err != nil {
		s.log.Warn("result not delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
			"transient", radgate.IsTransient(err), "error", err)
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: %w", r.ID, err)
	}
	e, ok := tr.Find(want)
	if !ok || e.Reference == "" {
		return radgate.Receipt{}, fmt.Errorf("delivering result %s: the transaction response names no %s", r.ID, want)
	}
	s.log.Info("result delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
		"outcome", r.Outcome, "report", e.Reference, "status", e.Status)
	if r.Outcome == radgate.OutcomeScored && r.Read.Wanted(r.Tier) {
		if err := s.requestRead(ctx, r, in, e.Reference); err != nil {
			return radgate.Receipt{}, err
		}
	}
	return radgate.Receipt{Report: e.Reference}, nil
}

// requestRead writes the route's radiologist read request: a Task for the
// reading group with the report as focus and input. It is a conditional
// create of its own (after the report, which it points at), so a retry after
// a failure here finds the report written and adds the Task once.
func (s *Sink) requestRead(ctx context.Context, r radgate.Result, in fhir.ResultInput, report string) error {
	bundle, err := fhir.BuildReadTaskBundle(in, fhir.ReadRequest{
		Owner: r.Read.Group, OwnerDisplay: r.Read.GroupDisplay, Report: report, Priority: r.Order.Priority, OrderID: r.Order.ID,
	})
	if err != nil {
		return fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	tr, err := s.Transaction(ctx, bundle)
	if err != nil {
		s.log.Warn("read request not written", "result_id", r.ID, "order_id", r.Order.ID,
			"transient", radgate.IsTransient(err), "error", err)
		return fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	task, _ := tr.Find("Task")
	s.log.Info("radiologist read requested", "result_id", r.ID, "order_id", r.Order.ID, "task", task.Reference,
		"group", r.Read.Group, "tier", r.Tier)
	return nil
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
		HeatmapPNG:    r.HeatmapPNG,
		HeatmapWidth:  r.HeatmapWidth,
		HeatmapHeight: r.HeatmapHeight,
		Reason:        r.Reason,
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
