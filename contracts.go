package radgate

import (
	"context"
	"errors"
	"time"
)

// Identifier is a FHIR-style business identifier.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Reference points at a resource on the EHR's FHIR server: literally
// ("ServiceRequest/123", or an absolute URL) when the resource has an id
// there, else by business identifier.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// IsZero reports whether r points at nothing.
func (r *Reference) IsZero() bool {
	return r == nil || (r.Reference == "" && (r.Identifier == nil || r.Identifier.Value == ""))
}

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// OrderEvent is one intake message's view of an order: a FHIR ServiceRequest
// or ImagingStudy (or, later, an HL7 v2 ORM/OMI). Several events of one study
// merge into one order (see OrderKey).
type OrderEvent struct {
	// Source names the adapter that produced the event ("fhir", "hl7v2").
	Source string `json:"source"`
	// ResourceType is the intake resource ("ServiceRequest", "ImagingStudy").
	ResourceType string `json:"resource_type"`
	// ReceivedAt is when intake accepted the event.
	ReceivedAt time.Time `json:"received_at"`

	// Accession is the accession number with its assigning system.
	Accession *Identifier `json:"accession,omitempty"`
	// StudyInstanceUID is the DICOM study UID, without any "urn:oid:" prefix.
	StudyInstanceUID string `json:"study_instance_uid,omitempty"`

	ServiceRequest *Reference `json:"service_request,omitempty"`
	ImagingStudy   *Reference `json:"imaging_study,omitempty"`
	// BasedOn lists the ServiceRequests an ImagingStudy fulfils.
	BasedOn []Reference `json:"based_on,omitempty"`
	Patient *Reference  `json:"patient,omitempty"`

	// ProcedureCodes are ServiceRequest.code / ImagingStudy.procedureCode.
	ProcedureCodes []Coding `json:"procedure_codes,omitempty"`
	// Modalities are the modalities the order or study names (CR, DX, …).
	Modalities []string `json:"modalities,omitempty"`
	// Facility is the ordering or performing organisation, when known.
	Facility string `json:"facility,omitempty"`
	Priority string `json:"priority,omitempty"`
}

// OrderState is where an order stands.
type OrderState string

// Order states, in the order an order passes through them. Failed and
// Rejected are terminal alongside Delivered.
const (
	StateReceived OrderState = "received"
	StateRouted   OrderState = "routed"
	// StateScored: the engine's result — a score, or the reason there is
	// none — is ready and awaits delivery.
	StateScored    OrderState = "scored"
	StateDelivered OrderState = "delivered"
	// StateRejected: the study is not something any engine may score (not a
	// chest radiograph, say). The order is answered with the reason.
	StateRejected OrderState = "rejected"
	// StateFailed: the order could not be completed (study never arrived,
	// undecodable images, a destination refused the result).
	StateFailed OrderState = "failed"
)

// Terminal reports whether no further stage will change s.
func (s OrderState) Terminal() bool {
	return s == StateDelivered || s == StateRejected || s == StateFailed
}

// Sentinel errors shared by the stages and the adapters.
var (
	// ErrOrderNotFound is returned by Intake.Status for an unknown order id.
	ErrOrderNotFound = errors.New("order not found")
	// ErrStudyNotFound is returned by a StudySource when the study is not (yet)
	// in the archive. The router retries it for the configured window.
	ErrStudyNotFound = errors.New("study not found in the archive")
	// ErrInvalidOrder wraps an intake event that cannot become an order (no
	// accession number and no study UID, say).
	ErrInvalidOrder = errors.New("invalid order")
)

// TransientError marks a failure worth retrying later: HTTP 429/5xx,
// timeouts, refused connections. Anything else is treated as permanent.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Transient wraps err as a TransientError (nil stays nil).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// IsTransient reports whether err, or anything it wraps, is a TransientError.
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// Intake is what an intake adapter hands orders to. Accept returns only once
// the event is durably stored (published to JetStream and acknowledged), so an
// adapter may answer its client 202 as soon as Accept returns nil.
type Intake interface {
	// Accept records ev and returns the order it belongs to. It wraps
	// ErrInvalidOrder when ev cannot become an order.
	Accept(ctx context.Context, ev OrderEvent) (OrderStatus, error)
	// Status returns the current state of an order, or ErrOrderNotFound.
	Status(ctx context.Context, orderID string) (OrderStatus, error)
}

// StudyQuery finds a study by UID or, when the UID is not known, by
// accession number.
type StudyQuery struct {
	StudyInstanceUID string
	AccessionNumber  string
}

// Study is what the archive holds for a study, at series and instance level.
type Study struct {
	StudyInstanceUID string `json:"study_instance_uid"`
	AccessionNumber  string `json:"accession_number,omitempty"`
	// InstitutionName is the study's DICOM Institution Name (0008,0080).
	InstitutionName string   `json:"institution_name,omitempty"`
	Series          []Series `json:"series"`
}

