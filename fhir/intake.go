package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// OrderResource is what radgate reads from one ServiceRequest or
// ImagingStudy: the identifiers that make it an order and the references a
// result must carry back.
type OrderResource struct {
	// ResourceType is "ServiceRequest" or "ImagingStudy".
	ResourceType string
	// ID is the resource's logical id, when it has one.
	ID string
	// Status is the resource's status code as sent ("active", "available"…),
	// empty when absent.
	Status string
	// Self references the resource itself: literally ("ServiceRequest/{id}")
	// when it has an id, else by its accession number (ServiceRequest) or
	// Study Instance UID (ImagingStudy).
	Self *Reference

	// Accession is the identifier typed ACSN (v2-0203), with its system.
	Accession *Identifier
	// StudyInstanceUID is the identifier of system urn:dicom:uid, without
	// the "urn:oid:" prefix.
	StudyInstanceUID string

	// Subject is the patient.
	Subject *Reference
	// BasedOn lists the requests an ImagingStudy fulfils.
	BasedOn []Reference
	// Codes are ServiceRequest.code or ImagingStudy.procedureCode codings.
	Codes []Coding
	// Modalities are ImagingStudy.modality and series modality codes (or
	// DICOM-coded ServiceRequest.code codings), upper case, without repeats.
	Modalities []string
	// Priority is ServiceRequest.priority (routine, urgent, asap, stat).
	Priority string
	// Facility is the first Organization or Location referenced as requester,
	// performer or location: its display, else its reference.
	Facility string
}

// ParseResource reads a ServiceRequest or an ImagingStudy, whichever the
// body's resourceType names.
func ParseResource(b []byte) (*OrderResource, error) {
	rt, _, err := peek(b)
	if err != nil {
		return nil, err
	}
	switch rt {
	case "ServiceRequest":
		return ParseServiceRequest(b)
	case "ImagingStudy":
		return ParseImagingStudy(b)
	}
	return nil, &FieldError{Path: "resourceType", Code: IssueNotSupported,
		Msg: fmt.Sprintf("expected ServiceRequest or ImagingStudy, got %s", quoteOrNothing(rt))}
}

// ParseServiceRequest reads an imaging order. It fails with a *FieldError
// unless the body is a ServiceRequest with an accession number (an
// identifier typed ACSN in v2-0203).
func ParseServiceRequest(b []byte) (*OrderResource, error) {
	const rt = "ServiceRequest"
	status, err := expect(b, rt)
	if err != nil {
		return nil, err
	}
	sr, err := r4.UnmarshalServiceRequest(b)
	if err != nil {
		return nil, jsonError(rt, err)
	}
	o := &OrderResource{ResourceType: rt, ID: deref(sr.Id), Status: status}

	acsn, err := accession(rt, sr.Identifier)
	if err != nil {
		return nil, err
	}
	if acsn == nil {
		return nil, &FieldError{Path: rt + ".identifier", Code: IssueRequired,
			Msg: "no accession number (identifier with type ACSN)"}
	}
	o.Accession = acsn
	// Some EHRs also carry the study UID on the order.
	if o.StudyInstanceUID, err = studyUID(rt, sr.Identifier, false); err != nil {
		return nil, err
	}
	o.Subject = reference(&sr.Subject)
	if sr.Code != nil {
		o.Codes = codings(sr.Code.Coding)
		for _, c := range o.Codes {
			if c.System == SystemDICOMModality {
				o.Modalities = appendModality(o.Modalities, c.Code)
			}
		}
	}
	if sr.Priority != nil {
		o.Priority = sr.Priority.Code()
	}
	refs := []r4.Reference{}
	if sr.Requester != nil {
		refs = append(refs, *sr.Requester)
	}
	refs = append(refs, sr.Performer...)
	refs = append(refs, sr.LocationReference...)
	o.Facility = facility(refs...)
	o.Self = selfRef(rt, o.ID, &Identifier{System: acsn.System, Value: acsn.Value})
	return o, nil
}

