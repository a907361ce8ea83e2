package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/radgate/radgate"
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

	// birth is the subject Patient's birthDate when the order came with
	// its Patient (a contained one, or a Patient entry of the Bundle);
	// date the date the age is taken at (ImagingStudy.started,
	// ServiceRequest.occurrenceDateTime, else authoredOn) and dateFrom its
	// element. Unexported: only the age leaves this package (Age).
	birth    time.Time
	date     time.Time
	dateFrom string
}

// Age is the subject's age (radgate.PatientAge) from the Patient's
// birthDate at the order's date — ImagingStudy.started (the study's own
// date), ServiceRequest.occurrenceDateTime, else authoredOn, else received
// (when the order came) — or nil: no Patient came with the order (a
// contained one, or a Patient entry of the Bundle), its birthDate is not a
// full date (a year or month alone is too coarse for an age range in whole
// years), or it is after that date. Only the age is kept, never the birth
// date.
func (o *OrderResource) Age(received time.Time) *radgate.PatientAge {
	if o.birth.IsZero() {
		return nil
	}
	at, from := o.date, o.dateFrom
	if at.IsZero() {
		at, from = received, "when the order came"
	}
	if at.IsZero() {
		return nil
	}
	a, err := radgate.AgeAt(o.birth, at, "FHIR Patient.birthDate at "+from)
	if err != nil {
		return nil
	}
	return &a
}

// fhirDate reads the date of a FHIR date or dateTime that names a day
// (YYYY-MM-DD, with or without a time); zero for anything coarser or
// invalid. The calendar date is taken as written, whatever its zone.
func fhirDate(s *string) time.Time {
	if s == nil || len(*s) < 10 {
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, (*s)[:10])
	if err != nil || len(*s) > 10 && (*s)[10] != 'T' {
		return time.Time{}
	}
	return t
}

