package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// The rows of radgate.Transitions the other tests do not take, each driven
// here on the real stages (TestMain checks that all rows are taken).

func (a *archive) remove(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.byAcsn, a.studies[uid].AccessionNumber)
	delete(a.studies, uid)
}

const chestOnly = "routes:\n  - name: chest\n    when: {body_part: [CHEST]}\n    engines: [eng-a]\n    destinations: [fhir]\n"

// namedScorer is a gated scorer under another engine id.
type namedScorer struct {
	*gatedScorer
	id string
}

func (n namedScorer) Info() radgate.EngineInfo {
	i := n.gatedScorer.Info()
	i.ID, i.Name = n.id, n.id
	return i
}

func TestTransitionsWaitingAndStabilising(t *testing.T) {
	t.Run("waiting → routed: a study found stable at once (stable_after 0)", func(t *testing.T) {
		h, _ := lifecycleHarness(t, func(o *Options) { o.StableAfter = -1 })
		st, err := h.p.Accept(t.Context(), sr("T1", "t1"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateWaiting)
		h.arch.addView("T1", "7.1", "pa-1", "PA")
		h.waitState(t, st.ID, radgate.StateDelivered)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("waiting → rejected: no route for the study that came", func(t *testing.T) {
		h, _ := lifecycleHarness(t, func(o *Options) { o.StableAfter = -1; o.Routes = loadRoutes(t, chestOnly) })
		st, err := h.p.Accept(t.Context(), sr("T2", "t2"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateWaiting)
		h.arch.add("T2", "7.2", "CT", "HEAD", "ct-1")
		h.waitState(t, st.ID, radgate.StateRejected)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("stabilising → rejected, and to scored with an unmatched destination", func(t *testing.T) {
		for _, unmatched := range []string{"", "unmatched:\n  destinations: [fhir]\n"} {
			h, j := lifecycleHarness(t, func(o *Options) { o.Routes = loadRoutes(t, chestOnly+unmatched) })
			// Held until the order is seen scored: otherwise the delivery
			// may record its answer before the publish records "scored".
			release := j.holdDeliveries()
			defer release()
			st, err := h.p.Accept(t.Context(), sr("T3", "t3"))
			require.NoError(t, err)
			h.waitState(t, st.ID, radgate.StateWaiting)
			h.arch.add("T3", "7.3", "CT", "HEAD", "ct-1")
			h.waitState(t, st.ID, radgate.StateStabilising)
			if unmatched != "" {
				h.waitState(t, st.ID, radgate.StateScored)
			}
			release()
			h.waitState(t, st.ID, radgate.StateRejected)
			if unmatched != "" {
				require.Len(t, j.all(), 1, "the no-route answer is delivered")
			}
			h.invalidTransitions(t, st.ID)
		}
	})
	t.Run("stabilising → waiting: the study left the PACS", func(t *testing.T) {
		h, _ := lifecycleHarness(t, func(o *Options) { o.StableAfter = time.Hour })
		st, err := h.p.Accept(t.Context(), sr("T4", "t4"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateWaiting)
		h.arch.addView("T4", "7.4", "pa-1", "PA")
		h.waitState(t, st.ID, radgate.StateStabilising)
		h.arch.remove("7.4")
		h.waitState(t, st.ID, radgate.StateWaiting)
		h.invalidTransitions(t, st.ID)
	})
}

func TestTransitionsCancelled(t *testing.T) {
	cancel := func(t *testing.T, h *harness, acsn string) {
		t.Helper()
		_, err := h.p.Accept(t.Context(), cancelOf(acsn))
		require.NoError(t, err)
	}
	t.Run("received → cancelled", func(t *testing.T) {
		h := newIdleHarness(t, nil)
		st, err := h.p.Accept(t.Context(), sr("K1", "k1"))
		require.NoError(t, err)
		cancel(t, h, "K1")
		got, err := h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateCancelled, got.State)
	})
	t.Run("stabilising → cancelled", func(t *testing.T) {
		h, j := lifecycleHarness(t, func(o *Options) { o.StableAfter = time.Hour })
		st, err := h.p.Accept(t.Context(), sr("K2", "k2"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateWaiting)
		h.arch.addView("K2", "7.5", "pa-1", "PA")
		h.waitState(t, st.ID, radgate.StateStabilising)
		cancel(t, h, "K2")
		h.waitState(t, st.ID, radgate.StateCancelled)
		require.Empty(t, j.all())
		h.invalidTransitions(t, st.ID)
	})
	t.Run("routed → cancelled: cancelled while it is scored", func(t *testing.T) {
		gate := make(chan struct{})
		g := &gatedScorer{scorer: scorer{probs: map[string]float64{"pa-1": 0.9}}, gate: gate, slowSOP: "pa-1"}
		h, j := lifecycleHarness(t, func(o *Options) { o.Engines = []radgate.Engine{g} })
		h.arch.addView("K3", "7.6", "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("K3", "k3"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateRouted)
		cancel(t, h, "K3")
		h.waitState(t, st.ID, radgate.StateCancelled)
		close(gate)
		time.Sleep(300 * time.Millisecond)
		require.Empty(t, j.all(), "nothing delivered")
		h.invalidTransitions(t, st.ID)
	})
	t.Run("scored → cancelled: cancelled while the destination is down", func(t *testing.T) {
		down := &recorder{failFor: 1 << 30}
		h, _ := lifecycleHarness(t, func(o *Options) { o.Sinks = map[string]radgate.Sink{"fhir": down} })
		h.arch.addView("K4", "7.7", "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("K4", "k4"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateScored)
		cancel(t, h, "K4")
		got := h.waitState(t, st.ID, radgate.StateCancelled)
		require.Eventually(t, func() bool {
			got, _ = h.p.Status(t.Context(), st.ID)
			return got.Engines["eng-a"].Deliveries["fhir"].State == radgate.StateCancelled
		}, 5*time.Second, 20*time.Millisecond, "the retried delivery stops")
		h.invalidTransitions(t, st.ID)
	})
	t.Run("routed → retracting: one engine delivered, the other still scoring", func(t *testing.T) {
		gate := make(chan struct{})
		slow := namedScorer{&gatedScorer{scorer: scorer{probs: map[string]float64{"pa-1": 0.9}}, gate: gate, slowSOP: "pa-1"}, "eng-b"}
		fast := &scorer{probs: map[string]float64{"pa-1": 0.9}}
		h, j := lifecycleHarness(t, func(o *Options) { o.Engines = []radgate.Engine{fast, slow} })
		h.arch.addView("K5", "7.8", "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("K5", "k5"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(j.all()) == 1 }, 10*time.Second, 20*time.Millisecond)
		h.waitState(t, st.ID, radgate.StateRouted)
		// The sink has it; wait until the order records it too, or the
		// cancel may find nothing delivered (routed → cancelled at once).
		require.Eventually(t, func() bool {
			got, _ := h.p.Status(t.Context(), st.ID)
			return got.Engines["eng-a"].Deliveries["fhir"].State == radgate.StateDelivered
		}, 10*time.Second, 20*time.Millisecond, "eng-a's delivery recorded")
		cancel(t, h, "K5")
		h.waitState(t, st.ID, radgate.StateCancelled)
		close(gate)
		time.Sleep(300 * time.Millisecond)
		results := j.all()
		require.Len(t, results, 2, "eng-a's result and its retraction; eng-b never delivered")
		require.Equal(t, radgate.ResultRetracted, results[1].Status)
		require.Equal(t, "eng-a", results[1].Engine.ID)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("scored → retracting: delivered at one destination, the other down", func(t *testing.T) {
		down := &recorder{failFor: 1 << 30}
		h, j := lifecycleHarness(t, func(o *Options) {
			o.Sinks["pacs"] = down
			o.Routes = loadRoutes(t, "routes:\n  - name: chest\n    engines: [eng-a]\n    destinations: [fhir, pacs]\n")
		})
		h.arch.addView("K6", "7.9", "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("K6", "k6"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(j.all()) == 1 }, 10*time.Second, 20*time.Millisecond)
		h.waitState(t, st.ID, radgate.StateScored)
		cancel(t, h, "K6")
		h.waitState(t, st.ID, radgate.StateCancelled)
		require.Equal(t, radgate.ResultRetracted, j.all()[1].Status)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("rejected → cancelled and failed → cancelled: answers recorded, never delivered", func(t *testing.T) {
		h, j := lifecycleHarness(t, func(o *Options) {
			o.Routes, o.StudyWaitWindow = loadRoutes(t, chestOnly), 300*time.Millisecond
		})
		h.arch.add("K7", "7.10", "CT", "HEAD", "ct-1")
		rej, err := h.p.Accept(t.Context(), sr("K7", "k7"))
		require.NoError(t, err)
		fail, err := h.p.Accept(t.Context(), sr("K8", "k8"))
		require.NoError(t, err)
		h.waitState(t, rej.ID, radgate.StateRejected)
		h.waitState(t, fail.ID, radgate.StateFailed)
		cancel(t, h, "K7")
		cancel(t, h, "K8")
		h.waitState(t, rej.ID, radgate.StateCancelled)
		h.waitState(t, fail.ID, radgate.StateCancelled)
		require.Empty(t, j.all())
		h.invalidTransitions(t, rej.ID)
	})
	t.Run("rejected → retracting and failed → retracting: delivered answers are retracted", func(t *testing.T) {
		h, j := lifecycleHarness(t, func(o *Options) { o.StudyWaitWindow = 300 * time.Millisecond })
		h.arch.addView("K9", "7.11", "ll-1", "LL") // a lateral only: not applicable
		rej, err := h.p.Accept(t.Context(), sr("K9", "k9"))
		require.NoError(t, err)
		fail, err := h.p.Accept(t.Context(), sr("K10", "k10"))
		require.NoError(t, err)
		h.waitState(t, rej.ID, radgate.StateRejected)
		h.waitState(t, fail.ID, radgate.StateFailed)
		cancel(t, h, "K9")
		cancel(t, h, "K10")
		h.waitState(t, rej.ID, radgate.StateCancelled)
		h.waitState(t, fail.ID, radgate.StateCancelled)
		retracted := 0
		for _, r := range j.all() {
			if r.Status == radgate.ResultRetracted {
				retracted++
			}
		}
		require.Equal(t, 2, retracted)
		h.invalidTransitions(t, rej.ID)
	})
}

func TestTransitionsRejectedReopened(t *testing.T) {
	t.Run("rejected → stabilising: a frontal view added to a lateral-only study", func(t *testing.T) {
		h, j := lifecycleHarness(t, func(o *Options) { o.PollMax = 100 * time.Millisecond })
		h.arch.addView("J1", "6.1", "ll-1", "LL")
		st, err := h.p.Accept(t.Context(), sr("J1", "j1"))
		require.NoError(t, err)
		got := h.waitState(t, st.ID, radgate.StateRejected)
		require.Contains(t, got.Reason, "not scored: view LL is outside engine eng-a's intended use: PA/AP (views)")
		h.arch.addView("J1", "6.1", "pa-1", "PA")
		h.waitState(t, st.ID, radgate.StateStabilising)
		got = h.waitState(t, st.ID, radgate.StateDelivered)
		require.Equal(t, 2, got.Engines["eng-a"].Revision)
		results := j.all()
		require.Equal(t, radgate.OutcomeNotApplicable, results[0].Outcome)
		require.Equal(t, radgate.ResultAmended, results[len(results)-1].Status)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("rejected → received: a replay re-opens the router's answer", func(t *testing.T) {
		h := newIdleHarness(t, func(o *Options) { o.Routes = loadRoutes(t, chestOnly) })
		h.arch.add("J2", "6.2", "CT", "HEAD", "ct-1")
		st, err := h.p.Accept(t.Context(), sr("J2", "j2"))
		require.NoError(t, err)
		msg := func(replay string) *testMsg {
			m := fakeMsg(t, radgate.OrderEvent{})
			m.hdr.Set(broker.HeaderOrderID, st.ID)
			if replay != "" {
				m.hdr.Set(broker.HeaderReplayOf, replay)
			}
			return m
		}
		require.Equal(t, ack, h.p.route(t.Context(), msg("")).kind)
		got, err := h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateRejected, got.State)
		require.Equal(t, ack, h.p.route(t.Context(), msg("3")).kind)
		hist, err := h.p.History(context.Background(), st.ID)
		require.NoError(t, err)
		var path []radgate.OrderState
		for _, e := range hist {
			if e.Engine == "" {
				path = append(path, e.To)
			}
		}
		require.Equal(t, []radgate.OrderState{radgate.StateReceived, radgate.StateRejected, radgate.StateReceived, radgate.StateRejected}, path)
		h.invalidTransitions(t, st.ID)
	})
}

func TestTransitionsRacesAndDeadLetters(t *testing.T) {
	t.Run("routed → failed: a routed job dead-lettered", func(t *testing.T) {
		h := newIdleHarness(t, nil)
		h.arch.addView("D1", "5.1", "sop-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("D1", "d1"))
		require.NoError(t, err)
		m := fakeMsg(t, radgate.OrderEvent{})
		m.hdr.Set(broker.HeaderOrderID, st.ID)
		require.Equal(t, ack, h.p.route(t.Context(), m).kind)
		got, err := h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateRouted, got.State)
		h.p.failOrder(t.Context(), st.ID, "inference", "engine gone")
		got, err = h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateFailed, got.State)
		h.invalidTransitions(t, st.ID)
	})
	t.Run("routed → delivered / rejected: the delivery recorded before the scored record", func(t *testing.T) {
		for _, o := range []radgate.Outcome{radgate.OutcomeScored, radgate.OutcomeNotApplicable} {
			h := newIdleHarness(t, nil)
			h.arch.addView("D3", "5.3", "sop-1", "PA")
			st, err := h.p.Accept(t.Context(), sr("D3", "d3"))
			require.NoError(t, err)
			m := fakeMsg(t, radgate.OrderEvent{})
			m.hdr.Set(broker.HeaderOrderID, st.ID)
			require.Equal(t, ack, h.p.route(t.Context(), m).kind)
			r := radgate.Result{Order: radgate.OrderStatus{ID: st.ID}, Engine: (&scorer{}).Info(), Outcome: o, Revision: 1, Destinations: []string{"fhir"}}
			require.NoError(t, h.p.recordDelivery(t.Context(), r, "fhir", radgate.DeliveryProgress{State: radgate.StateDelivered, Revision: 1, DeliveredRevision: 1}))
			got, err := h.p.Status(t.Context(), st.ID)
			require.NoError(t, err)
			want := map[radgate.Outcome]radgate.OrderState{radgate.OutcomeScored: radgate.StateDelivered, radgate.OutcomeNotApplicable: radgate.StateRejected}[o]
			require.Equal(t, want, got.State)
			h.invalidTransitions(t, st.ID)
		}
	})
	t.Run("cancelled → retracting: a delivery under way when the cancellation came", func(t *testing.T) {
		g := &gatedSink{gate: make(chan struct{}), entered: make(chan struct{}, 4)}
		h, _ := lifecycleHarness(t, func(o *Options) { o.Sinks = map[string]radgate.Sink{"fhir": g} })
		h.arch.addView("D2", "5.2", "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr("D2", "d2"))
		require.NoError(t, err)
		<-g.entered // the result is being written
		_, err = h.p.Accept(t.Context(), cancelOf("D2"))
		require.NoError(t, err)
		h.waitState(t, st.ID, radgate.StateCancelled)
		close(g.gate)
		got := h.waitState(t, st.ID, radgate.StateCancelled)
		require.Eventually(t, func() bool {
			got, _ = h.p.Status(t.Context(), st.ID)
			return got.State == radgate.StateCancelled && got.Engines["eng-a"].Deliveries["fhir"].Retracted
		}, 10*time.Second, 20*time.Millisecond, "what the delivery wrote is retracted")
		require.Equal(t, []radgate.ResultStatus{radgate.ResultFinal, radgate.ResultRetracted}, g.statuses())
		h.invalidTransitions(t, st.ID)
	})
}

// gatedSink holds every delivery until gate closes, saying on entered
// that one began.
type gatedSink struct {
	journal
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedSink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return radgate.Receipt{}, radgate.Transient(ctx.Err())
	}
	return g.journal.Deliver(ctx, r)
}

func (g *gatedSink) statuses() []radgate.ResultStatus {
	var out []radgate.ResultStatus
	for _, r := range g.all() {
		out = append(out, r.Status)
	}
	return out
}
