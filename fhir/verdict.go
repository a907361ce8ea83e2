package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/radgate/radgate"
)

// Reading radiologists' verdicts (issue 14 part 3): a final
// DiagnosticReport with a coded conclusion, or radgate's read Task
// completed with the reader's verdict, becomes a radgate.Verdict.

// CodeSystemReadVerdict is the code system of a completed read Task's
// outputs and of its engine input (codesystems/read-verdict.json).
const CodeSystemReadVerdict = "https://radgate.dev/fhir/CodeSystem/read-verdict"

// Codes of CodeSystemReadVerdict besides the values (radgate.AgreementAgree,
// AgreementDisagree, FindingPresent, FindingAbsent, which are its codes as
// well): the types of the read Task's outputs and of its engine input.
const (
	CodeVerdictAgreement = "agreement"
	CodeVerdictFinding   = "finding"
	CodeVerdictEngine    = "engine"
)

// Detail codes (ErrorCodeSystem) of the answers to verdicts.
const (
	// DetailInvalidVerdict: the resource is not a usable verdict (no
	// reader, no accession number or study, no conclusion…).
	DetailInvalidVerdict = "invalid-verdict"
	// DetailUnknownVerdictCode: a coded conclusion radgate's verdict code
	// table does not know.
	DetailUnknownVerdictCode = "unknown-verdict-code"
	// DetailUnknownResult: the verdict names no AI result radgate scored
	// (radgate.ErrUnknownResult); nothing was stored.
	DetailUnknownResult = "unknown-result"
	// DetailVerdictsDisabled: this radgate records no verdicts.
	DetailVerdictsDisabled = "verdicts-disabled"
	// DetailVerdictStoreUnavailable: the verdict could not be stored now;
	// nothing was recorded, send it again.
	DetailVerdictStoreUnavailable = "verdict-store-unavailable"
	// DetailNotAVerdict: the resource was read and is not a verdict
	// (radgate's own result, a preliminary report, a Task not completed);
	// informational, nothing was recorded.
	DetailNotAVerdict = "not-a-verdict"
)

// IssueCodeInvalid is the R4 issue type of a code outside the value set
// expected.
const IssueCodeInvalid IssueCode = "code-invalid"

// VerdictCode is one coded conclusion that is a verdict: the code, and the
// finding it states (radgate.FindingPresent or FindingAbsent).
type VerdictCode struct {
	System  string `yaml:"system" json:"system"`
	Code    string `yaml:"code" json:"code"`
	Display string `yaml:"display,omitempty" json:"display,omitempty"`
	Finding string `yaml:"finding" json:"finding"`
}

// VerdictCodes is the table of coded conclusions radgate takes as
// verdicts; any other code is refused (never guessed from). A route with
// codes of its own passes its table to the intakes (fhirhttp and hl7v2
// IntakeOptions.VerdictCodes); nil means DefaultVerdictCodes.
type VerdictCodes []VerdictCode

// DefaultVerdictCodes are the codes taken when none are configured:
//
//	http://snomed.info/sct 233604007 Pneumonia                    present
//	http://snomed.info/sct 373572006 Clinical finding absent      absent
//	http://snomed.info/sct 260413007 None                         absent
//	CodeSystemReadVerdict  present / absent                       present / absent
//
// SNOMED CT is what the shipped engines score (DefaultFinding); HL7 v2
// names it SCT (or SNM), which the v2 intake maps to http://snomed.info/sct.
var DefaultVerdictCodes = VerdictCodes{
	{System: SystemSNOMED, Code: "233604007", Display: "Pneumonia", Finding: radgate.FindingPresent},
	{System: SystemSNOMED, Code: "373572006", Display: "Clinical finding absent", Finding: radgate.FindingAbsent},
	{System: SystemSNOMED, Code: "260413007", Display: "None", Finding: radgate.FindingAbsent},
	{System: CodeSystemReadVerdict, Code: radgate.FindingPresent, Display: "Finding present", Finding: radgate.FindingPresent},
	{System: CodeSystemReadVerdict, Code: radgate.FindingAbsent, Display: "Finding absent", Finding: radgate.FindingAbsent},
}

