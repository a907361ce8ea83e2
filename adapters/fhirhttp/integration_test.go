package fhirhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// These tests talk to the real FHIR test server (testenv/start.sh), which
// validates every write.

func realClient(t *testing.T) *Sink {
	t.Helper()
	s, err := NewSink(SinkOptions{BaseURL: testenv.FHIR(t).URL, Timeout: 30 * time.Second})
	require.NoError(t, err)
	return s
}

func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func readJSON(t *testing.T, c *Client, ref string) map[string]any {
	t.Helper()
	b, err := c.Read(t.Context(), ref)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// createOrder creates a Patient, a ServiceRequest and an ImagingStudy on the
// server, as an EHR would, and returns their references.
func createOrder(t *testing.T, c *Client, accession, studyUID string) (patient, sr, is string) {
	t.Helper()
	ctx := t.Context()
	var err error
	patient, err = c.Create(ctx, []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4.9","value":"MRN-`+accession+`"}]}`), "")
	require.NoError(t, err)
	sr, err = c.Create(ctx, []byte(`{"resourceType":"ServiceRequest","status":"active","intent":"order",
		"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},"system":"urn:oid:1.2.3.4.5","value":"`+accession+`"}],
		"code":{"coding":[{"system":"http://loinc.org","code":"36643-5","display":"XR Chest 2 Views"}]},
		"subject":{"reference":"`+patient+`"}}`), "")
	require.NoError(t, err)
	is, err = c.Create(ctx, []byte(`{"resourceType":"ImagingStudy","status":"available",
		"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:`+studyUID+`"}],
		"modality":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"CR"}],
		"subject":{"reference":"`+patient+`"},"basedOn":[{"reference":"`+sr+`"}]}`), "")
	require.NoError(t, err)
	return patient, sr, is
}

func TestRealServerPing(t *testing.T) {
	s := realClient(t)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.EnsureCodeSystem(t.Context()))
	require.NoError(t, s.EnsureCodeSystem(t.Context()), "publishing again updates in place")
	found, err := s.Search(t.Context(), "CodeSystem", url.Values{"url": {fhir.CodeSystemTier}})
	require.NoError(t, err)
	require.Len(t, found, 1)
}

func TestRealServerDeliver(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	acc := "ACC-" + unique(t)
	patient, sr, is := createOrder(t, s.Client, acc, "1.2.826.0.1.3680043.8.498.77")

	for _, outcome := range []radgate.Outcome{radgate.OutcomeScored, radgate.OutcomeNotApplicable} {
		t.Run(string(outcome), func(t *testing.T) {
			r := testResult(t, outcome)
			r.ID = unique(t)
			r.Order.ServiceRequest = &radgate.Reference{Reference: sr}
			r.Order.ImagingStudy = &radgate.Reference{Reference: is}
			r.Order.Patient = &radgate.Reference{Reference: patient}
			r.Order.Accession = &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: acc}

			first, err := s.Deliver(ctx, r)
			require.NoError(t, err)
			second, err := s.Deliver(ctx, r)
			require.NoError(t, err, "a redelivery succeeds")
			require.Equal(t, first, second, "and names the same report")

			want := "DiagnosticReport"
			if outcome != radgate.OutcomeScored {
				want = "Task"
			}
			id := fhir.ResultIdentifier(r.ID)
			found, err := s.Search(ctx, want, url.Values{"identifier": {id.System + "|" + id.Value}})
			require.NoError(t, err)
			require.Len(t, found, 1, "one %s after two deliveries", want)

			res := readJSON(t, s.Client, first.Report)
			if outcome == radgate.OutcomeScored {
				require.Equal(t, sr, res["basedOn"].([]any)[0].(map[string]any)["reference"])
				require.Equal(t, is, res["imagingStudy"].([]any)[0].(map[string]any)["reference"])
				require.Equal(t, patient, res["subject"].(map[string]any)["reference"])
				require.Contains(t, res["conclusion"], testDisclaimer)
				require.Contains(t, res["conclusion"], "AI confidence 91.0 % (tier High)")
				media := readJSON(t, s.Client, res["media"].([]any)[0].(map[string]any)["link"].(map[string]any)["reference"].(string))
				require.EqualValues(t, 32, media["width"])
			} else {
				require.Equal(t, "rejected", res["status"])
				require.Equal(t, sr, res["focus"].(map[string]any)["reference"])
			}
		})
	}
}

