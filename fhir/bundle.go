package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/radgate/radgate"
)

// IntakeBundle is a transaction or batch Bundle read for its orders.
type IntakeBundle struct {
	// Type is "transaction" or "batch".
	Type    string
	Entries []IntakeEntry
}

// IntakeEntry is one entry of an IntakeBundle. Exactly one of Order and Err
// is set for a ServiceRequest or ImagingStudy; for a DiagnosticReport or a
// Task (a verdict, see ParseVerdict) exactly one of Verdict, NotVerdict and
// Err; all are nil for any other resource (a Patient, say), which radgate
// reads only to resolve references and does not store.
type IntakeEntry struct {
	Index        int
	FullURL      string
	Method       string
	ResourceType string
	Order        *OrderResource
	// Verdict is the verdict a DiagnosticReport or Task entry states.
	Verdict *radgate.Verdict
	// NotVerdict says why a DiagnosticReport or Task entry is not a
	// verdict (a *NotVerdictError's reason: radgate's own result, a report
	// not final…); such an entry is answered, not stored.
	NotVerdict string
	// Err is a *FieldError whose path starts "Bundle.entry[i]".
	Err error
}

// Ignored reports whether the entry is neither an order, a verdict, a
// resource read as a possible verdict, nor an error.
func (e *IntakeEntry) Ignored() bool {
	return e.Order == nil && e.Err == nil && e.Verdict == nil && e.NotVerdict == ""
}

// Err joins the errors of every entry (nil when all are usable).
func (b *IntakeBundle) Err() error {
	var errs []error
	for _, e := range b.Entries {
		if e.Err != nil {
			errs = append(errs, e.Err)
		}
	}
	return errors.Join(errs...)
}

type rawBundle struct {
	ResourceType string     `json:"resourceType"`
	Type         *string    `json:"type"`
	Entry        []rawEntry `json:"entry"`
}

type rawEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
}

// rawResource is what ParseBundle reads of any entry to resolve references
// made to it.
type rawResource struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id"`
	BirthDate    *string `json:"birthDate"` // a Patient's: for the order's age, never kept
	Identifier   []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// EntryLimitError is ParseBundleMax's answer to a Bundle of more entries
// than it takes.
type EntryLimitError struct {
	// Entries is how many the Bundle has; Max how many are taken.
	Entries, Max int
}

func (e *EntryLimitError) Error() string {
	return fmt.Sprintf("Bundle.entry: the Bundle has %d entries; at most %d are taken in one Bundle", e.Entries, e.Max)
}

// ParseBundleMax is ParseBundle refusing, with an *EntryLimitError and
// before reading any entry, a Bundle of more than maxEntries entries (0: no
// limit).
func ParseBundleMax(b []byte, maxEntries int) (*IntakeBundle, error) {
	return parseBundle(b, BundleOptions{MaxEntries: maxEntries})
}

// BundleOptions tune ParseIntakeBundle.
type BundleOptions struct {
	// MaxEntries refuses, with an *EntryLimitError and before reading any
	// entry, a Bundle of more entries (0: no limit).
	MaxEntries int
	// VerdictCodes is the table verdict entries are read with (nil:
	// DefaultVerdictCodes).
	VerdictCodes VerdictCodes
}

// ParseIntakeBundle is ParseBundle with options.
func ParseIntakeBundle(b []byte, opts BundleOptions) (*IntakeBundle, error) {
	return parseBundle(b, opts)
}

// ParseBundle reads a transaction or batch Bundle of ServiceRequests and
// ImagingStudies. The error is a *FieldError about the Bundle as a whole;
// problems with single entries are in each entry's Err (see
// IntakeBundle.Err), so that a batch can answer each entry on its own.
//
// References between entries (urn:uuid fullUrls) mean nothing outside the
// bundle, so they are rewritten as references by business identifier: a
// subject pointing at a Patient entry becomes a reference by the Patient's
// first identifier, a basedOn pointing at a ServiceRequest entry a reference
// by its accession number (and an ImagingStudy without an accession number
// takes that one). A urn: reference that matches no entry is dropped; one
// that matches an entry in error is an error of its own entry. Every
// identifier taken from another entry is checked as the order's own are.
//
// DiagnosticReport and Task entries are read as verdicts (ParseVerdict,
// with DefaultVerdictCodes): a report's basedOn pointing at a
// ServiceRequest entry takes its accession number, its imagingStudy
// pointing at an ImagingStudy entry its Study Instance UID, and its
// resultsInterpreter or performer pointing at a Practitioner entry that
// entry's first identifier.
func ParseBundle(b []byte) (*IntakeBundle, error) { return parseBundle(b, BundleOptions{}) }