// Check reports what is wrong with a configured table: an entry without
// system or code, a finding other than present or absent, or one code
// given two findings.
func (t VerdictCodes) Check() error {
	seen := map[[2]string]string{}
	var errs []error
	for i, c := range t {
		switch {
		case strings.TrimSpace(c.System) == "" || strings.TrimSpace(c.Code) == "":
			errs = append(errs, fmt.Errorf("verdict code %d: needs a system and a code", i+1))
		case c.Finding != radgate.FindingPresent && c.Finding != radgate.FindingAbsent:
			errs = append(errs, fmt.Errorf("verdict code %d (%s|%s): finding %q, want %s or %s", i+1, c.System, c.Code, c.Finding,
				radgate.FindingPresent, radgate.FindingAbsent))
		default:
			k := [2]string{c.System, c.Code}
			if f, dup := seen[k]; dup && f != c.Finding {
				errs = append(errs, fmt.Errorf("verdict code %d (%s|%s): given both %s and %s", i+1, c.System, c.Code, f, c.Finding))
			}
			seen[k] = c.Finding
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the entry of system and code (nil table: the defaults).
func (t VerdictCodes) Lookup(system, code string) (VerdictCode, bool) {
	if t == nil {
		t = DefaultVerdictCodes
	}
	for _, c := range t {
		if c.System == system && c.Code == code {
			return c, true
		}
	}
	return VerdictCode{}, false
}

// ErrNotAVerdict is matched by a *NotVerdictError.
var ErrNotAVerdict = errors.New("not a verdict")

// NotVerdictError says why a resource read as a possible verdict is not
// one, and is not wrong either: radgate's own AI result coming back
// through a subscription, a report not final yet, a read Task not
// completed. The intake answers it as received (200) and records nothing.
type NotVerdictError struct {
	// Reason is written for the sender ("DiagnosticReport status
	// preliminary is not a final read"); it names no patient data.
	Reason string
}

func (e *NotVerdictError) Error() string { return "not a verdict: " + e.Reason }

// Is makes a *NotVerdictError match ErrNotAVerdict.
func (e *NotVerdictError) Is(target error) bool { return target == ErrNotAVerdict }

// VerdictOptions tune ParseVerdict.
type VerdictOptions struct {
	// Codes is the verdict code table; nil means DefaultVerdictCodes.
	Codes VerdictCodes
	// ID is the logical id the resource was PUT under (the URL's), used
	// when the resource has none; one that differs from the resource's is
	// an error.
	ID string
}

// IsVerdictResource reports whether resourceType is one ParseVerdict
// reads: DiagnosticReport or Task.
func IsVerdictResource(resourceType string) bool {
	return resourceType == "DiagnosticReport" || resourceType == "Task"
}

// ParseVerdict reads a DiagnosticReport (ParseReportVerdict) or a Task
// (ParseTaskVerdict), whichever the body's resourceType names. Errors are
// *FieldError values (several joined), or a *NotVerdictError.
func ParseVerdict(b []byte, opts VerdictOptions) (*radgate.Verdict, error) {
	rt, _, err := peek(b)
	if err != nil {
		return nil, err
	}
	switch rt {
	case "DiagnosticReport":
		return parseReportVerdict(b, opts, nil)
	case "Task":
		return parseTaskVerdict(b, opts)
	}
	return nil, &FieldError{Path: "resourceType", Code: IssueNotSupported,
		Msg: fmt.Sprintf("expected DiagnosticReport or Task, got %s", quoteOrNothing(rt))}
}

// JSON shapes read of verdict resources: only what a verdict needs, so
// that elements radgate does not read cannot refuse one.
type (
	vCoding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display"`
	}
	vConcept struct {
		Coding []vCoding `json:"coding"`
		Text   string    `json:"text"`
	}
	vIdentifier struct {
		System string    `json:"system"`
		Value  string    `json:"value"`
		Type   *vConcept `json:"type"`
	}
	vReference struct {
		Reference  string       `json:"reference"`
		Type       string       `json:"type"`
		Identifier *vIdentifier `json:"identifier"`
	}
	vMeta struct {
		Tag []vCoding `json:"tag"`
	}
	vReport struct {
		ID                 string        `json:"id"`
		Status             string        `json:"status"`
		Meta               *vMeta        `json:"meta"`
		Identifier         []vIdentifier `json:"identifier"`
		BasedOn            []vReference  `json:"basedOn"`
		ImagingStudy       []vReference  `json:"imagingStudy"`
		Performer          []vReference  `json:"performer"`
		ResultsInterpreter []vReference  `json:"resultsInterpreter"`
		Conclusion         string        `json:"conclusion"`
		ConclusionCode     []vConcept    `json:"conclusionCode"`
	}
	vParam struct {
		Type                 vConcept     `json:"type"`
		ValueCodeableConcept *vConcept    `json:"valueCodeableConcept"`
		ValueIdentifier      *vIdentifier `json:"valueIdentifier"`
		ValueString          *string      `json:"valueString"`
	}
	vTask struct {
		ID         string        `json:"id"`
		Status     string        `json:"status"`
		Identifier []vIdentifier `json:"identifier"`
		Owner      *vReference   `json:"owner"`
		Input      []vParam      `json:"input"`
		Output     []vParam      `json:"output"`
	}
)

func (c *vConcept) isACSN() bool {
	if c == nil {
		return false
	}
	for _, x := range c.Coding {
		if x.Code == CodeACSN && (x.System == "" || x.System == SystemV20203) {
			return true
		}
	}
	return false
}

// refTarget is what a reference inside a Bundle points at (see
// parseBundle): the entry's resource type, the identifier the reference
// becomes, and the accession number of a ServiceRequest entry.
type refTarget = target

// finalReportStatuses are the DiagnosticReport statuses of a final read
// (R4: final, amended, corrected, appended).
var finalReportStatuses = map[string]bool{"final": true, "amended": true, "corrected": true, "appended": true}

// ParseReportVerdict reads a radiologist's DiagnosticReport as a verdict
// (radgate.SourceFHIR):
//
//   - Not a verdict (a *NotVerdictError): radgate's own AI result (an
//     identifier of system SystemResult, or a meta.tag of CodeSystemRadgate),
//     a report not final yet (registered, partial, preliminary).
//   - Status final, amended, corrected or appended. Cancelled or
//     entered-in-error is refused: a verdict is replaced by a corrected
//     report, not withdrawn.
//   - ReadID: the report's id, else its first identifier that is not the
//     accession number (system|value), else the accession number
//     ("accession:system|value"), else the study ("study:<UID>"): a
//     corrected report without an id replaces the verdict of its study.
//   - Which result: the accession number, an identifier typed ACSN
//     (v2-0203) of the report, else of a basedOn reference (a
//     ServiceRequest by identifier); the Study Instance UID, an
//     imagingStudy reference by identifier of system urn:dicom:uid. One of
//     them is required.
//   - Reader: the first resultsInterpreter, else performer, that is a
//     Practitioner or PractitionerRole (by reference or type); required.
//   - Finding: the conclusionCode codings looked up in opts.Codes. A known
//     code decides (codes disagreeing with each other are refused); coded
//     conclusions none of which is known are refused, naming the first
//     ("DiagnosticReport.conclusionCode[0]: code X in system Y is not a
//     known verdict code"); only conclusion text gives
//     radgate.FindingUnlabelled, with the text kept in Verdict.Text.
func ParseReportVerdict(b []byte, opts VerdictOptions) (*radgate.Verdict, error) {
	if _, err := expect(b, "DiagnosticReport"); err != nil {
		return nil, err
	}
	return parseReportVerdict(b, opts, nil)
}

func parseReportVerdict(b []byte, opts VerdictOptions, targets map[string]refTarget) (*radgate.Verdict, error) {
	const rt = "DiagnosticReport"
	var dr vReport
	if err := json.Unmarshal(b, &dr); err != nil {
		return nil, jsonError(rt, err)
	}
	for _, id := range dr.Identifier {
		if id.System == SystemResult {
			return nil, &NotVerdictError{Reason: "the DiagnosticReport is radgate's own AI result (identifier system " + SystemResult + ")"}
		}
	}
	if dr.Meta != nil {
		for _, tag := range dr.Meta.Tag {
			if tag.System == CodeSystemRadgate {
				return nil, &NotVerdictError{Reason: "the DiagnosticReport is radgate's own (meta.tag " + CodeSystemRadgate + ")"}
			}
		}
	}
	status := strings.TrimSpace(dr.Status)
	switch {
	case status == "":
		return nil, &FieldError{Path: rt + ".status", Code: IssueRequired, Msg: "missing: a verdict is a final report"}
	case status == "cancelled" || status == "entered-in-error":
		return nil, &FieldError{Path: rt + ".status", Code: IssueNotSupported, Detail: DetailInvalidVerdict,
			Msg: fmt.Sprintf("%s: radgate does not withdraw a verdict; send the corrected report (status corrected)", status)}
	case !finalReportStatuses[status]:
		return nil, &NotVerdictError{Reason: fmt.Sprintf("DiagnosticReport status %s is not a final read (final, amended, corrected)", clip(status))}
	}
	var errs []error
	id, err := resourceID(rt, dr.ID, opts.ID)
	if err != nil {
		return nil, err
	}
	v := &radgate.Verdict{Source: radgate.SourceFHIR, ReadID: id}

	// Which result: accession number, else Study Instance UID.
	var readID string
	for i, ident := range dr.Identifier {
		path := fmt.Sprintf("%s.identifier[%d]", rt, i)
		if ident.Type.isACSN() {
			if v.Accession == nil {
				v.Accession = verdictAccession(path, ident, &errs)
			}
			continue
		}
		if readID == "" {
			if val := optional(path+".value", ident.Value, 0, &errs); val != "" {
				readID = optional(path+".system", ident.System, radgate.MaxSystemLength, &errs) + "|" + val
			}
		}
	}
	for i, r := range dr.BasedOn {
		path := fmt.Sprintf("%s.basedOn[%d]", rt, i)
		if v.Accession != nil {
			break
		}
		if r.Identifier != nil && r.Identifier.Type.isACSN() {
			v.Accession = verdictAccession(path+".identifier", *r.Identifier, &errs)
			continue
		}
		if t, ok := targets[r.Reference]; ok && t.accession != nil {
			a := *t.accession
			v.Accession = &a
		}
	}
	for i, r := range dr.ImagingStudy {
		path := fmt.Sprintf("%s.imagingStudy[%d]", rt, i)
		ident := r.Identifier
		if t, ok := targets[r.Reference]; ok && ident == nil && t.resourceType == "ImagingStudy" && t.ident != nil {
			ident = &vIdentifier{System: t.ident.System, Value: t.ident.Value}
		}
		if ident == nil || ident.System != SystemDICOMUID {
			continue
		}
		uid := radgate.StripUIDPrefix(strings.TrimSpace(ident.Value))
		if err := checkUID(path+".identifier.value", uid); err != nil {
			errs = append(errs, err)
			continue
		}
		v.StudyInstanceUID = uid
		break
	}
	if v.Accession == nil && v.StudyInstanceUID == "" {
		errs = append(errs, &FieldError{Path: rt + ".identifier", Code: IssueRequired, Detail: DetailInvalidVerdict,
			Msg: "no accession number (identifier typed ACSN, on the report or a basedOn ServiceRequest) and no imagingStudy with a Study Instance UID: radgate cannot tell which AI result the verdict is about"})
	}
	if v.ReadID == "" {
		switch {
		case readID != "":
			v.ReadID = readID
		case v.Accession != nil:
			v.ReadID = "accession:" + v.Accession.System + "|" + v.Accession.Value
		case v.StudyInstanceUID != "":
			v.ReadID = "study:" + v.StudyInstanceUID
		}
	}

	// Reader.
	v.Reader = verdictReader(rt, dr.ResultsInterpreter, dr.Performer, targets, &errs)

	// Finding.
	v.Text = strings.TrimSpace(dr.Conclusion)
	if v.Text == "" {
		for _, cc := range dr.ConclusionCode {
			if t := strings.TrimSpace(cc.Text); t != "" {
				v.Text = t
				break
			}
		}
	}
	finding, code, err := codedFinding(rt+".conclusionCode", dr.ConclusionCode, opts.Codes)
	switch {
	case err != nil:
		errs = append(errs, err)
	case code != nil:
		v.Finding, v.Code = finding, code
	case v.Text != "":
		v.Finding = radgate.FindingUnlabelled
	default:
		errs = append(errs, &FieldError{Path: rt + ".conclusion", Code: IssueRequired, Detail: DetailInvalidVerdict,
			Msg: "no conclusionCode and no conclusion: a verdict needs the reader's conclusion"})
	}
	if len([]rune(v.Text)) > maxVerdictText {
		errs = append(errs, &FieldError{Path: rt + ".conclusion", Code: IssueTooLong, Detail: DetailInvalidVerdict,
			Msg: fmt.Sprintf("longer than %d characters", maxVerdictText)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return v, nil
}

// maxVerdictText bounds a verdict's free-text conclusion.
const maxVerdictText = 64 << 10

// resourceID is the resource's id (checked), or the URL's when it has
// none; both given and different is an error.
func resourceID(rt, id, urlID string) (string, error) {
	id, urlID = strings.TrimSpace(id), strings.TrimSpace(urlID)
	if id != "" && urlID != "" && id != urlID {
		return "", &FieldError{Path: rt + ".id", Code: IssueInvalid,
			Msg: fmt.Sprintf("%s differs from the id in the URL (%s)", quoteOrNothing(clip(id)), quoteOrNothing(clip(urlID)))}
	}
	if id == "" {
		id = urlID
	}
	if err := checkID(rt, id); err != nil {
		return "", err
	}
	return id, nil
}

func verdictAccession(path string, id vIdentifier, errs *[]error) *radgate.Identifier {
	v := strings.TrimSpace(id.Value)
	if v == "" {
		*errs = append(*errs, &FieldError{Path: path + ".value", Code: IssueRequired, Detail: DetailInvalidVerdict,
			Msg: "accession number (identifier with type ACSN) has no value"})
		return nil
	}
	if err := checkString(path+".value", v, 0); err != nil {
		*errs = append(*errs, err)
		return nil
	}
	return &radgate.Identifier{System: optional(path+".system", id.System, radgate.MaxSystemLength, errs), Value: v}
}

// readerTypes are the resource types a reader may be.
var readerTypes = []string{"Practitioner", "PractitionerRole"}

func isReader(r vReference, targets map[string]refTarget) bool {
	if t, ok := targets[r.Reference]; ok {
		return contains(readerTypes, t.resourceType)
	}
	if contains(readerTypes, r.Type) {
		return true
	}
	for _, typ := range readerTypes {
		// "Practitioner/dr-lee" or an absolute URL ending so, with an id.
		if i := strings.LastIndex(r.Reference, typ+"/"); i >= 0 && (i == 0 || r.Reference[i-1] == '/') &&
			len(r.Reference) > i+len(typ)+1 {
			return true
		}
	}
	return false
}

// verdictReader is the first Practitioner or PractitionerRole among the
// interpreters, then the performers; reported missing in errs.
func verdictReader(rt string, interpreters, performers []vReference, targets map[string]refTarget, errs *[]error) *radgate.Reference {
	for _, group := range []struct {
		field string
		refs  []vReference
	}{{"resultsInterpreter", interpreters}, {"performer", performers}} {
		for i, r := range group.refs {
			if !isReader(r, targets) {
				continue
			}
			path := fmt.Sprintf("%s.%s[%d]", rt, group.field, i)
			out := &radgate.Reference{Reference: optional(path+".reference", r.Reference, maxReferenceLength, errs)}
			if t, ok := targets[r.Reference]; ok {
				// A urn:uuid means nothing outside the Bundle: the
				// Practitioner entry's identifier stands for it.
				out.Reference = ""
				if t.ident != nil {
					id := *t.ident
					out.Identifier = &id
				}
			}
			if r.Identifier != nil {
				if val := optional(path+".identifier.value", r.Identifier.Value, 0, errs); val != "" {
					out.Identifier = &radgate.Identifier{System: optional(path+".identifier.system", r.Identifier.System, radgate.MaxSystemLength, errs), Value: val}
				}
			}
			if out.Reference == "" && out.Identifier == nil {
				*errs = append(*errs, &FieldError{Path: path, Code: IssueRequired, Detail: DetailInvalidVerdict,
					Msg: "the reader has neither a reference nor an identifier"})
			}
			return out
		}
	}
	*errs = append(*errs, &FieldError{Path: rt + ".resultsInterpreter", Code: IssueRequired, Detail: DetailInvalidVerdict,
		Msg: "no Practitioner or PractitionerRole as resultsInterpreter or performer: a verdict is a radiologist's read"})
	return nil
}

// codedFinding looks the codings of concepts up in codes. It returns the
// finding and the coding that decided it; nil coding and nil error when no
// concept has a coding with a code.
func codedFinding(path string, concepts []vConcept, codes VerdictCodes) (string, *radgate.Coding, error) {
	var known *VerdictCode
	var knownPath string
	var firstUnknown error
	var errs []error
	for i, cc := range concepts {
		for j, c := range cc.Coding {
			p := fmt.Sprintf("%s[%d].coding[%d]", path, i, j)
			code := optional(p+".code", c.Code, 0, &errs)
			system := optional(p+".system", c.System, radgate.MaxSystemLength, &errs)
			optional(p+".display", c.Display, maxDisplayLength, &errs)
			if code == "" {
				continue
			}
			vc, ok := codes.Lookup(system, code)
			if !ok {
				if firstUnknown == nil {
					firstUnknown = &FieldError{Path: fmt.Sprintf("%s[%d]", path, i), Code: IssueCodeInvalid, Detail: DetailUnknownVerdictCode,
						Msg: fmt.Sprintf("code %s in system %s is not a known verdict code", clip(code), quoteOrNothing(clip(system)))}
				}
				continue
			}
			if known != nil && known.Finding != vc.Finding {
				return "", nil, &FieldError{Path: path, Code: IssueInvalid, Detail: DetailInvalidVerdict,
					Msg: fmt.Sprintf("%s says %s (%s) and %s says %s (%s): one read, one finding", knownPath, known.Finding, known.Code, p, vc.Finding, vc.Code)}
			}
			if known == nil {
				known, knownPath = &vc, p
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", nil, err
	}
	if known != nil {
		display := known.Display
		return known.Finding, &radgate.Coding{System: known.System, Code: known.Code, Display: display}, nil
	}
	return "", nil, firstUnknown
}

// ParseTaskVerdict reads radgate's read Task (BuildReadTaskBundle), PUT
// back or notified completed, as a verdict (radgate.SourceTask):
//
//   - Not a verdict (a *NotVerdictError): a Task without radgate's read
//     identifier (SystemReadRequest), or not completed yet.
//   - OrderID: the identifier's value; Engine: the input of type
//     CodeSystemReadVerdict#engine (valueIdentifier of SystemEngine,
//     "id@version": the id), "" when absent (every engine of the order).
//   - ReadID: the Task's id (the URL's for a PUT without one), else the
//     order id.
//   - Outputs, by type (a coding of CodeSystemReadVerdict): agreement,
//     valued agree or disagree; finding, valued present or absent or a
//     code of opts.Codes. At least one is required; agreement alone gives
//     radgate.FindingUnlabelled. Other outputs are ignored.
//   - Reader: Task.owner when it is a Practitioner or PractitionerRole.
func ParseTaskVerdict(b []byte, opts VerdictOptions) (*radgate.Verdict, error) {
	if _, err := expect(b, "Task"); err != nil {
		return nil, err
	}
	return parseTaskVerdict(b, opts)
}

func parseTaskVerdict(b []byte, opts VerdictOptions) (*radgate.Verdict, error) {
	const rt = "Task"
	var t vTask
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, jsonError(rt, err)
	}
	var errs []error
	orderID := ""
	for i, id := range t.Identifier {
		if id.System == SystemReadRequest {
			orderID = optional(fmt.Sprintf("%s.identifier[%d].value", rt, i), id.Value, 0, &errs)
			break
		}
	}
	if orderID == "" && len(errs) == 0 {
		return nil, &NotVerdictError{Reason: "the Task is not a radgate read Task (no identifier of system " + SystemReadRequest + ")"}
	}
	if s := strings.TrimSpace(t.Status); s != "completed" {
		if s == "" {
			return nil, &FieldError{Path: rt + ".status", Code: IssueRequired, Msg: "missing"}
		}
		return nil, &NotVerdictError{Reason: fmt.Sprintf("read Task status %s is not completed", clip(s))}
	}
	id, err := resourceID(rt, t.ID, opts.ID)
	if err != nil {
		return nil, err
	}
	v := &radgate.Verdict{Source: radgate.SourceTask, ReadID: id, OrderID: orderID}
	if v.ReadID == "" {
		v.ReadID = orderID
	}
	for i, in := range t.Input {
		if !in.Type.has(CodeSystemReadVerdict, CodeVerdictEngine) {
			continue
		}
		path := fmt.Sprintf("%s.input[%d]", rt, i)
		var raw string
		switch {
		case in.ValueIdentifier != nil:
			raw = optional(path+".valueIdentifier.value", in.ValueIdentifier.Value, 0, &errs)
		case in.ValueString != nil:
			raw = optional(path+".valueString", *in.ValueString, 0, &errs)
		}
		v.Engine, _, _ = strings.Cut(raw, "@")
		break
	}
	gotOutput := false
	for i, out := range t.Output {
		path := fmt.Sprintf("%s.output[%d]", rt, i)
		switch {
		case out.Type.has(CodeSystemReadVerdict, CodeVerdictAgreement):
			gotOutput = true
			c := out.value(path, &errs)
			if c == nil {
				continue
			}
			if c.System != CodeSystemReadVerdict || (c.Code != radgate.AgreementAgree && c.Code != radgate.AgreementDisagree) {
				errs = append(errs, &FieldError{Path: path + ".valueCodeableConcept", Code: IssueCodeInvalid, Detail: DetailUnknownVerdictCode,
					Msg: fmt.Sprintf("code %s in system %s is not an agreement (%s#%s or %s)", clip(c.Code), quoteOrNothing(clip(c.System)),
						CodeSystemReadVerdict, radgate.AgreementAgree, radgate.AgreementDisagree)})
				continue
			}
			v.Agreement = c.Code
		case out.Type.has(CodeSystemReadVerdict, CodeVerdictFinding):
			gotOutput = true
			if out.ValueCodeableConcept == nil {
				errs = append(errs, &FieldError{Path: path + ".valueCodeableConcept", Code: IssueRequired, Detail: DetailInvalidVerdict,
					Msg: "the finding output needs a valueCodeableConcept (present or absent)"})
				continue
			}
			finding, code, err := codedFinding(path+".valueCodeableConcept", []vConcept{*out.ValueCodeableConcept}, opts.Codes)
			switch {
			case err != nil:
				errs = append(errs, rebasePath(err, path+".valueCodeableConcept[0]", path+".valueCodeableConcept"))
			case code == nil:
				errs = append(errs, &FieldError{Path: path + ".valueCodeableConcept", Code: IssueRequired, Detail: DetailInvalidVerdict,
					Msg: "the finding output has no code (present or absent)"})
			default:
				v.Finding, v.Code = finding, code
			}
		}
	}
	if !gotOutput {
		errs = append(errs, &FieldError{Path: rt + ".output", Code: IssueRequired, Detail: DetailInvalidVerdict,
			Msg: fmt.Sprintf("a completed read Task needs an output of type %s#%s or #%s", CodeSystemReadVerdict, CodeVerdictAgreement, CodeVerdictFinding)})
	}
	if v.Finding == "" {
		v.Finding = radgate.FindingUnlabelled
	}
	if t.Owner != nil && isReader(*t.Owner, nil) {
		v.Reader = &radgate.Reference{Reference: optional(rt+".owner.reference", t.Owner.Reference, maxReferenceLength, &errs)}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return v, nil
}

func (c vConcept) has(system, code string) bool {
	for _, x := range c.Coding {
		if x.System == system && x.Code == code {
			return true
		}
	}
	return false
}

// value is the output's first coding, checked; nil (and an error in errs)
// when it has none.
func (p vParam) value(path string, errs *[]error) *vCoding {
	if p.ValueCodeableConcept == nil || len(p.ValueCodeableConcept.Coding) == 0 {
		*errs = append(*errs, &FieldError{Path: path + ".valueCodeableConcept", Code: IssueRequired, Detail: DetailInvalidVerdict,
			Msg: "missing: the output's value is a coding"})
		return nil
	}
	c := p.ValueCodeableConcept.Coding[0]
	c.Code = optional(path+".valueCodeableConcept.coding[0].code", c.Code, 0, errs)
	c.System = optional(path+".valueCodeableConcept.coding[0].system", c.System, radgate.MaxSystemLength, errs)
	return &c
}

// rebasePath replaces the prefix from of a FieldError's path by to.
func rebasePath(err error, from, to string) error {
	var fe *FieldError
	if errors.As(err, &fe) && strings.HasPrefix(fe.Path, from) {
		out := *fe
		out.Path = to + fe.Path[len(from):]
		return &out
	}
	return err
}
