package fhir

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// EngineStateChange is a change of an engine's mode (shadow, active,
// suspended) on a route at a facility, as an AuditEvent records it.
type EngineStateChange struct {
	// ID identifies the change (deterministic: the same change written
	// twice is one AuditEvent).
	ID                               string
	Facility, Route, Engine, Version string
	From, To                         string
	// By is who changed it (an authenticated caller's name); Why their
	// reason.
	By, Why string
	At      time.Time
	// Evidence is the evaluation an activation rests on, as figures in
	// words, one per line ("AUC 0.91 (95 % CI 0.86–0.95): lower bound …").
	Evidence []string
	// EvidenceJSON is the evaluation as recorded (kept in the entity's
	// detail); nil: none.
	EvidenceJSON []byte
}

// System of the AuditEvent subtype of an engine state change: its code is
// the new mode.
const SystemEngineState = "urn:radgate:engine-state"

// EngineStateAuditEvent builds the AuditEvent of an engine state change:
// type DICOM 110100 Application Activity, subtype the new mode, action U,
// the caller as the requesting agent, radgate as the source, and the
// engine (its identifier and version) as the entity, with the evidence.
// It carries no patient data.
func EngineStateAuditEvent(c EngineStateChange) ([]byte, error) {
	if c.Engine == "" || c.To == "" || c.By == "" {
		return nil, fmt.Errorf("an engine state AuditEvent needs the engine, the new mode and who changed it")
	}
	desc := fmt.Sprintf("engine %s version %s on route %s at facility %q: %s → %s by %s", c.Engine, c.Version, c.Route, c.Facility,
		orNone(c.From), c.To, c.By)
	if c.Why != "" {
		desc += ": " + c.Why
	}
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	type detail struct {
		Type        string `json:"type"`
		ValueString string `json:"valueString"`
	}
	entity := map[string]any{
		"what": map[string]any{"identifier": map[string]string{"system": "urn:radgate:engine", "value": c.Engine},
			"display": c.Engine + " " + c.Version},
		"type":        coding{System: "http://terminology.hl7.org/CodeSystem/audit-entity-type", Code: "2", Display: "System Object"},
		"name":        c.Engine + " " + c.Version,
		"description": fmt.Sprintf("route %s, facility %q", c.Route, c.Facility),
	}
	var details []detail
	if len(c.Evidence) > 0 {
		details = append(details, detail{Type: "evidence", ValueString: strings.Join(c.Evidence, "\n")})
	}
	if len(c.EvidenceJSON) > 0 {
		details = append(details, detail{Type: "evaluation", ValueString: string(c.EvidenceJSON)})
	}
	if len(details) > 0 {
		entity["detail"] = details
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         coding{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110100", Display: "Application Activity"},
		"subtype":      []coding{{System: SystemEngineState, Code: c.To, Display: "engine " + c.To}},
		"action":       "U",
		"recorded":     c.At.UTC().Format(time.RFC3339Nano),
		"outcome":      "0",
		"outcomeDesc":  desc,
		"agent": []map[string]any{{
			"who":       map[string]any{"display": c.By},
			"name":      c.By,
			"requestor": true,
		}},
		"source": map[string]any{"observer": map[string]any{"display": "radgate"}},
		"entity": []map[string]any{entity},
	}
	if c.ID != "" {
		ev["id"] = c.ID
	}
	return json.Marshal(ev)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// ConsoleAction is an operator's action in the console (a dead letter
// replayed, an HL7 message re-sent) or a view of patient data, as an
// AuditEvent records it.
type ConsoleAction struct {
	// Subject is who did it (the signed-in principal's name); Roles are
	// its roles.
	Subject string
	Roles   []string
	// Kind is what was done: "dlq-replay", "hl7-resend", "phi-view", ….
	Kind string
	// Entities are what it was done to, each "<kind>/<id>" ("dlq/7",
	// "hl7-outbox/<result id>", "order/<order id>"): identifiers only.
	Entities []string
	// Outcome is "done", "partial" (some entities failed) or "failed";
	// Detail says what happened, in words, without patient data.
	Outcome, Detail string
	At              time.Time
}

// System of the AuditEvent subtype of a console action: its code is the
// action's kind. Entities' identifiers are in systems "urn:radgate:<kind>"
// (urn:radgate:dlq, urn:radgate:hl7-outbox, urn:radgate:order).
const SystemConsoleAction = "urn:radgate:console-action"

// ConsoleAuditEvent builds the AuditEvent of a console action: type DICOM
// 110100 Application Activity (110110 Patient Record, action R, for a
// "phi-view"), action E (execute) otherwise, subtype the kind in
// SystemConsoleAction, outcome 0 / 4 (partial) / 8 (failed), the subject as
// the requesting agent with its roles, radgate's console as the source, and
// one entity per identifier. It carries no patient data: the entities are
// radgate's own identifiers.
func ConsoleAuditEvent(a ConsoleAction) ([]byte, error) {
	if a.Subject == "" || a.Kind == "" || len(a.Entities) == 0 {
		return nil, fmt.Errorf("a console AuditEvent needs who acted, the kind of action and at least one entity")
	}
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	typ, action := coding{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110100", Display: "Application Activity"}, "E"
	if a.Kind == "phi-view" {
		typ, action = coding{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110110", Display: "Patient Record"}, "R"
	}
	outcome := "0"
	switch a.Outcome {
	case "partial":
		outcome = "4"
	case "failed":
		outcome = "8"
	}
	entities := make([]map[string]any, 0, len(a.Entities))
	for _, e := range a.Entities {
		kind, id, ok := strings.Cut(e, "/")
		if !ok || kind == "" || id == "" {
			return nil, fmt.Errorf("console AuditEvent entity %q: want <kind>/<id>", e)
		}
		entities = append(entities, map[string]any{
			"what": map[string]any{"identifier": map[string]string{"system": "urn:radgate:" + kind, "value": id}, "display": e},
			"type": coding{System: "http://terminology.hl7.org/CodeSystem/audit-entity-type", Code: "2", Display: "System Object"},
			"name": e,
		})
	}
	var roles []map[string]any
	for _, r := range a.Roles {
		roles = append(roles, map[string]any{"coding": []coding{{System: "urn:radgate:role", Code: r}}, "text": r})
	}
	agent := map[string]any{"who": map[string]any{"display": a.Subject}, "name": a.Subject, "requestor": true}
	if len(roles) > 0 {
		agent["role"] = roles
	}
	desc := a.Kind + " by " + a.Subject + ": " + strings.Join(a.Entities, ", ")
	if a.Detail != "" {
		desc += " — " + a.Detail
	}
	ev := map[string]any{
		"resourceType": "AuditEvent",
		"type":         typ,
		"subtype":      []coding{{System: SystemConsoleAction, Code: a.Kind, Display: "console " + a.Kind}},
		"action":       action,
		"recorded":     a.At.UTC().Format(time.RFC3339Nano),
		"outcome":      outcome,
		"outcomeDesc":  desc,
		"agent":        []map[string]any{agent},
		"source":       map[string]any{"observer": map[string]any{"display": "radgate console"}},
		"entity":       entities,
	}
	return json.Marshal(ev)
}
