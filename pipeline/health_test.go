package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// An order carried to delivery shows in the last hour (the same events the
// /metrics counters count), its state changes come to a watcher, and the
// stage queues are empty again; a dead-lettered one counts in the DLQ.
func TestLastHourQueuesAndWatch(t *testing.T) {
	h := newHarness(t, nil)
	changes, err := h.p.WatchOrders(t.Context())
	require.NoError(t, err)
	h.arch.add("H1", "7.1", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("H1", "h1"))
	require.NoError(t, err)

	var seen []radgate.OrderState
	deadline := time.After(10 * time.Second)
	for len(seen) == 0 || seen[len(seen)-1] != radgate.StateDelivered {
		select {
		case c := <-changes:
			if c.Order == st.ID {
				seen = append(seen, c.State)
				if c.State == radgate.StateDelivered {
					assert.Equal(t, "High", c.Tier)
				}
			}
		case <-deadline:
			t.Fatalf("no delivered change; saw %v", seen)
		}
	}
	assert.Equal(t, radgate.StateReceived, seen[0])

	// The result is counted when the inference stage has published it,
	// which may be just after its delivery.
	var lh LastHour
	require.Eventually(t, func() bool { lh = h.p.LastHour(); return len(lh.Results.Series) > 0 }, 5*time.Second, 10*time.Millisecond)
	r := lh.Results.Series[0]
	assert.Equal(t, "eng-a", r.Name)
	assert.Equal(t, string(radgate.OutcomeScored), r.Outcome)
	assert.Equal(t, 1, r.Count)
	assert.Positive(t, r.P50, "order → result time")
	assert.Equal(t, 1, lh.Results.PerMinute[WindowMinutes-1]+lh.Results.PerMinute[WindowMinutes-2])
	assert.Eventually(t, func() bool {
		stages := map[string]int{}
		for _, s := range h.p.LastHour().Stages.Series {
			stages[s.Name+"/"+s.Outcome] += s.Count
		}
		return stages["router/ack"] > 0 && stages["inference/ack"] > 0 && stages["deliver-fhir/ack"] > 0
	}, 5*time.Second, 10*time.Millisecond, "each stage's messages counted as it finishes them")

	require.Eventually(t, func() bool {
		qs, dlq, err := h.p.Queues(t.Context())
		if err != nil || dlq != 0 || len(qs) != 6 {
			return false
		}
		for _, q := range qs {
			if q.Pending+uint64(q.AckPending) != 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 50*time.Millisecond, "six stage consumers (router, inference, deliver-fhir × urgent, routine), all drained")

	h.sink.mu.Lock()
	h.sink.failFor, h.sink.failErr = 1000, assert.AnError
	h.sink.mu.Unlock()
	h.arch.add("H2", "7.2", "CR", "CHEST", "sop-1")
	st2, err := h.p.Accept(t.Context(), sr("H2", "h2"))
	require.NoError(t, err)
	h.waitState(t, st2.ID, radgate.StateFailed)
	_, dlq, err := h.p.Queues(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), dlq)
}

// A watch is one subscription, gone when its context ends.
func TestWatchOrdersEndsWithItsContext(t *testing.T) {
	h := newIdleHarness(t, nil)
	nc := h.topo.JS.Conn()
	before := nc.NumSubscriptions()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := h.p.WatchOrders(ctx)
	require.NoError(t, err)
	assert.Equal(t, before+1, nc.NumSubscriptions())
	cancel()
	select {
	case _, ok := <-ch:
		assert.False(t, ok, "closed")
	case <-time.After(5 * time.Second):
		t.Fatal("the watch outlived its context")
	}
	assert.Eventually(t, func() bool { return nc.NumSubscriptions() == before }, 5*time.Second, 10*time.Millisecond, "unsubscribed")
}