// Series is one series of a study.
type Series struct {
	SeriesInstanceUID string     `json:"series_instance_uid"`
	Modality          string     `json:"modality"`
	BodyPartExamined  string     `json:"body_part_examined,omitempty"`
	Instances         []Instance `json:"instances"`
}

// Instance is one stored image.
type Instance struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	SOPClassUID    string `json:"sop_class_uid,omitempty"`
}

// StudySource is an image archive (a PACS over DICOMweb).
//
// FindStudy returns ErrStudyNotFound (wrapped) when the study is absent;
// errors worth retrying are wrapped with Transient. RetrieveInstance returns
// the Part 10 file exactly as stored (no transcoding).
type StudySource interface {
	FindStudy(ctx context.Context, q StudyQuery) (*Study, error)
	RetrieveInstance(ctx context.Context, studyUID, seriesUID, sopInstanceUID string) ([]byte, error)
}

// Outcome says what became of one order × engine.
type Outcome string

// Outcomes a Result can carry.
const (
	// OutcomeScored: the engine produced a probability.
	OutcomeScored Outcome = "scored"
	// OutcomeNotApplicable: the study holds nothing the engine may score.
	OutcomeNotApplicable Outcome = "not-applicable"
	// OutcomeFailed: the order could not be scored (reason says why).
	OutcomeFailed Outcome = "failed"
)

// EngineInfo describes the engine that produced a result.
type EngineInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	Disclaimer string `json:"disclaimer"`
	// Finding is the coded finding the engine scores (SNOMED CT 233604007).
	Finding Coding `json:"finding"`
}

// Result is one order × engine outcome, handed to every destination sink.
type Result struct {
	// ID is deterministic per order × engine × model version, so a
	// redelivered result is recognised downstream.
	ID      string      `json:"id"`
	Order   OrderStatus `json:"order"`
	Engine  EngineInfo  `json:"engine"`
	Outcome Outcome     `json:"outcome"`
	// Reason explains a not-applicable or failed outcome.
	Reason string `json:"reason,omitempty"`

	Probability float64 `json:"probability"`
	Tier        string  `json:"tier,omitempty"`
	Marked      bool    `json:"marked"`

	StudyInstanceUID  string `json:"study_instance_uid,omitempty"`
	SeriesInstanceUID string `json:"series_instance_uid,omitempty"`
	SOPInstanceUID    string `json:"sop_instance_uid,omitempty"`

	// HeatmapPNG is set when Marked; it travels through the object store,
	// not inside the message (HeatmapObject names it there).
	HeatmapPNG    []byte `json:"-"`
	HeatmapObject string `json:"heatmap_object,omitempty"`
	HeatmapWidth  int    `json:"heatmap_width,omitempty"`
	HeatmapHeight int    `json:"heatmap_height,omitempty"`
	// CAM is the class activation map behind the heatmap (set when
	// Marked): a PACS destination may store it as a Parametric Map.
	CAM *CAM `json:"cam,omitempty"`

	ScoredAt time.Time `json:"scored_at"`

	// Destination is the destination this copy of the result is for;
	// Destinations lists every destination of the order × engine.
	Destination  string   `json:"destination,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	// Read, when set, is the route's radiologist read request; a FHIR
	// destination writes the read Task when Read.Wanted(Tier).
	Read *ReadRequest `json:"read,omitempty"`
}

// CAM is an engine's class activation map and where it lies on the scored
// image: Values (row-major, Width × Height, as the engine output them)
// cover the Crop rectangle [X0,X1) × [Y0,Y1) of the SourceWidth ×
// SourceHeight image, in source pixels.
type CAM struct {
	Values       []float32 `json:"values"`
	Width        int       `json:"width"`
	Height       int       `json:"height"`
	X0           int       `json:"x0"`
	Y0           int       `json:"y0"`
	X1           int       `json:"x1"`
	Y1           int       `json:"y1"`
	SourceWidth  int       `json:"source_width"`
	SourceHeight int       `json:"source_height"`
}

// Receipt is what a sink reports after a durable write.
type Receipt struct {
	// Report is the reference of the written report ("DiagnosticReport/12").
	Report string `json:"report,omitempty"`
}

// Sink is a result destination (a FHIR server, later a PACS or a RIS).
//
// Deliver returns only once the write is durable at the destination, and it
// must be idempotent: delivering the same Result.ID twice leaves one report.
// Errors worth retrying are wrapped with Transient; anything else terminates
// the delivery with the error as the reason.
type Sink interface {
	Deliver(ctx context.Context, r Result) (Receipt, error)
}

// PublicError is implemented by errors that have a wording for the people
// an order's answer reaches (the EHR's Task, GET /orders/{id}, the RIS):
// what happened, without internals — no URL paths, no peer's own error
// text, which may quote patient data. The full error goes to the log.
type PublicError interface {
	error
	Public() string
}

// Public returns the wording of the first error in err's chain that has
// one (PublicError), else err's own text.
func Public(err error) string {
	if err == nil {
		return ""
	}
	var pe PublicError
	if errors.As(err, &pe) {
		return pe.Public()
	}
	return err.Error()
}
