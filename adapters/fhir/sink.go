package fhir

import (
	"context"
	"fmt"
	"time"

	rfhir "github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/routing"
)

// SinkOptions configures the FHIR result sink.
type SinkOptions = ClientOptions

// PDFFunc renders the human-readable report of a scored result (see package
// report). An error it wraps with routing.Transient is retried; any other
// ends the delivery.
type PDFFunc func(ctx context.Context, r routing.Result) ([]byte, error)

// SinkOption tunes a Sink.
type SinkOption func(*Sink)

// WithPDF attaches the PDF that f renders to every scored result's
// DiagnosticReport, as presentedForm (application/pdf).
func WithPDF(f PDFFunc) SinkOption { return func(s *Sink) { s.pdf = f } }

// Sink writes results to a FHIR server: a scored result as one transaction
// of Device, Observation, Media (when marked) and DiagnosticReport; a result
// that was not scored as a transaction of Device and Task (see
// rfhir.BuildResultBundle and rfhir.BuildTaskBundle). Every entry is a
// conditional create on an identifier derived from routing.Result.ID, so
// delivering the same result twice leaves one report.
type Sink struct {
	*Client
	now func() time.Time
	pdf PDFFunc
}

var _ routing.Sink = (*Sink)(nil)

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
// timeouts, 408, 429 and 5xx are routing.Transient; a result that cannot be
// written (4xx, an invalid result) is a permanent error, a *rfhir.OutcomeError
// when the server refused it.
func (s *Sink) Deliver(ctx context.Context, r routing.Result) (routing.Receipt, error) {
	in := ResultInput(r)
	in.Issued = s.now()
	var (
		bundle []byte
		err    error
		want   string
	)
	switch r.Outcome {
	case routing.OutcomeScored:
		want = "DiagnosticReport"
		if s.pdf != nil {
			if in.PDF, err = s.pdf(ctx, r); err != nil {
				return routing.Receipt{}, fmt.Errorf("delivering result %s: rendering the PDF report: %w", r.ID, err)
			}
		}
		bundle, err = rfhir.BuildResultBundle(in)
	case routing.OutcomeNotApplicable:
		want = "Task"
		bundle, err = rfhir.BuildTaskBundle(in, rfhir.TaskRejected)
	case routing.OutcomeFailed:
		want = "Task"
		bundle, err = rfhir.BuildTaskBundle(in, rfhir.TaskFailed)
	default:
		return routing.Receipt{}, fmt.Errorf("delivering result %s: unknown outcome %q", r.ID, r.Outcome)
	}
	if err != nil {
		return routing.Receipt{}, fmt.Errorf("delivering result %s: %w", r.ID, err)
	}
	tr, err := s.Transaction(ctx, bundle)
	if err != nil {
		s.log.Warn("result not delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
			"transient", routing.IsTransient(err), "error", err)
		return routing.Receipt{}, fmt.Errorf("delivering result %s: %w", r.ID, err)
	}
	e, ok := tr.Find(want)
	if !ok || e.Reference == "" {
		return routing.Receipt{}, fmt.Errorf("delivering result %s: the transaction response names no %s", r.ID, want)
	}
	s.log.Info("result delivered", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
		"outcome", r.Outcome, "report", e.Reference, "status", e.Status)
	if r.Outcome == routing.OutcomeScored && r.Read.Wanted(r.Tier) {
		if err := s.requestRead(ctx, r, in, e.Reference); err != nil {
			return routing.Receipt{}, err
		}
	}
	return routing.Receipt{Report: e.Reference}, nil
}

// requestRead writes the route's radiologist read request: a Task for the
// reading group with the report as focus and input. It is a conditional
// create of its own (after the report, which it points at), so a retry after
// a failure here finds the report written and adds the Task once.
func (s *Sink) requestRead(ctx context.Context, r routing.Result, in rfhir.ResultInput, report string) error {
	bundle, err := rfhir.BuildReadTaskBundle(in, rfhir.ReadRequest{
		Owner: r.Read.Group, OwnerDisplay: r.Read.GroupDisplay, Report: report, Priority: r.Order.Priority, OrderID: r.Order.ID,
	})
	if err != nil {
		return fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	tr, err := s.Transaction(ctx, bundle)
	if err != nil {
		s.log.Warn("read request not written", "result_id", r.ID, "order_id", r.Order.ID,
			"transient", routing.IsTransient(err), "error", err)
		return fmt.Errorf("requesting a read of result %s: %w", r.ID, err)
	}
	task, _ := tr.Find("Task")
	s.log.Info("radiologist read requested", "result_id", r.ID, "order_id", r.Order.ID, "task", task.Reference,
		"group", r.Read.Group, "tier", r.Tier)
	return nil
}

// ResultInput maps a routing.Result to the values the fhir package builds
// resources from (Issued is left zero: the builders use ScoredAt).
func ResultInput(r routing.Result) rfhir.ResultInput {
	in := rfhir.ResultInput{
		ID:                r.ID,
		ServiceRequest:    fromRoutingRef(r.Order.ServiceRequest),
		ImagingStudy:      fromRoutingRef(r.Order.ImagingStudy),
		Patient:           fromRoutingRef(r.Order.Patient),
		StudyInstanceUID:  r.StudyInstanceUID,
		SeriesInstanceUID: r.SeriesInstanceUID,
		SOPInstanceUID:    r.SOPInstanceUID,
		Engine: rfhir.Engine{
			ID: r.Engine.ID, Name: r.Engine.Name, Version: r.Engine.Version, Disclaimer: r.Engine.Disclaimer,
			Finding: rfhir.Coding{System: r.Engine.Finding.System, Code: r.Engine.Finding.Code, Display: r.Engine.Finding.Display},
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
		in.Accession = &rfhir.Identifier{System: a.System, Value: a.Value}
	}
	if in.Reason == "" && r.Outcome != routing.OutcomeScored {
		in.Reason = r.Order.Reason
	}
	return in
}

func fromRoutingRef(r *routing.Reference) *rfhir.Reference {
	if r == nil {
		return nil
	}
	out := &rfhir.Reference{Reference: r.Reference, Display: r.Display}
	if r.Identifier != nil {
		out.Identifier = &rfhir.Identifier{System: r.Identifier.System, Value: r.Identifier.Value}
	}
	return out
}
