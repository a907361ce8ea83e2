package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the dead-letter stream.
var (
	// ErrDeadLetterNotFound is returned for a DLQ sequence that holds no dead
	// letter: it never did, or it was replayed and removed.
	ErrDeadLetterNotFound = errors.New("dead letter not found")
	// ErrNotReplayable is returned for a dead letter whose original subject
	// (HeaderSubject) is not one of radgate's ORDERS, JOBS or RESULTS
	// subjects, so there is nowhere to send it again.
	ErrNotReplayable = errors.New("dead letter cannot be replayed")
	// ErrNoDLQ is returned when the NATS server has no RADGATE_DLQ stream:
	// radgate serve has never run against it.
	ErrNoDLQ = errors.New("no dead-letter stream " + StreamDLQ + " on this NATS server (has radgate serve run against it?)")
)

// DeadLetter is one message a stage gave up on, as the DLQ stream keeps it:
// the original message with why it was terminated.
type DeadLetter struct {
	// Seq is the DLQ stream sequence: the dead letter's id.
	Seq uint64 `json:"seq"`
	// Time is when the stage gave up.
	Time time.Time `json:"time"`
	// Stage is the stage that gave up ("router", "inference", "deliver-fhir").
	Stage   string `json:"stage"`
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	// Subject is where the original message was published; a replay sends
	// it there again.
	Subject string `json:"subject"`
	// ReplayOf is set when the dead letter is itself a replay that failed
	// again: the DLQ sequence it was replayed from.
	ReplayOf string `json:"replay_of,omitempty"`
	// Attempts is how many times the stage was given the message before it
	// gave up (HeaderAttempts; 0: not recorded).
	Attempts int `json:"attempts,omitempty"`

	// Header and Data are the stored message (Data is empty from List).
	Header nats.Header `json:"-"`
	Data   []byte      `json:"-"`
}

// Replayed is what Replay did with one dead letter.
type Replayed struct {
	DeadLetter DeadLetter
	// Stream and Seq say where the replayed message was stored.
	Stream string
	Seq    uint64
	// Duplicate: JetStream already held this replay (the same dead letter
	// replayed before, within the duplicate window), so nothing was sent
	// again.
	Duplicate bool
	// Removed: the dead letter was deleted from the DLQ stream.
	Removed bool
}

// DLQ reads and replays the dead-letter stream, RADGATE_DLQ, where the stage
// runner keeps a copy of every message a stage terminated (subject
// radgate.dlq.<stage>, headers HeaderOrderID, HeaderReason, HeaderSubject).
type DLQ struct {
	js jetstream.JetStream
}

// NewDLQ reads and replays dead letters through js; it does no I/O.
func NewDLQ(js jetstream.JetStream) *DLQ { return &DLQ{js: js} }

func (d *DLQ) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := d.js.Stream(ctx, StreamDLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoDLQ
	}
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", StreamDLQ, err)
	}
	return s, nil
}

// List returns the dead letters, oldest first, without their message
// bodies; stage, when not empty, keeps only that stage's.
func (d *DLQ) List(ctx context.Context, stage string) ([]DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return nil, err
	}
	filter := SubjectDLQ + ">"
	if stage != "" {
		filter = SubjectDLQ + Token(stage)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", StreamDLQ, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, HeadersOnly: true, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", StreamDLQ, err)
	}
	out := make([]DeadLetter, 0, total)
	for {
		wait := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl), 10*time.Millisecond))
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(wait))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			return out, nil // the rest was removed while we read
		}
		if err != nil {
			return out, fmt.Errorf("reading stream %s: %w", StreamDLQ, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, fmt.Errorf("reading stream %s: %w", StreamDLQ, err)
		}
		out = append(out, deadLetterOf(md.Sequence.Stream, md.Timestamp, msg.Subject(), msg.Headers(), nil))
		if md.NumPending == 0 {
			return out, nil
		}
	}
}

