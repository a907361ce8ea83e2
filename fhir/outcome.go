package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// IssueSeverity is OperationOutcome.issue.severity.
type IssueSeverity string

// Issue severities (R4 value set issue-severity).
const (
	SeverityFatal       IssueSeverity = "fatal"
	SeverityError       IssueSeverity = "error"
	SeverityWarning     IssueSeverity = "warning"
	SeverityInformation IssueSeverity = "information"
)

// IssueCode is OperationOutcome.issue.code (R4 value set issue-type).
type IssueCode string

// The issue codes radgate writes.
const (
	IssueInvalid       IssueCode = "invalid"
	IssueStructure     IssueCode = "structure"
	IssueRequired      IssueCode = "required"
	IssueValue         IssueCode = "value"
	IssueNotSupported  IssueCode = "not-supported"
	IssueNotFound      IssueCode = "not-found"
	IssueProcessing    IssueCode = "processing"
	IssueTooCostly     IssueCode = "too-costly"
	IssueTooLong       IssueCode = "too-long"
	IssueThrottled     IssueCode = "throttled"
	IssueTransient     IssueCode = "transient"
	IssueException     IssueCode = "exception"
	IssueInformational IssueCode = "informational"
)

// Issue is one issue of an OperationOutcome.
type Issue struct {
	Severity    IssueSeverity `json:"severity"`
	Code        IssueCode     `json:"code"`
	Diagnostics string        `json:"diagnostics,omitempty"`
	// Expression names the element at fault, FHIRPath-style.
	Expression []string `json:"expression,omitempty"`
	// Details is details.text, when a server sent one.
	Details string `json:"-"`
	// Detail is radgate's own code for the problem (details.coding of
	// system ErrorCodeSystem): a stable name a sender's software can act
	// on, where the diagnostics are written for a person.
	Detail string `json:"-"`
}

// ErrorCodeSystem is the code system of radgate's detail codes
// (OperationOutcome.issue.details.coding.system).
const ErrorCodeSystem = "https://radgate.dev/CodeSystem/error"

// radgate's detail codes (Issue.Detail). Each names one kind of refusal,
// whatever the wording of the diagnostics.
const (
	// DetailInvalidResource: the body is not a usable ServiceRequest,
	// ImagingStudy or Bundle (malformed JSON, a missing element, a code
	// outside its value set).
	DetailInvalidResource = "invalid-resource"
	// DetailInvalidIdentifier: an identifier, reference, code or text radgate
	// would store and send on has control characters, is blank or too long.
	DetailInvalidIdentifier = "invalid-identifier"
	// DetailInvalidOrder: the resource is valid but cannot become an order
	// (neither an accession number nor a Study Instance UID).
	DetailInvalidOrder = "invalid-order"
	// DetailBodyTooLarge: the request body is over the intake's limit.
	DetailBodyTooLarge = "body-too-large"
	// DetailBundleTooLarge: the Bundle has more entries than the intake
	// takes in one request.
	DetailBundleTooLarge = "bundle-too-large"
	// DetailOrderTooLarge: the order is larger than the message store
	// takes; resending it unchanged cannot succeed.
	DetailOrderTooLarge = "order-too-large"
	// DetailRateLimited: the client sent more orders than its rate allows;
	// retry after the Retry-After header's seconds.
	DetailRateLimited = "rate-limited"
	// DetailOrderStoreUnavailable: the order could not be stored now
	// (message store down or slow); nothing was accepted, retry.
	DetailOrderStoreUnavailable = "order-store-unavailable"
	// DetailUnsupportedMediaType: the body is not FHIR JSON.
	DetailUnsupportedMediaType = "unsupported-media-type"
	// DetailMethodNotAllowed: the endpoint does not take this method.
	DetailMethodNotAllowed = "method-not-allowed"
	// DetailNotFound: no such endpoint, or no such order.
	DetailNotFound = "not-found"
)

// Outcome is an OperationOutcome.
type Outcome struct {
	Issues []Issue
}

