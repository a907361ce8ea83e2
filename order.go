package radgate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// OrderStatus is an order as radgate knows it: the merged view of every
// intake event of one study, and how far it has come. It is what
// GET /orders/{id} returns.
type OrderStatus struct {
	ID    string     `json:"id"`
	Key   string     `json:"key"`
	State OrderState `json:"state"`
	// Reason explains a rejected or failed state.
	Reason string `json:"reason,omitempty"`

	Accession        *Identifier `json:"accession,omitempty"`
	StudyInstanceUID string      `json:"study_instance_uid,omitempty"`
	ServiceRequest   *Reference  `json:"service_request,omitempty"`
	ImagingStudy     *Reference  `json:"imaging_study,omitempty"`
	Patient          *Reference  `json:"patient,omitempty"`
	ProcedureCodes   []Coding    `json:"procedure_codes,omitempty"`
	Facility         string      `json:"facility,omitempty"`
	// FacilityID is the configured facility (config.Facility) the order's
	// or study's names resolve to, set when the order is routed; "" when
	// none does.
	FacilityID string `json:"facility_id,omitempty"`
	Priority   string `json:"priority,omitempty"`
	// Age is the patient's age from the order (OrderEvent.Age: the last
	// event that gave one); the images' own ages come first.
	Age        *PatientAge `json:"age,omitempty"`
	Modalities []string    `json:"modalities,omitempty"`
	Sources    []string    `json:"sources,omitempty"`

	// Route is the route decision, made when the order is first routed.
	Route *RouteDecision `json:"route,omitempty"`

	// Engines holds each engine's progress on this order.
	Engines map[string]EngineProgress `json:"engines,omitempty"`
	// Study is what radgate last observed of the order's study in the
	// PACS (nil: not looked yet).
	Study *StudyObservation `json:"study,omitempty"`
	// WaitUntil is when an order waiting for its study is answered failed
	// (orders.wait, by priority, facility and procedure code).
	WaitUntil time.Time `json:"wait_until,omitzero"`
	// Cancelled is set once the source cancelled the order.
	Cancelled *Cancellation `json:"cancelled,omitempty"`

	// ReplayOf is the dead-letter sequence of the last replayed message
	// (radgate dlq replay) that re-opened this order.
	ReplayOf string `json:"replay_of,omitempty"`

	ReceivedAt time.Time `json:"received_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// StudyObservation is what radgate saw of a study in the PACS.
type StudyObservation struct {
	// Instances is the instance count last seen; Since is when radgate
	// first saw that count (the study is stable once Since is
	// orders.stable_after ago), LastSeen when it last looked.
	Instances int       `json:"instances"`
	Since     time.Time `json:"since"`
	LastSeen  time.Time `json:"last_seen"`
	// Complete: an intake event announced the study complete with
	// Announced instances (0: count not announced).
	Complete  bool `json:"complete,omitempty"`
	Announced int  `json:"announced,omitempty"`
	// Scored is the instance count the current results were scored on.
	Scored int `json:"scored,omitempty"`
	// Settling: radgate waits for this count to hold for
	// orders.stable_after before scoring (the order is stabilising).
	Settling bool `json:"settling,omitempty"`
}

// Cancellation records an order's cancellation.
type Cancellation struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Reason string    `json:"reason"`
}

// EngineProgress is one engine's progress on an order.
type EngineProgress struct {
	State OrderState `json:"state"`
	// Revision is the result revision this progress is about (1 the
	// first; images added later make the next).
	Revision    int      `json:"revision,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Probability *float64 `json:"probability,omitempty"`
	Tier        string   `json:"tier,omitempty"`
	Report      string   `json:"report,omitempty"`
	// Mode is the engine's mode when its result was withheld from every
	// destination (EngineShadow, EngineSuspended; see RouteDecision); ""
	// when delivered as usual.
	Mode EngineMode `json:"mode,omitempty"`
	// Deliveries is the progress at each destination of the engine's result.
	Deliveries map[string]DeliveryProgress `json:"deliveries,omitempty"`

	// What the result of Revision said beside its score, as Result has it
	// (set when it is published or withheld): the caveats it is read with,
	// every image offered (scored, or skipped with why), and whether the
	// region is marked. HeatmapObject and PreviewObject name its pictures
	// in the heatmap object store ("" when none was drawn: shadow,
	// not scored, or no destination shows one).
	Caveats       []string    `json:"caveats,omitempty"`
	Images        []ImageNote `json:"images,omitempty"`
	Marked        bool        `json:"marked,omitempty"`
	HeatmapObject string      `json:"heatmap_object,omitempty"`
	PreviewObject string      `json:"preview_object,omitempty"`
}

// DeliveryProgress is one destination's progress on one engine's result.
type DeliveryProgress struct {
	State OrderState `json:"state"`
	// Revision is the result revision the destination holds (delivered)
	// or is being sent; Retracted is set once a retraction was written.
	Revision  int    `json:"revision,omitempty"`
	Retracted bool   `json:"retracted,omitempty"`
	Report    string `json:"report,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// DeliveredRevision is the latest revision the destination holds (0:
	// none); a cancellation retracts it.
	DeliveredRevision int `json:"delivered_revision,omitempty"`
	// Objects is what the destination holds of the delivered revision
	// (Receipt.Objects): its FHIR resources or DICOM objects.
	Objects []DeliveredObject `json:"objects,omitempty"`
}

// DeliveredObject is one thing a destination wrote for a result.
type DeliveredObject struct {
	// Kind is the FHIR resource type (DiagnosticReport, Observation,
	// Media, Task) or the DICOM object's kind (SC, SR, PDF, PM).
	Kind string `json:"kind"`
	// Ref is the FHIR reference ("Observation/12"), or the DICOM object's
	// DICOMweb path relative to the archive's base
	// ("studies/<study>/series/<series>/instances/<sop>").
	Ref string `json:"ref"`
	// UID is a DICOM object's SOP Instance UID.
	UID string `json:"uid,omitempty"`
}

// OrderKey is the stable key of the order an event belongs to: the accession
// number with its system when present, else the Study Instance UID.
func OrderKey(ev OrderEvent) (string, error) {
	if ev.Accession != nil && strings.TrimSpace(ev.Accession.Value) != "" {
		return "acsn|" + strings.TrimSpace(ev.Accession.System) + "|" + strings.TrimSpace(ev.Accession.Value), nil
	}
	if uid := StripUIDPrefix(ev.StudyInstanceUID); uid != "" {
		return "study|" + uid, nil
	}
	return "", fmt.Errorf("%w: no accession number and no Study Instance UID", ErrInvalidOrder)
}

// OrderID derives the public order id from an order key: stable, URL-safe,
// and free of patient data.
func OrderID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// Priority classes: the stages keep one queue per class and urgent work
// never waits behind routine work.
const (
	PriorityRoutine = "routine"
	PriorityUrgent  = "urgent"
)

// PriorityClass reduces a source's priority to PriorityUrgent (FHIR stat,
// asap, urgent; HL7 Table 0027 S stat, A ASAP, T timing critical) or
// PriorityRoutine (anything else, none included).
func PriorityClass(p string) string {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "stat", "asap", "urgent", "s", "a", "t":
		return PriorityUrgent
	}
	return PriorityRoutine
}

// StripUIDPrefix removes the "urn:oid:" prefix FHIR puts on DICOM UIDs.
func StripUIDPrefix(uid string) string {
	return strings.TrimPrefix(strings.TrimSpace(uid), "urn:oid:")
}