// Get returns one dead letter with its message, or ErrDeadLetterNotFound.
func (d *DLQ) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: no %d in %s", ErrDeadLetterNotFound, seq, StreamDLQ)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("reading dead letter %d: %w", seq, err)
	}
	return deadLetterOf(m.Sequence, m.Time, m.Subject, m.Header, m.Data), nil
}

func deadLetterOf(seq uint64, t time.Time, subject string, h nats.Header, data []byte) DeadLetter {
	attempts, _ := strconv.Atoi(h.Get(HeaderAttempts))
	return DeadLetter{
		Seq: seq, Time: t, Stage: strings.TrimPrefix(subject, SubjectDLQ),
		OrderID: h.Get(HeaderOrderID), Reason: h.Get(HeaderReason), Subject: h.Get(HeaderSubject),
		ReplayOf: h.Get(HeaderReplayOf), Attempts: attempts, Header: h, Data: data,
	}
}

// replayable reports whether subject is one a stage consumes.
func replayable(subject string) bool {
	for _, p := range []string{SubjectOrders, SubjectJobs, SubjectResults} {
		if strings.HasPrefix(subject, p) && len(subject) > len(p) {
			return true
		}
	}
	return false
}

// ReplayOutcome is what became of one dead letter of ReplayAll: Err says
// why it was not replayed (Replayed.Stream is set when it was replayed but
// not removed).
type ReplayOutcome struct {
	Seq      uint64
	Replayed Replayed
	Err      error
}

// ReplayAll replays each dead letter in turn (see Replay), going on past
// failures: what radgate dlq replay and the console's "Replay selected"
// both do.
func (d *DLQ) ReplayAll(ctx context.Context, seqs []uint64, keep bool) []ReplayOutcome {
	out := make([]ReplayOutcome, 0, len(seqs))
	for _, seq := range seqs {
		r, err := d.Replay(ctx, seq, keep)
		out = append(out, ReplayOutcome{Seq: seq, Replayed: r, Err: err})
	}
	return out
}

// Replay sends dead letter seq again to the subject it was first published
// to, and removes it from the DLQ stream once JetStream has stored the
// replay (unless keep). The replay carries the order id and HeaderReplayOf =
// seq, so the stage that handles it re-opens the order's failed engines
// (see replayReset), and a Nats-Msg-Id of its own, "replay.<seq>": the
// original id may still be in the duplicate window, which would drop the
// replay, while replaying the same dead letter twice within the window
// stores it once (Replayed.Duplicate).
//
// A replayed result reaches every destination's consumer, not only the one
// that failed: sinks are idempotent, so the others write nothing new.
func (d *DLQ) Replay(ctx context.Context, seq uint64, keep bool) (Replayed, error) {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return Replayed{}, err
	}
	r := Replayed{DeadLetter: dl}
	if !replayable(dl.Subject) {
		return r, fmt.Errorf("%w: dead letter %d names subject %q (%s)", ErrNotReplayable, seq, dl.Subject, HeaderSubject)
	}
	out := nats.NewMsg(dl.Subject)
	out.Data = dl.Data
	if dl.OrderID != "" {
		out.Header.Set(HeaderOrderID, dl.OrderID)
	}
	id := strconv.FormatUint(seq, 10)
	out.Header.Set(HeaderReplayOf, id)
	ack, err := d.js.PublishMsg(ctx, out, jetstream.WithMsgID("replay."+id))
	if err != nil {
		return r, fmt.Errorf("replaying dead letter %d to %s: %w", seq, dl.Subject, err)
	}
	r.Stream, r.Seq, r.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	if keep {
		return r, nil
	}
	s, err := d.stream(ctx)
	if err == nil {
		if err = s.DeleteMsg(ctx, seq); err != nil {
			if _, gone := s.GetMsg(ctx, seq); errors.Is(gone, jetstream.ErrMsgNotFound) {
				err = nil // removed meanwhile (a concurrent replay)
			}
		}
	}
	if err != nil {
		return r, fmt.Errorf("dead letter %d was replayed (%s seq %d) but not removed from %s: %w", seq, r.Stream, r.Seq, StreamDLQ, err)
	}
	r.Removed = true
	return r, nil
}
