package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// historyOf lists what changed from old to cur as history entries: the
// order's own state (an event from radgate.Transitions), each engine's
// state and revision, and each destination's delivery. old with no ID is
// an order just created.
func historyOf(old, cur radgate.OrderStatus, now time.Time) []radgate.HistoryEntry {
	var out []radgate.HistoryEntry
	instances := 0
	if cur.Study != nil {
		instances = cur.Study.Instances
	}
	if old.ID == "" {
		out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Event: radgate.EvAccepted, To: radgate.StateReceived})
		old.State = radgate.StateReceived
	}
	if old.State != cur.State {
		ev := radgate.TransitionEvent(old.State, cur.State)
		if ev == "" {
			ev = "invalid"
		}
		out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Event: ev, From: old.State, To: cur.State,
			Instances: instances, Reason: cur.Reason})
	}
	for _, e := range slices.Sorted(maps.Keys(cur.Engines)) {
		o, c := old.Engines[e], cur.Engines[e]
		if o.State != "" && c.Revision > o.Revision && o.Revision > 0 {
			out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Engine: e, Event: radgate.EvSuperseded,
				From: o.State, To: radgate.StateSuperseded, Revision: o.Revision,
				Reason: fmt.Sprintf("images added: the study has %d instances; revision %d follows", instances, c.Revision)})
			o = radgate.EngineProgress{}
		}
		if o.State != c.State {
			out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Engine: e, Event: engineEvent(c.State),
				From: o.State, To: c.State, Revision: c.Revision, Reason: c.Reason})
		}
		for _, d := range slices.Sorted(maps.Keys(c.Deliveries)) {
			od, cd := o.Deliveries[d], c.Deliveries[d]
			switch {
			case cd.Retracted && !od.Retracted:
				out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Engine: e, Destination: d, Event: radgate.EvRetracted,
					From: od.State, To: cd.State, Revision: cd.Revision, Reason: cd.Reason})
			case od.State != cd.State || od.Revision != cd.Revision:
				out = append(out, radgate.HistoryEntry{At: now, Order: cur.ID, Engine: e, Destination: d, Event: engineEvent(cd.State),
					From: od.State, To: cd.State, Revision: cd.Revision, Reason: cd.Reason})
			}
		}
	}
	return out
}

// engineEvent labels an engine's or a destination's move to state s.
func engineEvent(s radgate.OrderState) radgate.OrderEventKind {
	switch s {
	case radgate.StateRouted, radgate.StateReceived:
		return radgate.EvStudyStable
	case radgate.StateScored:
		return radgate.EvScored
	case radgate.StateDelivered:
		return radgate.EvDelivered
	case radgate.StateFailed:
		return radgate.EvFailed
	case radgate.StateRejected:
		return radgate.EvNoRoute
	case radgate.StateCancelled, radgate.StateRetracting:
		return radgate.EvCancelled
	}
	return radgate.EvProgress
}

// appendHistory publishes entries to the order's history subject. Each
// carries a message id from the order's KV revision, so a retry after a
// lost acknowledgement is stored once.
func (s *orderStore) appendHistory(ctx context.Context, rev uint64, entries []radgate.HistoryEntry) {
	if s.js == nil {
		return
	}
	for i, h := range entries {
		data, _ := json.Marshal(h)
		msg := nats.NewMsg(broker.SubjectHistory + h.Order)
		msg.Data = data
		msg.Header.Set(broker.HeaderOrderID, h.Order)
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if _, err = s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(fmt.Sprintf("%s.%d.%d", h.Order, rev, i))); err == nil {
				break
			}
		}
		if err != nil {
			s.log.Warn("appending to the order's history failed", "order", h.Order, "event", h.Event, "err", err)
		}
	}
}

// History returns an order's history, oldest first: every state change of
// the order, its engines and its destinations (ErrOrderNotFound when the
// order is unknown).
func (p *Pipeline) History(ctx context.Context, id string) ([]radgate.HistoryEntry, error) {
	if _, err := p.store.get(ctx, id); err != nil {
		return nil, err
	}
	cons, err := p.js.OrderedConsumer(ctx, broker.StreamHistory, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{broker.SubjectHistory + id}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("reading the history of order %s: %w", id, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the history of order %s: %w", id, err)
	}
	n := int(info.NumPending)
	out := make([]radgate.HistoryEntry, 0, n)
	for len(out) < n {
		batch, err := cons.Fetch(min(n-len(out), 256), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading the history of order %s: %w", id, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var h radgate.HistoryEntry
			if err := json.Unmarshal(m.Data(), &h); err == nil {
				out = append(out, h)
			}
		}
		if batch.Error() != nil || got == 0 {
			break
		}
	}
	return out, nil
}
