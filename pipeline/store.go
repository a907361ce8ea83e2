package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// orderStore keeps order state in a JetStream KV bucket: "o.<id>" holds the
// OrderStatus, "ref.<hash>" maps a ServiceRequest reference to its order so an
// ImagingStudy based on it joins the same order.
type orderStore struct {
	kv  jetstream.KeyValue
	now func() time.Time
	// js and log append every change to the order's history
	// (appendHistory); invalid counts changes radgate.Transitions does not
	// allow (a bug: logged at error level, recorded as "invalid").
	js      jetstream.JetStream
	log     *slog.Logger
	invalid prometheus.Counter
	// indexStreams holds the order list's index streams (indexStream).
	indexMu      sync.Mutex
	indexStreams map[string]jetstream.Stream
}

func orderKeyName(id string) string { return "o." + id }

func refKeyName(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "ref." + hex.EncodeToString(sum[:12])
}

// get returns the order, or ErrOrderNotFound.
func (s *orderStore) get(ctx context.Context, id string) (radgate.OrderStatus, error) {
	var st radgate.OrderStatus
	if !validOrderID(id) {
		return st, radgate.ErrOrderNotFound
	}
	e, err := s.kv.Get(ctx, orderKeyName(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, radgate.ErrOrderNotFound
	}
	if err != nil {
		return st, fmt.Errorf("reading order %s: %w", id, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, fmt.Errorf("decoding order %s: %w", id, err)
	}
	return st, nil
}

func validOrderID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// update applies fn to the order under optimistic concurrency, creating it
// when create is true and it does not exist. fn may return errSkip to leave
// the stored value untouched.
func (s *orderStore) update(ctx context.Context, id string, create bool, fn func(*radgate.OrderStatus) error) (radgate.OrderStatus, error) {
	key := orderKeyName(id)
	for attempt := 0; attempt < 20; attempt++ {
		var st, old radgate.OrderStatus
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if !create {
				return st, radgate.ErrOrderNotFound
			}
			st = radgate.OrderStatus{ID: id, State: radgate.StateReceived, ReceivedAt: s.now()}
		case err != nil:
			return st, fmt.Errorf("reading order %s: %w", id, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return st, fmt.Errorf("decoding order %s: %w", id, err)
			}
			_ = json.Unmarshal(e.Value(), &old) // a deep copy, for the history
		}
		if err := fn(&st); err != nil {
			if errors.Is(err, errSkip) {
				return st, nil
			}
			return st, err
		}
		st.UpdatedAt = s.now()
		b, err := json.Marshal(st)
		if err != nil {
			return st, err
		}
		var newRev uint64
		if rev == 0 {
			newRev, err = s.kv.Create(ctx, key, b)
		} else {
			newRev, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			s.recordChange(ctx, newRev, old, st)
			s.indexOrder(ctx, old, st)
			return st, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) || broker.IsWrongSequence(err) {
			continue // someone else wrote first: re-read and re-apply
		}
		return st, fmt.Errorf("writing order %s: %w", id, err)
	}
	return radgate.OrderStatus{}, fmt.Errorf("writing order %s: too much contention", id)
}

var errSkip = errors.New("skip update")

// recordChange appends what changed to the order's history, checking the
// order's own move against radgate.Transitions.
func (s *orderStore) recordChange(ctx context.Context, rev uint64, old, cur radgate.OrderStatus) {
	if old.ID == "" {
		old.State = "" // created: the row "" → received
	}
	if old.ID != "" && !radgate.CanTransition(old.State, cur.State) {
		if s.invalid != nil {
			s.invalid.Inc()
		}
		if s.log != nil {
			s.log.Error("order state change not in the state machine", "order", cur.ID, "from", old.State, "to", cur.State)
		}
	}
	if observeTransition != nil && old.State != cur.State {
		observeTransition(old.State, cur.State)
	}
	s.appendHistory(ctx, rev, historyOf(old, cur, s.now()))
}

// observeTransition, when set (by the package's tests), sees every change of
// an order's state.
var observeTransition func(from, to radgate.OrderState)

// lookupRef returns the order a ServiceRequest reference belongs to.
func (s *orderStore) lookupRef(ctx context.Context, ref string) (string, bool, error) {
	e, err := s.kv.Get(ctx, refKeyName(ref))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading reference index: %w", err)
	}
	return string(e.Value()), true, nil
}

