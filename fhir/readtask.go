package fhir

import (
	"encoding/json"
	"fmt"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// SystemReadRequest is the identifier system of a radiologist-read Task; the
// value is the order id: a study is read once, however many engines scored
// it.
const SystemReadRequest = "https://radgate.dev/fhir/sid/read-request"

// CodeRadiologistRead is the CodeSystemRadgate code of a read-request Task.
const CodeRadiologistRead = "radiologist-read"

// ReadRequest asks a reading group for a radiologist's read of a result.
type ReadRequest struct {
	// Owner is the reading group: a literal reference to a CareTeam,
	// Organization, PractitionerRole or HealthcareService ("CareTeam/chest").
	Owner        string
	OwnerDisplay string
	// Report is the reference of the result's DiagnosticReport on the same
	// server ("DiagnosticReport/12"), as the result transaction answered.
	Report string
	// Priority is the order's FHIR request priority (routine, urgent, asap,
	// stat); empty: routine.
	Priority string
	// OrderID is radgate's order id, the Task's identifier value.
	OrderID string
}

// readOwnerTypes are the resource types Task.owner may point at that stand
// for a group of readers.
var readOwnerTypes = []string{"CareTeam", "Organization", "PractitionerRole", "HealthcareService", "Practitioner"}

// BuildReadTaskBundle builds a transaction with one Task (status requested,
// intent order) asking the reading group for a radiologist read of a scored
// result: focus and input the DiagnosticReport, an input of type
// CodeSystemReadVerdict#engine naming the engine (SystemEngine identifier),
// basedOn the ServiceRequest,
// for the patient, owner the group. Its identifier is (SystemReadRequest,
// order id), written with a conditional create, so asking twice — or for
// each engine that scored the study — leaves one Task: the first result
// that asks for a read is its focus.
//
// The reader completes it (status completed) with outputs stating the
// verdict (CodeSystemReadVerdict: agreement agree/disagree, finding
// present/absent); PUT back to radgate, or notified through the rest-hook,
// it becomes a radgate.Verdict (ParseTaskVerdict).
func BuildReadTaskBundle(in ResultInput, req ReadRequest) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	owner := strings.TrimSpace(req.Owner)
	typ, _, ok := strings.Cut(owner, "/")
	if !ok || !contains(readOwnerTypes, typ) {
		return nil, fmt.Errorf("%w: read request owner %q is not a reference to a %s", ErrInvalidResult, req.Owner, strings.Join(readOwnerTypes, ", "))
	}
	if !strings.HasPrefix(req.Report, "DiagnosticReport/") {
		return nil, fmt.Errorf("%w: read request: %q is not a DiagnosticReport reference", ErrInvalidResult, req.Report)
	}
	priority := r4.RequestPriorityRoutine
	switch strings.ToLower(req.Priority) {
	case "urgent":
		priority = r4.RequestPriorityUrgent
	case "asap":
		priority = r4.RequestPriorityAsap
	case "stat":
		priority = r4.RequestPriorityStat
	}
	_, issued := in.times()
	label := in.Engine.label()
	summary := fmt.Sprintf("Radiologist read requested: %s confidence %s %% (%s)", label, ConfidencePercent(in.Probability), in.Tier)
	if strings.TrimSpace(req.OrderID) == "" {
		return nil, fmt.Errorf("%w: read request: no order id", ErrInvalidResult)
	}
	id := Identifier{System: SystemReadRequest, Value: req.OrderID}
	report := req.Report
	ownerRef := &r4.Reference{Reference: &owner, Type: &typ}
	if req.OwnerDisplay != "" {
		ownerRef.Display = ptr(req.OwnerDisplay)
	}
	t := r4.Task{
		Identifier:  []r4.Identifier{toR4Identifier(id)},
		BasedOn:     refList(in.serviceRequestRef()),
		Status:      r4.TaskStatusRequested,
		Intent:      "order",
		Priority:    &priority,
		Code:        concept("Radiologist read", Coding{System: CodeSystemRadgate, Code: CodeRadiologistRead, Display: "Radiologist read"}),
		Description: ptr(summary + ". The AI result is decision support, not a diagnosis: " + in.Engine.Disclaimer),
		Focus:       &r4.Reference{Reference: &report, Type: ptr("DiagnosticReport")},
		For:         toR4Ref(in.Patient, "Patient"),
		AuthoredOn:  &issued,
		Owner:       ownerRef,
	}
	// r4.TaskInput writes every value[x] (no omitempty): the input is
	// written by hand.
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("writing Task: %w", err)
	}
	var task map[string]any
	if err := json.Unmarshal(raw, &task); err != nil {
		return nil, fmt.Errorf("writing Task: %w", err)
	}
	engine := EngineIdentifier(in.Engine)
	task["input"] = []any{map[string]any{
		"type":           map[string]any{"text": "AI result"},
		"valueReference": map[string]any{"reference": report, "type": "DiagnosticReport"},
	}, map[string]any{
		// The engine, so that the completed Task is a verdict on its result
		// (ParseTaskVerdict).
		"type": map[string]any{"coding": []any{map[string]any{"system": CodeSystemReadVerdict, "code": CodeVerdictEngine, "display": "AI engine"}},
			"text": "AI engine"},
		"valueIdentifier": map[string]any{"system": engine.System, "value": engine.Value},
	}}
	b := newTxBundle()
	if _, err := b.add("Task", "read-task:"+req.OrderID, id, task); err != nil {
		return nil, err
	}
	return b.marshal()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
