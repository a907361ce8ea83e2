package fhirhttp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// FuzzIntakeIdentifiers drives the intake's identifier checks through HTTP:
// a ServiceRequest, an ImagingStudy, a transaction Bundle (Patient +
// ServiceRequest) or a radiologist's DiagnosticReport (a verdict) carrying
// arbitrary strings as accession number and system, Study Instance UID,
// patient or reader identifier, references, code and display. Every answer
// is either 4xx naming the element at fault, or orders (verdicts) whose
// every kept string passes radgate.CheckIdentifier / CheckUID — never a
// 5xx, never an order or verdict radgate could not store and send on.
func FuzzIntakeIdentifiers(f *testing.F) {
	f.Add(uint8(0), "ACC-0001", "urn:oid:1.2.3.4.5", "1.2.826.0.1.3680043.8.498.1", "MRN-1", "urn:oid:1.2.3.4.9", "Patient/p-1", "General Hospital", "36643-5")
	f.Add(uint8(1), "ACC-0001", "", "1.2.3", "MRN-1", "", "Patient/p-1", "X-ray room 2", "CR")
	f.Add(uint8(2), "ACC-0002", "urn:oid:1.2.3.4.5", "", "MRN-123", "urn:oid:1.2.3.4.9", "urn:uuid:p", "", "DX")
	f.Add(uint8(0), "ACC\x1b[2J", "sys\x00", "1.02.3", "MRN\u0085", "\t", "Patient/\x7f", "room\n2", "36643\x1b")
	f.Add(uint8(1), strings.Repeat("A", 65), strings.Repeat("s", 256), "1."+strings.Repeat("2", 63), strings.Repeat("9", 65), "", strings.Repeat("r", 256), strings.Repeat("d", 1025), strings.Repeat("M", 17))
	f.Add(uint8(2), " ", " ", "urn:oid: ", "\u2028", "\ufeff", "urn:uuid:x", "\u200b", "\xff")
	f.Add(uint8(3), "ACC-0001", "urn:oid:1.2.3.4.5", "1.2.826.0.1.3680043.8.498.1", "DR-1", "urn:npi", "Practitioner/p-1", "consolidation", "233604007")
	f.Add(uint8(3), "ACC\x00", "\t", "1.02", "\u0085", "", "PractitionerRole/\x7f", "", "373572006")
	f.Fuzz(func(t *testing.T, mode uint8, acsn, system, uid, mrn, mrnSystem, ref, display, code string) {
		fi := newFakeIntake()
		verdicts := &allResults{}
		h := NewIntake(fi, IntakeOptions{Verdicts: verdicts})
		acsnID := map[string]any{"type": map[string]any{"coding": []any{map[string]any{"system": fhir.SystemV20203, "code": "ACSN"}}},
			"system": system, "value": acsn}
		uidID := map[string]any{"system": fhir.SystemDICOMUID, "value": uid}
		subject := map[string]any{"reference": ref, "display": display,
			"identifier": map[string]any{"system": mrnSystem, "value": mrn}}
		org := map[string]any{"reference": "Organization/" + code, "display": display}
		var path string
		var body any
		switch mode % 4 {
		case 0:
			path, body = "/fhir/ServiceRequest", map[string]any{
				"resourceType": "ServiceRequest", "status": "active", "intent": "order",
				"identifier": []any{acsnID, uidID}, "subject": subject, "performer": []any{org},
				"code": map[string]any{"coding": []any{map[string]any{"system": fhir.SystemDICOMModality, "code": code, "display": display}}}}
		case 1:
			path, body = "/fhir/ImagingStudy", map[string]any{
				"resourceType": "ImagingStudy", "status": "available",
				"identifier": []any{uidID, acsnID}, "subject": subject,
				"basedOn":  []any{map[string]any{"reference": ref}},
				"modality": []any{map[string]any{"code": code}},
				"location": map[string]any{"reference": "Location/" + code, "display": display}}
		case 3:
			path, body = "/fhir/DiagnosticReport", map[string]any{
				"resourceType": "DiagnosticReport", "id": "rad-1", "status": "final",
				"identifier": []any{acsnID}, "imagingStudy": []any{map[string]any{"identifier": uidID}},
				"resultsInterpreter": []any{map[string]any{"reference": ref, "identifier": map[string]any{"system": mrnSystem, "value": mrn}}},
				"conclusion":         display,
				"conclusionCode":     []any{map[string]any{"coding": []any{map[string]any{"system": fhir.SystemSNOMED, "code": code, "display": display}}}}}
		default:
			path, body = "/fhir", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": "urn:uuid:p", "resource": map[string]any{"resourceType": "Patient",
					"identifier": []any{map[string]any{"system": mrnSystem, "value": mrn}}}},
				map[string]any{"fullUrl": "urn:uuid:s", "resource": map[string]any{
					"resourceType": "ServiceRequest", "status": "active", "intent": "order",
					"identifier": []any{acsnID}, "subject": map[string]any{"reference": ref, "display": display}}},
			}}
		}
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if mode%4 == 3 {
			checkVerdictAnswer(t, rec, verdicts)
			return
		}
		switch {
		case rec.Code == http.StatusBadRequest:
			o, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
			if err != nil || len(o.Issues) == 0 {
				t.Fatalf("400 without an OperationOutcome: %v %s", err, rec.Body)
			}
			for _, is := range o.Issues {
				if len(is.Expression) == 0 || is.Expression[0] == "" || is.Code == "" || is.Detail == "" {
					t.Fatalf("an issue names no element, code or detail: %+v", is)
				}
			}
			if len(fi.Events()) != 0 {
				t.Fatalf("refused 400, yet %d orders were accepted", len(fi.Events()))
			}
			return
		case rec.Code == http.StatusAccepted || rec.Code == http.StatusOK:
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
		if len(fi.Events()) == 0 {
			t.Fatalf("answered %d without an order: %s", rec.Code, rec.Body)
		}
		for _, ev := range fi.Events() {
			checkEvent(t, ev)
		}
	})
}

