package fhirhttp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
)

// fullStatus has every field of radgate.OrderStatus set, with identifying
// values quoted in the reasons the way routing words them.
func fullStatus() radgate.OrderStatus {
	p := 0.93
	return radgate.OrderStatus{
		ID: "0123456789abcdef01234567", Key: "acsn|urn:oid:1.2.3.4.5|ACC-7781",
		State: radgate.StateFailed, Reason: "cxr: study not found in the PACS within 10m0s (accession number ACC-7781)",
		Accession:        &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-7781"},
		StudyInstanceUID: "1.2.826.0.1.3680043.8.498.77",
		ServiceRequest:   &radgate.Reference{Reference: "ServiceRequest/sr-88", Identifier: &radgate.Identifier{Value: "PLAC-4410"}},
		ImagingStudy:     &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:dicom:uid", Value: "urn:oid:1.2.826.0.1.3680043.8.498.77"}},
		Patient: &radgate.Reference{Reference: "Patient/p-512", Display: "Zyxwa Testpatient",
			Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN-990017"}},
		ProcedureCodes: []radgate.Coding{{System: "http://loinc.org", Code: "36643-5"}},
		Facility:       "General Hospital", FacilityID: "general-hospital", Priority: "urgent", Modalities: []string{"DX"}, Sources: []string{"fhir"},
		Route: &radgate.RouteDecision{Matched: true, Routes: []string{"cxr"}, Engines: []string{"cxr"}, Reason: "matched route cxr"},
		Engines: map[string]radgate.EngineProgress{"cxr": {State: radgate.StateFailed, Probability: &p, Tier: "high",
			Reason: "retrieving image 1.2.826.0.1.3680043.8.498.77.1 from the PACS: HTTP 500", Report: "DiagnosticReport/dr-1",
			Caveats: []string{"patient age unknown: the order's Patient could not be read for its age: reading Patient/p-512: the server answered 404"},
			Images: []radgate.ImageNote{{SeriesInstanceUID: "1.2.826.0.1.3680043.8.498.77.5", SOPInstanceUID: "1.2.826.0.1.3680043.8.498.77.5.1", View: "LL",
				Reason: "view LL is outside engine cxr's intended use: PA/AP (views)"}},
			Deliveries: map[string]radgate.DeliveryProgress{
				"fhir": {State: radgate.StateFailed, Reason: "Patient/p-512 rejected ServiceRequest/sr-88"},
				"pacs": {State: radgate.StateDelivered, Objects: []radgate.DeliveredObject{
					{Kind: "SR", Ref: "studies/1.2.826.0.1.3680043.8.498.77/series/2.25.1/instances/2.25.2", UID: "2.25.2"}}}}}},
		Study: &radgate.StudyObservation{Instances: 2, Since: time.Date(2026, 1, 2, 3, 4, 30, 0, time.UTC),
			LastSeen: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC), Complete: true, Announced: 2, Scored: 2},
		WaitUntil: time.Date(2026, 1, 2, 3, 14, 5, 0, time.UTC),
		Cancelled: &radgate.Cancellation{At: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC), Source: "fhir",
			Reason: "FHIR ServiceRequest status revoked (ServiceRequest/sr-88)"},
		ReplayOf:   "42",
		Age:        &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, OBR-7"},
		ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
	}
}

// Every field of radgate.OrderStatus is either shown to callers without
// phi or hidden from them: a new field fails this test until someone
// decides which.
func TestOrderStatusFieldsClassified(t *testing.T) {
	shown := map[string]bool{"ID": true, "State": true, "Reason": true, "ProcedureCodes": true, "Facility": true, "FacilityID": true,
		"Priority": true, "Modalities": true, "Sources": true, "Route": true, "Engines": true, "ReplayOf": true,
		"Study": true, "WaitUntil": true, "Cancelled": true,
		"ReceivedAt": true, "UpdatedAt": true}
	hidden := map[string]bool{"Key": true, "Accession": true, "StudyInstanceUID": true, "ServiceRequest": true,
		"ImagingStudy": true, "Patient": true, "Age": true}
	full := fullStatus()
	red := withoutPatientData(full)
	fv, rv := reflect.ValueOf(full), reflect.ValueOf(red)
	for i := range fv.NumField() {
		name := fv.Type().Field(i).Name
		require.True(t, shown[name] != hidden[name], "radgate.OrderStatus.%s is neither shown nor hidden: classify it", name)
		require.False(t, fv.Field(i).IsZero(), "fullStatus sets %s", name)
		if hidden[name] {
			require.True(t, rv.Field(i).IsZero(), "%s is hidden without phi", name)
		} else {
			require.False(t, rv.Field(i).IsZero(), "%s is shown without phi", name)
		}
	}
}