// containedBirthDate is the birthDate of the contained Patient a "#id"
// subject reference points at, or zero.
func containedBirthDate(b []byte, subject *Reference) time.Time {
	if subject == nil || !strings.HasPrefix(subject.Reference, "#") {
		return time.Time{}
	}
	var raw struct {
		Contained []struct {
			ResourceType string  `json:"resourceType"`
			ID           string  `json:"id"`
			BirthDate    *string `json:"birthDate"`
		} `json:"contained"`
	}
	if json.Unmarshal(b, &raw) != nil {
		return time.Time{}
	}
	for _, c := range raw.Contained {
		if c.ResourceType == "Patient" && "#"+c.ID == subject.Reference {
			return fhirDate(c.BirthDate)
		}
	}
	return time.Time{}
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
	if err := checkID(rt, o.ID); err != nil {
		return nil, err
	}
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
	var errs []error
	o.Subject = reference(rt+".subject", &sr.Subject, &errs)
	if sr.Code != nil {
		o.Codes = codings(rt+".code", sr.Code.Coding, &errs)
		for i, c := range sr.Code.Coding {
			if deref(c.System) == SystemDICOMModality && deref(c.Code) != "" {
				o.Modalities = appendModality(o.Modalities, fmt.Sprintf("%s.code.coding[%d].code", rt, i), deref(c.Code), &errs)
			}
		}
	}
	if sr.Priority != nil {
		o.Priority = sr.Priority.Code()
	}
	var refs []pathRef
	if sr.Requester != nil {
		refs = append(refs, pathRef{rt + ".requester", *sr.Requester})
	}
	for i, r := range sr.Performer {
		refs = append(refs, pathRef{fmt.Sprintf("%s.performer[%d]", rt, i), r})
	}
	for i, r := range sr.LocationReference {
		refs = append(refs, pathRef{fmt.Sprintf("%s.locationReference[%d]", rt, i), r})
	}
	o.Facility = facility(refs, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.birth = containedBirthDate(b, o.Subject)
	if o.date = fhirDate(sr.OccurrenceDateTime); !o.date.IsZero() {
		o.dateFrom = "ServiceRequest.occurrenceDateTime"
	} else if o.date = fhirDate(sr.AuthoredOn); !o.date.IsZero() {
		o.dateFrom = "ServiceRequest.authoredOn"
	}
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
	if err := checkID(rt, o.ID); err != nil {
		return nil, err
	}
	uid, err := studyUID(rt, is.Identifier, true)
	if err != nil {
		return nil, err
	}
	o.StudyInstanceUID = uid
	if o.Accession, err = accession(rt, is.Identifier); err != nil {
		return nil, err
	}
	var errs []error
	o.Subject = reference(rt+".subject", &is.Subject, &errs)
	for i := range is.BasedOn {
		if r := reference(fmt.Sprintf("%s.basedOn[%d]", rt, i), &is.BasedOn[i], &errs); r != nil {
			o.BasedOn = append(o.BasedOn, *r)
		}
	}
	for i, cc := range is.ProcedureCode {
		o.Codes = append(o.Codes, codings(fmt.Sprintf("%s.procedureCode[%d]", rt, i), cc.Coding, &errs)...)
	}
	for i, c := range is.Modality {
		o.Modalities = appendModality(o.Modalities, fmt.Sprintf("%s.modality[%d].code", rt, i), deref(c.Code), &errs)
	}
	for i, s := range is.Series {
		o.Modalities = appendModality(o.Modalities, fmt.Sprintf("%s.series[%d].modality.code", rt, i), deref(s.Modality.Code), &errs)
	}
	if is.Location != nil {
		o.Facility = facility([]pathRef{{rt + ".location", *is.Location}}, &errs)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.birth = containedBirthDate(b, o.Subject)
	if o.date = fhirDate(is.Started); !o.date.IsZero() {
		o.dateFrom = "ImagingStudy.started"
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
		return &FieldError{Path: path, Code: IssueValue, Msg: fmt.Sprintf("unknown code %q (%s)", clip(m[2]), m[1])}
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

// Bounds on the strings radgate keeps from an order besides identifier
// values (radgate.MaxIdentifierLength) and systems (radgate.MaxSystemLength).
const (
	// maxReferenceLength bounds a literal reference ("Patient/123", or an
	// absolute URL).
	maxReferenceLength = radgate.MaxSystemLength
	// maxDisplayLength bounds a display text (a code's, a facility's).
	maxDisplayLength = 1024
	// maxModalityLength is DICOM's bound on a CS value (Modality).
	maxModalityLength = 16
)

// checkString applies radgate.CheckIdentifier to a value radgate stores and
// sends on, as a *FieldError at path (max 0: radgate.MaxIdentifierLength).
func checkString(path, v string, max int) error {
	err := radgate.CheckIdentifier(path, v, max)
	if err == nil {
		return nil
	}
	if max <= 0 {
		max = radgate.MaxIdentifierLength
	}
	code := IssueValue
	if utf8.RuneCountInString(v) > max {
		code = IssueTooLong
	}
	return &FieldError{Path: path, Code: code, Msg: sansPath(err, path), Detail: DetailInvalidIdentifier}
}

// checkUID applies radgate.CheckUID, as a *FieldError at path.
func checkUID(path, uid string) error {
	err := radgate.CheckUID(path, uid)
	if err == nil {
		return nil
	}
	code := IssueValue
	if len(uid) > radgate.MaxUIDLength {
		code = IssueTooLong
	}
	return &FieldError{Path: path, Code: code, Msg: sansPath(err, path), Detail: DetailInvalidIdentifier}
}

// sansPath is the message of a radgate.CheckIdentifier or CheckUID error
// without the "invalid order: <path>" that FieldError.Error puts back.
func sansPath(err error, path string) string {
	msg := strings.TrimPrefix(err.Error(), radgate.ErrInvalidOrder.Error()+": ")
	return strings.TrimPrefix(msg, path+" ")
}

// optional checks a value that may be absent: empty after trimming is fine
// and comes back "", anything else must pass checkString and comes back
// trimmed.
func optional(path, v string, max int, errs *[]error) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if err := checkString(path, v, max); err != nil {
		*errs = append(*errs, err)
	}
	return v
}

// checkID checks a resource's logical id, which radgate writes into
// references ("ServiceRequest/{id}"): FHIR's id syntax, 1–64 of A–Z a–z
// 0–9 '-' and '.'.
func checkID(rt, id string) error {
	if id == "" {
		return nil
	}
	path := rt + ".id"
	if err := checkString(path, id, 64); err != nil {
		return err
	}
	for i, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return &FieldError{Path: path, Code: IssueValue, Detail: DetailInvalidIdentifier,
				Msg: fmt.Sprintf("is not a FHIR id: character %d is not a letter, digit, '-' or '.'", utf8.RuneCountInString(id[:i])+1)}
		}
	}
	return nil
}

func accession(rt string, ids []r4.Identifier) (*Identifier, error) {
	for i, id := range ids {
		if !isACSN(id.Type) {
			continue
		}
		path := fmt.Sprintf("%s.identifier[%d]", rt, i)
		v := strings.TrimSpace(deref(id.Value))
		if v == "" {
			return nil, &FieldError{Path: path + ".value", Code: IssueRequired,
				Msg: "accession number (identifier with type ACSN) has no value"}
		}
		var errs []error
		if err := checkString(path+".value", v, radgate.MaxIdentifierLength); err != nil {
			errs = append(errs, err)
		}
		sys := optional(path+".system", deref(id.System), radgate.MaxSystemLength, &errs)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return &Identifier{System: sys, Value: v}, nil
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
		if err := checkUID(path, uid); err != nil {
			return "", err
		}
		return uid, nil
	}
	if required {
		return "", &FieldError{Path: rt + ".identifier", Code: IssueRequired,
			Msg: "no Study Instance UID (system urn:dicom:uid)"}
	}
	return "", nil
}

// ValidUID reports whether uid (without "urn:oid:") is a DICOM UID
// (radgate.CheckUID: digits and dots, at most 64 characters, no empty
// component or leading zero).
func ValidUID(uid string) bool { return radgate.CheckUID("uid", uid) == nil }

func selfRef(rt, id string, ident *Identifier) *Reference {
	if id != "" {
		return &Reference{Reference: rt + "/" + id}
	}
	return &Reference{Identifier: ident}
}

// reference reads a reference radgate keeps (a subject, a basedOn),
// trimmed, checking each part it keeps; faults go to errs.
func reference(path string, r *r4.Reference, errs *[]error) *Reference {
	if r == nil {
		return nil
	}
	out := &Reference{
		Reference: optional(path+".reference", deref(r.Reference), maxReferenceLength, errs),
		Display:   optional(path+".display", deref(r.Display), maxDisplayLength, errs),
	}
	if r.Identifier != nil {
		if v := optional(path+".identifier.value", deref(r.Identifier.Value), radgate.MaxIdentifierLength, errs); v != "" {
			sys := optional(path+".identifier.system", deref(r.Identifier.System), radgate.MaxSystemLength, errs)
			out.Identifier = &Identifier{System: sys, Value: v}
		}
	}
	if out.Reference == "" && out.Identifier == nil && out.Display == "" {
		return nil
	}
	return out
}

// codings reads the codings that have a code (path is the
// CodeableConcept's); faults go to errs.
func codings(path string, cs []r4.Coding, errs *[]error) []Coding {
	var out []Coding
	for i, c := range cs {
		p := fmt.Sprintf("%s.coding[%d]", path, i)
		code := optional(p+".code", deref(c.Code), radgate.MaxIdentifierLength, errs)
		if code == "" {
			continue
		}
		out = append(out, Coding{
			System:  optional(p+".system", deref(c.System), radgate.MaxSystemLength, errs),
			Code:    code,
			Display: optional(p+".display", deref(c.Display), maxDisplayLength, errs),
		})
	}
	return out
}

// appendModality adds modality code m (read at path), upper case, unless
// empty or already there.
func appendModality(ms []string, path, m string, errs *[]error) []string {
	m = strings.ToUpper(optional(path, m, maxModalityLength, errs))
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

// pathRef is a reference with the path it was read at.
type pathRef struct {
	path string
	ref  r4.Reference
}

// facility is the first Organization or Location among refs: its display,
// else its reference. Each such reference is checked, since any may be
// the one kept.
func facility(refs []pathRef, errs *[]error) string {
	found := ""
	for _, pr := range refs {
		ref, typ := deref(pr.ref.Reference), deref(pr.ref.Type)
		if typ != "Organization" && typ != "Location" &&
			!strings.HasPrefix(ref, "Organization/") && !strings.HasPrefix(ref, "Location/") &&
			!strings.Contains(ref, "/Organization/") && !strings.Contains(ref, "/Location/") {
			continue
		}
		ref = optional(pr.path+".reference", ref, maxReferenceLength, errs)
		d := optional(pr.path+".display", deref(pr.ref.Display), maxDisplayLength, errs)
		switch {
		case found != "":
		case d != "":
			found = d
		default:
			found = ref
		}
	}
	return found
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// PatientBirthDate is the birthDate of a Patient resource (JSON) as a
// calendar day; zero when it states none, or only a year or a month. For
// the order's age only: the caller turns it into a radgate.PatientAge at
// once and keeps no birth date.
func PatientBirthDate(patient []byte) time.Time {
	var p struct {
		BirthDate *string `json:"birthDate"`
	}
	if json.Unmarshal(patient, &p) != nil {
		return time.Time{}
	}
	return fhirDate(p.BirthDate)
}