// TestRealServerSubscription runs the EHR side of the rest-hook path: a
// Subscription on the FHIR server notifies radgate's intake of each new
// ServiceRequest and ImagingStudy.
func TestRealServerSubscription(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	f := newFakeIntake()
	srv := httptest.NewServer(NewIntake(f, IntakeOptions{}))
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/fhir/notify"

	var subs []string
	for _, criteria := range []string{"ServiceRequest?status=active", "ImagingStudy?status=available"} {
		ref, err := s.EnsureSubscription(ctx, criteria, endpoint)
		require.NoError(t, err)
		again, err := s.EnsureSubscription(ctx, criteria, endpoint)
		require.NoError(t, err)
		require.Equal(t, ref, again, "an existing subscription is reused")
		subs = append(subs, ref)
	}
	t.Cleanup(func() {
		for _, ref := range subs {
			_ = s.Delete(context.Background(), ref)
		}
	})

	acc := "ACC-" + unique(t)
	studyUID := "1.2.826.0.1.3680043.8.498.78." + fmt.Sprint(time.Now().UnixNano())
	_, sr, is := createOrder(t, s.Client, acc, studyUID)
	wantID := radgate.OrderID("acsn|urn:oid:1.2.3.4.5|" + acc)

	var got map[string]radgate.OrderEvent
	require.Eventually(t, func() bool {
		got = map[string]radgate.OrderEvent{}
		for _, ev := range f.Events() {
			// The study carries no accession number: it is the same order
			// through basedOn, which routing follows.
			if (ev.Accession != nil && ev.Accession.Value == acc) || ev.StudyInstanceUID == studyUID {
				got[ev.ResourceType] = ev
			}
		}
		return len(got) == 2
	}, 15*time.Second, 50*time.Millisecond, "both notifications arrive")

	require.Equal(t, &radgate.Reference{Reference: sr}, got["ServiceRequest"].ServiceRequest)
	require.Equal(t, &radgate.Reference{Reference: is}, got["ImagingStudy"].ImagingStudy)
	require.Equal(t, &radgate.Reference{Reference: sr}, got["ImagingStudy"].ServiceRequest)
	require.Nil(t, got["ImagingStudy"].Accession)
	st, err := f.Status(ctx, wantID)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint("acsn|urn:oid:1.2.3.4.5|", acc), st.Key)
}

