package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// facilityOf is the facility id an order's subjects carry
// (broker.OrderSubject and the others): the facility it was routed to, else
// the configured facility its intake names; "" (broker.NoFacility) when
// none does.
func (p *Pipeline) facilityOf(st radgate.OrderStatus) string {
	if p.opts.Role == RoleEdge && p.opts.Facility != "" {
		return p.opts.Facility // every order an edge takes is its site's
	}
	return cmp.Or(st.FacilityID, p.opts.Facilities.Resolve(st.Facility))
}

func classOf(st radgate.OrderStatus) string { return radgate.PriorityClass(st.Priority) }

// cancel applies a cancellation (radgate.ActionCancel) to its order: work
// not yet delivered stops (those engines end cancelled) and results already
// delivered are retracted by the router, to which a cancel message goes on
// the urgent queue. Cancelling an order already cancelled changes nothing.
func (p *Pipeline) cancel(ctx context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	id, _, err := p.resolveOrder(ctx, ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	already := false
	st, err := p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
		if o.Cancelled != nil {
			already = true
			return errSkip
		}
		o.Cancelled = &radgate.Cancellation{At: p.opts.Now().UTC(), Source: ev.Source, Reason: cmp.Or(ev.Reason, "cancelled by "+ev.Source)}
		if o.Study != nil {
			o.Study.Settling = false
		}
		for eid, e := range o.Engines {
			delivered := false
			for d, dp := range e.Deliveries {
				if dp.DeliveredRevision > 0 {
					delivered = true
				}
				if dp.State != radgate.StateDelivered {
					dp.State = radgate.StateCancelled
				}
				e.Deliveries[d] = dp
			}
			if !delivered {
				e.State, e.Reason = radgate.StateCancelled, "order cancelled"
			}
			o.Engines[eid] = e
		}
		recompute(o)
		return nil
	})
	if errors.Is(err, radgate.ErrOrderNotFound) {
		return radgate.OrderStatus{}, fmt.Errorf("%w: %s (a cancellation names an order radgate never received)", radgate.ErrUnknownOrder, describeEvent(ev))
	}
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	if already {
		p.log.Info("order cancelled again; nothing to do", "order", id, "source", ev.Source)
		return st, nil
	}
	p.unwatch(ctx, id)
	msg := nats.NewMsg(broker.OrderSubject(radgate.PriorityUrgent, p.facilityOf(st), ev.Source))
	msg.Data, _ = json.Marshal(ev)
	msg.Header.Set(broker.HeaderOrderID, id)
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id+".cancel")); err != nil {
		return radgate.OrderStatus{}, fmt.Errorf("publishing the cancellation of order %s: %w", id, err)
	}
	p.m.accepted.WithLabelValues(ev.Source).Inc()
	p.log.Info("order cancelled", "order", id, "source", ev.Source, "reason", st.Cancelled.Reason, "state", st.State)
	return st, nil
}

// describeEvent names an event's order by its identifiers only.
func describeEvent(ev radgate.OrderEvent) string {
	switch {
	case ev.Accession != nil && ev.Accession.Value != "":
		return "accession number " + ev.Accession.Value
	case ev.StudyInstanceUID != "":
		return "Study Instance UID " + radgate.StripUIDPrefix(ev.StudyInstanceUID)
	case !ev.ServiceRequest.IsZero() && ev.ServiceRequest.Reference != "":
		return ev.ServiceRequest.Reference
	}
	return "no identifier"
}

// retract sends, for a cancelled order, a retraction of every result
// delivered and not yet withdrawn, one per destination (the deliver stage
// writes it and records it). Message ids make a re-run send each once.
func (p *Pipeline) retract(ctx context.Context, st radgate.OrderStatus) verdict {
	for eid, e := range st.Engines {
		for d, dp := range e.Deliveries {
			if dp.DeliveredRevision == 0 || dp.Retracted {
				continue
			}
			if v := p.publishRetraction(ctx, st, eid, d, dp.DeliveredRevision); v.kind != ack {
				return v
			}
		}
	}
	return done()
}

