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
	FacilityID string   `json:"facility_id,omitempty"`
	Priority   string   `json:"priority,omitempty"`
	Modalities []string `json:"modalities,omitempty"`
	Sources    []string `json:"sources,omitempty"`

	// Route is the route decision, made when the order is first routed.
	Route *RouteDecision `json:"route,omitempty"`

	// Engines holds each engine's progress on this order.
	Engines map[string]EngineProgress `json:"engines,omitempty"`
	// ReplayOf is the dead-letter sequence of the last replayed message
	// (radgate dlq replay) that re-opened this order.
	ReplayOf string `json:"replay_of,omitempty"`

	ReceivedAt time.Time `json:"received_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// EngineProgress is one engine's progress on an order.
type EngineProgress struct {
	State       OrderState `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Probability *float64   `json:"probability,omitempty"`
	Tier        string     `json:"tier,omitempty"`
	Report      string     `json:"report,omitempty"`
	// Deliveries is the progress at each destination of the engine's result.
	Deliveries map[string]DeliveryProgress `json:"deliveries,omitempty"`
}

// DeliveryProgress is one destination's progress on one engine's result.
type DeliveryProgress struct {
	State  OrderState `json:"state"`
	Report string     `json:"report,omitempty"`
	Reason string     `json:"reason,omitempty"`
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

// StripUIDPrefix removes the "urn:oid:" prefix FHIR puts on DICOM UIDs.
func StripUIDPrefix(uid string) string {
	return strings.TrimPrefix(strings.TrimSpace(uid), "urn:oid:")
}
