package fhirhttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// withStatus is a fixture with its status replaced.
func withStatus(t *testing.T, name, status string) string {
	t.Helper()
	body := fixture(t, name)
	for _, old := range []string{`"status": "active"`, `"status": "available"`} {
		body = strings.Replace(body, old, `"status": "`+status+`"`, 1)
	}
	require.Contains(t, body, `"status": "`+status+`"`)
	return body
}

// asBatch wraps resources in a batch Bundle.
func asBatch(resources ...string) string {
	var entries []string
	for _, r := range resources {
		entries = append(entries, `{"resource":`+r+`}`)
	}
	return `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Join(entries, ",") + `]}`
}

// A ServiceRequest revoked or entered in error cancels its order, whichever
// way it arrives; any other status places or updates it.
func TestIntakeCancellation(t *testing.T) {
	for _, c := range []struct {
		status string
		action radgate.OrderAction
		reason string
	}{
		{"revoked", radgate.ActionCancel, "FHIR ServiceRequest status revoked"},
		{"entered-in-error", radgate.ActionCancel, "FHIR ServiceRequest status entered-in-error"},
		{"active", radgate.ActionOrder, ""},
		{"on-hold", radgate.ActionOrder, ""},
		{"completed", radgate.ActionOrder, ""},
	} {
		for _, path := range []string{"/fhir/ServiceRequest", "/fhir/notify", "/fhir/notify/ServiceRequest/sr-1", "/fhir"} {
			t.Run(c.status+" "+path, func(t *testing.T) {
				f, srv := newTestIntake(t, IntakeOptions{})
				body := withStatus(t, "servicerequest.json", c.status)
				want := http.StatusAccepted
				if path == "/fhir" {
					body, want = asBatch(body), http.StatusOK
				}
				r := send(t, http.MethodPost, srv.URL+path, "application/fhir+json", body)
				require.Equal(t, want, r.status, "%s", r.body)
				evs := f.Events()
				require.Len(t, evs, 1)
				require.Equal(t, c.action, evs[0].Action)
				require.Equal(t, c.reason, evs[0].Reason)
				require.Equal(t, &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"}, evs[0].Accession,
					"a cancellation names its order like the order did")
				require.Equal(t, &radgate.Reference{Reference: "ServiceRequest/sr-1"}, evs[0].ServiceRequest)
			})
		}
	}
}

// Accept's lifecycle refusals are the sender's errors: an unknown order is
// 404 naming the order by its id or accession number (never the patient),
// a cancelled one 409 with the reason radgate.Intake gave.
func TestIntakeLifecycleRefusals(t *testing.T) {
	noID := strings.Replace(withStatus(t, "servicerequest.json", "revoked"), `"id": "sr-1",`, "", 1)
	for _, c := range []struct {
		name, path, body string
		err              error
		status           int
		code             fhir.IssueCode
		detail           string
		diagnostics      string
	}{
		{"unknown order, by id", "/fhir/notify", withStatus(t, "servicerequest.json", "revoked"),
			fmt.Errorf("cancelling order acsn|x: %w", radgate.ErrUnknownOrder), http.StatusNotFound, fhir.IssueNotFound, fhir.DetailNotFound,
			"ServiceRequest/sr-1: radgate has no such order to cancel (it never received one of this accession number)"},
		{"unknown order, by accession", "/fhir/ServiceRequest", noID,
			fmt.Errorf("cancelling order acsn|x: %w", radgate.ErrUnknownOrder), http.StatusNotFound, fhir.IssueNotFound, fhir.DetailNotFound,
			"ServiceRequest with accession number urn:oid:1.2.3.4.5|ACC-0001: radgate has no such order to cancel (it never received one of this accession number)"},
		{"cancelled order", "/fhir/ImagingStudy", fixture(t, "imagingstudy.json"),
			fmt.Errorf("order 0123abcd cancelled at 2026-11-27T09:00:00Z (FHIR ServiceRequest status revoked): %w", radgate.ErrOrderCancelled),
			http.StatusConflict, IssueConflict, DetailOrderCancelled,
			"ImagingStudy/is-1: order 0123abcd cancelled at 2026-11-27T09:00:00Z (FHIR ServiceRequest status revoked): order cancelled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, srv := newTestIntake(t, IntakeOptions{})
			f.acceptFn = func(int, radgate.OrderEvent) error { return c.err }
			r := send(t, http.MethodPost, srv.URL+c.path, "application/fhir+json", c.body)
			require.Equal(t, c.status, r.status, "%s", r.body)
			o := outcome(t, r)
			require.Equal(t, c.code, o.Issues[0].Code)
			require.Equal(t, c.detail, o.Issues[0].Detail)
			require.Equal(t, c.diagnostics, o.Issues[0].Diagnostics)
			require.NotContains(t, string(r.body), "Patient/p-1")
			require.NotContains(t, string(r.body), "MRN")

			// In a batch the entry carries the same answer; in a
			// transaction the whole Bundle does.
			r = send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", asBatch(c.body))
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			var b struct {
				Entry []struct {
					Response struct {
						Status  string          `json:"status"`
						Outcome json.RawMessage `json:"outcome"`
					} `json:"response"`
				} `json:"entry"`
			}
			require.NoError(t, json.Unmarshal(r.body, &b))
			require.Equal(t, fmt.Sprintf("%d %s", c.status, http.StatusText(c.status)), b.Entry[0].Response.Status)
			eo, err := fhir.ParseOperationOutcome(b.Entry[0].Response.Outcome)
			require.NoError(t, err)
			require.Equal(t, c.diagnostics, eo.Issues[0].Diagnostics)

			tx := strings.Replace(asBatch(c.body), `"batch"`, `"transaction"`, 1)
			r = send(t, http.MethodPost, srv.URL+"/fhir", "application/fhir+json", tx)
			require.Equal(t, c.status, r.status, "%s", r.body)
			require.Equal(t, c.code, outcome(t, r).Issues[0].Code)
		})
	}
}

// An ImagingStudy available announces its study complete, with
// numberOfInstances (0 when absent); a registered one does not.
func TestIntakeStudyComplete(t *testing.T) {
	withCount := func(body, count string) string {
		return strings.Replace(body, `"status":`, `"numberOfInstances": `+count+`, "status":`, 1)
	}
	available := fixture(t, "imagingstudy.json")
	for _, c := range []struct {
		name, body string
		complete   bool
		count      int
	}{
		{"available with count", withCount(available, "3"), true, 3},
		{"available without count", available, true, 0},
		{"available, count 0", withCount(available, "0"), true, 0},
		{"registered", withCount(withStatus(t, "imagingstudy.json", "registered"), "2"), false, 0},
	} {
		for _, path := range []string{"/fhir/ImagingStudy", "/fhir/notify", "/fhir"} {
			t.Run(c.name+" "+path, func(t *testing.T) {
				f, srv := newTestIntake(t, IntakeOptions{})
				body, want := c.body, http.StatusAccepted
				if path == "/fhir" {
					// The study second, after a Patient, so the entry's
					// index is not 0.
					body, want = asBatch(`{"resourceType":"Patient"}`, body), http.StatusOK
				}
				r := send(t, http.MethodPost, srv.URL+path, "application/fhir+json", body)
				require.Equal(t, want, r.status, "%s", r.body)
				evs := f.Events()
				require.Len(t, evs, 1)
				require.Equal(t, c.complete, evs[0].StudyComplete)
				require.Equal(t, c.count, evs[0].InstanceCount)
				require.Equal(t, radgate.ActionOrder, evs[0].Action)
			})
		}
	}

	// A count that is no count is the sender's error, named.
	for _, path := range []string{"/fhir/ImagingStudy", "/fhir"} {
		f, srv := newTestIntake(t, IntakeOptions{})
		body, expr := withCount(available, "-1"), "ImagingStudy.numberOfInstances"
		if path == "/fhir" {
			body, expr = strings.Replace(asBatch(`{"resourceType":"Patient"}`, body), `"batch"`, `"transaction"`, 1), "Bundle.entry[1].resource.numberOfInstances"
		}
		r := send(t, http.MethodPost, srv.URL+path, "application/fhir+json", body)
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		o := outcome(t, r)
		require.Equal(t, []string{expr}, o.Issues[0].Expression)
		require.Equal(t, fhir.IssueValue, o.Issues[0].Code)
		require.Contains(t, o.Issues[0].Diagnostics, "-1 is not a number of instances")
		require.Empty(t, f.Events())
	}
}

// ServiceRequest.priority travels as sent; stat is urgent work.
func TestIntakePriorityStat(t *testing.T) {
	f, srv := newTestIntake(t, IntakeOptions{})
	body := strings.Replace(fixture(t, "servicerequest.json"), `"priority": "urgent"`, `"priority": "stat"`, 1)
	require.Contains(t, body, `"stat"`)
	r := send(t, http.MethodPost, srv.URL+"/fhir/ServiceRequest", "application/fhir+json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	ev := f.Events()[0]
	require.Equal(t, "stat", ev.Priority)
	require.Equal(t, radgate.PriorityUrgent, radgate.PriorityClass(ev.Priority))
}
