package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderMigratedFrom marks a message a state migration re-published, with
// the stream sequence of the message it replaces: a migration run again
// after a crash finds the copies it made and does not make them twice.
const HeaderMigratedFrom = "Radgate-Migrated-From"

// migrationFacilityToken (state version 1 → 2) moves the work still pending
// in ORDERS, JOBS and RESULTS from the subjects without a facility
// (radgate.orders.<class>.<source>, radgate.jobs.<class>.<engine>,
// radgate.results.<dest>.<class>.<engine>) to the ones with it
// (OrderSubject, JobSubject, ResultSubject), and points the dead letters'
// HeaderSubject at the new subjects.
var migrationFacilityToken = Migration{From: 1, To: 2, Name: "facility-subject-token", Run: migrateFacilityToken}

// migrateFacilityToken re-publishes each pending message on its new subject
// (payload and headers as they were, Nats-Msg-Id too, HeaderMigratedFrom
// added) and then deletes the old one, in stream order. Pending is: every
// message of the work-queue JOBS; in ORDERS and RESULTS, a message above
// the ack floor of a durable consumer whose filter takes it (or that no
// durable consumer takes yet). Messages at or below every such ack floor
// are finished work: they stay where they are, as history, until their
// stream's limits remove them. The durable consumers' filters need no
// change: the class is still the first token after the stream's prefix.
//
// The facility is the order's configured facility id: the result's own
// (Result.Order.FacilityID), else the order's in the order bucket; none →
// NoFacility. It is safe to run again: a message whose copy exists (found
// by HeaderMigratedFrom among the messages after it) is only deleted.
func migrateFacilityToken(ctx context.Context, js jetstream.JetStream) error {
	fl := &facilityLookup{cache: map[string]string{}}
	if kv, err := js.KeyValue(ctx, BucketOrders); err == nil {
		fl.kv = kv
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("opening bucket %s: %w", BucketOrders, err)
	}
	for _, name := range []string{StreamOrders, StreamJobs, StreamResults, StreamDLQ} {
		n, err := migrateStream(ctx, js, name, fl)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if n > 0 {
			slog.Default().Info("pending messages moved to the facility subjects", "component", "nats", "stream", name, "messages", n)
		}
	}
	return nil
}

// v1Classes are the priority class tokens of state version 1's subjects.
var v1Classes = []string{"urgent", "routine"}

// fromV1 returns, for a subject of state version 1's layout, the subject
// of the current layout for a facility; ok is false for any other.
func fromV1(subject string) (to func(facility string) string, ok bool) {
	t := strings.Split(subject, ".")
	if slices.Contains(t, "") {
		return nil, false
	}
	switch {
	case strings.HasPrefix(subject, SubjectOrders) && len(t) == 4 && slices.Contains(v1Classes, t[2]):
		return func(f string) string { return OrderSubject(t[2], f, t[3]) }, true
	case strings.HasPrefix(subject, SubjectJobs) && len(t) == 4 && slices.Contains(v1Classes, t[2]):
		return func(f string) string { return JobSubject(t[2], f, t[3]) }, true
	case strings.HasPrefix(subject, SubjectResults) && len(t) == 5 && slices.Contains(v1Classes, t[3]):
		return func(f string) string { return ResultSubject(t[2], t[3], f, t[4]) }, true
	}
	return nil, false
}

// durableFloor is a durable consumer's filters and ack floor.
type durableFloor struct {
	filters []string
	floor   uint64
}

