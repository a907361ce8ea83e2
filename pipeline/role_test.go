package pipeline

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// A hub (RoleHub) scores an edge's job from what the job carries — no
// order store is read — with the images of the edge of the facility its
// subject names, and publishes the result under that facility, whatever
// the job's body claims (the hub's source filter guarantees the subject is
// the edge's own). A job that carries no order is dead-lettered.
func TestHubScoresAnEdgesJobUnderItsSubjectsFacility(t *testing.T) {
	arch := newArchive()
	arch.add("E1", "9.1", "CR", "CHEST", "sop-1")
	var mu sync.Mutex
	var asked []string
	h := newHarness(t, func(o *Options) {
		o.Role = RoleHub
		o.EdgeImages = func(_ context.Context, facility string) (radgate.StudySource, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, facility)
			return arch, nil
		}
	})
	ctx := t.Context()
	st := radgate.OrderStatus{ID: "order-e1", FacilityID: "site-b", Priority: "routine",
		Route: &radgate.RouteDecision{Matched: true, Engines: []string{"eng-a"}, Destinations: []string{"fhir"}}}
	job := Job{OrderID: st.ID, Engine: "eng-a", StudyInstanceUID: "9.1", Revision: 1, Order: &st,
		Instances: []JobInstance{{SeriesInstanceUID: "9.1.1", SOPInstanceUID: "sop-1", Modality: "CR"}}}
	data, err := json.Marshal(job)
	require.NoError(t, err)
	_, err = h.topo.JS.Publish(ctx, broker.JobSubject("routine", "site-a", "eng-a"), data)
	require.NoError(t, err)

	results, err := h.topo.JS.Stream(ctx, broker.StreamResults)
	require.NoError(t, err)
	var m *jetstream.RawStreamMsg
	require.Eventually(t, func() bool {
		m, err = results.GetLastMsgForSubject(ctx, broker.ResultSubject("fhir", "routine", "site-a", "eng-a"))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "no result under the subject's facility")
	mu.Lock()
	require.Equal(t, []string{"site-a"}, asked, "images read from another edge than the subject's")
	mu.Unlock()
	require.Equal(t, "1", m.Header.Get(headerHubResult))
	require.Empty(t, m.Header.Get(HeaderPart), "a result under max_payload was sent in parts")
	var r radgate.Result
	require.NoError(t, json.Unmarshal(m.Data, &r))
	require.Equal(t, radgate.OutcomeScored, r.Outcome)
	require.Equal(t, "site-a", r.Order.FacilityID)
	require.Equal(t, 0.91, r.Probability)
	_, err = results.GetLastMsgForSubject(ctx, broker.ResultSubject("fhir", "routine", "site-b", "eng-a"))
	require.ErrorIs(t, err, jetstream.ErrMsgNotFound, "a result under the facility the job's body claims")
	_, err = h.p.Status(ctx, st.ID)
	require.ErrorIs(t, err, radgate.ErrOrderNotFound, "the hub wrote an order store")

	// A job with no order (not from an edge) is dead-lettered, not scored.
	bare, err := json.Marshal(Job{OrderID: "order-e2", Engine: "eng-a", StudyInstanceUID: "9.1", Instances: job.Instances})
	require.NoError(t, err)
	msg := nats.NewMsg(broker.JobSubject("routine", "site-a", "eng-a"))
	msg.Data = bare
	_, err = h.topo.JS.PublishMsg(ctx, msg)
	require.NoError(t, err)
	dlq, err := h.topo.JS.Stream(ctx, broker.StreamDLQ)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := dlq.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, 10*time.Second, 20*time.Millisecond, "the job without an order was not dead-lettered")
}