func TestOrderStatusWithoutPatientData(t *testing.T) {
	st := fullStatus()
	red := withoutPatientData(st)
	b, err := json.Marshal(red)
	require.NoError(t, err)
	for _, v := range []string{"Zyxwa", "Testpatient", "MRN-990017", "ACC-7781", "1.2.826.0.1.3680043.8.498.77", "PLAC-4410", "p-512", "sr-88"} {
		require.NotContains(t, string(b), v)
	}
	require.Equal(t, "cxr: study not found in the PACS within 10m0s (accession number [redacted])", red.Reason)
	require.Equal(t, "retrieving image [redacted].1 from the PACS: HTTP 500", red.Engines["cxr"].Reason)
	require.Equal(t, "[redacted] rejected [redacted]", red.Engines["cxr"].Deliveries["fhir"].Reason)
	require.Equal(t, "DiagnosticReport/dr-1", red.Engines["cxr"].Report, "where the result went stays")
	require.Equal(t, []string{"patient age unknown: the order's Patient could not be read for its age: reading [redacted]: the server answered 404"},
		red.Engines["cxr"].Caveats)
	require.Equal(t, []radgate.ImageNote{{View: "LL", Reason: "view LL is outside engine cxr's intended use: PA/AP (views)"}}, red.Engines["cxr"].Images,
		"which images were skipped and why, not their UIDs")
	require.Equal(t, []radgate.DeliveredObject{{Kind: "SR", Ref: "studies/[redacted]/series/2.25.1/instances/2.25.2", UID: "2.25.2"}},
		red.Engines["cxr"].Deliveries["pacs"].Objects)
	require.Equal(t, "FHIR ServiceRequest status revoked ([redacted])", red.Cancelled.Reason)
	require.Equal(t, st.Study, red.Study, "the study's counts and times stay")
	require.Equal(t, fullStatus(), st, "the caller's status is not modified")
}

// GET /orders/{id} shows patient data to a caller with phi only; a
// request that passed no authentication middleware gets none.
func TestIntakeGetOrderByRole(t *testing.T) {
	f := newFakeIntake()
	st := fullStatus()
	f.orders[st.ID] = st
	h := NewIntake(f, IntakeOptions{})
	get := func(ctx func(*http.Request) *http.Request) radgate.OrderStatus {
		req := httptest.NewRequest(http.MethodGet, "/orders/"+st.ID, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, ctx(req))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		var got radgate.OrderStatus
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		return got
	}
	with := func(p httpauth.Principal) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request {
			return r.WithContext(httpauth.ContextWithPrincipal(r.Context(), p))
		}
	}
	require.Equal(t, st, get(with(httpauth.Principal{Name: "radiologist", Roles: []httpauth.Role{httpauth.RolePHI}})))
	require.Equal(t, withoutPatientData(st), get(with(httpauth.Principal{Name: "ops", Roles: []httpauth.Role{httpauth.RoleOperator}})))
	require.Equal(t, withoutPatientData(st), get(with(httpauth.Principal{Name: "dash"})))
	got := get(func(r *http.Request) *http.Request { return r })
	require.Nil(t, got.Patient)
	require.False(t, strings.Contains(got.Reason, "ACC-7781"))
}

// historyIntake is a fakeIntake that keeps a history.
type historyIntake struct {
	*fakeIntake
	hist []radgate.HistoryEntry
}

func (h *historyIntake) History(_ context.Context, id string) ([]radgate.HistoryEntry, error) {
	if _, ok := h.orders[id]; !ok {
		return nil, radgate.ErrOrderNotFound
	}
	return h.hist, nil
}

func TestIntakeGetHistoryByRole(t *testing.T) {
	f := &historyIntake{fakeIntake: newFakeIntake()}
	st := fullStatus()
	f.orders[st.ID] = st
	f.hist = []radgate.HistoryEntry{
		{Order: st.ID, Event: radgate.EvAccepted, To: radgate.StateReceived},
		{Order: st.ID, Event: radgate.EvWaitExpired, From: radgate.StateWaiting, To: radgate.StateFailed,
			Reason: "study not found in the PACS within 72h0m0s (accession number ACC-7781)"},
	}
	h := NewIntake(f, IntakeOptions{})
	get := func(path string, p *httpauth.Principal) (int, []radgate.HistoryEntry) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if p != nil {
			req = req.WithContext(httpauth.ContextWithPrincipal(req.Context(), *p))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var got []radgate.HistoryEntry
		_ = json.Unmarshal(rec.Body.Bytes(), &got)
		return rec.Code, got
	}
	code, got := get("/orders/"+st.ID+"/history", &httpauth.Principal{Name: "radiologist", Roles: []httpauth.Role{httpauth.RolePHI}})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, f.hist, got)
	code, got = get("/orders/"+st.ID+"/history", &httpauth.Principal{Name: "ops", Roles: []httpauth.Role{httpauth.RoleOperator}})
	require.Equal(t, http.StatusOK, code)
	require.Len(t, got, 2)
	require.Equal(t, "study not found in the PACS within 72h0m0s (accession number [redacted])", got[1].Reason)
	code, _ = get("/orders/ffffffffffffffffffffffff/history", nil)
	require.Equal(t, http.StatusNotFound, code)
}