func (s *orderStore) indexRef(ctx context.Context, ref, id string) error {
	if _, err := s.kv.Put(ctx, refKeyName(ref), []byte(id)); err != nil {
		return fmt.Errorf("writing reference index: %w", err)
	}
	return nil
}

// merge folds an intake event into the order it belongs to.
func merge(st *radgate.OrderStatus, key string, ev radgate.OrderEvent) {
	st.Key = key
	if st.Accession == nil && ev.Accession != nil && ev.Accession.Value != "" {
		a := *ev.Accession
		st.Accession = &a
	}
	if st.StudyInstanceUID == "" {
		st.StudyInstanceUID = radgate.StripUIDPrefix(ev.StudyInstanceUID)
	}
	if !ev.ServiceRequest.IsZero() && (st.ServiceRequest.IsZero() || st.ServiceRequest.Reference == "") {
		r := *ev.ServiceRequest
		st.ServiceRequest = &r
	}
	if st.ServiceRequest.IsZero() {
		for _, b := range ev.BasedOn {
			if !b.IsZero() {
				r := b
				st.ServiceRequest = &r
				break
			}
		}
	}
	if !ev.ImagingStudy.IsZero() && (st.ImagingStudy.IsZero() || st.ImagingStudy.Reference == "") {
		r := *ev.ImagingStudy
		st.ImagingStudy = &r
	}
	if !ev.Patient.IsZero() && (st.Patient.IsZero() || st.Patient.Reference == "") {
		r := *ev.Patient
		st.Patient = &r
	}
	for _, c := range ev.ProcedureCodes {
		if !slices.Contains(st.ProcedureCodes, c) {
			st.ProcedureCodes = append(st.ProcedureCodes, c)
		}
	}
	if st.Facility == "" {
		st.Facility = ev.Facility
	}
	for _, m := range ev.Modalities {
		if m != "" && !slices.Contains(st.Modalities, m) {
			st.Modalities = append(st.Modalities, m)
		}
	}
	if st.Priority == "" || ev.Priority != "" && radgate.PriorityClass(ev.Priority) == radgate.PriorityUrgent {
		st.Priority = cmp.Or(ev.Priority, st.Priority) // an order made urgent stays urgent
	}
	if ev.Age != nil {
		a := *ev.Age
		st.Age = &a
	}
	if ev.StudyComplete {
		if st.Study == nil {
			st.Study = &radgate.StudyObservation{}
		}
		st.Study.Complete = true
		st.Study.Announced = max(st.Study.Announced, ev.InstanceCount)
	}
	src := ev.Source + ":" + ev.ResourceType
	if !slices.Contains(st.Sources, src) {
		st.Sources = append(st.Sources, src)
	}
}

// setEngine records one engine's progress and recomputes the order state.
func setEngine(st *radgate.OrderStatus, engine string, p radgate.EngineProgress) {
	if st.Engines == nil {
		st.Engines = map[string]radgate.EngineProgress{}
	}
	st.Engines[engine] = p
	recompute(st)
}

// replayReset re-opens an order for a replayed message (one carrying
// HeaderReplayOf = replayOf): each of engines that ended failed or rejected
// goes back to state to, so the stage handling the replay works on it again
// (the router routes only "received" engines; the inference stage skips
// terminal ones). Delivered engines are left alone (their report exists), and
// so are engines still in flight. It applies once per replay: the order
// records replayOf, so a redelivery of the same replayed message finds it
// and resets nothing that the replay's own run has since finished. It
// returns false, changing nothing, when this replay was applied already.
func replayReset(st *radgate.OrderStatus, replayOf string, engines []string, to radgate.OrderState) bool {
	if replayOf == "" || st.ReplayOf == replayOf {
		return false
	}
	st.ReplayOf = replayOf
	for _, eid := range engines {
		if cur, ok := st.Engines[eid]; ok && (cur.State == radgate.StateFailed || cur.State == radgate.StateRejected) {
			st.Engines[eid] = radgate.EngineProgress{State: to}
		}
	}
	recompute(st)
	return true
}

