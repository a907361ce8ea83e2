package pipeline

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/broker"
)

// Fairness between facilities. The router and inference consumers hold a
// window of pending messages (Options.FairWindow) in a fairQueue, one
// queue per facility token of the subject (broker.FacilityOfSubject), and
// their workers take from the facilities in turn: a facility's burst is
// served one message per turn beside every other facility with work in the
// window, instead of ahead of it. Messages waiting in the window are kept
// alive (InProgress) so JetStream gives them to no one else. Priority is
// not a turn: urgent work has its own consumers (stageRunner), so a stat
// order never waits behind routine ones of any facility.

// DefaultFairWindow is how many messages each router and inference consumer
// of a radgate process holds to serve facilities in turn.
const DefaultFairWindow = 1024

// fairQueue is a round-robin queue of messages by key (facility). pop
// blocks until a message is there or the queue is closed.
type fairQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	byKey  map[string][]jetstream.Msg
	ring   []string // keys with messages, in turn order
	next   int      // index in ring of the key whose turn it is
	n      int
	limit  int
	closed bool
}

func newFairQueue(limit int) *fairQueue {
	q := &fairQueue{byKey: map[string][]jetstream.Msg{}, limit: max(limit, 1)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push adds m under key, waiting while the queue holds limit messages. It
// reports false (m not queued) once the queue is closed.
func (q *fairQueue) push(key string, m jetstream.Msg) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n >= q.limit && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return false
	}
	if len(q.byKey[key]) == 0 {
		q.ring = append(q.ring, key)
	}
	q.byKey[key] = append(q.byKey[key], m)
	q.n++
	q.cond.Broadcast()
	return true
}

// pop takes the next message, the oldest of the key whose turn it is; ok
// is false once the queue is closed.
func (q *fairQueue) pop() (m jetstream.Msg, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ring) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	key := q.ring[q.next]
	msgs := q.byKey[key]
	m, msgs[0] = msgs[0], nil
	if len(msgs) == 1 {
		delete(q.byKey, key)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...) // the next key moves into this turn
	} else {
		q.byKey[key] = msgs[1:]
		q.next++
	}
	q.n--
	q.cond.Broadcast()
	return m, true
}

// close ends the queue and returns what was still in it.
func (q *fairQueue) close() []jetstream.Msg {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	var rest []jetstream.Msg
	for _, k := range q.ring {
		rest = append(rest, q.byKey[k]...)
	}
	q.byKey, q.ring, q.n = map[string][]jetstream.Msg{}, nil, 0
	q.cond.Broadcast()
	return rest
}

// waiting returns the messages in the queue now.
func (q *fairQueue) waiting() []jetstream.Msg {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]jetstream.Msg, 0, q.n)
	for _, k := range q.ring {
		out = append(out, q.byKey[k]...)
	}
	return out
}

// facilityKey is the facility token of a work subject; the layout before
// facilities (and anything else) counts as broker.NoFacility.
func facilityKey(subject string) string {
	if f, ok := broker.FacilityOfSubject(subject); ok {
		return f
	}
	return broker.NoFacility
}

// facilityLabel is the facility label of a metric for subject: a
// configured facility's id, else broker.NoFacility, so the label's values
// are bounded by the configured facility list.
func (p *Pipeline) facilityLabel(subject string) string {
	f := facilityKey(subject)
	if f == broker.NoFacility {
		return f
	}
	if id := p.opts.Facilities.Resolve(f); id != "" && broker.Token(id) == f {
		return id
	}
	return broker.NoFacility
}