func migrateStream(ctx context.Context, js jetstream.JetStream, name string, fl *facilityLookup) (int, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	info := s.CachedInfo()
	if info.State.Msgs == 0 {
		return 0, nil
	}
	last, from := info.State.LastSeq, info.State.FirstSeq
	var durables []durableFloor
	if name != StreamDLQ && info.Config.Retention != jetstream.WorkQueuePolicy {
		cl := s.ListConsumers(ctx)
		for ci := range cl.Info() {
			if ci.Config.Durable == "" || ci.Config.DeliverSubject != "" {
				continue
			}
			d := durableFloor{filters: ci.Config.FilterSubjects, floor: ci.AckFloor.Stream}
			if ci.Config.FilterSubject != "" {
				d.filters = append(d.filters, ci.Config.FilterSubject)
			}
			if len(d.filters) == 0 {
				d.filters = []string{">"}
			}
			durables = append(durables, d)
		}
		if err := cl.Err(); err != nil {
			return 0, fmt.Errorf("listing consumers: %w", err)
		}
		if len(durables) > 0 {
			// Below every durable's ack floor is finished work.
			from = last + 1
			for _, d := range durables {
				from = min(from, d.floor+1)
			}
			from = max(from, info.State.FirstSeq)
		}
	}
	pending := func(m BackupMessage) bool {
		taken := false
		for _, d := range durables {
			if !slices.ContainsFunc(d.filters, func(f string) bool { return server.SubjectMatchesFilter(m.Subject, f) }) {
				continue
			}
			if m.Seq > d.floor {
				return true
			}
			taken = true
		}
		return !taken
	}
	// The copies a run that stopped midway made already.
	copied := map[uint64]bool{}
	var olds []BackupMessage
	if err := readFrom(ctx, s, from, last, func(m BackupMessage) error {
		if v := m.Header.Get(HeaderMigratedFrom); v != "" {
			if seq, err := strconv.ParseUint(v, 10, 64); err == nil {
				copied[seq] = true
			}
		}
		if movable(name, m) && pending(m) {
			olds = append(olds, m)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, m := range olds {
		if !copied[m.Seq] {
			if err := republish(ctx, js, s, name, m, last, fl); err != nil {
				return 0, err
			}
		}
		if err := s.DeleteMsg(ctx, m.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("deleting sequence %d after its copy: %w", m.Seq, err)
		}
	}
	return len(olds), nil
}

// movable reports whether m is of the old layout: its subject, or, in the
// DLQ, the subject it names.
func movable(stream string, m BackupMessage) bool {
	if m.Header.Get(HeaderMigratedFrom) != "" {
		return false
	}
	if stream == StreamDLQ {
		_, ok := fromV1(m.Header.Get(HeaderSubject))
		return ok
	}
	_, ok := fromV1(m.Subject)
	return ok
}

// republish publishes m's copy on its new subject. The copy keeps m's
// Nats-Msg-Id, so a stage that sends the same message again within the
// duplicate window is still dropped; when JetStream still remembers m under
// that id (m was published within the window), the copy's id gets
// ".v2" appended instead — the stage's resend is then dropped as m's.
func republish(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, stream string, m BackupMessage, last uint64, fl *facilityLookup) error {
	orderID := m.Header.Get(HeaderOrderID)
	facility, err := fl.of(ctx, orderID, stream, m.Data)
	if err != nil {
		return err
	}
	out := &nats.Msg{Subject: m.Subject, Header: nats.Header{}, Data: m.Data}
	for k, v := range m.Header {
		if !strings.HasPrefix(k, "Nats-Expected") {
			out.Header[k] = slices.Clone(v)
		}
	}
	if stream == StreamDLQ {
		to, _ := fromV1(m.Header.Get(HeaderSubject))
		out.Header.Set(HeaderSubject, to(facility))
	} else {
		to, _ := fromV1(m.Subject)
		out.Subject = to(facility)
	}
	out.Header.Set(HeaderMigratedFrom, strconv.FormatUint(m.Seq, 10))
	id := out.Header.Get(jetstream.MsgIDHeader)
	ack, err := js.PublishMsg(ctx, out)
	if err != nil {
		return fmt.Errorf("re-publishing sequence %d on %s: %w", m.Seq, out.Subject, err)
	}
	if ack.Duplicate && ack.Sequence <= last {
		// m's id is still in the duplicate window: a new id for the copy.
		out.Header.Set(jetstream.MsgIDHeader, id+".v2")
		if _, err := js.PublishMsg(ctx, out); err != nil {
			return fmt.Errorf("re-publishing sequence %d on %s: %w", m.Seq, out.Subject, err)
		}
	}
	return nil
}

// facilityLookup finds an order's configured facility id, reading each
// order once.
type facilityLookup struct {
	kv    jetstream.KeyValue
	cache map[string]string
}

func (l *facilityLookup) of(ctx context.Context, orderID, stream string, data []byte) (string, error) {
	if stream == StreamResults {
		var r struct {
			Order struct {
				FacilityID string `json:"facility_id"`
			} `json:"order"`
		}
		if json.Unmarshal(data, &r) == nil && r.Order.FacilityID != "" {
			return r.Order.FacilityID, nil
		}
	}
	if f, ok := l.cache[orderID]; ok {
		return f, nil
	}
	if orderID == "" || l.kv == nil {
		return "", nil
	}
	e, err := l.kv.Get(ctx, "o."+orderID)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		l.cache[orderID] = ""
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("reading order %s: %w", orderID, err)
	}
	var st struct {
		FacilityID string `json:"facility_id"`
	}
	_ = json.Unmarshal(e.Value(), &st) // an unreadable order has no facility to give
	l.cache[orderID] = st.FacilityID
	return st.FacilityID, nil
}