// NewOutcome returns an OperationOutcome of one issue; expression may name
// the element at fault.
func NewOutcome(severity IssueSeverity, code IssueCode, diagnostics string, expression ...string) *Outcome {
	return &Outcome{Issues: []Issue{{Severity: severity, Code: code, Diagnostics: diagnostics, Expression: expression}}}
}

type jsonOutcome struct {
	ResourceType string      `json:"resourceType"`
	Issue        []jsonIssue `json:"issue"`
}

type jsonIssue struct {
	Severity    IssueSeverity `json:"severity"`
	Code        IssueCode     `json:"code"`
	Details     *jsonDetails  `json:"details,omitempty"`
	Diagnostics string        `json:"diagnostics,omitempty"`
	Expression  []string      `json:"expression,omitempty"`
}

type jsonDetails struct {
	Coding []jsonCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type jsonCoding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
}

// MarshalJSON writes o as an R4 OperationOutcome. An outcome without issues
// gets one informational issue, since R4 requires at least one.
func (o *Outcome) MarshalJSON() ([]byte, error) {
	out := jsonOutcome{ResourceType: "OperationOutcome", Issue: []jsonIssue{}}
	for _, is := range o.Issues {
		ji := jsonIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression}
		if is.Detail != "" {
			ji.Details = &jsonDetails{Coding: []jsonCoding{{System: ErrorCodeSystem, Code: is.Detail}}}
		}
		if ji.Severity == "" {
			ji.Severity = SeverityError
		}
		if ji.Code == "" {
			ji.Code = IssueProcessing
		}
		out.Issue = append(out.Issue, ji)
	}
	if len(out.Issue) == 0 {
		out.Issue = append(out.Issue, jsonIssue{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: "ok"})
	}
	return json.Marshal(out)
}

// JSON returns o as OperationOutcome JSON.
func (o *Outcome) JSON() []byte {
	b, err := json.Marshal(o)
	if err != nil { // cannot happen: only strings
		panic(err)
	}
	return b
}

// WithDetail sets radgate's detail code (see DetailInvalidResource…) on
// every issue of o that has none, and returns o.
func (o *Outcome) WithDetail(detail string) *Outcome {
	for i := range o.Issues {
		if o.Issues[i].Detail == "" {
			o.Issues[i].Detail = detail
		}
	}
	return o
}

// Redacted returns a copy of o keeping of each issue only its severity,
// code and expression: what a peer's OperationOutcome may say safely in
// radgate's errors, logs, order reasons and dead letters. A server's
// diagnostics and details.text are free text that can quote the resource,
// patient names included.
func (o *Outcome) Redacted() *Outcome {
	if o == nil {
		return nil
	}
	out := &Outcome{Issues: make([]Issue, 0, len(o.Issues))}
	for _, is := range o.Issues {
		out.Issues = append(out.Issues, Issue{Severity: is.Severity, Code: is.Code,
			Expression: append([]string(nil), is.Expression...)})
	}
	return out
}

