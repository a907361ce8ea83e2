package fhir

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EntryResponse is one entry of a transaction-response or batch-response
// Bundle.
type EntryResponse struct {
	// Status is response.status ("201 Created", "200 OK").
	Status string
	// Location is response.location as sent.
	Location string
	// Reference is "Type/id" from the location (or the returned resource),
	// without base URL or version.
	Reference string
	// ResourceType is the type of Reference.
	ResourceType string
	// Outcome is response.outcome, when the server sent one.
	Outcome *Outcome
}

// TransactionResponse is a transaction-response or batch-response Bundle.
type TransactionResponse struct {
	Type    string
	Entries []EntryResponse
}

// Find returns the first entry whose resource is of the given type.
func (r *TransactionResponse) Find(resourceType string) (EntryResponse, bool) {
	for _, e := range r.Entries {
		if e.ResourceType == resourceType {
			return e, true
		}
	}
	return EntryResponse{}, false
}

// ParseTransactionResponse reads the Bundle a server answers a transaction
// or batch with.
func ParseTransactionResponse(b []byte) (*TransactionResponse, error) {
	rt, _, err := peek(b)
	if err != nil {
		return nil, err
	}
	if rt != "Bundle" {
		return nil, &FieldError{Path: "resourceType", Code: IssueInvalid,
			Msg: fmt.Sprintf("expected a transaction-response Bundle, got %s", quoteOrNothing(rt))}
	}
	var in struct {
		Type  string `json:"type"`
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Response *struct {
				Status   string          `json:"status"`
				Location string          `json:"location"`
				Outcome  json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, jsonError("Bundle", err)
	}
	if in.Type != "transaction-response" && in.Type != "batch-response" {
		return nil, &FieldError{Path: "Bundle.type", Code: IssueInvalid,
			Msg: fmt.Sprintf("expected transaction-response or batch-response, got %s", quoteOrNothing(in.Type))}
	}
	out := &TransactionResponse{Type: in.Type}
	for i, e := range in.Entry {
		var er EntryResponse
		if e.Response == nil {
			return nil, &FieldError{Path: fmt.Sprintf("Bundle.entry[%d].response", i), Code: IssueRequired, Msg: "missing"}
		}
		er.Status, er.Location = e.Response.Status, e.Response.Location
		if len(e.Response.Outcome) > 0 {
			if o, err := ParseOperationOutcome(e.Response.Outcome); err == nil {
				er.Outcome = o
			}
		}
		er.ResourceType, er.Reference = SplitLocation(er.Location)
		if er.Reference == "" && len(e.Resource) > 0 {
			var rr rawResource
			if json.Unmarshal(e.Resource, &rr) == nil && rr.ResourceType != "" && rr.ID != "" {
				er.ResourceType, er.Reference = rr.ResourceType, rr.ResourceType+"/"+rr.ID
			}
		}
		out.Entries = append(out.Entries, er)
	}
	return out, nil
}

// SplitLocation reads a Location ("DiagnosticReport/12/_history/1", or
// absolute) as its type and "Type/id" reference; empty when it is not one.
func SplitLocation(loc string) (resourceType, reference string) {
	loc = strings.TrimSpace(loc)
	if i := strings.IndexAny(loc, "?#"); i >= 0 {
		loc = loc[:i]
	}
	if i := strings.Index(loc, "/_history/"); i >= 0 {
		loc = loc[:i]
	}
	loc = strings.TrimSuffix(loc, "/")
	parts := strings.Split(loc, "/")
	if len(parts) < 2 {
		return "", ""
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if typ == "" || id == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return "", ""
	}
	return typ, typ + "/" + id
}

// BuildResponseBundle writes a transaction-response or batch-response Bundle
// (kind "transaction-response" or "batch-response") with one entry per
// EntryResponse: response.status, response.location and response.outcome.
func BuildResponseBundle(kind string, entries []EntryResponse) []byte {
	type resp struct {
		Status   string   `json:"status"`
		Location string   `json:"location,omitempty"`
		Outcome  *Outcome `json:"outcome,omitempty"`
	}
	type entry struct {
		Response resp `json:"response"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: kind, Entry: []entry{}}
	for _, e := range entries {
		out.Entry = append(out.Entry, entry{Response: resp{Status: e.Status, Location: e.Location, Outcome: e.Outcome}})
	}
	b, err := json.Marshal(out)
	if err != nil { // cannot happen: strings only
		panic(err)
	}
	return b
}