// ParseImagingStudy reads a study. It fails with a *FieldError unless the
// body is an ImagingStudy with a Study Instance UID (an identifier of system
// urn:dicom:uid).
func ParseImagingStudy(b []byte) (*OrderResource, error) {
	const rt = "ImagingStudy"
	status, err := expect(b, rt)
	if err != nil {
		return nil, err
	}
	is, err := r4.UnmarshalImagingStudy(b)
	if err != nil {
		return nil, jsonError(rt, err)
	}
	o := &OrderResource{ResourceType: rt, ID: deref(is.Id), Status: status}
	uid, err := studyUID(rt, is.Identifier, true)
	if err != nil {
		return nil, err
	}
	o.StudyInstanceUID = uid
	if o.Accession, err = accession(rt, is.Identifier); err != nil {
		return nil, err
	}
	o.Subject = reference(&is.Subject)
	for i := range is.BasedOn {
		if r := reference(&is.BasedOn[i]); r != nil {
			o.BasedOn = append(o.BasedOn, *r)
		}
	}
	for _, cc := range is.ProcedureCode {
		o.Codes = append(o.Codes, codings(cc.Coding)...)
	}
	for _, c := range is.Modality {
		o.Modalities = appendModality(o.Modalities, deref(c.Code))
	}
	for _, s := range is.Series {
		o.Modalities = appendModality(o.Modalities, deref(s.Modality.Code))
	}
	if is.Location != nil {
		o.Facility = facility(*is.Location)
	}
	o.Self = selfRef(rt, o.ID, &Identifier{System: SystemDICOMUID, Value: "urn:oid:" + uid})
	return o, nil
}

// peek reads resourceType and status without the samply models, which do not
// check resourceType and turn a missing status into the first code.
func peek(b []byte) (resourceType, status string, err error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return "", "", &FieldError{Code: IssueStructure, Msg: "empty body: expected a FHIR resource in JSON"}
	}
	var head map[string]json.RawMessage
	if err := json.Unmarshal(b, &head); err != nil {
		return "", "", jsonError("", err)
	}
	raw, ok := head["resourceType"]
	if !ok {
		return "", "", &FieldError{Path: "resourceType", Code: IssueRequired, Msg: "missing: expected a FHIR resource"}
	}
	if err := json.Unmarshal(raw, &resourceType); err != nil {
		return "", "", &FieldError{Path: "resourceType", Code: IssueStructure, Msg: "expected a string"}
	}
	if raw, ok := head["status"]; ok {
		_ = json.Unmarshal(raw, &status) // a non-string status fails in the full decode
	}
	return resourceType, status, nil
}

func expect(b []byte, want string) (status string, err error) {
	rt, status, err := peek(b)
	if err != nil {
		return "", err
	}
	if rt != want {
		return "", &FieldError{Path: "resourceType", Code: IssueInvalid,
			Msg: fmt.Sprintf("expected %s, got %s", want, quoteOrNothing(rt))}
	}
	return status, nil
}

// unknownCode matches the samply models' error for a code outside an enum.
var unknownCode = regexp.MustCompile("^unknown ([A-Za-z0-9]+) code `(.*)`$")

// enumPaths names, per resource type, the element each samply enum type
// decodes; anything missing here is reported at the resource.
var enumPaths = map[string]map[string]string{
	"ServiceRequest": {
		"RequestStatus":      "status",
		"RequestIntent":      "intent",
		"RequestPriority":    "priority",
		"IdentifierUse":      "identifier.use",
		"NarrativeStatus":    "text.status",
		"QuantityComparator": "quantity",
	},
	"ImagingStudy": {
		"ImagingStudyStatus": "status",
		"IdentifierUse":      "identifier.use",
		"NarrativeStatus":    "text.status",
	},
}