// Summary names each issue by severity, code and expression only
// ("error structure at DiagnosticReport.subject.display"), never by its
// diagnostics or details.
func (o *Outcome) Summary() string {
	if o == nil {
		return ""
	}
	var parts []string
	for _, is := range o.Issues {
		sev, code := is.Severity, is.Code
		if sev == "" {
			sev = SeverityError
		}
		if code == "" {
			code = IssueProcessing
		}
		s := string(sev) + " " + string(code)
		if len(is.Expression) > 0 {
			s += " at " + strings.Join(is.Expression, ", ")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Text joins the issues' diagnostics (or details) into one line.
func (o *Outcome) Text() string {
	if o == nil {
		return ""
	}
	var parts []string
	for _, is := range o.Issues {
		s := is.Diagnostics
		if s == "" {
			s = is.Details
		}
		if s == "" {
			s = string(is.Code)
		}
		if len(is.Expression) > 0 && !strings.HasPrefix(s, is.Expression[0]) {
			s = strings.Join(is.Expression, ", ") + ": " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// ParseOperationOutcome reads an OperationOutcome. Unknown issue codes are
// kept as they are (unlike the samply models, which refuse them).
func ParseOperationOutcome(b []byte) (*Outcome, error) {
	var in jsonOutcome
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, jsonError("OperationOutcome", err)
	}
	if in.ResourceType != "OperationOutcome" {
		return nil, &FieldError{Path: "resourceType", Code: IssueInvalid,
			Msg: fmt.Sprintf("expected OperationOutcome, got %s", quoteOrNothing(in.ResourceType))}
	}
	o := &Outcome{}
	for _, ji := range in.Issue {
		is := Issue{Severity: ji.Severity, Code: ji.Code, Diagnostics: ji.Diagnostics, Expression: ji.Expression}
		if ji.Details != nil {
			is.Details = ji.Details.Text
			for _, c := range ji.Details.Coding {
				if c.System == ErrorCodeSystem {
					is.Detail = c.Code
				}
			}
		}
		o.Issues = append(o.Issues, is)
	}
	return o, nil
}

// ErrInvalidResource is matched (errors.Is) by every *FieldError: the
// resource or bundle a client sent cannot be used.
var ErrInvalidResource = errors.New("invalid FHIR resource")

// FieldError says what is wrong with an incoming resource and where.
type FieldError struct {
	// Path names the element FHIRPath-style ("ServiceRequest.identifier");
	// empty when the document as a whole is at fault (malformed JSON).
	Path string
	// Code is the OperationOutcome issue code (invalid, structure, required…).
	Code IssueCode
	Msg  string
	// Detail is radgate's detail code; empty means DetailInvalidResource.
	Detail string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Is makes every FieldError match ErrInvalidResource.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidResource }

// OutcomeFromError turns an error into an OperationOutcome: one issue per
// *FieldError (errors joined with errors.Join give one issue each, with
// their expression and detail code), else one issue of the given code with
// the error's text: pass only errors written for the sender.
func OutcomeFromError(err error, code IssueCode) *Outcome {
	o := &Outcome{}
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			is := Issue{Severity: SeverityError, Code: fe.Code, Diagnostics: fe.Error(), Detail: fe.Detail}
			if is.Code == "" {
				is.Code = IssueInvalid
			}
			if is.Detail == "" {
				is.Detail = DetailInvalidResource
			}
			if fe.Path != "" {
				is.Expression = []string{fe.Path}
			}
			o.Issues = append(o.Issues, is)
			return
		}
		o.Issues = append(o.Issues, Issue{Severity: SeverityError, Code: code, Diagnostics: e.Error()})
	}
	if err != nil {
		walk(err)
	}
	return o
}

// OutcomeError is a FHIR server's refusal: the HTTP status and what its
// OperationOutcome says safely (see Outcome.Redacted). Its text names the
// status and each issue's severity, code and expression, never the
// server's diagnostics, details.text or body, which can quote patient data.
type OutcomeError struct {
	// Op says what was being done ("posting the result transaction").
	Op      string
	Status  int
	Outcome *Outcome
	// Body describes a response body that was not an OperationOutcome (its
	// media type and size), never its content.
	Body string
}

func (e *OutcomeError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "FHIR server answered %d %s", e.Status, http.StatusText(e.Status))
	if t := e.Outcome.Summary(); t != "" {
		b.WriteString(": ")
		b.WriteString(t)
	} else if e.Body != "" {
		b.WriteString(" (")
		b.WriteString(e.Body)
		b.WriteString(")")
	}
	return b.String()
}

// Is matches another *OutcomeError with the same Status, or any status when
// the target's Status is 0: errors.Is(err, &fhir.OutcomeError{Status: 412}).
func (e *OutcomeError) Is(target error) bool {
	t, ok := target.(*OutcomeError)
	if !ok {
		return false
	}
	return t.Status == 0 || t.Status == e.Status
}

// quoteOrNothing repeats a value from the request in a message: "nothing"
// when empty, cut to 64 bytes (a whole rune) so that a huge value is never
// echoed.
func quoteOrNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return clip(s)
}

// clip cuts s to at most 64 bytes, ending on a whole rune, marking the cut.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