func parseBundle(b []byte, opts BundleOptions) (*IntakeBundle, error) {
	maxEntries := opts.MaxEntries
	rt, _, err := peek(b)
	if err != nil {
		return nil, err
	}
	if rt != "Bundle" {
		return nil, &FieldError{Path: "resourceType", Code: IssueInvalid,
			Msg: fmt.Sprintf("expected Bundle, got %s", quoteOrNothing(rt))}
	}
	var raw rawBundle
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, jsonError("Bundle", err)
	}
	typ := deref(raw.Type)
	if typ != "transaction" && typ != "batch" {
		return nil, &FieldError{Path: "Bundle.type", Code: IssueNotSupported,
			Msg: fmt.Sprintf("expected transaction or batch, got %s", quoteOrNothing(typ))}
	}
	if len(raw.Entry) == 0 {
		return nil, &FieldError{Path: "Bundle.entry", Code: IssueRequired, Msg: "no entries"}
	}
	if maxEntries > 0 && len(raw.Entry) > maxEntries {
		return nil, &EntryLimitError{Entries: len(raw.Entry), Max: maxEntries}
	}

	out := &IntakeBundle{Type: typ}
	targets := map[string]target{}
	bad := map[string]int{} // fullUrl → index of an entry in error
	orders := 0             // orders and verdicts
	var verdicts []int      // indexes of the verdict entries, read once every target is known
	for i, re := range raw.Entry {
		e := IntakeEntry{Index: i, FullURL: re.FullURL}
		prefix := fmt.Sprintf("Bundle.entry[%d]", i)
		if re.Request != nil {
			e.Method = strings.ToUpper(re.Request.Method)
		}
		if len(re.Resource) == 0 || string(re.Resource) == "null" {
			e.Err = &FieldError{Path: prefix + ".resource", Code: IssueRequired, Msg: "missing"}
			out.Entries = append(out.Entries, e)
			continue
		}
		var rr rawResource
		if err := json.Unmarshal(re.Resource, &rr); err != nil {
			e.Err = rebase(jsonError("", err), prefix+".resource", "")
			out.Entries = append(out.Entries, e)
			continue
		}
		e.ResourceType = rr.ResourceType
		if rr.ResourceType == "" {
			e.Err = &FieldError{Path: prefix + ".resource.resourceType", Code: IssueRequired, Msg: "missing: expected a FHIR resource"}
			out.Entries = append(out.Entries, e)
			continue
		}
		if IsVerdictResource(rr.ResourceType) {
			orders++
			if e.Method != "" && e.Method != "POST" && e.Method != "PUT" {
				e.Err = &FieldError{Path: prefix + ".request.method", Code: IssueNotSupported,
					Msg: fmt.Sprintf("radgate takes verdicts by POST or PUT, got %s", e.Method)}
			} else {
				verdicts = append(verdicts, i)
			}
			out.Entries = append(out.Entries, e)
			continue
		}
		if rr.ResourceType != "ServiceRequest" && rr.ResourceType != "ImagingStudy" {
			t, ok, err := firstIdentifier(prefix+".resource", rr)
			switch {
			case err != nil:
				e.Err = err
				if re.FullURL != "" {
					bad[re.FullURL] = i
				}
			case ok && re.FullURL != "":
				targets[re.FullURL] = t
			}
			out.Entries = append(out.Entries, e)
			continue
		}
		orders++
		if e.Method != "" && e.Method != "POST" && e.Method != "PUT" {
			e.Err = &FieldError{Path: prefix + ".request.method", Code: IssueNotSupported,
				Msg: fmt.Sprintf("radgate takes orders by POST or PUT, got %s", e.Method)}
			out.Entries = append(out.Entries, e)
			continue
		}
		o, err := ParseResource(re.Resource)
		if err != nil {
			e.Err = rebase(err, prefix+".resource", rr.ResourceType)
			if re.FullURL != "" {
				bad[re.FullURL] = i
			}
		} else {
			e.Order = o
			if re.FullURL != "" {
				t := target{resourceType: o.ResourceType}
				switch {
				case o.ResourceType == "ServiceRequest":
					t.ident = o.Accession
					t.accession = o.Accession
				case o.Self != nil && o.Self.Identifier != nil:
					t.ident = o.Self.Identifier
				}
				if t.ident != nil {
					targets[re.FullURL] = t
				}
			}
		}
		out.Entries = append(out.Entries, e)
	}
	if orders == 0 {
		return nil, &FieldError{Path: "Bundle.entry", Code: IssueRequired,
			Msg: "no ServiceRequest or ImagingStudy: radgate takes imaging orders only (and verdicts: DiagnosticReport, Task)"}
	}
	for _, i := range verdicts {
		e := &out.Entries[i]
		prefix := fmt.Sprintf("Bundle.entry[%d].resource", i)
		var v *radgate.Verdict
		var err error
		if e.ResourceType == "DiagnosticReport" {
			v, err = parseReportVerdict(raw.Entry[i].Resource, VerdictOptions{Codes: opts.VerdictCodes}, targets)
		} else {
			v, err = parseTaskVerdict(raw.Entry[i].Resource, VerdictOptions{Codes: opts.VerdictCodes})
		}
		var nv *NotVerdictError
		switch {
		case errors.As(err, &nv):
			e.NotVerdict = nv.Reason
		case err != nil:
			e.Err = rebase(err, prefix, e.ResourceType)
		default:
			e.Verdict = v
		}
	}
	for i := range out.Entries {
		o := out.Entries[i].Order
		if o == nil {
			continue
		}
		if err := refersToBad(fmt.Sprintf("Bundle.entry[%d].resource", i), o, bad); err != nil {
			out.Entries[i].Order, out.Entries[i].Err = nil, err
			continue
		}
		var subject *target
		o.Subject, subject = resolve(o.Subject, targets)
		if subject != nil && o.birth.IsZero() {
			o.birth = subject.birth
		}
		var basedOn []Reference
		for j := range o.BasedOn {
			r, t := resolve(&o.BasedOn[j], targets)
			if r != nil {
				basedOn = append(basedOn, *r)
			}
			if t != nil && t.accession != nil && o.Accession == nil {
				a := *t.accession
				o.Accession = &a
			}
		}
		o.BasedOn = basedOn
	}
	return out, nil
}