// jsonError turns a JSON decoding error into a *FieldError naming the
// element (resource is the resource type, or "" for the document).
func jsonError(resource string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	join := func(field string) string {
		switch {
		case resource == "":
			return field
		case field == "":
			return resource
		}
		return resource + "." + field
	}
	switch {
	case errors.As(err, &syn):
		return &FieldError{Code: IssueStructure, Msg: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &FieldError{Path: resource, Code: IssueStructure,
				Msg: fmt.Sprintf("expected a JSON object, got %s (byte %d)", typ.Value, typ.Offset)}
		}
		return &FieldError{Path: join(typ.Field), Code: IssueStructure,
			Msg: fmt.Sprintf("expected %s, got %s (byte %d)", jsonKind(typ.Type), typ.Value, typ.Offset)}
	}
	if m := unknownCode.FindStringSubmatch(err.Error()); m != nil {
		path := resource
		if p, ok := enumPaths[resource][m[1]]; ok {
			path = join(p)
		}
		return &FieldError{Path: path, Code: IssueValue, Msg: fmt.Sprintf("unknown code %q (%s)", m[2], m[1])}
	}
	return &FieldError{Path: resource, Code: IssueStructure, Msg: err.Error()}
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// isACSN reports whether an identifier type is v2-0203 ACSN.
func isACSN(cc *r4.CodeableConcept) bool {
	if cc == nil {
		return false
	}
	for _, c := range cc.Coding {
		if deref(c.Code) == CodeACSN && (c.System == nil || *c.System == SystemV20203) {
			return true
		}
	}
	return false
}

func accession(rt string, ids []r4.Identifier) (*Identifier, error) {
	for i, id := range ids {
		if !isACSN(id.Type) {
			continue
		}
		v := strings.TrimSpace(deref(id.Value))
		if v == "" {
			return nil, &FieldError{Path: fmt.Sprintf("%s.identifier[%d].value", rt, i), Code: IssueRequired,
				Msg: "accession number (identifier with type ACSN) has no value"}
		}
		return &Identifier{System: strings.TrimSpace(deref(id.System)), Value: v}, nil
	}
	return nil, nil
}

func studyUID(rt string, ids []r4.Identifier, required bool) (string, error) {
	for i, id := range ids {
		if deref(id.System) != SystemDICOMUID {
			continue
		}
		path := fmt.Sprintf("%s.identifier[%d].value", rt, i)
		uid := strings.TrimPrefix(strings.TrimSpace(deref(id.Value)), "urn:oid:")
		if uid == "" {
			return "", &FieldError{Path: path, Code: IssueRequired, Msg: "Study Instance UID (system urn:dicom:uid) has no value"}
		}
		if !ValidUID(uid) {
			return "", &FieldError{Path: path, Code: IssueValue,
				Msg: fmt.Sprintf("%q is not a DICOM UID (digits and dots, at most 64 characters)", uid)}
		}
		return uid, nil
	}
	if required {
		return "", &FieldError{Path: rt + ".identifier", Code: IssueRequired,
			Msg: "no Study Instance UID (system urn:dicom:uid)"}
	}
	return "", nil
}

// ValidUID reports whether uid (without "urn:oid:") is a syntactically valid
// DICOM UID: dot-separated digit groups, at most 64 characters.
func ValidUID(uid string) bool {
	if uid == "" || len(uid) > 64 {
		return false
	}
	for _, part := range strings.Split(uid, ".") {
		if part == "" {
			return false
		}
		for _, c := range part {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

func selfRef(rt, id string, ident *Identifier) *Reference {
	if id != "" {
		return &Reference{Reference: rt + "/" + id}
	}
	return &Reference{Identifier: ident}
}

func reference(r *r4.Reference) *Reference {
	if r == nil {
		return nil
	}
	out := &Reference{Reference: deref(r.Reference), Display: deref(r.Display)}
	if r.Identifier != nil && deref(r.Identifier.Value) != "" {
		out.Identifier = &Identifier{System: deref(r.Identifier.System), Value: deref(r.Identifier.Value)}
	}
	if out.Reference == "" && out.Identifier == nil && out.Display == "" {
		return nil
	}
	return out
}

func codings(cs []r4.Coding) []Coding {
	var out []Coding
	for _, c := range cs {
		if deref(c.Code) == "" {
			continue
		}
		out = append(out, Coding{System: deref(c.System), Code: deref(c.Code), Display: deref(c.Display)})
	}
	return out
}

func appendModality(ms []string, m string) []string {
	m = strings.ToUpper(strings.TrimSpace(m))
	if m == "" {
		return ms
	}
	for _, x := range ms {
		if x == m {
			return ms
		}
	}
	return append(ms, m)
}

func facility(refs ...r4.Reference) string {
	for _, r := range refs {
		ref, typ := deref(r.Reference), deref(r.Type)
		if typ == "Organization" || typ == "Location" ||
			strings.HasPrefix(ref, "Organization/") || strings.HasPrefix(ref, "Location/") ||
			strings.Contains(ref, "/Organization/") || strings.Contains(ref, "/Location/") {
			if d := deref(r.Display); d != "" {
				return d
			}
			if ref != "" {
				return ref
			}
		}
	}
	return ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
