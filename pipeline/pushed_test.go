package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/routing"
)

// pushed is the intake event of images pushed to radgate's Storage SCP.
func pushed(acsn, uid, assoc string) radgate.OrderEvent {
	return radgate.OrderEvent{Source: radgate.SourceDIMSE, ResourceType: "ImagingStudy",
		Accession: &radgate.Identifier{System: "urn:acsn", Value: acsn}, StudyInstanceUID: uid,
		Modalities: []string{"DX"}, EventID: "dimse/" + assoc}
}

// push adds an image to a study in the fake archive as a Storage SCP does:
// it says when the image came.
func (a *archive) push(acsn, uid, sop, view string, at time.Time) {
	a.addView(acsn, uid, sop, view)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.studies[uid].LastArrival = at
}

// A pushed study is an order of its own, scored once it has held still for
// stable_after from its last image, even at its first look — and images
// pushed in a second association join it: one result with both.
func TestPushedStudyIsScoredOnceStableFromItsLastImage(t *testing.T) {
	h, j := lifecycleHarness(t, func(o *Options) { o.StableAfter = 600 * time.Millisecond })
	h.arch.push("P1", "8.1", "pa-2", "PA", time.Now())
	st, err := h.p.Accept(t.Context(), pushed("P1", "8.1", "a1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateStabilising)
	time.Sleep(300 * time.Millisecond)
	second := time.Now()
	h.arch.push("P1", "8.1", "ap-3", "AP", second)
	_, err = h.p.Accept(t.Context(), pushed("P1", "8.1", "a2"))
	require.NoError(t, err)
	got := h.waitState(t, st.ID, radgate.StateDelivered)
	require.GreaterOrEqual(t, time.Since(second), 600*time.Millisecond, "stable_after counts from the last image")
	require.Equal(t, 2, got.Study.Scored)
	results := j.all()
	require.Len(t, results, 1, "one result for the study pushed in two associations")
	require.Equal(t, "ap-3", results[0].SOPInstanceUID)
	require.Equal(t, 2, radgate.ScoredImages(results[0].Images))
	h.invalidTransitions(t, st.ID)
}

// Under a route that says pushed: with_order, a pushed study waits for its
// EHR/RIS order; the order (same accession number) makes it one order.
func TestPushedStudyWaitsForItsOrderWhenTheRouteSaysSo(t *testing.T) {
	rs, err := routing.Load("routes.yaml", []byte("routes:\n  - name: chest\n    pushed: with_order\n    engines: [eng-a]\n    destinations: [fhir]\n"),
		routing.Registry{Engines: []string{"eng-a"}, Destinations: []string{"fhir"}})
	require.NoError(t, err)
	h, j := lifecycleHarness(t, func(o *Options) {
		o.Routes = rs
		o.StableAfter = 100 * time.Millisecond
		o.StudyWaitWindow = time.Minute
	})
	h.arch.push("P2", "8.2", "pa-1", "PA", time.Now())
	st, err := h.p.Accept(t.Context(), pushed("P2", "8.2", "a1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err := h.p.Status(t.Context(), st.ID)
		return err == nil && s.State == radgate.StateWaiting && s.Reason != ""
	}, 5*time.Second, 20*time.Millisecond)
	s, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Contains(t, s.Reason, "waiting for the EHR or RIS order of this pushed study (route chest: pushed: with_order)")
	time.Sleep(300 * time.Millisecond)
	require.Empty(t, j.all(), "nothing is scored before the order")

	ord, err := h.p.Accept(t.Context(), sr("P2", "p2"))
	require.NoError(t, err)
	require.Equal(t, st.ID, ord.ID, "the order and the pushed study are one order")
	got := h.waitState(t, st.ID, radgate.StateDelivered)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
	require.Len(t, j.all(), 1)
	h.invalidTransitions(t, st.ID)
}

// A pushed study whose order never comes is answered failed when the wait
// window ends, with the reason.
func TestPushedStudyWithoutItsOrderFailsAfterTheWindow(t *testing.T) {
	rs, err := routing.Load("routes.yaml", []byte("routes:\n  - name: chest\n    pushed: with_order\n    engines: [eng-a]\n    destinations: [fhir]\n"),
		routing.Registry{Engines: []string{"eng-a"}, Destinations: []string{"fhir"}})
	require.NoError(t, err)
	h, _ := lifecycleHarness(t, func(o *Options) {
		o.Routes = rs
		o.StableAfter = 50 * time.Millisecond
		o.StudyWaitWindow = 500 * time.Millisecond
	})
	h.arch.push("P3", "8.3", "pa-1", "PA", time.Now().Add(-time.Second))
	st, err := h.p.Accept(t.Context(), pushed("P3", "8.3", "a1"))
	require.NoError(t, err)
	got := h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, got.Reason, "no EHR or RIS order came for this pushed study within 500ms")
	h.invalidTransitions(t, st.ID)
}
