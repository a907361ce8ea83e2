package radgate

import (
	"context"
	"errors"
	"time"
)

// A Verdict is a radiologist's read of a study an engine scored, as it came
// back from the reporting side: a final FHIR DiagnosticReport with a coded
// conclusion (SourceFHIR), an ORU^R01 from the RIS with a coded OBX
// (SourceHL7v2), or radgate's read Task completed with the reader's verdict
// on the AI result (SourceTask). An intake turns what it received into a
// Verdict and hands it to a VerdictRecorder; it never guesses a label from
// free text.
type Verdict struct {
	// Source is the intake it came through: SourceFHIR, SourceHL7v2 or
	// SourceTask.
	Source string `json:"source"`
	// ReadID identifies the read at its source (the DiagnosticReport's id,
	// the ORU's filler order number or, failing that, its message control
	// id, the Task's id). A second verdict with the same Source and ReadID
	// replaces the first; the first is kept in the label's history.
	ReadID string `json:"read_id"`
	// ReceivedAt is when radgate received it.
	ReceivedAt time.Time `json:"received_at"`

	// Which AI result it is about: the order by accession number (with its
	// system when the source has one) or Study Instance UID, and, for a
	// Task verdict, the AI result (OrderID and Engine from the Task's
	// focus). Engine "" means every engine that scored the order.
	Accession        *Identifier `json:"accession,omitempty"`
	StudyInstanceUID string      `json:"study_instance_uid,omitempty"`
	OrderID          string      `json:"order_id,omitempty"`
	Engine           string      `json:"engine,omitempty"`

	// Finding is what the reader concluded about the engine's finding:
	// FindingPresent, FindingAbsent, or FindingUnlabelled when only free
	// text came (stored and counted as unlabelled, never guessed).
	Finding string `json:"finding"`
	// Agreement is the reader's verdict on the AI result itself, when the
	// source states one (a read Task): AgreementAgree, AgreementDisagree,
	// or "".
	Agreement string `json:"agreement,omitempty"`
	// Code is the coded conclusion as received (nil for free text only).
	Code *Coding `json:"code,omitempty"`
	// Reader is the radiologist (a Practitioner reference, or the HL7
	// responsible observer as an identifier); never a patient.
	Reader *Reference `json:"reader,omitempty"`
	// Text is the free-text conclusion when one came; it is stored with the
	// label and never logged.
	Text string `json:"text,omitempty"`
}

// Verdict sources.
const (
	SourceFHIR  = "fhir"
	SourceHL7v2 = "hl7v2"
	SourceTask  = "task"
)

// Verdict findings.
const (
	FindingPresent    = "present"
	FindingAbsent     = "absent"
	FindingUnlabelled = "unlabelled"
)

// Verdict agreements.
const (
	AgreementAgree    = "agree"
	AgreementDisagree = "disagree"
)

// VerdictReceipt says what a recorded verdict became.
type VerdictReceipt struct {
	// OrderID is the order it was matched to; Engines the engines whose
	// results it labels.
	OrderID string   `json:"order_id"`
	Engines []string `json:"engines"`
	// Replaced: an earlier verdict with the same Source and ReadID was
	// replaced (kept in the history).
	Replaced bool `json:"replaced,omitempty"`
	// Duplicate: the same verdict was already recorded (a retried
	// delivery); nothing changed and nothing was counted again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// VerdictRecorder stores verdicts as labels of the AI results they are
// about. Record returns only once the label is durable, so an intake may
// acknowledge its sender as soon as it returns nil.
type VerdictRecorder interface {
	// Record matches v to the AI result(s) it is about and stores it. It
	// wraps ErrUnknownResult when no scored result matches (nothing is
	// stored or counted) and ErrInvalidVerdict when v itself is wrong;
	// other errors are transient (the sender should retry).
	Record(ctx context.Context, v Verdict) (VerdictReceipt, error)
}

var (
	// ErrUnknownResult: a verdict names no AI result radgate has scored
	// (an unknown accession, an order not scored yet, an unknown engine).
	ErrUnknownResult = errors.New("no AI result for this verdict")
	// ErrInvalidVerdict: a verdict is malformed (no read id, an unknown
	// finding value, neither accession nor study nor order).
	ErrInvalidVerdict = errors.New("invalid verdict")
)
