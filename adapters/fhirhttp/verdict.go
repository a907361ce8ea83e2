package fhirhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// Verdicts: radiologists' reads coming back (issue 14 part 3). The intake
// reads a DiagnosticReport or a Task as a radgate.Verdict (fhir.ParseVerdict)
// and hands it to IntakeOptions.Verdicts:
//
//	POST /fhir/DiagnosticReport, PUT /fhir/DiagnosticReport/{id}
//	POST /fhir/Task, PUT /fhir/Task/{id}
//	POST /fhir (a Bundle entry), POST|PUT /fhir/notify (rest-hook)
//
// Any caller that may post orders may post verdicts (every authenticated
// caller; httpauth adds no role for either). A verdict counts against the
// client's order rate as one order does.
//
// Answers (OperationOutcome; detail codes of fhir.ErrorCodeSystem):
//
//	201 Created               recorded, a new read; diagnostics name the
//	                          matched order and engines
//	200 OK                    recorded, replacing an earlier verdict of the
//	                          same read (kept in its history), or already
//	                          recorded (a retried delivery: nothing counted
//	                          again)
//	200 OK not-a-verdict      read, and not a verdict: radgate's own AI
//	                          result, a report not final, a read Task not
//	                          completed; nothing recorded (a subscription
//	                          delivering them must not see an error)
//	400 invalid-resource      malformed JSON, an element of the wrong JSON
//	                          type
//	422 unknown-verdict-code  a coded conclusion not in the verdict code
//	                          table, at its FHIRPath ("DiagnosticReport.
//	                          conclusionCode[0]: code X in system Y is not
//	                          a known verdict code")
//	422 invalid-verdict       no reader, no accession number or study, no
//	                          conclusion…, or the recorder's
//	                          radgate.ErrInvalidVerdict
//	409 unknown-result        radgate.ErrUnknownResult: no AI result of
//	                          radgate's matches (an unknown accession
//	                          number, a study not scored yet); nothing was
//	                          recorded or counted. 409 rather than 404: the
//	                          endpoint exists, the result it names does
//	                          not, and may once the study is scored
//	501 verdicts-disabled     this radgate records no verdicts (no
//	                          recorder configured); nothing recorded
//	503 verdict-store-unavailable  any other failure to record, with
//	                          Retry-After: nothing recorded, send it again

// verdictRoutes registers the verdict endpoints on mux.
func (h *Intake) verdictRoutes(mux *http.ServeMux) {
	for _, rt := range []string{"DiagnosticReport", "Task"} {
		mux.HandleFunc("/fhir/"+rt, h.methods(h.postVerdict(""), http.MethodPost))
		mux.HandleFunc("/fhir/"+rt+"/{id}", h.methods(h.postVerdict(rt), http.MethodPut))
	}
}

// postVerdict serves POST /fhir/{type} (rt "") and PUT /fhir/{rt}/{id}.
func (h *Intake) postVerdict(rt string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readBody(w, r)
		if !ok {
			return
		}
		id := ""
		if rt != "" {
			id = r.PathValue("id")
		}
		want := rt
		if want == "" {
			want = strings.TrimPrefix(r.URL.Path, "/fhir/")
		}
		h.verdict(w, r, body, want, id)
	}
}

