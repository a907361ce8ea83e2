package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// StageQueue is one stage consumer's backlog in JetStream.
type StageQueue struct {
	Stage, Stream, Consumer string
	// Pending is the messages not yet given to a worker; AckPending those
	// given and not yet acknowledged; Redelivered those given more than
	// once and still unacknowledged.
	Pending                 uint64
	AckPending, Redelivered int
}

// Queues returns the backlog of every stage consumer this pipeline runs
// (in the order Start made them) and the dead-letter queue's size.
func (p *Pipeline) Queues(ctx context.Context) ([]StageQueue, uint64, error) {
	p.mu.Lock()
	running := append([]*stageRunner(nil), p.running...)
	p.mu.Unlock()
	out := make([]StageQueue, 0, len(running))
	for _, s := range running {
		c, err := p.js.Consumer(ctx, s.stream, s.durable)
		if err != nil {
			return nil, 0, fmt.Errorf("reading consumer %s on %s: %w", s.durable, s.stream, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("reading consumer %s on %s: %w", s.durable, s.stream, err)
		}
		out = append(out, StageQueue{Stage: s.name, Stream: s.stream, Consumer: s.durable,
			Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered})
	}
	str, err := p.js.Stream(ctx, broker.StreamDLQ)
	if err != nil {
		return nil, 0, fmt.Errorf("reading stream %s: %w", broker.StreamDLQ, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading stream %s: %w", broker.StreamDLQ, err)
	}
	return out, info.State.Msgs, nil
}

// OrderChange is an order's move to a new state as live views show it:
// identifiers, state, facility and tier, never patient data.
type OrderChange struct {
	Order    string             `json:"order"`
	State    radgate.OrderState `json:"state"`
	Facility string             `json:"facility,omitempty"`
	// Tier is the highest tier among the order's engines (High, Mid,
	// Low), "" before any is scored.
	Tier string `json:"tier,omitempty"`
}

// WatchOrders sends every order state change from now on until ctx ends,
// then closes the channel. It is one NATS subscription on the order list's
// state index (broker.SubjectOrderStates, written at every change of an
// order's state), whichever radgate process made the change; a reader
// that falls far behind loses changes, never blocks the pipeline.
func (p *Pipeline) WatchOrders(ctx context.Context) (<-chan OrderChange, error) {
	msgs := make(chan *nats.Msg, 256)
	sub, err := p.js.Conn().ChanSubscribe(broker.SubjectOrderStates+">", msgs)
	if err != nil {
		return nil, fmt.Errorf("watching order states: %w", err)
	}
	out := make(chan OrderChange, 16)
	go func() {
		defer close(out)
		defer func() { _ = sub.Unsubscribe() }()
		for {
			var m *nats.Msg
			select {
			case <-ctx.Done():
				return
			case m = <-msgs:
			}
			state, id, ok := strings.Cut(strings.TrimPrefix(m.Subject, broker.SubjectOrderStates), ".")
			if !ok || id == "" {
				continue
			}
			ch := OrderChange{Order: id, State: radgate.OrderState(state)}
			if st, err := p.store.get(ctx, id); err == nil {
				ch.Facility = st.FacilityID
				if ch.Facility == "" {
					ch.Facility = st.Facility
				}
				ch.Tier = highestTier(st)
			}
			select {
			case <-ctx.Done():
				return
			case out <- ch:
			}
		}
	}()
	return out, nil
}

func highestTier(st radgate.OrderStatus) string {
	rank := map[string]int{"low": 1, "mid": 2, "high": 3}
	best := ""
	for _, e := range st.Engines {
		if rank[strings.ToLower(string(e.Tier))] > rank[strings.ToLower(best)] {
			best = string(e.Tier)
		}
	}
	return best
}
