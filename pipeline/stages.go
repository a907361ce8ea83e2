package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/routing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/inference"
)

// Job asks the inference stage to score a study's images with one engine.
type Job struct {
	OrderID          string        `json:"order_id"`
	Engine           string        `json:"engine"`
	StudyInstanceUID string        `json:"study_instance_uid"`
	Instances        []JobInstance `json:"instances"`
	// Revision is the result revision this job makes (1: the first).
	Revision int `json:"revision,omitempty"`
	// Skipped are the study's images the engine was not given, with why.
	Skipped []radgate.ImageNote `json:"skipped,omitempty"`
	// OrderAge is the patient's age from the order (OrderStatus.Age), for
	// images whose header gives none; UnknownAge is the route's rule for an
	// age known from neither (RouteDecision.UnknownAge).
	OrderAge   *radgate.PatientAge `json:"order_age,omitempty"`
	UnknownAge string              `json:"unknown_age,omitempty"`
	// Patient is the order's Patient reference when the order came with no
	// age: read (Options.PatientAge) only if an image needs it, at
	// OrderDate.
	Patient   string    `json:"patient,omitempty"`
	OrderDate time.Time `json:"order_date,omitzero"`
	// patientProblem says why the Patient read gave no age.
	patientProblem string
	// Shadow: the engine was in shadow when the order was routed
	// (RouteDecision.Shadow), so a patient outside its intended use (a
	// patient rule: the age) is scored too and the result says why it is
	// out of scope (Result.OutOfScope): an engine in shadow is measured on
	// the facility's whole population. Image rules (matrix, spacing) still
	// refuse: such an image cannot be scored meaningfully.
	Shadow bool `json:"shadow,omitempty"`
	// Order is the order as the edge's router published the job (role
	// edge; issue 16): the hub scores it from what the job carries — the
	// route decision with its destinations and read request, the ages, the
	// revision — and never reads the edge's order store. Nil in role all.
	Order *radgate.OrderStatus `json:"order,omitempty"`
	// Pictures are what the order's destinations at the edge show (role
	// edge): what the hub draws.
	Pictures radgate.Pictures `json:"pictures,omitempty"`
}

// headerHubResult marks a result the hub scored for an edge's job: its
// pictures travel in the message (hubResult), and the edge records the
// engine scored when it receives it.
const headerHubResult = "Radgate-Hub-Result"

// hubResult is a result the hub publishes for an edge: the pictures go in
// the message, since no hub store is read by an edge (they cross the link
// in the results source, filtered on the edge's facility).
const headerWithheld = "Radgate-Withheld"

type hubResult struct {
	radgate.Result
	HeatmapPNG []byte `json:"heatmap_png,omitempty"`
	Preview    []byte `json:"preview,omitempty"`
	// HeatmapBytes and PreviewBytes, in a result sent in parts, are the
	// sizes of the pictures that follow its JSON (parts.go).
	HeatmapBytes int `json:"heatmap_bytes,omitempty"`
	PreviewBytes int `json:"preview_bytes,omitempty"`
}