// verdict answers one verdict resource: want is the resource type the URL
// names ("" from the rest-hook: either), urlID the id of a PUT.
func (h *Intake) verdict(w http.ResponseWriter, r *http.Request, body []byte, want, urlID string) {
	opts := fhir.VerdictOptions{Codes: h.verdictCodes, ID: urlID}
	var v *radgate.Verdict
	var err error
	switch want {
	case "DiagnosticReport":
		v, err = fhir.ParseReportVerdict(body, opts)
	case "Task":
		v, err = fhir.ParseTaskVerdict(body, opts)
	default:
		v, err = fhir.ParseVerdict(body, opts)
	}
	if !h.admit(w, r, 1) {
		return
	}
	var nv *fhir.NotVerdictError
	switch {
	case errors.As(err, &nv):
		h.log.Info("not a verdict; nothing recorded", "path", r.URL.Path, "reason", nv.Reason)
		writeOutcome(w, http.StatusOK, notVerdictOutcome(nv.Reason))
		return
	case err != nil:
		h.logRejected(r, err)
		writeOutcome(w, verdictParseStatus(err), fhir.OutcomeFromError(err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidVerdict))
		return
	}
	if h.verdicts == nil {
		h.log.Warn("verdict refused: verdicts are not enabled", "path", r.URL.Path, "source", v.Source, "read_id", v.ReadID)
		writeOutcome(w, http.StatusNotImplemented, verdictsDisabled())
		return
	}
	code, oo, err := h.record(r.Context(), v)
	if err != nil {
		h.log.Warn("verdict not recorded", "path", r.URL.Path, "source", v.Source, "read_id", v.ReadID, "status", code, "error", err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
	}
	writeOutcome(w, code, oo)
}

// record hands v to the recorder, stamped now, and says how to answer:
// the status, the outcome, and the recorder's error (for the log only).
func (h *Intake) record(ctx context.Context, v *radgate.Verdict) (int, *fhir.Outcome, error) {
	v.ReceivedAt = h.now().UTC()
	rc, err := h.verdicts.Record(ctx, *v)
	if err != nil {
		code, oo := recordError(err, v)
		return code, oo, err
	}
	code := http.StatusCreated
	note := ""
	switch {
	case rc.Duplicate:
		code, note = http.StatusOK, "; it was already recorded: nothing changed"
	case rc.Replaced:
		code, note = http.StatusOK, "; it replaces the earlier verdict of this read, which is kept in the label's history"
	}
	engines := "every engine that scored it"
	if len(rc.Engines) > 0 {
		engines = "engine " + strings.Join(rc.Engines, ", ")
	}
	h.log.Info("verdict recorded", "source", v.Source, "read_id", v.ReadID, "order_id", rc.OrderID, "engines", rc.Engines,
		"finding", v.Finding, "agreement", v.Agreement, "replaced", rc.Replaced, "duplicate", rc.Duplicate)
	return code, fhir.NewOutcome(fhir.SeverityInformation, fhir.IssueInformational,
		fmt.Sprintf("verdict of %s recorded for order %s (%s), finding %s%s", verdictName(v), rc.OrderID, engines, v.Finding, note)), nil
}

// recordError maps a recorder's error to a status and an outcome written
// for the sender (the error's own text only for radgate.ErrInvalidVerdict,
// which describes the verdict).
func recordError(err error, v *radgate.Verdict) (int, *fhir.Outcome) {
	switch {
	case errors.Is(err, radgate.ErrUnknownResult):
		return http.StatusConflict, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			fmt.Sprintf("%s: radgate has no AI result for it (%s unknown, or its study not scored yet); nothing was recorded", verdictName(v), verdictKeyName(v))).
			WithDetail(fhir.DetailUnknownResult)
	case errors.Is(err, radgate.ErrInvalidVerdict):
		return http.StatusUnprocessableEntity, fhir.NewOutcome(fhir.SeverityError, fhir.IssueInvalid,
			fmt.Sprintf("%s: %s", verdictName(v), clipText(radgate.Public(err)))).WithDetail(fhir.DetailInvalidVerdict)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
			"the verdict could not be stored in time; nothing was recorded: send it again").WithDetail(fhir.DetailVerdictStoreUnavailable)
	}
	return http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
		"the verdict store is unavailable; nothing was recorded: send it again later").WithDetail(fhir.DetailVerdictStoreUnavailable)
}

// verdictParseStatus is 400 for a body that is not well-formed FHIR JSON
// (an issue of type structure), else 422: the resource is readable but
// not a usable verdict.
func verdictParseStatus(err error) int {
	for _, is := range fhir.OutcomeFromError(err, fhir.IssueInvalid).Issues {
		if is.Code == fhir.IssueStructure {
			return http.StatusBadRequest
		}
	}
	return http.StatusUnprocessableEntity
}

func verdictsDisabled() *fhir.Outcome {
	return fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotSupported,
		"verdicts are not enabled on this radgate (no verdict recorder is configured); nothing was recorded").
		WithDetail(fhir.DetailVerdictsDisabled)
}

func notVerdictOutcome(reason string) *fhir.Outcome {
	return fhir.NewOutcome(fhir.SeverityInformation, fhir.IssueInformational, "not recorded as a verdict: "+reason).
		WithDetail(fhir.DetailNotAVerdict)
}

// verdictName names a verdict for its sender by identifiers only:
// "DiagnosticReport/rad-7", "Task/t1".
func verdictName(v *radgate.Verdict) string {
	switch v.Source {
	case radgate.SourceFHIR:
		return "DiagnosticReport " + clipText(v.ReadID)
	case radgate.SourceTask:
		return "Task " + clipText(v.ReadID)
	}
	return "the verdict"
}

// verdictKeyName says what the verdict names its result by.
func verdictKeyName(v *radgate.Verdict) string {
	switch {
	case v.OrderID != "":
		s := "order " + clipText(v.OrderID)
		if v.Engine != "" {
			s += " × engine " + clipText(v.Engine)
		}
		return s
	case v.Accession != nil:
		return "accession number " + clipText(v.Accession.Value)
	}
	return "Study Instance UID " + v.StudyInstanceUID
}

// hasVerdicts reports whether a Bundle holds a verdict to record.
func hasVerdicts(b *fhir.IntakeBundle) bool {
	for _, e := range b.Entries {
		if e.Verdict != nil {
			return true
		}
	}
	return false
}

// bundleRejected answers a transaction with entries in error: 422 when
// every one is a verdict entry readable but unusable, else 400 (as a
// transaction of orders is answered).
func (h *Intake) bundleRejected(w http.ResponseWriter, r *http.Request, b *fhir.IntakeBundle, err error) {
	code := http.StatusUnprocessableEntity
	for _, e := range b.Entries {
		if e.Err != nil && (!fhir.IsVerdictResource(e.ResourceType) || verdictParseStatus(e.Err) != http.StatusUnprocessableEntity) {
			code = http.StatusBadRequest
		}
	}
	if code == http.StatusBadRequest {
		h.rejected(w, r, err)
		return
	}
	h.logRejected(r, err)
	writeOutcome(w, code, fhir.OutcomeFromError(err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidVerdict))
}
