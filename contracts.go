package radgate

import (
	"context"
	"errors"
	"strings"
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
	// Priority is the order's priority as the source spelled it (FHIR
	// routine/urgent/asap/stat; HL7 Table 0027 S/A/R/…); PriorityClass
	// reduces it to the two classes the stages schedule by.
	Priority string `json:"priority,omitempty"`
	// Age is the patient's age the order gives (FHIR Patient.birthDate,
	// HL7 PID-7), taken at the study's date when the event has one, else
	// at the order's; never the birth date. It stands in for an image
	// header without an age when an engine's intended use has an age range.
	Age *PatientAge `json:"age,omitempty"`

	// Action is what the event asks of its order: place or update it (the
	// zero value), or cancel it.
	Action OrderAction `json:"action,omitempty"`
	// Reason says what the source said, for a cancellation: "FHIR
	// ServiceRequest status revoked", "HL7 ORC-1 CA". Identifiers only.
	Reason string `json:"reason,omitempty"`
	// StudyComplete is set when the event announces the study complete
	// (a FHIR ImagingStudy with status available, an HL7 ORC-5 CM);
	// InstanceCount is the number of instances it announces (0: unknown).
	// A study found with at least that many instances is scored without
	// waiting for orders.stable_after.
	StudyComplete bool `json:"study_complete,omitempty"`
	InstanceCount int  `json:"instance_count,omitempty"`
	// EventID is the source's own name for this event, when it has no
	// resource reference (a DICOM association that pushed images of the
	// study: "dimse/<association id>"): two events with the same EventID
	// are one (JetStream's duplicate window), different ones are not.
	EventID string `json:"event_id,omitempty"`
}

// SourceDIMSE is the OrderEvent.Source of a study pushed to radgate's
// Storage SCP (DICOM C-STORE): an order made by images, not by an EHR or
// RIS.
const SourceDIMSE = "dimse"

// OrderAction is what an intake event asks of its order.
type OrderAction string

// Order actions.
const (
	// ActionOrder places or updates the order (the zero value).
	ActionOrder OrderAction = ""
	// ActionCancel cancels it: FHIR ServiceRequest status revoked or
	// entered-in-error, HL7 ORC-1 CA, DC or OC. Work not yet delivered
	// stops; results already delivered are retracted.
	ActionCancel OrderAction = "cancel"
)

// OrderState is where an order stands. The states and the transitions
// between them are the table Transitions (lifecycle.go).
type OrderState string

// Order states. Delivered, Rejected, Failed and Cancelled are terminal;
// new facts re-open Delivered and Rejected (images added: the study is
// scored again) and Failed (the images came after all, or a replay).
const (
	// StateReceived: an intake event created the order.
	StateReceived OrderState = "received"
	// StateWaiting: the study is not in the PACS yet; radgate learns of
	// it from events and slow polling, holding no consumer slot.
	StateWaiting OrderState = "waiting"
	// StateStabilising: the study is there and radgate waits until its
	// instance count has not changed for orders.stable_after.
	StateStabilising OrderState = "stabilising"
	StateRouted      OrderState = "routed"
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
	// StateRetracting: the order was cancelled after a result was
	// delivered; the retractions are on their way.
	StateRetracting OrderState = "retracting"
	// StateCancelled: the order was cancelled; nothing more is done and
	// whatever had been delivered is retracted.
	StateCancelled OrderState = "cancelled"
	// StateSuperseded is the state of an engine's earlier result revision
	// once an amended one replaced it (in the order's history).
	StateSuperseded OrderState = "superseded"
)