// JobInstance is one image the router selected for an engine.
type JobInstance struct {
	SeriesInstanceUID string `json:"series_instance_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	Modality          string `json:"modality"`
	BodyPart          string `json:"body_part,omitempty"`
	View              string `json:"view,omitempty"`
}

// route works on an order each time something may have changed for it: an
// intake event, the watcher seeing its study change, a cancellation. It
// looks the study up in the archive and moves the order along
// radgate.Transitions:
//
//   - cancelled: retract what was delivered (retract);
//   - study missing: wait (the watcher looks again later; no consumer slot
//     is held), or, past the order's wait window, answer it failed;
//   - study found but still changing: stabilising until its instance count
//     holds for orders.stable_after (at once when it was complete before
//     the order came, or an event announced it complete);
//   - stable: decide the route once, publish one job per engine; images
//     added after the result make the next revision (amendment).
//
// A replayed event (HeaderReplayOf) first re-opens the order's failed and
// rejected engines, so they are routed again.
func (p *Pipeline) route(ctx context.Context, msg jetstream.Msg) verdict {
	id := msg.Headers().Get(broker.HeaderOrderID)
	replay := msg.Headers().Get(broker.HeaderReplayOf)
	st, err := p.store.get(ctx, id)
	if err != nil {
		if errors.Is(err, radgate.ErrOrderNotFound) {
			return deadLetter("order " + id + " is not in the order store")
		}
		return retryIn(p.opts.RetryMin)
	}
	if st.Cancelled != nil {
		return p.retract(ctx, st)
	}
	if replay != "" {
		if st, err = p.reopen(ctx, id, replay, append(orderEngines(st), radgate.RouterEngine), radgate.StateReceived); err != nil {
			return retryIn(p.opts.RetryMin)
		}
	}
	_, n := msgAge(msg, p.opts.Now())
	study, err := p.opts.Source.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: st.StudyInstanceUID, AccessionNumber: accessionValue(st)})
	if err != nil {
		if errors.Is(err, radgate.ErrStudyNotFound) || radgate.IsTransient(err) {
			return p.studyMissing(ctx, msg, st, err, n)
		}
		p.log.Warn("study not retrieved from the PACS; answering the order", "order", id, "err", err)
		return p.answerUnrouted(ctx, msg, st, "study not retrieved from the PACS: "+radgate.Public(err))
	}
	return p.studyFound(ctx, msg, st, study, n)
}

// routerWork is what the router still has to do for an order: decide its
// route (first time, or re-opened), route engines not yet routed, or
// score again because the study changed after the answer (amend).
type routerWork struct {
	decide, amend bool
	pending       []string
}

func (p *Pipeline) todo(st radgate.OrderStatus, instances int) routerWork {
	routerCur, routerSeen := st.Engines[radgate.RouterEngine]
	var t routerWork
	t.decide = (st.Route == nil && len(st.Engines) == 0) || (routerSeen && routerCur.State == radgate.StateReceived)
	t.pending = enginesInState(st, radgate.StateReceived)
	if t.decide || len(t.pending) > 0 || instances < 0 {
		return t
	}
	// Answered (every engine done) and the study no longer what was scored:
	// images were added (or the answer was that none had come).
	if answered(st) && (st.Study == nil || st.Study.Scored != instances) {
		t.amend = true
	}
	return t
}

// answered reports whether every engine of the order is done.
func answered(st radgate.OrderStatus) bool {
	if len(st.Engines) == 0 {
		return false
	}
	for _, e := range st.Engines {
		if !e.State.Terminal() {
			return false
		}
	}
	return true
}

// studyMissing handles an order whose study the PACS does not have (or
// could not be asked for just now).
func (p *Pipeline) studyMissing(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, cause error, n uint64) verdict {
	t := p.todo(st, -1)
	if !t.decide && len(t.pending) == 0 {
		return done() // answered already; a study gone from the PACS changes nothing
	}
	now := p.opts.Now()
	waitUntil := st.WaitUntil
	if waitUntil.IsZero() {
		waitUntil = st.ReceivedAt.Add(p.waitFor(st))
	}
	if now.Before(waitUntil) {
		if _, err := p.store.update(ctx, st.ID, false, func(o *radgate.OrderStatus) error {
			o.WaitUntil = waitUntil
			if o.Study != nil {
				o.Study.Settling, o.Study.Instances, o.Study.Since = false, 0, time.Time{}
			}
			if len(o.Engines) == 0 {
				o.State = radgate.StateWaiting
			}
			recompute(o)
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
		if err := p.watchNew(ctx, st.ID, watchEntry{Next: now.Add(p.pollInterval(0)), Class: classOf(st)}); err != nil {
			return retryIn(p.backoff(n))
		}
		p.log.Info("study not in the PACS yet; the order waits", "order", st.ID, "wait_until", waitUntil.UTC().Format(time.RFC3339), "err", cause)
		return done()
	}
	reason := fmt.Sprintf("study not found in the PACS within %s (%s)", p.waitFor(st), describeQuery(st))
	if !errors.Is(cause, radgate.ErrStudyNotFound) {
		reason = "study not retrieved from the PACS: " + radgate.Public(cause)
	}
	p.log.Warn("study not found within the wait window; answering the order", "order", st.ID, "err", cause)
	var v verdict
	if t.decide {
		v = p.answerUnrouted(ctx, msg, st, reason)
	} else {
		v = p.finishAll(ctx, msg, st, t.pending, radgate.OutcomeFailed, reason)
	}
	if v.kind == ack {
		// Late images still re-open it: watched slowly for WatchAfter more.
		if err := p.watch(ctx, st.ID, watchEntry{Next: now.Add(p.opts.PollMax), Class: classOf(st), Until: now.Add(p.opts.WatchAfter), Slow: true}); err != nil {
			p.log.Warn("watching a failed order for late images failed", "order", st.ID, "err", err)
		}
	}
	return v
}

// answerUnrouted answers an order that could not be routed (its study
// never came, or the PACS refused the query) as failed.
func (p *Pipeline) answerUnrouted(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, reason string) verdict {
	if t := p.todo(st, -1); !t.decide {
		return p.finishAll(ctx, msg, st, t.pending, radgate.OutcomeFailed, reason)
	}
	return p.answerOrder(ctx, msg, st, radgate.OutcomeFailed, reason)
}

// imageCount is the number of a study's instances that count for its
// stability and for amendments: those in series of a modality some engine
// takes. radgate's own objects stored back into the study (SC and
// Parametric Map as OT, SR, KO, DOC), a viewer's presentation states and
// the like are not new images.
func (p *Pipeline) imageCount(study *radgate.Study) int {
	engines := p.routes().engines
	n := 0
	for _, s := range study.Series {
		for _, e := range engines {
			if containsFold(e.Modalities(), s.Modality) {
				n += len(s.Instances)
				break
			}
		}
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// watchNew schedules a first look unless one is scheduled already (an event
// for a waiting order does not reset its backoff).
func (p *Pipeline) watchNew(ctx context.Context, id string, w watchEntry) error {
	b, _ := json.Marshal(w)
	_, err := p.opts.Topology.Orders.Create(ctx, watchKey(id), b)
	if err == nil || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return fmt.Errorf("scheduling the next look for order %s: %w", id, err)
}

// studyFound handles an order whose study the PACS has.
func (p *Pipeline) studyFound(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, study *radgate.Study, n uint64) verdict {
	id := st.ID
	replay := msg.Headers().Get(broker.HeaderReplayOf)
	now := p.opts.Now()
	count := p.imageCount(study)
	// An order failed because its study never came is re-opened by it.
	if rc, ok := st.Engines[radgate.RouterEngine]; ok && rc.State == radgate.StateFailed && st.Route == nil {
		var err error
		if st, err = p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			if rc, ok := o.Engines[radgate.RouterEngine]; !ok || rc.State != radgate.StateFailed || o.Route != nil {
				return errSkip
			}
			delete(o.Engines, radgate.RouterEngine)
			o.WaitUntil = time.Time{}
			o.State = radgate.StateStabilising
			p.log.Info("the study of a failed order arrived; re-opening it", "order", id)
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
	}
	t := p.todo(st, count)
	if !t.decide && len(t.pending) == 0 && !t.amend {
		return done()
	}
	obs := radgate.StudyObservation{}
	if st.Study != nil {
		obs = *st.Study
	}
	if obs.Instances != count || obs.Since.IsZero() {
		obs.Instances, obs.Since = count, now
	}
	obs.LastSeen = now
	// The study was there before the order (its first look finds it, it
	// never waited): complete as found. Else it must hold its count.
	firstLook := st.State == radgate.StateReceived && st.WaitUntil.IsZero() && !t.amend
	// A study pushed to radgate says when its last image came: it is
	// stable stable_after from then, however it was first looked at.
	if la := study.LastArrival; !la.IsZero() {
		obs.Since, firstLook = la, false
	}
	announced := obs.Complete && (obs.Announced == 0 && !t.amend || obs.Announced > 0 && count >= obs.Announced)
	// Engines left to route of a decided order (another event's router run
	// got there first) need no new judgement: the study was stable then.
	resumed := !t.decide && !t.amend
	stable := resumed || p.opts.StableAfter < 0 || firstLook || announced || now.Sub(obs.Since) >= p.opts.StableAfter
	if !stable {
		obs.Settling = true
		if _, err := p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			o.Study = &obs
			recompute(o)
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
		// Looked at again when it would be stable, or sooner (poll_min),
		// to see pieces still arriving, or the study leaving the PACS.
		stableAt := obs.Since.Add(p.opts.StableAfter)
		if err := p.watch(ctx, id, watchEntry{Next: minTime(stableAt, now.Add(p.opts.PollMin)), Class: classOf(st)}); err != nil {
			return retryIn(p.backoff(n))
		}
		p.log.Info("study found; waiting for it to settle", "order", id, "instances", count, "stable_at", stableAt.UTC().Format(time.RFC3339))
		return done()
	}
	obs.Settling, obs.Scored = false, count
	var err error
	if t.amend {
		st, err = p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			if p.todo(*o, count).amend == false {
				return errSkip
			}
			o.Study = &obs
			if o.Route == nil || !o.Route.Matched {
				// The answer was order-level (no route, nothing there):
				// decide again on the study as it now is.
				o.Route = nil
				delete(o.Engines, radgate.RouterEngine)
			}
			for eid, e := range o.Engines {
				if eid == radgate.RouterEngine {
					continue
				}
				o.Engines[eid] = radgate.EngineProgress{State: radgate.StateReceived, Revision: max(e.Revision, 1) + 1, Deliveries: e.Deliveries}
			}
			o.State = radgate.StateStabilising
			recompute(o)
			return nil
		})
		if err != nil {
			return retryIn(p.backoff(n))
		}
		p.log.Info("images added after the result; scoring again", "order", id, "instances", count)
		t = p.todo(st, count)
	}
	if t.decide {
		rs := p.routes()
		facility := p.opts.Facilities.Resolve(st.Facility, study.InstitutionName)
		if p.opts.Role == RoleEdge && p.opts.Facility != "" {
			facility = p.opts.Facility // every order an edge takes is its site's
		}
		rd := rs.set.Decide(Facts(st, study))
		if rd.Matched && rd.WaitForOrder && pushedOnly(st) {
			return p.awaitOrder(ctx, msg, st, obs, rd, n)
		}
		d := decisionOf(rd, rs.set.Digest())
		if v, ok := p.decideModes(ctx, st, d, facility, n); !ok {
			return v
		}
		st, err = p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			if rc, seen := o.Engines[radgate.RouterEngine]; o.Route != nil && !(seen && rc.State == radgate.StateReceived) {
				return errSkip // another event of the order decided first
			}
			o.Route, o.FacilityID, o.Study = d, facility, &obs
			if d.Matched {
				delete(o.Engines, radgate.RouterEngine)
				// Every engine of the route is pending from now: the order
				// is not answered until each is.
				for _, eid := range d.Engines {
					if _, ok := o.Engines[eid]; !ok {
						if o.Engines == nil {
							o.Engines = map[string]radgate.EngineProgress{}
						}
						o.Engines[eid] = radgate.EngineProgress{State: radgate.StateReceived, Revision: 1}
					}
				}
			}
			if o.StudyInstanceUID == "" {
				o.StudyInstanceUID = study.StudyInstanceUID
			}
			recompute(o)
			return nil
		})
		if err != nil {
			return retryIn(p.backoff(n))
		}
		if !st.Route.Matched {
			p.unwatch(ctx, id)
			return p.answerOrder(ctx, msg, st, radgate.OutcomeNotApplicable, st.Route.Reason)
		}
		p.log.Info("order matched a route", "order", id, "routes", strings.Join(st.Route.Routes, ","),
			"engines", strings.Join(st.Route.Engines, ","), "destinations", strings.Join(st.Route.Destinations, ","))
	} else if !t.amend {
		if st, err = p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			o.Study = &obs
			recompute(o)
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
	}
	p.unwatch(ctx, id)
	for _, eid := range enginesInState(st, radgate.StateReceived) {
		rev := max(st.Engines[eid].Revision, 1)
		eng, ok := p.engine(eid)
		if !ok {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: radgate.EngineInfo{ID: eid, Name: eid}, Outcome: radgate.OutcomeFailed, Revision: rev,
				Reason: fmt.Sprintf("engine %s is not loaded in this radgate process", eid), StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		job, reason := selectInstances(eng, study, st)
		if reason != "" {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeNotApplicable, Reason: reason, Revision: rev,
				Images: job.Skipped, StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		if n, limit := len(job.Instances), p.opts.MaxInstancesPerStudy; n > limit {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeFailed, Revision: rev,
				Reason:           fmt.Sprintf("not scored: the study has %d images for engine %s, more than the limit of %d (orders.max_instances_per_study)", n, eid, limit),
				StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		job.OrderID, job.Revision = id, rev
		if p.opts.Role == RoleEdge {
			// The hub scores the job from what it carries, and reads its
			// images from this edge's image store, staged there first.
			o := st
			job.Order, job.Pictures = &o, p.picturesFor(st)
			if p.opts.StageImages != nil {
				if err := p.opts.StageImages(ctx, job); err != nil {
					p.log.Warn("staging the job's images for the hub failed; will retry", "order", id, "engine", eid, "attempt", n, "err", err)
					return retryIn(p.backoff(n))
				}
			}
		}
		data, _ := json.Marshal(job)
		out := nats.NewMsg(broker.JobSubject(classOf(st), p.facilityOf(st), eid))
		out.Data = data
		out.Header.Set(broker.HeaderOrderID, id)
		if replay != "" {
			out.Header.Set(broker.HeaderReplayOf, replay)
		}
		if _, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(replayMsgID(fmt.Sprintf("job.%s.%s.r%d", id, eid, rev), replay))); err != nil {
			return retryIn(p.backoff(n))
		}
		if _, err := p.store.update(ctx, id, false, func(st *radgate.OrderStatus) error {
			if cur, ok := st.Engines[eid]; ok && (cur.State != radgate.StateReceived || max(cur.Revision, 1) != rev) {
				return errSkip
			}
			if st.StudyInstanceUID == "" {
				st.StudyInstanceUID = study.StudyInstanceUID
			}
			prev := st.Engines[eid]
			setEngine(st, eid, radgate.EngineProgress{State: radgate.StateRouted, Revision: rev, Deliveries: prev.Deliveries})
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
		p.log.Info("order routed", "order", id, "engine", eid, "images", len(job.Instances), "revision", rev, "priority", classOf(st))
	}
	return done()
}

// answerOrder gives an order-level answer (no route matched, or the study
// never arrived so no route could be chosen) under RouterEngine: published
// to the route set's unmatched destinations, or, when it names none,
// recorded on the order only.
func (p *Pipeline) answerOrder(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, o radgate.Outcome, reason string) verdict {
	p.log.Warn("order answered without scoring", "order", st.ID, "outcome", o, "reason", reason)
	dests := p.routes().set.Unmatched()
	if len(dests) == 0 {
		state := radgate.StateRejected
		if o == radgate.OutcomeFailed {
			state = radgate.StateFailed
		}
		if _, err := p.store.update(ctx, st.ID, false, func(s *radgate.OrderStatus) error {
			setEngine(s, radgate.RouterEngine, radgate.EngineProgress{State: state, Reason: reason})
			return nil
		}); err != nil {
			return retryIn(p.opts.RetryMin)
		}
		return done()
	}
	return p.publishTo(ctx, st, radgate.Result{Engine: routerInfo(), Outcome: o, Reason: reason, StudyInstanceUID: st.StudyInstanceUID},
		msg.Headers().Get(broker.HeaderReplayOf), dests, nil)
}

// reopen applies replayReset to an order for a replayed message and returns
// the order as it now stands.
func (p *Pipeline) reopen(ctx context.Context, id, replay string, engines []string, to radgate.OrderState) (radgate.OrderStatus, error) {
	reopened := false
	st, err := p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
		if reopened = replayReset(o, replay, engines, to); !reopened {
			return errSkip
		}
		return nil
	})
	if err == nil && reopened {
		p.log.Info("order re-opened by a replayed message", "order", id, "replay_of", replay, "state", st.State)
	}
	return st, err
}

// reopenDelivery applies replayDelivery to an order for a replayed result.
func (p *Pipeline) reopenDelivery(ctx context.Context, id, replay, engine, dest string) error {
	reopened := false
	st, err := p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
		if reopened = replayDelivery(o, replay, engine, dest); !reopened {
			return errSkip
		}
		return nil
	})
	if err == nil && reopened {
		p.log.Info("order re-opened by a replayed result", "order", id, "replay_of", replay, "engine", engine, "destination", dest, "state", st.State)
	}
	return err
}

// replayMsgID namespaces the id of a message derived from a replayed one by
// the replay's dead-letter sequence. The duplicate window still remembers the
// first run's ids (job.<order>.<engine>, result.<id>) and would silently drop
// the replay's job or result, leaving the order "routed" or "scored" for
// good; a redelivery of the replayed message itself derives the same ids
// again, so it stays deduplicated.
func replayMsgID(id, replay string) string {
	if replay == "" {
		return id
	}
	return id + ".replay." + replay
}

// enginesInState lists the engines of an order's route decision still at
// state s (an engine not yet recorded counts as received).
func enginesInState(st radgate.OrderStatus, s radgate.OrderState) []string {
	var out []string
	for _, eid := range orderEngines(st) {
		if eid == radgate.RouterEngine {
			continue
		}
		cur, ok := st.Engines[eid]
		if (!ok && s == radgate.StateReceived) || (ok && cur.State == s) {
			out = append(out, eid)
		}
	}
	return out
}

// finishAll publishes a failed or not-applicable result for each engine.
func (p *Pipeline) finishAll(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, engines []string, o radgate.Outcome, reason string) verdict {
	for _, eid := range engines {
		info := radgate.EngineInfo{ID: eid, Name: eid}
		if eng, ok := p.engine(eid); ok {
			info = eng.Info()
		}
		if v := p.publishResult(ctx, st, radgate.Result{Engine: info, Outcome: o, Reason: reason,
			StudyInstanceUID: st.StudyInstanceUID}, msg.Headers().Get(broker.HeaderReplayOf)); v.kind != ack {
			return v
		}
	}
	p.log.Warn("order not scored", "order", st.ID, "outcome", o, "reason", reason)
	return done()
}

func accessionValue(st radgate.OrderStatus) string {
	if st.StudyInstanceUID != "" || st.Accession == nil {
		return ""
	}
	return st.Accession.Value
}

func describeQuery(st radgate.OrderStatus) string {
	if st.StudyInstanceUID != "" {
		return "Study Instance UID " + st.StudyInstanceUID
	}
	if st.Accession != nil {
		return "accession number " + st.Accession.Value
	}
	return "no identifier"
}

// selectInstances picks the images an engine's manifest declares: its
// modalities and body parts (a series without Body Part Examined falls back
// to the order's procedure code), and its views (View Position, else the
// View Code Sequence; an image that declares no view is given to the engine
// and noted). Every image not given is listed in Job.Skipped with why.
func selectInstances(eng radgate.Engine, study *radgate.Study, st radgate.OrderStatus) (Job, string) {
	info := eng.Info()
	job := Job{Engine: info.ID, StudyInstanceUID: study.StudyInstanceUID, OrderAge: st.Age}
	if st.Age == nil && st.Patient != nil && st.Patient.Reference != "" {
		job.Patient, job.OrderDate = st.Patient.Reference, st.ReceivedAt
	}
	if st.Route != nil {
		job.UnknownAge = st.Route.UnknownAge
		job.Shadow = st.Route.Shadow(info.ID)
	}
	var seen []string
	orderPart := BodyPartFromProcedure(st.ProcedureCodes)
	views := eng.Views()
	for _, s := range study.Series {
		part := strings.ToUpper(strings.TrimSpace(s.BodyPartExamined))
		partFrom := part
		if part == "" {
			part, partFrom = orderPart, "from the order's procedure code: "+orderPart
			if orderPart == "" {
				partFrom = "unknown: no Body Part Examined and no recognised procedure code"
			}
		}
		seen = append(seen, fmt.Sprintf("%s (body part %s)", orDash(s.Modality), partFrom))
		if !containsFold(eng.Modalities(), s.Modality) || !containsFold(eng.BodyParts(), part) {
			for _, in := range s.Instances {
				job.Skipped = append(job.Skipped, radgate.ImageNote{SeriesInstanceUID: s.SeriesInstanceUID, SOPInstanceUID: in.SOPInstanceUID,
					View: viewOf(in), Reason: fmt.Sprintf("%s %s: engine takes %s of %s", orDash(s.Modality), orDash(part),
						strings.Join(eng.Modalities(), "/"), strings.Join(eng.BodyParts(), "/"))})
			}
			continue
		}
		for _, in := range s.Instances {
			v := viewOf(in)
			if len(views) > 0 && v != "" && !containsFold(views, v) {
				job.Skipped = append(job.Skipped, radgate.ImageNote{SeriesInstanceUID: s.SeriesInstanceUID, SOPInstanceUID: in.SOPInstanceUID,
					View: v, Reason: fmt.Sprintf("view %s is outside engine %s's intended use: %s (views)", v, info.ID, strings.Join(views, "/"))})
				continue
			}
			job.Instances = append(job.Instances, JobInstance{SeriesInstanceUID: s.SeriesInstanceUID,
				SOPInstanceUID: in.SOPInstanceUID, Modality: s.Modality, BodyPart: part, View: v})
		}
	}
	if len(job.Instances) == 0 {
		if len(seen) == 0 {
			seen = []string{"no series"}
		}
		var offView []string
		for _, n := range job.Skipped {
			if strings.HasPrefix(n.Reason, "view ") && !slices.Contains(offView, n.View) {
				offView = append(offView, n.View)
			}
		}
		if len(views) > 0 && len(offView) > 0 {
			return job, fmt.Sprintf("not scored: view %s is outside engine %s's intended use: %s (views); the study has no other %s %s image (%d image(s) skipped, see the image list)",
				strings.Join(offView, "/"), info.ID, strings.Join(views, "/"), strings.Join(eng.Modalities(), "/"), strings.Join(eng.BodyParts(), "/"), len(job.Skipped))
		}
		return job, fmt.Sprintf("not scored: engine %s takes %s images of %s; the study has %s",
			info.ID, strings.Join(eng.Modalities(), "/"), strings.Join(eng.BodyParts(), "/"), strings.Join(seen, ", "))
	}
	return job, ""
}

// viewOf is an image's view: View Position, else the View Code Sequence's
// code mapped to its View Position term.
func viewOf(in radgate.Instance) string {
	if v := strings.ToUpper(strings.TrimSpace(in.ViewPosition)); v != "" {
		return v
	}
	if in.ViewCode != nil {
		if v, ok := viewCodes[in.ViewCode.Code]; ok {
			return v
		}
		return strings.ToUpper(cmp.Or(in.ViewCode.Display, in.ViewCode.Code))
	}
	return ""
}

// viewCodes maps SNOMED CT view codes (CID 4010 DX View) to View Position.
var viewCodes = map[string]string{
	"399348003": "PA", "R-10214": "PA", // postero-anterior
	"272479001": "AP", "R-10206": "AP", // antero-posterior
	"399198007": "RL", "R-10232": "RL", // right lateral
	"399173006": "LL", "R-10236": "LL", // left lateral
	"260427000": "LATERAL", "R-102CD": "LATERAL",
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(v, s) })
}

// chestProcedureCodes are LOINC codes of chest radiography procedures.
var chestProcedureCodes = map[string]bool{
	"36643-5": true, // XR Chest 2 Views
	"36554-4": true, // XR Chest Single view
	"24648-8": true, // XR Chest PA upright
	"30745-4": true, // XR Chest 2 Views (PA and lateral)
	"43468-8": true, // XR Chest PA and lateral and oblique
}

// BodyPartFromProcedure derives a DICOM body part from procedure codes: a
// known chest radiography LOINC code, or a display naming the chest/thorax.
func BodyPartFromProcedure(codes []radgate.Coding) string {
	for _, c := range codes {
		if strings.Contains(c.System, "loinc") && chestProcedureCodes[c.Code] {
			return "CHEST"
		}
		d := strings.ToLower(c.Display)
		if strings.Contains(d, "chest") || strings.Contains(d, "thorax") {
			return "CHEST"
		}
	}
	return ""
}

// score runs one job: it retrieves the study's images one at a time, scores
// each as it arrives and keeps only the most confident image's score (see
// scoreImages), then publishes the result with that image's heatmap. A
// replayed job (HeaderReplayOf) first re-opens its engine if that ended
// failed or rejected.
func (p *Pipeline) score(ctx context.Context, msg jetstream.Msg) verdict {
	replay := msg.Headers().Get(broker.HeaderReplayOf)
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		return deadLetter("undecodable job: " + err.Error())
	}
	eng, ok := p.engine(job.Engine)
	if !ok {
		return deadLetter(fmt.Sprintf("engine %q is not loaded in this process", job.Engine))
	}
	if p.opts.Role == RoleHub {
		return p.scoreForEdge(ctx, msg, job, eng, replay)
	}
	st, err := p.store.get(ctx, job.OrderID)
	if err != nil {
		return retryIn(p.opts.RetryMin)
	}
	if replay != "" {
		if st, err = p.reopen(ctx, job.OrderID, replay, []string{job.Engine}, radgate.StateRouted); err != nil {
			return retryIn(p.opts.RetryMin)
		}
	}
	// Skip what is already past scoring (a redelivery after a crash), a job
	// of an earlier revision (images were added since), and any job of a
	// cancelled order. "received" is normal here: the router publishes the
	// job before it records "routed", and this stage can read the order in
	// between.
	cur := st.Engines[job.Engine]
	if st.Cancelled != nil || max(cur.Revision, 1) != max(job.Revision, 1) || cur.State == radgate.StateScored || cur.State.Terminal() {
		return done()
	}
	return p.scoreAndPublish(ctx, msg, job, eng, st, p.picturesFor(st), p.opts.Source, replay)
}

// scoreAndPublish scores job's images read from src, drawing the pictures
// want asks for, and publishes the result for st.
func (p *Pipeline) scoreAndPublish(ctx context.Context, msg jetstream.Msg, job Job, eng radgate.Engine, st radgate.OrderStatus, want radgate.Pictures, src radgate.StudySource, replay string) verdict {
	if job.Shadow {
		want = 0 // a result scored in shadow is never delivered: nothing to draw
	}
	sc := p.scoreImagesFrom(ctx, msg, job, eng, want, src)
	if sc.retry > 0 {
		return retryIn(sc.retry)
	}
	r := resultOf(job, eng, sc, want)
	r.Revision = max(job.Revision, 1)
	r.Images = append(sc.notes, job.Skipped...)
	return p.publishResult(ctx, st, r, replay)
}

// scoreForEdge is the inference stage of a hub (role hub): the job came
// from an edge by the hub's source of its JOBS, carrying the order as the
// edge routed it. Its images are read from that edge's image store through
// its domain (Options.EdgeImages), and the result is published to the
// hub's RESULTS under the facility of the job's subject — which the
// source's filter guarantees is the edge's own, whatever the job says — so
// that only that edge's results source takes it back.
func (p *Pipeline) scoreForEdge(ctx context.Context, msg jetstream.Msg, job Job, eng radgate.Engine, replay string) verdict {
	fac, ok := broker.FacilityOfSubject(msg.Subject())
	if !ok || fac == broker.NoFacility {
		return deadLetter(fmt.Sprintf("job of order %s on %s names no facility: a hub scores only an edge's jobs", job.OrderID, msg.Subject()))
	}
	if job.Order == nil {
		return deadLetter(fmt.Sprintf("job of order %s carries no order: the edge that filed it does not run role edge", job.OrderID))
	}
	if p.opts.EdgeImages == nil {
		return deadLetter("this hub reads no edge's images (Options.EdgeImages)")
	}
	st := *job.Order
	st.ID, st.FacilityID = job.OrderID, fac
	src, err := p.opts.EdgeImages(ctx, fac)
	if err != nil {
		p.log.Warn("opening the edge's image store failed; will retry", "order", st.ID, "facility", fac, "err", err)
		return retryIn(p.opts.RetryMin)
	}
	return p.scoreAndPublish(ctx, msg, job, eng, st, job.Pictures, src, replay)
}

// studyScore is what scoring a job's images came to: the most confident
// image, or (bestAt < 0) the outcome and reason of a job none was scored in;
// or, with retry set, that the job is to be tried again after retry.
type studyScore struct {
	best    radgate.ImageScore
	bestAt  int // index in Job.Instances; -1: no image scored
	outcome radgate.Outcome
	reason  string
	retry   time.Duration
	// notes say, per image given, whether it was scored and why not.
	notes []radgate.ImageNote
	// caveats go with the best image's score (Result.Caveats).
	caveats []string
	// outOfScope says why the best image is outside the engine's intended
	// use (scored only because the engine is in shadow).
	outOfScope string
}

// checkAge applies an engine's age range (radgate.AgeRanged) to an image
// whose header gave no age (the engine itself refused one whose header age
// is outside): the order's age decides when it has one; else the route's
// unknown_age — reject refuses the image (ErrNotAccepted), score (the
// default) scores it with the caveat returned.
func checkAge(eng radgate.Engine, job Job, s radgate.ImageScore) (caveat string, err error) {
	ar, ok := eng.(radgate.AgeRanged)
	if !ok || s.Age != nil {
		return "", nil
	}
	lo, hi, ok := ar.AgeYears()
	if !ok {
		return "", nil
	}
	r, id := inference.YearRange{Min: lo, Max: hi}, eng.Info().ID
	why := cmp.Or(s.AgeProblem, "the image gives none") + "; " + cmp.Or(job.patientProblem, "the order gives none")
	switch {
	case job.OrderAge != nil && r.Contains(job.OrderAge.Years):
		return "", nil
	case job.OrderAge != nil:
		return "", &inference.NotAcceptedError{Engine: id, Reason: inference.AgeOutside(id, r, job.OrderAge.Text, job.OrderAge.From), Rule: inference.RuleAge}
	case job.UnknownAge == radgate.UnknownAgeReject:
		return "", &inference.NotAcceptedError{Engine: id, Reason: inference.UnknownAgeRefused(id, r, why), Rule: inference.RuleAge}
	}
	return inference.UnknownAgeCaveat(id, r) + " (" + why + ")", nil
}

// readPatientAge reads the age of the job's Patient from the FHIR server
// (Options.PatientAge) for an engine with an age range, once: the job then
// carries it as the order's age, or no Patient (none to read, no
// birthDate, or a read that failed: the age stays unknown, the caveat says
// why, and the route's unknown_age decides). A server that could not
// answer is retried within orders.study_wait_window only where the route
// refuses unknown ages: elsewhere the study is scored with the caveat
// rather than held back for its age.
func (p *Pipeline) readPatientAge(ctx context.Context, job *Job, eng radgate.Engine, age time.Duration, n uint64) time.Duration {
	ref := job.Patient
	job.Patient = "" // asked once
	if _, ranged := eng.(radgate.AgeRanged); !ranged || p.opts.PatientAge == nil {
		return 0
	}
	a, err := p.opts.PatientAge(ctx, ref, job.OrderDate)
	switch {
	case err != nil && radgate.IsTransient(err) && job.UnknownAge == radgate.UnknownAgeReject && age < p.opts.StudyWaitWindow:
		p.log.Info("reading the order's Patient for its age failed; will retry", "order", job.OrderID, "attempt", n, "err", err)
		return p.backoff(n)
	case err != nil:
		p.log.Warn("the order's Patient gives no age", "order", job.OrderID, "engine", job.Engine, "err", radgate.Public(err))
		job.patientProblem = "the order's Patient could not be read for its age: " + radgate.Public(err)
	default:
		job.OrderAge = a
	}
	return 0
}

// scoreImages retrieves a job's images one at a time and scores each as it
// arrives — the batcher still runs the images of concurrent jobs together —
// keeping the score and dropping the bytes; only the most confident image
// so far keeps its render state for the heatmap. So a worker holds about
// one image plus the best whatever the study's size, where it once held
// them all (orders.max_instances_per_study × pacs.max_instance_bytes). What
// the job retrieves in total is bounded by orders.max_study_bytes, counted
// as images arrive: past it the job fails with a reason naming the limit.
// Images the engine cannot score are collected as failures; with none
// scored the outcome is failed, or not applicable when every image was
// outside the engine's intended use.
func (p *Pipeline) scoreImages(ctx context.Context, msg jetstream.Msg, job Job, eng radgate.Engine, want radgate.Pictures) studyScore {
	return p.scoreImagesFrom(ctx, msg, job, eng, want, p.opts.Source)
}

// scoreImagesFrom is scoreImages with the images read from src (on a hub:
// the job's edge's image store).
func (p *Pipeline) scoreImagesFrom(ctx context.Context, msg jetstream.Msg, job Job, eng radgate.Engine, want radgate.Pictures, src radgate.StudySource) studyScore {
	age, n := msgAge(msg, p.opts.Now())
	failed := func(reason string) studyScore {
		return studyScore{bestAt: -1, outcome: radgate.OutcomeFailed, reason: reason}
	}
	sc := studyScore{bestAt: -1, outcome: radgate.OutcomeNotApplicable} // not applicable if no image was decodable
	var failures []string
	var total int64
	for i, in := range job.Instances {
		_ = msg.InProgress()
		b, err := src.RetrieveInstance(ctx, job.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
		if err != nil {
			if radgate.IsTransient(err) && age < p.opts.StudyWaitWindow {
				p.log.Info("image retrieval failed; will retry", "order", job.OrderID, "attempt", n, "err", err)
				return studyScore{retry: p.backoff(n)}
			}
			p.log.Warn("image not retrieved from the PACS; failing the engine's result", "order", job.OrderID, "engine", job.Engine, "err", err)
			return failed(fmt.Sprintf("retrieving image %s from the PACS: %s", in.SOPInstanceUID, radgate.Public(err)))
		}
		total += int64(len(b))
		if limit := p.opts.MaxStudyBytes; total > limit {
			p.log.Warn("study over the retrieval limit", "order", job.OrderID, "engine", job.Engine, "bytes", total, "limit", limit)
			return failed(fmt.Sprintf("not scored: the images of the study for engine %s retrieved %s (%d bytes) by image %d of %d, more than orders.max_study_bytes (%s)",
				job.Engine, iecBytes(total), total, i+1, len(job.Instances), iecBytes(limit)))
		}
		// After this the image's bytes live on only in the best image's
		// render state, if it becomes the best.
		score := eng.Score
		if o, ok := eng.(radgate.OutOfScopeScorer); ok && job.Shadow {
			score = o.ScoreOutOfScope
		}
		scores, err := score(ctx, [][]byte{b})
		if err == nil && len(scores) != 1 {
			err = fmt.Errorf("engine %s returned %d scores for one image", job.Engine, len(scores))
		}
		if err != nil {
			if ctx.Err() != nil {
				return studyScore{retry: p.opts.RetryMin}
			}
			return failed("scoring: " + err.Error())
		}
		s := scores[0]
		var caveat string
		if s.Err == nil && s.OutOfScope == "" && s.Age == nil && job.OrderAge == nil && job.Patient != "" {
			// The image gives no age: the order's Patient may, once per job.
			if retry := p.readPatientAge(ctx, &job, eng, age, n); retry > 0 {
				return studyScore{retry: retry}
			}
		}
		if s.Err == nil && s.OutOfScope == "" {
			caveat, s.Err = checkAge(eng, job, s)
			if job.Shadow && inference.PatientRule(s.Err) {
				s.OutOfScope, s.Err, caveat = s.Err.Error(), nil, "" // measured in shadow, never delivered
			}
		}
		note := radgate.ImageNote{SeriesInstanceUID: in.SeriesInstanceUID, SOPInstanceUID: in.SOPInstanceUID, View: in.View, Scored: s.Err == nil}
		if s.Err != nil {
			note.Reason = s.Err.Error()
		} else if in.View == "" && len(eng.Views()) > 0 {
			note.Reason = "scored; the image declares no view (engine takes " + strings.Join(eng.Views(), "/") + ")"
		}
		if s.OutOfScope != "" {
			note.Reason = "scored in shadow, outside the intended use: " + s.OutOfScope
		}
		if caveat != "" {
			note.Reason = strings.TrimPrefix(note.Reason+"; patient age unknown", "; ")
			if !strings.HasPrefix(note.Reason, "scored") {
				note.Reason = "scored; " + note.Reason
			}
		}
		sc.notes = append(sc.notes, note)
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("image %s: %v", in.SOPInstanceUID, s.Err))
			if !errors.Is(s.Err, inference.ErrNotAccepted) {
				sc.outcome = radgate.OutcomeFailed
			}
			continue
		}
		if sc.bestAt < 0 || betterImage(s, sc) {
			if !s.Marked && want&radgate.PictureThumbnail == 0 {
				s.Render = nil // nothing to draw: let the image go
			}
			sc.best, sc.bestAt, sc.caveats, sc.outOfScope = s, i, nil, s.OutOfScope
			if s.OutOfScope != "" {
				s.Render = nil // never delivered: nothing to draw
				sc.best.Render = nil
			}
			if caveat != "" {
				sc.caveats = []string{caveat}
			}
		}
	}
	if sc.bestAt < 0 {
		sc.reason = strings.Join(failures, "; ")
	}
	return sc
}

// betterImage reports whether s is to be the study's image rather than the
// best so far: one within the engine's intended use wins over one outside
// it (scored only in shadow), then the higher probability.
func betterImage(s radgate.ImageScore, sc studyScore) bool {
	if in, bestIn := s.OutOfScope == "", sc.outOfScope == ""; in != bestIn {
		return in
	}
	return s.Probability > sc.best.Probability
}

// picturesFor is every picture the order's destinations show (its route
// decision's, or the current routes' for an order routed before decisions
// were kept). A destination this process has no sink for gets them all.
func (p *Pipeline) picturesFor(st radgate.OrderStatus) radgate.Pictures {
	dests := p.routes().set.Destinations()
	if st.Route != nil {
		dests = st.Route.Destinations
	}
	var want radgate.Pictures
	for _, d := range dests {
		sink, ok := p.opts.Sinks[d]
		if !ok {
			return radgate.AllPictures
		}
		want |= radgate.PicturesOf(sink)
	}
	return want
}

// resultOf is the result a job's studyScore makes: the best image's score
// with the pictures its destinations show (want), or the reason none was
// scored.
func resultOf(job Job, eng radgate.Engine, sc studyScore, want radgate.Pictures) radgate.Result {
	if sc.bestAt < 0 {
		return radgate.Result{Engine: eng.Info(), Outcome: sc.outcome, Reason: sc.reason, StudyInstanceUID: job.StudyInstanceUID}
	}
	s := sc.best
	r := radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeScored, Probability: s.Probability, Tier: s.Tier, Marked: s.Marked,
		StudyInstanceUID: job.StudyInstanceUID, SeriesInstanceUID: job.Instances[sc.bestAt].SeriesInstanceUID,
		SOPInstanceUID: job.Instances[sc.bestAt].SOPInstanceUID,
		Input:          &radgate.InputMix{Modality: s.Modality, Manufacturer: s.Manufacturer, Age: s.Age}}
	r.Caveats, r.OutOfScope = sc.caveats, sc.outOfScope
	if s.Marked {
		r.CAM = s.CAM
	}
	if s.Render != nil && want != 0 {
		d, err := s.Render(want)
		if err != nil {
			return radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeFailed,
				Reason: "rendering heatmap: " + err.Error(), StudyInstanceUID: job.StudyInstanceUID}
		}
		r.HeatmapPNG, r.HeatmapWidth, r.HeatmapHeight = d.HeatmapPNG, d.HeatmapWidth, d.HeatmapHeight
		r.Preview, r.PreviewWidth, r.PreviewHeight = d.Preview, d.PreviewWidth, d.PreviewHeight
	}
	return r
}

// iecBytes writes a byte count for a reason: "1 GiB", "1.2 GiB", "900 KiB".
func iecBytes(n int64) string {
	v, unit := float64(n), "bytes"
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + " " + unit
}

// ResultID is the deterministic id of an order × engine × model version.
func ResultID(orderID string, e radgate.EngineInfo) string {
	sum := sha256.Sum256([]byte(orderID + "|" + e.ID + "|" + e.Version))
	return hex.EncodeToString(sum[:12])
}

// publishResult publishes an engine's result to the destinations of the
// order's route decision, with the route's read request.
func (p *Pipeline) publishResult(ctx context.Context, st radgate.OrderStatus, r radgate.Result, replay string) verdict {
	var dests []string
	var read *radgate.ReadRequest
	if st.Route != nil {
		dests, read = st.Route.Destinations, st.Route.Read
	} else {
		// No decision recorded (an order routed before route decisions
		// were kept): every destination of the current routes.
		dests = p.routes().set.Destinations()
	}
	return p.publishTo(ctx, st, r, replay, dests, read)
}

// publishTo stores the heatmap, publishes one copy of the result per
// destination and records the engine's progress; the returned verdict is for
// the message that led here. replay is that message's HeaderReplayOf (empty
// when it is no replay).
func (p *Pipeline) publishTo(ctx context.Context, st radgate.OrderStatus, r radgate.Result, replay string, dests []string, read *radgate.ReadRequest) verdict {
	r.ID = ResultID(st.ID, r.Engine)
	r.Order = st
	r.Destinations, r.Read = dests, read
	r.Revision = max(r.Revision, 1)
	if r.Status == "" {
		r.Status = radgate.ResultFinal
		if r.Revision > 1 {
			r.Status = radgate.ResultAmended
		}
	}
	if st.Cancelled != nil {
		return done() // cancelled while it was scored: nothing goes out
	}
	if r.ScoredAt.IsZero() {
		r.ScoredAt = p.opts.Now().UTC()
	}
	if g := p.opts.Governance; g != nil && r.Engine.ID != radgate.RouterEngine {
		mode, err := g.Mode(ctx, st, r.Engine)
		if err == nil {
			err = g.Measure(ctx, r, mode)
		}
		if err != nil {
			p.log.Warn("recording the result for measurement failed; will retry", "order", st.ID, "engine", r.Engine.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
		if (r.OutOfScope != "" || st.Route.Shadow(r.Engine.ID)) && mode.Delivered() {
			// Scored in shadow (routed while the engine was in shadow, or
			// outside the intended use) and the engine activated since:
			// a shadow result is never delivered, and was drawn without
			// pictures. The facility's next order is delivered.
			mode = radgate.EngineShadow
		}
		if !mode.Delivered() {
			if p.opts.Role == RoleHub && len(dests) > 0 {
				// The edge withholds it: it holds the order (receiveHubResult).
				return p.publishToEdge(ctx, st, r, replay, dests[:1], mode)
			}
			return p.withhold(ctx, st, r, mode)
		}
	}
	if len(dests) == 0 {
		return deadLetter(fmt.Sprintf("result %s of engine %s has no destination (the order's route decision names none)", r.ID, r.Engine.ID))
	}
	if p.opts.Role == RoleHub {
		return p.publishToEdge(ctx, st, r, replay, dests, "")
	}
	if len(r.HeatmapPNG) > 0 {
		r.HeatmapObject = r.ID + ".png"
		if _, err := p.opts.Topology.Heatmaps.PutBytes(ctx, r.HeatmapObject, r.HeatmapPNG); err != nil {
			p.log.Warn("storing heatmap failed; will retry", "order", st.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	if len(r.Preview) > 0 {
		r.PreviewObject = r.ID + ".jpg"
		if _, err := p.opts.Topology.Heatmaps.PutBytes(ctx, r.PreviewObject, r.Preview); err != nil {
			p.log.Warn("storing the preview failed; will retry", "order", st.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	for _, d := range dests {
		r.Destination = d
		data, err := json.Marshal(r)
		if err != nil {
			return deadLetter("encoding result: " + err.Error())
		}
		out := nats.NewMsg(broker.ResultSubject(d, classOf(st), p.facilityOf(st), r.Engine.ID))
		out.Data = data
		out.Header.Set(broker.HeaderOrderID, st.ID)
		if replay != "" {
			out.Header.Set(broker.HeaderReplayOf, replay)
		}
		if _, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(replayMsgID(fmt.Sprintf("result.%s.r%d.%s", r.ID, r.Revision, d), replay))); err != nil {
			p.log.Warn("publishing result failed; will retry", "order", st.ID, "destination", d, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	if err := p.recordScored(ctx, st, r, dests); err != nil {
		return retryIn(p.opts.RetryMin)
	}
	return p.counted(ctx, st, r, dests)
}

// publishToEdge publishes a hub's result (role hub) once per destination,
// its pictures in the message (hubResult): the edge's results source takes
// it back, and the edge records it and stores the pictures (deliverTo).
// A result larger than one message may carry goes in parts (parts.go).
//
// withheld, when set, is the engine's mode that keeps the result from every
// destination: it goes to the edge once, which records it withheld.
func (p *Pipeline) publishToEdge(ctx context.Context, st radgate.OrderStatus, r radgate.Result, replay string, dests []string, withheld radgate.EngineMode) verdict {
	if len(r.HeatmapPNG) > 0 {
		r.HeatmapObject = r.ID + ".png"
	}
	if len(r.Preview) > 0 {
		r.PreviewObject = r.ID + ".jpg"
	}
	for _, d := range dests {
		r.Destination = d
		hr := hubResult{Result: r, HeatmapPNG: r.HeatmapPNG, Preview: r.Preview}
		data, err := json.Marshal(hr)
		if err != nil {
			return deadLetter("encoding result: " + err.Error())
		}
		out := nats.NewMsg(broker.ResultSubject(d, classOf(st), p.facilityOf(st), r.Engine.ID))
		out.Data = data
		out.Header.Set(broker.HeaderOrderID, st.ID)
		out.Header.Set(headerHubResult, "1")
		if withheld != "" {
			out.Header.Set(headerWithheld, string(withheld))
		}
		if replay != "" {
			out.Header.Set(broker.HeaderReplayOf, replay)
		}
		msgs, ids := []*nats.Msg{out}, []string{replayMsgID(fmt.Sprintf("result.%s.r%d.%s", r.ID, r.Revision, d), replay)}
		if limit := p.resultMessageLimit(); len(data) > limit {
			whole, err := wholeOf(hr)
			if err != nil {
				return deadLetter("encoding result: " + err.Error())
			}
			msgs, ids = ResultParts(out, ids[0], whole, limit, r)
			if len(msgs) > maxResultParts {
				return deadLetter(fmt.Sprintf("result %s of engine %s with its pictures is %d bytes: more than %d parts of %d bytes (max_payload less headers) may carry to the edge",
					r.ID, r.Engine.ID, len(whole), maxResultParts, limit))
			}
		}
		for i, m := range msgs {
			if _, err := p.js.PublishMsg(ctx, m, jetstream.WithMsgID(ids[i])); err != nil {
				p.log.Warn("publishing result failed; will retry", "order", st.ID, "destination", d, "part", i+1, "parts", len(msgs), "err", err)
				return retryIn(p.opts.RetryMin)
			}
		}
		if len(msgs) > 1 {
			p.log.Info("result published in parts", "order", st.ID, "result", r.ID, "destination", d, "parts", len(msgs), "bytes", len(data))
		}
	}
	return p.counted(ctx, st, r, dests)
}

// resultMessageLimit is the most bytes one result message carries to the
// edge: the connection's max_payload less room for headers.
func (p *Pipeline) resultMessageLimit() int {
	return int(p.js.Conn().MaxPayload()) - 4096
}

// recordScored records an engine's result on its order: every outcome is
// "scored" until delivered; an order becomes terminal (delivered, rejected,
// failed) only once its answer is written. At an edge it runs when the
// hub's result arrives (deliverTo).
func (p *Pipeline) recordScored(ctx context.Context, st radgate.OrderStatus, r radgate.Result, dests []string) error {
	prog := radgate.EngineProgress{State: radgate.StateScored, Reason: r.Reason, Revision: r.Revision, Deliveries: map[string]radgate.DeliveryProgress{}}
	noteResult(&prog, r)
	if r.Outcome == radgate.OutcomeScored {
		prob := r.Probability
		prog.Probability, prog.Tier = &prob, r.Tier
	}
	_, err := p.store.update(ctx, st.ID, false, func(o *radgate.OrderStatus) error {
		if o.Cancelled != nil {
			return errSkip
		}
		cur, ok := o.Engines[r.Engine.ID]
		if ok && max(cur.Revision, 1) > r.Revision || ok && max(cur.Revision, 1) == r.Revision && cur.State.Terminal() {
			return errSkip // delivery already finished (it can race ahead of this write), or a newer revision exists
		}
		for d, dp := range cur.Deliveries {
			prog.Deliveries[d] = dp // earlier revisions, and a destination that answered already
		}
		for _, d := range dests {
			if dp := prog.Deliveries[d]; max(dp.Revision, 1) != r.Revision || dp.State != radgate.StateDelivered && dp.State != radgate.StateFailed {
				dp.State, dp.Revision, dp.Reason = radgate.StateScored, r.Revision, ""
				prog.Deliveries[d] = dp
			}
		}
		setEngine(o, r.Engine.ID, prog)
		return nil
	})
	return err
}

// counted bills a published result and counts it in the metrics.
func (p *Pipeline) counted(ctx context.Context, st radgate.OrderStatus, r radgate.Result, dests []string) verdict {
	// Bill the analysis: counted once per result id, so the retry this
	// verdict may cause, or a replay, never counts it twice.
	if u := p.opts.Usage; u != nil && r.Outcome == radgate.OutcomeScored {
		if _, err := u.Count(ctx, r.ID, r.Engine.ID, cmp.Or(st.FacilityID, st.Facility), r.ScoredAt); err != nil {
			p.log.Warn("counting usage failed; will retry", "order", st.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	p.m.results.WithLabelValues(r.Engine.ID, string(r.Outcome)).Inc()
	p.results.Record(r.Engine.ID, string(r.Outcome), p.opts.Now().Sub(st.ReceivedAt))
	p.log.Info("result published", "order", st.ID, "engine", r.Engine.ID, "outcome", r.Outcome, "tier", r.Tier,
		"destinations", strings.Join(dests, ","))
	return done()
}

// noteResult copies into an engine's progress what its result said beside
// the score: caveats, the images offered, the mark and the pictures' names.
func noteResult(prog *radgate.EngineProgress, r radgate.Result) {
	prog.Caveats, prog.Images, prog.Marked = r.Caveats, r.Images, r.Marked
	prog.HeatmapObject, prog.PreviewObject = r.HeatmapObject, r.PreviewObject
}

// withhold ends an engine's result that its mode keeps from every
// destination (shadow, suspended): recorded for measurement already, it is
// not published, no read is requested, and the engine ends as if delivered
// (delivered, rejected or failed by its outcome) with the mode and why in
// its progress, so GET /orders/{id} shows it. It is not billed: usage
// counts analyses delivered to the hospital.
func (p *Pipeline) withhold(ctx context.Context, st radgate.OrderStatus, r radgate.Result, mode radgate.EngineMode) verdict {
	route := ""
	if st.Route != nil && st.Route.Acceptance != nil {
		route = st.Route.Acceptance.Route
	}
	fac := cmp.Or(st.FacilityID, st.Facility)
	reason := fmt.Sprintf("shadow: scored and recorded for measurement, not delivered (route %s: engine %s version %s awaits acceptance at facility %q)",
		route, r.Engine.ID, r.Engine.Version, fac)
	if mode == radgate.EngineSuspended {
		reason = fmt.Sprintf("suspended: scored and recorded for measurement, not delivered (route %s: engine %s version %s is suspended at facility %q)",
			route, r.Engine.ID, r.Engine.Version, fac)
	}
	if r.Reason != "" {
		reason += "; " + r.Reason
	}
	if r.OutOfScope != "" {
		reason += "; outside the engine's intended use: " + r.OutOfScope
	}
	final := map[radgate.Outcome]radgate.OrderState{radgate.OutcomeScored: radgate.StateDelivered, radgate.OutcomeNotApplicable: radgate.StateRejected}[r.Outcome]
	if final == "" {
		final = radgate.StateFailed
	}
	prog := radgate.EngineProgress{State: final, Mode: mode, Reason: reason, Revision: r.Revision}
	noteResult(&prog, r)
	if r.Outcome == radgate.OutcomeScored {
		prob := r.Probability
		prog.Probability, prog.Tier = &prob, r.Tier
	}
	now, err := p.store.update(ctx, st.ID, false, func(o *radgate.OrderStatus) error {
		if o.Cancelled != nil {
			return errSkip
		}
		cur, ok := o.Engines[r.Engine.ID]
		if ok && (max(cur.Revision, 1) > r.Revision || max(cur.Revision, 1) == r.Revision && cur.State.Terminal()) {
			return errSkip
		}
		prog.Deliveries = cur.Deliveries // earlier revisions' deliveries, if any
		setEngine(o, r.Engine.ID, prog)
		return nil
	})
	if err != nil {
		return retryIn(p.opts.RetryMin)
	}
	if now.Cancelled == nil && now.State.Terminal() {
		p.watchAnswered(ctx, now)
	}
	p.m.results.WithLabelValues(r.Engine.ID, string(r.Outcome)).Inc()
	p.results.Record(r.Engine.ID, string(r.Outcome), p.opts.Now().Sub(st.ReceivedAt))
	p.log.Info("result withheld from every destination", "order", st.ID, "engine", r.Engine.ID, "version", r.Engine.Version,
		"mode", mode, "outcome", r.Outcome, "tier", r.Tier)
	return done()
}

// decideModes fills d.Modes when the route declares acceptance minimums:
// each engine's mode as the order is routed (see RouteDecision.ModeOf).
// ok is false when asking failed; v is then the verdict to return.
func (p *Pipeline) decideModes(ctx context.Context, st radgate.OrderStatus, d *radgate.RouteDecision, facility string, n uint64) (v verdict, ok bool) {
	g := p.opts.Governance
	if g == nil || !d.Matched || d.Acceptance == nil {
		return v, true
	}
	st.Route, st.FacilityID = d, facility
	d.Modes = map[string]radgate.EngineMode{}
	for _, eid := range d.Engines {
		eng, loaded := p.engine(eid)
		if !loaded {
			continue
		}
		m, err := g.Mode(ctx, st, eng.Info())
		if err != nil {
			p.log.Warn("reading the engine's mode failed; will retry", "order", st.ID, "engine", eid, "err", err)
			return retryIn(p.backoff(n)), false
		}
		d.Modes[eid] = m
	}
	return v, true
}

// deliverTo returns the handler of one destination's consumer. A result of
// an order cancelled before it went out is not sent; one that went out
// while the order was being cancelled is retracted straight after. A
// result of a revision that a newer one replaced is dropped. A hub result
// in parts is held until its parts are all there (deliverPart).
func (p *Pipeline) deliverTo(name string, sink radgate.Sink) func(context.Context, jetstream.Msg) verdict {
	return func(ctx context.Context, msg jetstream.Msg) verdict {
		if msg.Headers().Get(HeaderPart) != "" {
			return p.deliverPart(ctx, name, sink, msg)
		}
		var hr *hubResult
		if p.opts.Role == RoleEdge && msg.Headers().Get(headerHubResult) != "" {
			hr = &hubResult{}
		}
		var r radgate.Result
		err := json.Unmarshal(msg.Data(), &r)
		if err == nil && hr != nil {
			err = json.Unmarshal(msg.Data(), hr)
		}
		if err != nil {
			return deadLetter("undecodable result: " + err.Error())
		}
		return p.deliverResult(ctx, name, sink, msg, r, hr)
	}
}

// deliverResult delivers r, the result of msg (or of the parts msg
// completed); hr is it with its pictures when the hub scored it for this
// edge.
func (p *Pipeline) deliverResult(ctx context.Context, name string, sink radgate.Sink, msg jetstream.Msg, r radgate.Result, hr *hubResult) verdict {
	dest := cmp.Or(r.Destination, name)
	if hr != nil {
		if v, ok := p.receiveHubResult(ctx, msg, &r, *hr); !ok {
			return v
		}
	}
	if replay := msg.Headers().Get(broker.HeaderReplayOf); replay != "" && r.Status != radgate.ResultRetracted {
		if err := p.reopenDelivery(ctx, r.Order.ID, replay, r.Engine.ID, dest); err != nil && !errors.Is(err, radgate.ErrOrderNotFound) {
			return retryIn(p.opts.RetryMin)
		}
	}
	// The order may have gained references since scoring (the
	// ImagingStudy arriving after the ServiceRequest): use the latest.
	if st, err := p.store.get(ctx, r.Order.ID); err == nil {
		r.Order = st
		cur := st.Engines[r.Engine.ID]
		switch {
		case r.Status != radgate.ResultRetracted && st.Cancelled != nil && cur.Deliveries[dest].DeliveredRevision == 0:
			if err := p.recordDelivery(ctx, r, dest, radgate.DeliveryProgress{State: radgate.StateCancelled, Revision: r.Revision, Reason: "order cancelled before delivery"}); err != nil {
				return retryIn(p.opts.RetryMin)
			}
			return done()
		case r.Status != radgate.ResultRetracted && max(cur.Revision, 1) > max(r.Revision, 1):
			p.log.Info("result replaced by a newer revision; not delivered", "order", r.Order.ID, "destination", name, "revision", r.Revision)
			return done()
		case r.Status == radgate.ResultRetracted && cur.Deliveries[dest].Retracted:
			return done()
		}
	}
	if r.Status != radgate.ResultRetracted {
		want := radgate.PicturesOf(sink)
		// A result published before previews existed has the heatmap
		// alone: every sink still reads it from there.
		if r.HeatmapObject != "" && (want&radgate.PictureHeatmap != 0 || r.PreviewObject == "") {
			png, err := p.opts.Topology.Heatmaps.GetBytes(ctx, r.HeatmapObject)
			if err != nil {
				return retryIn(p.opts.RetryMin)
			}
			r.HeatmapPNG = png
		}
		if r.PreviewObject != "" && want&(radgate.PicturePreview|radgate.PictureThumbnail) != 0 {
			jpg, err := p.opts.Topology.Heatmaps.GetBytes(ctx, r.PreviewObject)
			if err != nil {
				return retryIn(p.opts.RetryMin)
			}
			r.Preview = jpg
		}
	}
	age, n := msgAge(msg, p.opts.Now())
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	receipt, err := sink.Deliver(dctx, r)
	cancel()
	if err != nil {
		if radgate.IsTransient(err) && age < p.opts.DeliveryWindow {
			p.log.Warn("delivery failed; will retry", "order", r.Order.ID, "destination", name, "attempt", n, "status", r.Status, "err", err)
			return retryIn(p.backoff(n))
		}
		reason := fmt.Sprintf("delivering to %s: %v", name, err)
		if r.Status == radgate.ResultRetracted {
			reason = fmt.Sprintf("retracting at %s: %v", name, err)
		}
		if err := p.recordDelivery(ctx, r, dest, radgate.DeliveryProgress{State: radgate.StateFailed, Revision: r.Revision, Reason: reason}); err != nil {
			p.log.Warn("recording a failed delivery failed", "order", r.Order.ID, "err", err)
		}
		return deadLetter(reason)
	}
	dp := radgate.DeliveryProgress{State: radgate.StateDelivered, Revision: r.Revision, Report: receipt.Report, DeliveredRevision: r.Revision,
		Objects: receipt.Objects}
	if r.Status == radgate.ResultRetracted {
		dp = radgate.DeliveryProgress{State: radgate.StateCancelled, Revision: r.Revision, Report: receipt.Report, DeliveredRevision: r.Revision,
			Retracted: true, Reason: r.RetractReason, Objects: receipt.Objects}
	}
	if err := p.recordDelivery(ctx, r, dest, dp); err != nil {
		return retryIn(p.opts.RetryMin) // the sink is idempotent: re-delivering is safe
	}
	st, err := p.store.get(ctx, r.Order.ID)
	if err == nil && r.Status != radgate.ResultRetracted && st.Cancelled != nil {
		// Cancelled while this delivery was under way: take it back.
		if v := p.publishRetraction(ctx, st, r.Engine.ID, dest, r.Revision); v.kind != ack {
			return v
		}
	}
	if err == nil && st.Cancelled == nil && st.State.Terminal() {
		p.watchAnswered(ctx, st)
	}
	p.log.Info("result delivered", "order", r.Order.ID, "destination", name, "status", r.Status, "revision", r.Revision, "report", receipt.Report)
	return done()
}

// receiveHubResult takes in, at an edge, a result the hub scored: its
// pictures go to the edge's heatmap store (where deliveries and the console
// read them) and the engine is recorded scored on the order, as publishTo
// does where the inference runs. ok false: v is the message's verdict.
func (p *Pipeline) receiveHubResult(ctx context.Context, msg jetstream.Msg, r *radgate.Result, hr hubResult) (v verdict, ok bool) {
	for _, pic := range []struct {
		name string
		data []byte
	}{{r.HeatmapObject, hr.HeatmapPNG}, {r.PreviewObject, hr.Preview}} {
		if pic.name == "" || len(pic.data) == 0 {
			continue
		}
		if _, err := p.opts.Topology.Heatmaps.PutBytes(ctx, pic.name, pic.data); err != nil {
			p.log.Warn("storing the hub result's picture failed; will retry", "order", r.Order.ID, "err", err)
			return retryIn(p.opts.RetryMin), false
		}
	}
	if mode := radgate.EngineMode(msg.Headers().Get(headerWithheld)); mode != "" {
		return p.withhold(ctx, r.Order, *r, mode), false
	}
	if err := p.recordScored(ctx, r.Order, *r, r.Destinations); err != nil {
		return retryIn(p.opts.RetryMin), false
	}
	return v, true
}

// recordDelivery records one destination's answer for a result; once every
// destination of the engine's current revision has answered, the engine
// becomes terminal: failed if any destination failed, else delivered
// (scored), rejected (not applicable) or failed (failed) — with the first
// destination's report. A retraction only marks its destination.
func (p *Pipeline) recordDelivery(ctx context.Context, r radgate.Result, dest string, dp radgate.DeliveryProgress) error {
	_, err := p.store.update(ctx, r.Order.ID, false, func(o *radgate.OrderStatus) error {
		cur := o.Engines[r.Engine.ID]
		if cur.Deliveries == nil {
			cur.Deliveries = map[string]radgate.DeliveryProgress{}
		}
		prev := cur.Deliveries[dest]
		if dp.DeliveredRevision == 0 {
			dp.DeliveredRevision = prev.DeliveredRevision
		}
		if r.Status == radgate.ResultRetracted {
			if prev.Retracted {
				return errSkip
			}
			cur.Deliveries[dest] = dp
			if cur.State != radgate.StateCancelled {
				cur.State, cur.Reason = radgate.StateCancelled, r.RetractReason
			}
			setEngine(o, r.Engine.ID, cur)
			return nil
		}
		if max(cur.Revision, 1) > max(r.Revision, 1) {
			return errSkip // a newer revision replaced this one
		}
		cur.Deliveries[dest] = dp
		if o.Cancelled != nil {
			setEngine(o, r.Engine.ID, cur)
			return nil
		}
		dests := r.Destinations
		if len(dests) == 0 {
			dests = []string{dest}
		}
		if cur.Reason == "" {
			cur.Reason = r.Reason
		}
		if r.Outcome == radgate.OutcomeScored {
			prob := r.Probability
			cur.Probability, cur.Tier = &prob, r.Tier
		}
		// Delivery can outrun the inference stage's own record of the
		// result (recordScored then skips): keep what the result said here
		// too, or the order would end without its caveats and images.
		noteResult(&cur, r)
		final := map[radgate.Outcome]radgate.OrderState{radgate.OutcomeScored: radgate.StateDelivered, radgate.OutcomeNotApplicable: radgate.StateRejected, radgate.OutcomeFailed: radgate.StateFailed}[r.Outcome]
		if final == "" {
			final = radgate.StateFailed
		}
		cur.Report = ""
		for _, d := range dests {
			got := cur.Deliveries[d]
			if max(got.Revision, 1) != max(r.Revision, 1) {
				final = radgate.StateScored // this destination has not answered for this revision
				continue
			}
			switch {
			case got.State == radgate.StateFailed:
				final, cur.Reason = radgate.StateFailed, got.Reason
			case got.State != radgate.StateDelivered && final != radgate.StateFailed:
				final = radgate.StateScored // still waiting for this destination
			}
			if cur.Report == "" {
				cur.Report = got.Report
			}
		}
		if final == radgate.StateScored && cur.State.Terminal() {
			final = cur.State
		}
		cur.State = final
		setEngine(o, r.Engine.ID, cur)
		return nil
	})
	return err
}

// pushedOnly reports whether everything radgate knows of an order came
// with images pushed to it (DICOM C-STORE): no EHR or RIS order yet.
func pushedOnly(st radgate.OrderStatus) bool {
	if len(st.Sources) == 0 {
		return false
	}
	for _, s := range st.Sources {
		if !strings.HasPrefix(s, radgate.SourceDIMSE+":") {
			return false
		}
	}
	return true
}

// awaitOrder holds a pushed study whose route says pushed: with_order until
// its EHR/RIS order comes (Accept of that order routes it again), or
// answers it failed once the wait window is over.
func (p *Pipeline) awaitOrder(ctx context.Context, msg jetstream.Msg, st radgate.OrderStatus, obs radgate.StudyObservation, rd routing.Decision, n uint64) verdict {
	now := p.opts.Now()
	waitUntil := st.WaitUntil
	if waitUntil.IsZero() {
		waitUntil = st.ReceivedAt.Add(p.waitFor(st))
	}
	routes := strings.Join(rd.Routes, ",")
	if !now.Before(waitUntil) {
		reason := fmt.Sprintf("no EHR or RIS order came for this pushed study within %s (route %s: pushed: %s)", p.waitFor(st), routes, routing.PushedWithOrder)
		p.log.Warn("pushed study never ordered; answering it", "order", st.ID, "routes", routes)
		return p.answerOrder(ctx, msg, st, radgate.OutcomeFailed, reason)
	}
	if _, err := p.store.update(ctx, st.ID, false, func(o *radgate.OrderStatus) error {
		if !pushedOnly(*o) || o.Route != nil {
			return errSkip // the order came meanwhile, or another run decided
		}
		obs.Scored = 0
		o.WaitUntil, o.Study = waitUntil, &obs
		o.State = radgate.StateWaiting
		o.Reason = fmt.Sprintf("waiting for the EHR or RIS order of this pushed study (route %s: pushed: %s)", routes, routing.PushedWithOrder)
		return nil
	}); err != nil {
		return retryIn(p.backoff(n))
	}
	// Looked at again when the window ends; the order's own event comes sooner.
	if err := p.watch(ctx, st.ID, watchEntry{Next: waitUntil, Class: classOf(st)}); err != nil {
		return retryIn(p.backoff(n))
	}
	p.log.Info("pushed study waits for its order", "order", st.ID, "routes", routes, "wait_until", waitUntil.UTC().Format(time.RFC3339))
	return done()
}
