package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
}

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
	Severity IssueSeverity `json:"severity"`
	Code     IssueCode     `json:"code"`
	Details  *struct {
		Text string `json:"text,omitempty"`
	} `json:"details,omitempty"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// MarshalJSON writes o as an R4 OperationOutcome. An outcome without issues
// gets one informational issue, since R4 requires at least one.
func (o *Outcome) MarshalJSON() ([]byte, error) {
	out := jsonOutcome{ResourceType: "OperationOutcome", Issue: []jsonIssue{}}
	for _, is := range o.Issues {
		ji := jsonIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression}
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
// their expression), else one issue of the given code.
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
			is := Issue{Severity: SeverityError, Code: fe.Code, Diagnostics: fe.Error()}
			if is.Code == "" {
				is.Code = IssueInvalid
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

// OutcomeError is a FHIR server's refusal: the HTTP status and the
// OperationOutcome it answered with (nil when the body was not one).
type OutcomeError struct {
	// Op says what was being done ("posting the result transaction").
	Op      string
	Status  int
	Outcome *Outcome
	// Body is the start of a response body that was not an OperationOutcome.
	Body string
}

func (e *OutcomeError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "FHIR server answered %d %s", e.Status, http.StatusText(e.Status))
	if t := e.Outcome.Text(); t != "" {
		b.WriteString(": ")
		b.WriteString(t)
	} else if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
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

func quoteOrNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