func (p *Pipeline) publishRetraction(ctx context.Context, st radgate.OrderStatus, eid, dest string, rev int) verdict {
	info := radgate.EngineInfo{ID: eid, Name: eid}
	if eid == radgate.RouterEngine {
		info = routerInfo()
	} else if eng, ok := p.engine(eid); ok {
		info = eng.Info()
	}
	r := radgate.Result{ID: ResultID(st.ID, info), Order: st, Engine: info, Status: radgate.ResultRetracted,
		Revision: max(rev, 1), RetractReason: "order cancelled: " + st.Cancelled.Reason,
		StudyInstanceUID: st.StudyInstanceUID, ScoredAt: p.opts.Now().UTC(), Destination: dest, Destinations: []string{dest}}
	// The outcome of what is withdrawn: a score, or the answer that there
	// is none (a destination words the retraction after it).
	e := st.Engines[eid]
	switch {
	case e.Probability != nil:
		r.Outcome, r.Probability, r.Tier = radgate.OutcomeScored, *e.Probability, e.Tier
	case e.State == radgate.StateRejected || eid == radgate.RouterEngine && st.Route != nil && !st.Route.Matched:
		r.Outcome, r.Reason = radgate.OutcomeNotApplicable, e.Reason
	default:
		r.Outcome, r.Reason = radgate.OutcomeFailed, e.Reason
	}
	data, err := json.Marshal(r)
	if err != nil {
		return deadLetter("encoding retraction: " + err.Error())
	}
	out := nats.NewMsg(broker.ResultSubject(dest, radgate.PriorityUrgent, p.facilityOf(st), eid))
	out.Data = data
	out.Header.Set(broker.HeaderOrderID, st.ID)
	if _, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(fmt.Sprintf("retract.%s.r%d.%s", r.ID, r.Revision, dest))); err != nil {
		return retryIn(p.opts.RetryMin)
	}
	p.log.Info("retraction published", "order", st.ID, "engine", eid, "destination", dest, "revision", r.Revision)
	return done()
}

// waitFor is how long order st waits for its study.
func (p *Pipeline) waitFor(st radgate.OrderStatus) time.Duration {
	if p.opts.WaitFor != nil {
		if d := p.opts.WaitFor(st); d > 0 {
			return d
		}
	}
	return p.opts.StudyWaitWindow
}

// watchEntry is a KV entry "w.<order>": when the watcher next looks for
// the order's study in the PACS, how often it has, and until when.
type watchEntry struct {
	Next    time.Time `json:"next"`
	Attempt int       `json:"attempt"`
	Class   string    `json:"class"`
	// Until: past it the watch ends (an answered order's amendment watch).
	// Zero: until the order leaves waiting.
	Until time.Time `json:"until,omitzero"`
	// Slow: the order is answered; look every PollMax.
	Slow bool `json:"slow,omitempty"`
}

func watchKey(id string) string { return "w." + id }

// watch schedules the next look at order id's study.
func (p *Pipeline) watch(ctx context.Context, id string, w watchEntry) error {
	b, _ := json.Marshal(w)
	if _, err := p.opts.Topology.Orders.Put(ctx, watchKey(id), b); err != nil {
		return fmt.Errorf("scheduling the next look for order %s: %w", id, err)
	}
	return nil
}

func (p *Pipeline) unwatch(ctx context.Context, id string) {
	if err := p.opts.Topology.Orders.Delete(ctx, watchKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		p.log.Warn("removing an order's watch failed", "order", id, "err", err)
	}
}

// pollInterval is the wait before look number attempt+1 at a study that
// was not there: PollMin doubling up to PollMax.
func (p *Pipeline) pollInterval(attempt int) time.Duration {
	d := p.opts.PollMin
	for i := 0; i < attempt && d < p.opts.PollMax; i++ {
		d *= 2
	}
	return min(d, p.opts.PollMax)
}

// watchAnswered keeps watching an answered order's study for added images
// for WatchAfter, at PollMax.
func (p *Pipeline) watchAnswered(ctx context.Context, st radgate.OrderStatus) {
	now := p.opts.Now()
	if err := p.watch(ctx, st.ID, watchEntry{Next: now.Add(p.opts.PollMax), Class: classOf(st), Until: now.Add(p.opts.WatchAfter), Slow: true}); err != nil {
		p.log.Warn("watching an answered order for added images failed", "order", st.ID, "err", err)
	}
}
