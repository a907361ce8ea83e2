package fhir

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DriftAlert is a live-monitoring alert on an engine at a facility, as a
// Flag records it.
type DriftAlert struct {
	// ID identifies the alert (deterministic: the same alert written twice
	// is one Flag).
	ID                               string
	Facility, Route, Engine, Version string
	// Rule is the rule that fired (disagreement, psi); Text the figures
	// against it in words.
	Rule, Text string
	// Suspended: the route's auto_suspend suspended the engine.
	Suspended bool
	At        time.Time
}

// SystemDriftRule is the code system of a drift Flag's code: its code is
// the rule that fired.
const SystemDriftRule = "urn:radgate:drift-rule"

// DriftFlag builds the Flag of a drift alert: status active, category
// admin (http://terminology.hl7.org/CodeSystem/flag-category), code the
// rule with the figures as its text, subject the facility (an
// Organization named by its radgate facility identifier), period from the
// alert, and the engine in an identifier. It carries no patient data.
func DriftFlag(a DriftAlert) ([]byte, error) {
	if a.Facility == "" || a.Engine == "" || a.Rule == "" {
		return nil, fmt.Errorf("a drift Flag needs the facility, the engine and the rule")
	}
	text := fmt.Sprintf("radgate drift alert: engine %s version %s on route %s at facility %q: %s", a.Engine, a.Version, a.Route, a.Facility, a.Text)
	if a.Suspended {
		text += "; the engine is suspended (auto_suspend)"
	}
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	f := map[string]any{
		"resourceType": "Flag",
		"status":       "active",
		"identifier":   []map[string]string{{"system": "urn:radgate:engine", "value": a.Engine + " " + a.Version}},
		"category": []map[string]any{{"coding": []coding{{System: "http://terminology.hl7.org/CodeSystem/flag-category",
			Code: "admin", Display: "Administrative"}}}},
		"code": map[string]any{"coding": []coding{{System: SystemDriftRule, Code: a.Rule, Display: "drift: " + a.Rule}},
			"text": strings.TrimSpace(text)},
		"subject": map[string]any{"identifier": map[string]string{"system": "urn:radgate:facility", "value": a.Facility},
			"display": a.Facility},
		"period": map[string]string{"start": a.At.UTC().Format(time.RFC3339)},
	}
	if a.ID != "" {
		f["id"] = a.ID
	}
	return json.Marshal(f)
}
