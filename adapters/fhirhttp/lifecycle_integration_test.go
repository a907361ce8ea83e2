package fhirhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// updateStatus reads ref on the server, applies mod and writes it back.
func updateResource(t *testing.T, c *Client, ref string, mod func(map[string]any)) {
	t.Helper()
	res := readJSON(t, c, ref)
	delete(res, "meta")
	mod(res)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	_, err = c.Update(t.Context(), b)
	require.NoError(t, err)
}

// TestRealServerSubscriptionLifecycle runs the EHR side of the order
// lifecycle through the subscriptions radgate creates: a ServiceRequest
// revoked on the FHIR server reaches the intake as a cancel event, and an
// ImagingStudy that becomes available, then grows, reaches it as study
// complete events with the announced counts. The subscriptions radgate
// created before (ServiceRequest?status=active) are retired, so nothing
// arrives twice.
func TestRealServerSubscriptionLifecycle(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	f := newFakeIntake()
	srv := httptest.NewServer(NewIntake(f, IntakeOptions{}))
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/fhir/notify"

	legacy, err := s.EnsureSubscription(ctx, "ServiceRequest?status=active", endpoint)
	require.NoError(t, err)
	subs, err := s.EnsureSubscriptions(ctx, endpoint)
	require.NoError(t, err)
	require.Len(t, subs, len(SubscriptionCriteria))
	t.Cleanup(func() {
		for _, ref := range append(subs, legacy) {
			_ = s.Delete(context.Background(), ref)
		}
	})
	again, err := s.EnsureSubscriptions(ctx, endpoint)
	require.NoError(t, err)
	require.Equal(t, subs, again, "existing subscriptions are reused")
	found, err := s.Search(ctx, "Subscription", url.Values{"url": {endpoint}})
	require.NoError(t, err)
	var criteria []string
	for _, raw := range found {
		var sub struct {
			Criteria string `json:"criteria"`
		}
		require.NoError(t, json.Unmarshal(raw, &sub))
		criteria = append(criteria, sub.Criteria)
	}
	require.ElementsMatch(t, SubscriptionCriteria, criteria, "the earlier ServiceRequest subscription is retired")

	acc := "ACC-" + unique(t)
	studyUID := "1.2.826.0.1.3680043.8.498.79." + fmt.Sprint(time.Now().UnixNano())
	patient, sr, _ := createOrder(t, s.Client, acc, studyUID)
	// A second study of the order, registered first: no notification
	// until it is available.
	uid2 := studyUID + ".2"
	is2, err := s.Create(ctx, []byte(`{"resourceType":"ImagingStudy","status":"registered","numberOfInstances":1,
		"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:`+uid2+`"}],
		"subject":{"reference":"`+patient+`"},"basedOn":[{"reference":"`+sr+`"}]}`), "")
	require.NoError(t, err)

	eventsOf := func(match func(radgate.OrderEvent) bool) []radgate.OrderEvent {
		var out []radgate.OrderEvent
		for _, ev := range f.Events() {
			if match(ev) {
				out = append(out, ev)
			}
		}
		return out
	}
	ofOrder := func(ev radgate.OrderEvent) bool {
		return ev.ResourceType == "ServiceRequest" && ev.Accession != nil && ev.Accession.Value == acc
	}
	ofStudy2 := func(ev radgate.OrderEvent) bool { return ev.StudyInstanceUID == uid2 }
	waitFor := func(match func(radgate.OrderEvent) bool, n int, what string) []radgate.OrderEvent {
		t.Helper()
		require.Eventually(t, func() bool { return len(eventsOf(match)) >= n }, 15*time.Second, 50*time.Millisecond, what)
		return eventsOf(match)
	}

	placed := waitFor(ofOrder, 1, "the order arrives")
	require.Equal(t, radgate.ActionOrder, placed[0].Action)

	updateResource(t, s.Client, sr, func(r map[string]any) { r["status"] = "revoked" })
	evs := waitFor(ofOrder, 2, "the cancellation arrives")
	require.Equal(t, radgate.ActionCancel, evs[1].Action)
	require.Equal(t, "FHIR ServiceRequest status revoked", evs[1].Reason)
	require.Equal(t, &radgate.Reference{Reference: sr}, evs[1].ServiceRequest)

	updateResource(t, s.Client, is2, func(r map[string]any) { r["status"] = "available"; r["numberOfInstances"] = 3 })
	st := waitFor(ofStudy2, 1, "the study update to available arrives")
	require.True(t, st[0].StudyComplete)
	require.Equal(t, 3, st[0].InstanceCount)
	updateResource(t, s.Client, is2, func(r map[string]any) { r["numberOfInstances"] = 4 })
	st = waitFor(ofStudy2, 2, "a later update of the available study arrives")
	require.True(t, st[1].StudyComplete)
	require.Equal(t, 4, st[1].InstanceCount)

	// Deliveries are asynchronous: give a duplicate time to show.
	time.Sleep(time.Second)
	require.Len(t, eventsOf(ofOrder), 2, "each change arrives once")
	require.Len(t, eventsOf(ofStudy2), 2, "the registered study was not announced")
}