// TestRealServerVerdicts runs the reporting side of issue 14 against the
// FHIR server: rest-hook Subscriptions (VerdictSubscriptionCriteria) bring
// the radiologist's final DiagnosticReport and radgate's read Task, once
// completed, to radgate's intake as verdicts; radgate's own AI report,
// which matches the same criteria, is answered not-a-verdict and never
// recorded.
func TestRealServerVerdicts(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	rec := newFakeRecorder()
	acc := "ACC-" + unique(t)
	orderID := "ord-" + unique(t)
	rec.known[acc], rec.known[orderID] = "ord-v", orderID
	srv := httptest.NewServer(NewIntake(newFakeIntake(), IntakeOptions{Verdicts: rec}))
	t.Cleanup(srv.Close)
	var subs []string
	for _, criteria := range VerdictSubscriptionCriteria {
		ref, err := s.EnsureSubscription(ctx, criteria, srv.URL+"/fhir/notify")
		require.NoError(t, err)
		subs = append(subs, ref)
	}
	t.Cleanup(func() {
		for _, ref := range subs {
			_ = s.Delete(context.Background(), ref)
		}
	})

	// radgate's own AI report for the same accession: not a verdict.
	_, err := s.Create(ctx, []byte(`{"resourceType":"DiagnosticReport","status":"final",
		"identifier":[{"system":"`+fhir.SystemResult+`","value":"`+unique(t)+`"}],
		"code":{"text":"AI analysis"},"conclusion":"AI: pneumonia 97 %"}`), "")
	require.NoError(t, err)
	// The radiologist's report: preliminary (no verdict yet), then final.
	dr, err := s.Create(ctx, []byte(`{"resourceType":"DiagnosticReport","status":"preliminary",
		"identifier":[{"type":{"coding":[{"system":"`+fhir.SystemV20203+`","code":"ACSN"}]},"value":"`+acc+`"}],
		"code":{"text":"XR chest"},"resultsInterpreter":[{"reference":"Practitioner/dr-lee"}],
		"conclusion":"Consolidation.","conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"233604007"}]}]}`), "")
	require.NoError(t, err)
	_, id, _ := strings.Cut(dr, "/")
	_, err = s.Update(ctx, []byte(`{"resourceType":"DiagnosticReport","id":"`+id+`","status":"final",
		"identifier":[{"type":{"coding":[{"system":"`+fhir.SystemV20203+`","code":"ACSN"}]},"value":"`+acc+`"}],
		"code":{"text":"XR chest"},"resultsInterpreter":[{"reference":"Practitioner/dr-lee"}],
		"conclusion":"Consolidation.","conclusionCode":[{"coding":[{"system":"http://snomed.info/sct","code":"233604007"}]}]}`))
	require.NoError(t, err)
	// radgate's read Task, completed by the reader.
	task := strings.NewReplacer(`"id":"task-3",`, "", `"ord-42"`, `"`+orderID+`"`).Replace(taskJSON)
	_, err = s.Create(ctx, []byte(task), "")
	require.NoError(t, err)

	ours := func() []radgate.Verdict {
		var out []radgate.Verdict
		for _, v := range rec.Verdicts() {
			if (v.Accession != nil && v.Accession.Value == acc) || v.OrderID == orderID {
				out = append(out, v)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(ours()) == 2 }, 15*time.Second, 50*time.Millisecond, "both verdicts arrive")
	time.Sleep(300 * time.Millisecond) // a late notification would show as a third
	vs := ours()
	require.Len(t, vs, 2, "the preliminary report and radgate's own are not verdicts")
	bySource := map[string]radgate.Verdict{vs[0].Source: vs[0], vs[1].Source: vs[1]}
	require.Equal(t, id, bySource[radgate.SourceFHIR].ReadID)
	require.Equal(t, radgate.FindingPresent, bySource[radgate.SourceFHIR].Finding)
	require.Equal(t, radgate.AgreementDisagree, bySource[radgate.SourceTask].Agreement)
	require.Equal(t, "pneumonia-cxr", bySource[radgate.SourceTask].Engine)
}

// The order's Patient read from the real server gives the age at the
// order's date, and only the age; a Patient without a full birthDate gives
// none; a missing one is an error that is not transient.
func TestRealServerPatientAge(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	old, err := s.Create(ctx, []byte(`{"resourceType":"Patient","birthDate":"1951-03-02"}`), "")
	require.NoError(t, err)
	coarse, err := s.Create(ctx, []byte(`{"resourceType":"Patient","birthDate":"2021"}`), "")
	require.NoError(t, err)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	a, err := s.PatientAge(ctx, old, at)
	require.NoError(t, err)
	require.NotNil(t, a)
	require.Equal(t, 74, a.Years, "the day before the 75th birthday")
	require.Equal(t, "FHIR Patient.birthDate of "+old+" at the order's date", a.From)
	a, err = s.PatientAge(ctx, testenv.FHIR(t).URL+"/"+old, at)
	require.NoError(t, err, "an absolute reference")
	require.Equal(t, 74, a.Years)

	a, err = s.PatientAge(ctx, coarse, at)
	require.NoError(t, err)
	require.Nil(t, a, "a year alone is too coarse for an age range in whole years")

	_, err = s.PatientAge(ctx, "Patient/no-such-"+unique(t), at)
	require.Error(t, err)
	require.False(t, radgate.IsTransient(err), "%v", err)
	_, err = s.PatientAge(ctx, "Organization/1", at)
	require.ErrorContains(t, err, "is not a Patient reference")
}