type target struct {
	resourceType string
	ident        *Identifier
	accession    *Identifier
	birth        time.Time // a Patient's birthDate (OrderResource.Age)
}

// firstIdentifier is the first identifier with a value of an entry that
// orders may refer to (a Patient): the identifier those references become,
// so it is checked as the order's own (path is the entry's resource).
func firstIdentifier(path string, rr rawResource) (target, bool, error) {
	for j, id := range rr.Identifier {
		v := strings.TrimSpace(id.Value)
		if v == "" {
			continue
		}
		p := fmt.Sprintf("%s.identifier[%d]", path, j)
		var errs []error
		if err := checkString(p+".value", v, radgate.MaxIdentifierLength); err != nil {
			errs = append(errs, err)
		}
		sys := optional(p+".system", id.System, radgate.MaxSystemLength, &errs)
		if err := errors.Join(errs...); err != nil {
			return target{}, false, err
		}
		t := target{resourceType: rr.ResourceType, ident: &Identifier{System: sys, Value: v}}
		if rr.ResourceType == "Patient" {
			t.birth = fhirDate(rr.BirthDate)
		}
		return t, true, nil
	}
	return target{}, false, nil
}

// refersToBad fails an order whose subject or basedOn points at an entry
// in error: without that entry's identifier the order would lose the link.
func refersToBad(path string, o *OrderResource, bad map[string]int) error {
	check := func(field string, r *Reference) error {
		if r == nil || r.Reference == "" {
			return nil
		}
		if k, ok := bad[r.Reference]; ok {
			return &FieldError{Path: path + "." + field + ".reference", Code: IssueInvalid,
				Msg: fmt.Sprintf("refers to Bundle.entry[%d], which is in error", k)}
		}
		return nil
	}
	errs := []error{check("subject", o.Subject)}
	for j := range o.BasedOn {
		errs = append(errs, check(fmt.Sprintf("basedOn[%d]", j), &o.BasedOn[j]))
	}
	return errors.Join(errs...)
}

// resolve rewrites a reference to a bundle entry as a reference by that
// entry's identifier, and drops urn: references that point nowhere.
func resolve(r *Reference, targets map[string]target) (*Reference, *target) {
	if r == nil || r.Reference == "" {
		return r, nil
	}
	if t, ok := targets[r.Reference]; ok {
		out := &Reference{Display: r.Display, Identifier: r.Identifier}
		if out.Identifier == nil {
			id := *t.ident
			out.Identifier = &id
		}
		return out, &t
	}
	if strings.HasPrefix(r.Reference, "urn:") {
		out := &Reference{Display: r.Display, Identifier: r.Identifier}
		if out.Identifier == nil && out.Display == "" {
			return nil, nil
		}
		return out, nil
	}
	return r, nil
}

// rebase moves a FieldError's path under prefix: "ServiceRequest.identifier"
// becomes "Bundle.entry[2].resource.identifier". Errors joined with
// errors.Join are rebased one by one.
func rebase(err error, prefix, resourceType string) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, rebase(e, prefix, resourceType))
		}
		return errors.Join(errs...)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		return &FieldError{Path: prefix, Code: IssueInvalid, Msg: err.Error()}
	}
	out := *fe
	switch {
	case fe.Path == "":
		out.Path = prefix
	case resourceType != "" && (fe.Path == resourceType || strings.HasPrefix(fe.Path, resourceType+".")):
		out.Path = prefix + fe.Path[len(resourceType):]
	default:
		out.Path = prefix + "." + fe.Path
	}
	return &out
}
