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
}

// JobInstance is one image the router selected for an engine.
type JobInstance struct {
	SeriesInstanceUID string `json:"series_instance_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	Modality          string `json:"modality"`
	BodyPart          string `json:"body_part,omitempty"`
}

// route resolves an order's study in the archive, decides the order's route
// (which engines, which destinations, whether a read is requested) and
// publishes one job per engine that may score it. A study not there yet is
// retried with backoff for the study wait window; after that, for an order
// no route matches, and for a study an engine may not score, a result says
// why, so the order is answered either way. The decision is recorded on the
// order once: a reload of the routes leaves orders in flight as decided. A
// replayed event (HeaderReplayOf) first re-opens the order's failed and
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
	if replay != "" {
		if st, err = p.reopen(ctx, id, replay, append(orderEngines(st), radgate.RouterEngine), radgate.StateReceived); err != nil {
			return retryIn(p.opts.RetryMin)
		}
	}
	// An order is (re)decided when it has no decision yet, or when its
	// order-level answer (no route, study never found) was re-opened.
	routerCur, routerSeen := st.Engines[radgate.RouterEngine]
	decide := (st.Route == nil && len(st.Engines) == 0) || (routerSeen && routerCur.State == radgate.StateReceived)
	pending := enginesInState(st, radgate.StateReceived)
	if !decide && len(pending) == 0 {
		return done() // routed already, by an earlier event of the same order
	}
	age, n := msgAge(msg, p.opts.Now())
	study, err := p.opts.Source.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: st.StudyInstanceUID, AccessionNumber: accessionValue(st)})
	if err != nil {
		if (errors.Is(err, radgate.ErrStudyNotFound) || radgate.IsTransient(err)) && age < p.opts.StudyWaitWindow {
			p.log.Info("study not available yet; will retry", "order", id, "attempt", n, "err", err)
			return retryIn(p.backoff(n))
		}
		reason := "study not retrieved from the PACS: " + radgate.Public(err)
		p.log.Warn("study not retrieved from the PACS; answering the order", "order", id, "err", err)
		if errors.Is(err, radgate.ErrStudyNotFound) {
			reason = fmt.Sprintf("study not found in the PACS within %s (%s)", p.opts.StudyWaitWindow, describeQuery(st))
		}
		if decide {
			return p.answerOrder(ctx, msg, st, radgate.OutcomeFailed, reason)
		}
		return p.finishAll(ctx, msg, st, pending, radgate.OutcomeFailed, reason)
	}
	if decide {
		rs := p.routes()
		facility := p.opts.Facilities.Resolve(st.Facility, study.InstitutionName)
		st.FacilityID = facility
		d := decisionOf(rs.set.Decide(Facts(st, study)), rs.set.Digest())
		st, err = p.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			if rc, seen := o.Engines[radgate.RouterEngine]; o.Route != nil && !(seen && rc.State == radgate.StateReceived) {
				return errSkip // another event of the order decided first
			}
			o.Route, o.FacilityID = d, facility
			if d.Matched {
				delete(o.Engines, radgate.RouterEngine)
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
			return p.answerOrder(ctx, msg, st, radgate.OutcomeNotApplicable, st.Route.Reason)
		}
		p.log.Info("order matched a route", "order", id, "routes", strings.Join(st.Route.Routes, ","),
			"engines", strings.Join(st.Route.Engines, ","), "destinations", strings.Join(st.Route.Destinations, ","))
		pending = enginesInState(st, radgate.StateReceived)
	}
	for _, eid := range pending {
		eng, ok := p.engine(eid)
		if !ok {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: radgate.EngineInfo{ID: eid, Name: eid}, Outcome: radgate.OutcomeFailed,
				Reason: fmt.Sprintf("engine %s is not loaded in this radgate process", eid), StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		job, reason := selectInstances(eng, study, st)
		if reason != "" {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeNotApplicable, Reason: reason,
				StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		if n, limit := len(job.Instances), p.opts.MaxInstancesPerStudy; n > limit {
			if v := p.publishResult(ctx, st, radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeFailed,
				Reason:           fmt.Sprintf("not scored: the study has %d images for engine %s, more than the limit of %d (orders.max_instances_per_study)", n, eid, limit),
				StudyInstanceUID: study.StudyInstanceUID}, replay); v.kind != ack {
				return v
			}
			continue
		}
		job.OrderID = id
		data, _ := json.Marshal(job)
		out := nats.NewMsg(broker.SubjectJobs + broker.Token(eid))
		out.Data = data
		out.Header.Set(broker.HeaderOrderID, id)
		if replay != "" {
			out.Header.Set(broker.HeaderReplayOf, replay)
		}
		if _, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(replayMsgID("job."+id+"."+eid, replay))); err != nil {
			return retryIn(p.backoff(n))
		}
		if _, err := p.store.update(ctx, id, false, func(st *radgate.OrderStatus) error {
			if cur, ok := st.Engines[eid]; ok && cur.State != radgate.StateReceived {
				return errSkip
			}
			if st.StudyInstanceUID == "" {
				st.StudyInstanceUID = study.StudyInstanceUID
			}
			setEngine(st, eid, radgate.EngineProgress{State: radgate.StateRouted})
			return nil
		}); err != nil {
			return retryIn(p.backoff(n))
		}
		p.log.Info("order routed", "order", id, "engine", eid, "images", len(job.Instances))
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

// selectInstances picks the images an engine's manifest declares. A series
// without Body Part Examined falls back to the order's procedure code.
func selectInstances(eng radgate.Engine, study *radgate.Study, st radgate.OrderStatus) (Job, string) {
	info := eng.Info()
	job := Job{Engine: info.ID, StudyInstanceUID: study.StudyInstanceUID}
	var seen []string
	orderPart := BodyPartFromProcedure(st.ProcedureCodes)
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
			continue
		}
		for _, in := range s.Instances {
			job.Instances = append(job.Instances, JobInstance{SeriesInstanceUID: s.SeriesInstanceUID,
				SOPInstanceUID: in.SOPInstanceUID, Modality: s.Modality, BodyPart: part})
		}
	}
	if len(job.Instances) == 0 {
		if len(seen) == 0 {
			seen = []string{"no series"}
		}
		return job, fmt.Sprintf("not scored: engine %s takes %s images of %s; the study has %s",
			info.ID, strings.Join(eng.Modalities(), "/"), strings.Join(eng.BodyParts(), "/"), strings.Join(seen, ", "))
	}
	return job, ""
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
	st, err := p.store.get(ctx, job.OrderID)
	if err != nil {
		return retryIn(p.opts.RetryMin)
	}
	if replay != "" {
		if st, err = p.reopen(ctx, job.OrderID, replay, []string{job.Engine}, radgate.StateRouted); err != nil {
			return retryIn(p.opts.RetryMin)
		}
	}
	// Skip only what is already past scoring (a redelivery after a crash).
	// "received" is normal here: the router publishes the job before it
	// records "routed", and this stage can read the order in between.
	if cur := st.Engines[job.Engine]; cur.State == radgate.StateScored || cur.State.Terminal() {
		return done()
	}
	sc := p.scoreImages(ctx, msg, job, eng)
	if sc.retry > 0 {
		return retryIn(sc.retry)
	}
	return p.publishResult(ctx, st, resultOf(job, eng, sc), replay)
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
func (p *Pipeline) scoreImages(ctx context.Context, msg jetstream.Msg, job Job, eng radgate.Engine) studyScore {
	age, n := msgAge(msg, p.opts.Now())
	failed := func(reason string) studyScore {
		return studyScore{bestAt: -1, outcome: radgate.OutcomeFailed, reason: reason}
	}
	sc := studyScore{bestAt: -1, outcome: radgate.OutcomeNotApplicable} // not applicable if no image was decodable
	var failures []string
	var total int64
	for i, in := range job.Instances {
		_ = msg.InProgress()
		b, err := p.opts.Source.RetrieveInstance(ctx, job.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
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
		scores, err := eng.Score(ctx, [][]byte{b})
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
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("image %s: %v", in.SOPInstanceUID, s.Err))
			if !errors.Is(s.Err, inference.ErrNotAccepted) {
				sc.outcome = radgate.OutcomeFailed
			}
			continue
		}
		if sc.bestAt < 0 || s.Probability > sc.best.Probability {
			if !s.Marked {
				s.Render = nil // no heatmap to draw: let the image go
			}
			sc.best, sc.bestAt = s, i
		}
	}
	if sc.bestAt < 0 {
		sc.reason = strings.Join(failures, "; ")
	}
	return sc
}

// resultOf is the result a job's studyScore makes: the best image's score
// with its heatmap, or the reason none was scored.
func resultOf(job Job, eng radgate.Engine, sc studyScore) radgate.Result {
	if sc.bestAt < 0 {
		return radgate.Result{Engine: eng.Info(), Outcome: sc.outcome, Reason: sc.reason, StudyInstanceUID: job.StudyInstanceUID}
	}
	s := sc.best
	r := radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeScored, Probability: s.Probability, Tier: s.Tier, Marked: s.Marked,
		StudyInstanceUID: job.StudyInstanceUID, SeriesInstanceUID: job.Instances[sc.bestAt].SeriesInstanceUID,
		SOPInstanceUID: job.Instances[sc.bestAt].SOPInstanceUID}
	if s.Marked && s.Render != nil {
		png, w, h, err := s.Render()
		if err != nil {
			return radgate.Result{Engine: eng.Info(), Outcome: radgate.OutcomeFailed,
				Reason: "rendering heatmap: " + err.Error(), StudyInstanceUID: job.StudyInstanceUID}
		}
		r.HeatmapPNG, r.HeatmapWidth, r.HeatmapHeight = png, w, h
		r.CAM = s.CAM
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
	if r.ScoredAt.IsZero() {
		r.ScoredAt = p.opts.Now().UTC()
	}
	if len(dests) == 0 {
		return deadLetter(fmt.Sprintf("result %s of engine %s has no destination (the order's route decision names none)", r.ID, r.Engine.ID))
	}
	if len(r.HeatmapPNG) > 0 {
		r.HeatmapObject = r.ID + ".png"
		if _, err := p.opts.Topology.Heatmaps.PutBytes(ctx, r.HeatmapObject, r.HeatmapPNG); err != nil {
			p.log.Warn("storing heatmap failed; will retry", "order", st.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	for _, d := range dests {
		r.Destination = d
		data, err := json.Marshal(r)
		if err != nil {
			return deadLetter("encoding result: " + err.Error())
		}
		out := nats.NewMsg(broker.SubjectResults + broker.Token(d) + "." + broker.Token(r.Engine.ID))
		out.Data = data
		out.Header.Set(broker.HeaderOrderID, st.ID)
		if replay != "" {
			out.Header.Set(broker.HeaderReplayOf, replay)
		}
		if _, err := p.js.PublishMsg(ctx, out, jetstream.WithMsgID(replayMsgID("result."+r.ID+"."+d, replay))); err != nil {
			p.log.Warn("publishing result failed; will retry", "order", st.ID, "destination", d, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	// Every outcome is "scored" until delivered: an order becomes terminal
	// (delivered, rejected, failed) only once its answer is written.
	prog := radgate.EngineProgress{State: radgate.StateScored, Reason: r.Reason, Deliveries: map[string]radgate.DeliveryProgress{}}
	for _, d := range dests {
		prog.Deliveries[d] = radgate.DeliveryProgress{State: radgate.StateScored}
	}
	if r.Outcome == radgate.OutcomeScored {
		prob := r.Probability
		prog.Probability, prog.Tier = &prob, r.Tier
	}
	if _, err := p.store.update(ctx, st.ID, false, func(o *radgate.OrderStatus) error {
		cur, ok := o.Engines[r.Engine.ID]
		if ok && cur.State.Terminal() {
			return errSkip // delivery already finished: it can race ahead of this write
		}
		for d, dp := range cur.Deliveries {
			prog.Deliveries[d] = dp // a destination that answered already
		}
		setEngine(o, r.Engine.ID, prog)
		return nil
	}); err != nil {
		return retryIn(p.opts.RetryMin)
	}
	// Bill the analysis: counted once per result id, so the retry this
	// verdict may cause, or a replay, never counts it twice.
	if u := p.opts.Usage; u != nil && r.Outcome == radgate.OutcomeScored {
		if _, err := u.Count(ctx, r.ID, r.Engine.ID, cmp.Or(st.FacilityID, st.Facility), r.ScoredAt); err != nil {
			p.log.Warn("counting usage failed; will retry", "order", st.ID, "err", err)
			return retryIn(p.opts.RetryMin)
		}
	}
	p.m.results.WithLabelValues(r.Engine.ID, string(r.Outcome)).Inc()
	p.log.Info("result published", "order", st.ID, "engine", r.Engine.ID, "outcome", r.Outcome, "tier", r.Tier,
		"destinations", strings.Join(dests, ","))
	return done()
}

// deliverTo returns the handler of one destination's consumer.
func (p *Pipeline) deliverTo(name string, sink radgate.Sink) func(context.Context, jetstream.Msg) verdict {
	return func(ctx context.Context, msg jetstream.Msg) verdict {
		var r radgate.Result
		if err := json.Unmarshal(msg.Data(), &r); err != nil {
			return deadLetter("undecodable result: " + err.Error())
		}
		// The order may have gained references since scoring (the
		// ImagingStudy arriving after the ServiceRequest): use the latest.
		if st, err := p.store.get(ctx, r.Order.ID); err == nil {
			r.Order = st
		}
		if r.HeatmapObject != "" {
			png, err := p.opts.Topology.Heatmaps.GetBytes(ctx, r.HeatmapObject)
			if err != nil {
				return retryIn(p.opts.RetryMin)
			}
			r.HeatmapPNG = png
		}
		age, n := msgAge(msg, p.opts.Now())
		dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		receipt, err := sink.Deliver(dctx, r)
		cancel()
		dest := r.Destination
		if dest == "" {
			dest = name
		}
		if err != nil {
			if radgate.IsTransient(err) && age < p.opts.DeliveryWindow {
				p.log.Warn("delivery failed; will retry", "order", r.Order.ID, "destination", name, "attempt", n, "err", err)
				return retryIn(p.backoff(n))
			}
			reason := fmt.Sprintf("delivering to %s: %v", name, err)
			if err := p.recordDelivery(ctx, r, dest, radgate.DeliveryProgress{State: radgate.StateFailed, Reason: reason}); err != nil {
				p.log.Warn("recording a failed delivery failed", "order", r.Order.ID, "err", err)
			}
			return deadLetter(reason)
		}
		if err := p.recordDelivery(ctx, r, dest, radgate.DeliveryProgress{State: radgate.StateDelivered, Report: receipt.Report}); err != nil {
			return retryIn(p.opts.RetryMin) // the sink is idempotent: re-delivering is safe
		}
		p.log.Info("result delivered", "order", r.Order.ID, "destination", name, "report", receipt.Report)
		return done()
	}
}

// recordDelivery records one destination's answer for a result; once every
// destination of the result has answered, the engine becomes terminal:
// failed if any destination failed, else delivered (scored), rejected (not
// applicable) or failed (failed) — with the first destination's report.
func (p *Pipeline) recordDelivery(ctx context.Context, r radgate.Result, dest string, dp radgate.DeliveryProgress) error {
	_, err := p.store.update(ctx, r.Order.ID, false, func(o *radgate.OrderStatus) error {
		cur := o.Engines[r.Engine.ID]
		if cur.Deliveries == nil {
			cur.Deliveries = map[string]radgate.DeliveryProgress{}
		}
		cur.Deliveries[dest] = dp
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
		final := map[radgate.Outcome]radgate.OrderState{radgate.OutcomeScored: radgate.StateDelivered, radgate.OutcomeNotApplicable: radgate.StateRejected, radgate.OutcomeFailed: radgate.StateFailed}[r.Outcome]
		if final == "" {
			final = radgate.StateFailed
		}
		cur.Report = ""
		for _, d := range dests {
			got := cur.Deliveries[d]
			switch {
			case got.State == radgate.StateFailed:
				final, cur.Reason = radgate.StateFailed, got.Reason
			case got.State != radgate.StateDelivered:
				final = radgate.StateScored // still waiting for this destination
			}
			if cur.Report == "" {
				cur.Report = got.Report
			}
			if final == radgate.StateFailed && got.State == radgate.StateFailed {
				break
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