// replayDelivery re-opens an order for a replayed result (a dead letter of
// a delivery stage, HeaderReplayOf = replayOf): the engine, failed because
// its delivery at dest failed, is scored again — its result exists and goes
// out once more — with the failed delivery's reason cleared, so the order
// moves failed → scored (replayed) and then on to delivered. Like
// replayReset it applies once per replay and returns false, changing
// nothing, when it was applied already or there is nothing to re-open.
func replayDelivery(st *radgate.OrderStatus, replayOf, engine, dest string) bool {
	cur, ok := st.Engines[engine]
	if replayOf == "" || st.ReplayOf == replayOf || !ok || cur.State != radgate.StateFailed {
		return false
	}
	d, ok := cur.Deliveries[dest]
	if !ok || d.State != radgate.StateFailed {
		return false
	}
	st.ReplayOf = replayOf
	cur.State, cur.Reason = radgate.StateScored, ""
	d.State, d.Reason = radgate.StateScored, ""
	cur.Deliveries = maps.Clone(cur.Deliveries)
	cur.Deliveries[dest] = d
	st.Engines[engine] = cur
	recompute(st)
	return true
}

// recompute derives the order's state. A cancelled order is retracting
// while a delivered result is not yet withdrawn, then cancelled. An order
// whose study radgate waits to settle is stabilising. Otherwise it is the
// least advanced engine while any is running (an engine not yet routed
// counts as routed once the route is decided); once all are done,
// delivered only if every engine delivered, else failed (or rejected) with
// the first reason. An order with no engine keeps the state its stage set
// (received, waiting, stabilising).
func recompute(st *radgate.OrderStatus) {
	if st.Cancelled != nil {
		st.State, st.Reason = radgate.StateCancelled, "cancelled: "+st.Cancelled.Reason
		for _, p := range st.Engines {
			for _, d := range p.Deliveries {
				if d.DeliveredRevision > 0 && !d.Retracted {
					st.State = radgate.StateRetracting
				}
			}
		}
		return
	}
	if st.Study != nil && st.Study.Settling {
		st.State, st.Reason = radgate.StateStabilising, ""
		return
	}
	if len(st.Engines) == 0 {
		return
	}
	rank := map[radgate.OrderState]int{radgate.StateReceived: 0, radgate.StateRouted: 1, radgate.StateScored: 2}
	names := make([]string, 0, len(st.Engines))
	for n := range st.Engines {
		names = append(names, n)
	}
	slices.Sort(names)
	allDone := true
	least := radgate.StateScored
	for _, n := range names {
		p := st.Engines[n]
		if !p.State.Terminal() {
			allDone = false
			if rank[p.State] < rank[least] {
				least = p.State
			}
		}
	}
	if !allDone {
		// An engine not yet routed counts as routed once the route is
		// decided; the router's own answer re-opened (a replay) is received.
		if rc, ok := st.Engines[radgate.RouterEngine]; least == radgate.StateReceived && !(ok && rc.State == radgate.StateReceived) &&
			(st.Route != nil || st.State == radgate.StateRouted) {
			least = radgate.StateRouted
		}
		st.State, st.Reason = least, ""
		return
	}
	st.State, st.Reason = radgate.StateDelivered, ""
	for _, want := range []radgate.OrderState{radgate.StateFailed, radgate.StateRejected} {
		for _, n := range names {
			if p := st.Engines[n]; p.State == want {
				st.State, st.Reason = want, n+": "+p.Reason
				return
			}
		}
	}
}