// Terminal reports whether no stage will change s without a new fact.
func (s OrderState) Terminal() bool {
	return s == StateDelivered || s == StateRejected || s == StateFailed || s == StateCancelled
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
	// ErrUnknownOrder is returned by Intake.Accept for a cancellation of an
	// order radgate never received: the intake answers it as the client's
	// error (FHIR 404 OperationOutcome, HL7 AE) naming the order.
	ErrUnknownOrder = errors.New("no such order")
	// ErrOrderCancelled is returned by Intake.Accept for an event that
	// would amend an order already cancelled (the intake answers 409 / AE
	// with the reason).
	ErrOrderCancelled = errors.New("order cancelled")
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

// HistoryReader is implemented by an Intake that keeps each order's
// history (the pipeline does): every state change, oldest first.
type HistoryReader interface {
	History(ctx context.Context, orderID string) ([]HistoryEntry, error)
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
	// LastArrival is when the last of its instances reached radgate, for a
	// study pushed to radgate (DIMSE C-STORE); zero for a study in a PACS,
	// whose arrival times radgate does not know. The stability rule
	// (orders.stable_after) counts from it.
	LastArrival time.Time `json:"last_arrival,omitzero"`
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
	// ViewPosition is View Position (0018,5101): PA, AP, LL, RL, …
	ViewPosition string `json:"view_position,omitempty"`
	// ViewCode is the first item of View Code Sequence (0054,0220), read
	// when View Position is empty (SNOMED CT 399348003 postero-anterior,
	// 272479001 antero-posterior, …).
	ViewCode *Coding `json:"view_code,omitempty"`
}

// InstanceCount is the number of instances the study holds.
func (s *Study) InstanceCount() int {
	n := 0
	for _, se := range s.Series {
		n += len(se.Instances)
	}
	return n
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
	// OutOfScope, on a scored result, says why the study is outside the
	// engine's intended use: it was scored only because the engine is in
	// shadow on the order's route (RouteDecision.Shadow), to be measured on
	// the facility's own population; such a result is never delivered.
	OutOfScope string `json:"out_of_scope,omitempty"`

	StudyInstanceUID  string `json:"study_instance_uid,omitempty"`
	SeriesInstanceUID string `json:"series_instance_uid,omitempty"`
	SOPInstanceUID    string `json:"sop_instance_uid,omitempty"`
	// Input describes the scored image for live monitoring's input mix
	// (governance records it with the score); nil when none was scored.
	Input *InputMix `json:"input,omitempty"`

	// HeatmapPNG is the heatmap overlay at the scored image's resolution
	// (a DICOM Secondary Capture stores it). It is drawn when Marked and a
	// destination shows it (PictureHeatmap), and travels through the
	// object store, not inside the message (HeatmapObject names it there).
	HeatmapPNG    []byte `json:"-"`
	HeatmapObject string `json:"heatmap_object,omitempty"`
	HeatmapWidth  int    `json:"heatmap_width,omitempty"`
	HeatmapHeight int    `json:"heatmap_height,omitempty"`
	// Preview is the JPEG a clinician sees beside the score, a few hundred
	// pixels across (a FHIR Media, the PDF report): the heatmap overlay when
	// Marked (PicturePreview), else the radiograph as scored
	// (PictureThumbnail). Drawn when a destination shows it; it travels
	// like HeatmapPNG (PreviewObject).
	Preview       []byte `json:"-"`
	PreviewObject string `json:"preview_object,omitempty"`
	PreviewWidth  int    `json:"preview_width,omitempty"`
	PreviewHeight int    `json:"preview_height,omitempty"`
	// CAM is the class activation map behind the heatmap (set when
	// Marked): a PACS destination may store it as a Parametric Map.
	CAM *CAM `json:"cam,omitempty"`

	ScoredAt time.Time `json:"scored_at"`

	// Revision numbers the results of one order × engine: 1 is the first;
	// each re-score after images were added to the study is the next.
	// Sinks put it into derived UIDs, identifiers and message control ids,
	// so revisions never collide; the Result ID stays the same.
	Revision int `json:"revision,omitempty"`
	// Status says what this copy does at the destination: the first
	// result (final), one that replaces revision Revision-1 (amended), or
	// the withdrawal of revision Revision (retracted, RetractReason says
	// why). The zero value is final.
	Status ResultStatus `json:"status,omitempty"`
	// RetractReason says why a result is retracted ("order cancelled:
	// FHIR ServiceRequest status revoked"). Identifiers only.
	RetractReason string `json:"retract_reason,omitempty"`
	// Caveats are what the score must be read with, written into every
	// output beside it (FHIR Observation note and DiagnosticReport
	// conclusion, PDF, SR, ORU NTE): "patient age unknown: engine x's
	// intended use is 1–5 y (accepts.age_years); the result was not
	// checked against it".
	Caveats []string `json:"caveats,omitempty"`
	// Images lists every image of the study the engine was offered:
	// scored, or skipped with the reason (a lateral view, an engine's
	// minimum matrix).
	Images []ImageNote `json:"images,omitempty"`

	// Destination is the destination this copy of the result is for;
	// Destinations lists every destination of the order × engine.
	Destination  string   `json:"destination,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	// Read, when set, is the route's radiologist read request; a FHIR
	// destination writes the read Task when Read.Wanted(Tier).
	Read *ReadRequest `json:"read,omitempty"`
}

// ResultStatus is what a result copy does at its destination.
type ResultStatus string

// Result statuses.
const (
	ResultFinal     ResultStatus = "final"
	ResultAmended   ResultStatus = "amended"
	ResultRetracted ResultStatus = "retracted"
)

// EffectiveRevision is r.Revision, or 1 for a result without one.
func (r *Result) EffectiveRevision() int { return max(r.Revision, 1) }

// ImageNote is one image a result considered.
type ImageNote struct {
	SeriesInstanceUID string `json:"series_instance_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	// View is the view position the image declares ("PA", "LL"; "" when
	// none).
	View   string `json:"view,omitempty"`
	Scored bool   `json:"scored"`
	// Reason says why an image was not scored.
	Reason string `json:"reason,omitempty"`
}

// ScoredImages counts the images of a result that were scored.
func ScoredImages(images []ImageNote) int {
	n := 0
	for _, im := range images {
		if im.Scored {
			n++
		}
	}
	return n
}

// Skipped describes an image that was not scored, in one line of
// identifiers only: "1.2.3.4 (view LL): view LL is outside engine …'s
// intended use: PA/AP (views)". Every output that lists skipped images (FHIR conclusion, ORU
// NTE, SR, PDF) words them so.
func (im ImageNote) Skipped() string {
	s := im.SOPInstanceUID
	if im.View != "" {
		s += " (view " + im.View + ")"
	}
	reason := strings.TrimSpace(im.Reason)
	if reason == "" {
		reason = "no reason given"
	}
	return s + ": " + reason
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
	// Objects lists what the write left at the destination, the report
	// among them (nil when the sink does not say).
	Objects []DeliveredObject `json:"objects,omitempty"`
}

// Sink is a result destination (a FHIR server, later a PACS or a RIS).
//
// Deliver returns only once the write is durable at the destination, and it
// must be idempotent: delivering the same Result.ID, Revision and Status
// twice leaves one report. Status says what to do: write the first result
// (final); replace revision Revision-1 with this one (amended: the report
// is corrected in place where the destination keeps reports, and the
// superseded objects are rejected where it keeps objects); or withdraw
// revision Revision (retracted: the report is marked entered in error, a
// RIS gets a "wrong" correction, a PACS an IOCM rejection note).
// Errors worth retrying are wrapped with Transient; anything else terminates
// the delivery with the error as the reason.
type Sink interface {
	Deliver(ctx context.Context, r Result) (Receipt, error)
}

// Pictures are the drawings of a result a destination shows, as flags.
type Pictures uint8

// The pictures of a result. Each is drawn once per result, from the image
// in memory, only when a destination of the order shows it.
const (
	// PictureHeatmap: the heatmap overlay at the image's resolution, as a
	// lossless PNG (Result.HeatmapPNG; marked results only).
	PictureHeatmap Pictures = 1 << iota
	// PicturePreview: the heatmap overlay as a small JPEG (Result.Preview;
	// marked results only).
	PicturePreview
	// PictureThumbnail: the radiograph as scored, as a small grey JPEG
	// (Result.Preview of a result that is not marked).
	PictureThumbnail

	// AllPictures is what a Sink that does not say (PictureUser) gets.
	AllPictures = PictureHeatmap | PicturePreview | PictureThumbnail
)

// PictureUser is implemented by a Sink that says which pictures it shows,
// so that the inference stage draws no picture nobody shows. A Sink that
// does not implement it gets AllPictures.
type PictureUser interface {
	Pictures() Pictures
}

// PicturesOf is what s shows.
func PicturesOf(s Sink) Pictures {
	if u, ok := s.(PictureUser); ok {
		return u.Pictures()
	}
	return AllPictures
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

// InputMix is what live monitoring counts of a scored image: its modality,
// its manufacturer and the patient's age its header gives (nil when none).
// Age is not serialised: governance reads it in the process that scored
// the image and keeps only its band.
type InputMix struct {
	Modality     string      `json:"modality,omitempty"`
	Manufacturer string      `json:"manufacturer,omitempty"`
	Age          *PatientAge `json:"-"`
}