// checkEvent fails unless every string ev keeps passes radgate's checks.
func checkEvent(t *testing.T, ev radgate.OrderEvent) {
	t.Helper()
	check := func(field, v string, max int) {
		t.Helper()
		if err := radgate.CheckIdentifier(field, v, max); err != nil {
			t.Fatalf("accepted an order whose %v", err)
		}
	}
	optional := func(field, v string, max int) {
		t.Helper()
		if v != "" {
			check(field, v, max)
		}
	}
	ref := func(field string, r *radgate.Reference) {
		t.Helper()
		if r == nil {
			return
		}
		optional(field+".reference", r.Reference, radgate.MaxSystemLength)
		optional(field+".display", r.Display, 1024)
		if r.Identifier != nil {
			check(field+".identifier.value", r.Identifier.Value, radgate.MaxIdentifierLength)
			optional(field+".identifier.system", r.Identifier.System, radgate.MaxSystemLength)
		}
	}
	if ev.Accession != nil {
		check("accession", ev.Accession.Value, radgate.MaxIdentifierLength)
		optional("accession system", ev.Accession.System, radgate.MaxSystemLength)
	}
	if ev.StudyInstanceUID != "" {
		if err := radgate.CheckUID("study UID", ev.StudyInstanceUID); err != nil {
			t.Fatalf("accepted an order whose %v", err)
		}
	}
	ref("patient", ev.Patient)
	ref("service request", ev.ServiceRequest)
	ref("imaging study", ev.ImagingStudy)
	for i := range ev.BasedOn {
		ref("basedOn", &ev.BasedOn[i])
	}
	for _, c := range ev.ProcedureCodes {
		check("code", c.Code, radgate.MaxIdentifierLength)
		optional("code system", c.System, radgate.MaxSystemLength)
		optional("code display", c.Display, 1024)
	}
	for _, m := range ev.Modalities {
		check("modality", m, 16)
	}
	optional("facility", ev.Facility, 1024)
}

// allResults records every verdict, as if each named a scored result.
type allResults struct{ got []radgate.Verdict }

func (a *allResults) Record(_ context.Context, v radgate.Verdict) (radgate.VerdictReceipt, error) {
	a.got = append(a.got, v)
	return radgate.VerdictReceipt{OrderID: "o"}, nil
}

// checkVerdictAnswer fails unless a verdict's answer is a 4xx naming the
// element at fault with nothing recorded, 200 not-a-verdict (nothing
// recorded), or 201 with
// one verdict whose every kept string passes radgate's checks.
func checkVerdictAnswer(t *testing.T, rec *httptest.ResponseRecorder, verdicts *allResults) {
	t.Helper()
	switch rec.Code {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		o, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
		if err != nil || len(o.Issues) == 0 {
			t.Fatalf("%d without an OperationOutcome: %v %s", rec.Code, err, rec.Body)
		}
		for _, is := range o.Issues {
			if len(is.Expression) == 0 || is.Expression[0] == "" || is.Code == "" || is.Detail == "" {
				t.Fatalf("an issue names no element, code or detail: %+v", is)
			}
		}
		if len(verdicts.got) != 0 {
			t.Fatalf("refused %d, yet a verdict was recorded", rec.Code)
		}
		return
	case http.StatusOK:
		// Not a verdict: an accession number in radgate's result system
		// makes it radgate's own report.
		o, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
		if err != nil || len(o.Issues) != 1 || o.Issues[0].Detail != fhir.DetailNotAVerdict || len(verdicts.got) != 0 {
			t.Fatalf("200 to a verdict: %v %s (%d recorded)", err, rec.Body, len(verdicts.got))
		}
		return
	case http.StatusCreated:
	default:
		t.Fatalf("a verdict answered %d: %s", rec.Code, rec.Body)
	}
	if len(verdicts.got) != 1 {
		t.Fatalf("answered 201 with %d verdicts recorded", len(verdicts.got))
	}
	v := verdicts.got[0]
	check := func(field, val string, max int) {
		t.Helper()
		if err := radgate.CheckIdentifier(field, val, max); err != nil {
			t.Fatalf("recorded a verdict whose %v", err)
		}
	}
	if v.Accession != nil {
		check("accession", v.Accession.Value, radgate.MaxIdentifierLength)
		if v.Accession.System != "" {
			check("accession system", v.Accession.System, radgate.MaxSystemLength)
		}
	}
	if v.StudyInstanceUID != "" {
		if err := radgate.CheckUID("study UID", v.StudyInstanceUID); err != nil {
			t.Fatalf("recorded a verdict whose %v", err)
		}
	}
	if v.Accession == nil && v.StudyInstanceUID == "" {
		t.Fatal("recorded a verdict naming no result")
	}
	if v.Reader == nil || (v.Reader.Reference == "" && v.Reader.Identifier == nil) {
		t.Fatalf("recorded a verdict without reader: %+v", v.Reader)
	}
	if v.Reader.Reference != "" {
		check("reader", v.Reader.Reference, radgate.MaxSystemLength)
	}
	if id := v.Reader.Identifier; id != nil {
		check("reader identifier", id.Value, radgate.MaxIdentifierLength)
	}
	if v.Code != nil {
		check("code", v.Code.Code, radgate.MaxIdentifierLength)
	}
	if v.Finding == "" {
		t.Fatal("recorded a verdict without finding")
	}
}
