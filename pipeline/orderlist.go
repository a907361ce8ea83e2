package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// Page sizes of ListOrders, and how many index entries one call reads at
// most while looking for orders that match its filters (a call that reaches
// it returns what it found, with a cursor to continue).
const (
	listDefault    = 50
	listMax        = 500
	listScanBudget = 20000
)

// The order list's index (ARCHITECTURE.md, "Order list"):
//   - the time index, stream broker.StreamOrderIndex: one message per order,
//     subject broker.SubjectOrderIndex + id, written once when the order is
//     created, so reading the stream backwards by sequence lists orders
//     newest first; a cursor is a sequence, so it stays put while orders
//     arrive (they take higher sequences);
//   - the state index, stream broker.StreamOrderStates, and the facility
//     index, stream broker.StreamOrderFacilities: one message per order under
//     its current state / each facility it is known by, its value the
//     order's time sequence; a filter that few orders match reads these
//     instead of scanning the time index;
//   - "acc.<hash>" in radgate_orders: accession value → order id, for Search.
//
// Every entry is only a pointer: ListOrders reads each order's current
// state from radgate_orders and filters on that, so an index entry a crash
// left stale never shows a wrong state.

func accKeyName(value string) string {
	sum := sha256.Sum256([]byte(value))
	return "acc." + hex.EncodeToString(sum[:12])
}

// indexOrder writes cur's index entries after a change from old (old.ID ==
// "": created). Writes are idempotent: the time entry is written only while
// its subject is empty (expected last subject sequence 0), so a retry after
// a crash adds it once and never moves an order already listed.
func (s *orderStore) indexOrder(ctx context.Context, old, cur radgate.OrderStatus) {
	if s.js == nil {
		return
	}
	if old.ID == "" || old.State != cur.State || !slices.Equal(facilitiesOf(old), facilitiesOf(cur)) {
		s.indexState(ctx, old, cur)
	}
	if cur.Accession != nil && cur.Accession.Value != "" && (old.Accession == nil || old.Accession.Value != cur.Accession.Value) {
		if _, err := s.kv.Put(ctx, accKeyName(cur.Accession.Value), []byte(cur.ID)); err != nil && s.log != nil {
			s.log.Warn("writing the order list's accession index", "order", cur.ID, "err", err)
		}
	}
}

// indexState writes cur's time entry (once) and moves its state entry from
// old's state to cur's: put the new one, then purge the old one. A crash in
// between lists the order under both states until its next change; the
// list re-checks each order's state, so it shows it under its current one.
func (s *orderStore) indexState(ctx context.Context, old, cur radgate.OrderStatus) {
	warn := func(what string, err error) {
		if s.log != nil {
			s.log.Warn("writing the order list's "+what, "order", cur.ID, "err", err)
		}
	}
	tseq, err := s.timeEntry(ctx, cur.ID, old.ID == "")
	if err != nil {
		warn("time index", err)
		return
	}
	s.indexFacilities(ctx, old, cur, tseq, warn)
	if !stateToken(string(cur.State)) || (old.ID != "" && old.State == cur.State) {
		return
	}
	if _, err := s.js.Publish(ctx, broker.SubjectOrderStates+string(cur.State)+"."+cur.ID, []byte(strconv.FormatUint(tseq, 10))); err != nil {
		warn("state index", err)
		return
	}
	if old.ID != "" && old.State != cur.State && stateToken(string(old.State)) {
		str, err := s.indexStream(ctx, broker.StreamOrderStates)
		if err == nil {
			err = str.Purge(ctx, jetstream.WithPurgeSubject(broker.SubjectOrderStates+string(old.State)+"."+cur.ID))
		}
		if err != nil {
			warn("state index", err)
		}
	}
}

// facilitiesOf is what an order's facility filter matches: its facility id
// and the facility its source named, sorted, without blanks or repeats.
func facilitiesOf(st radgate.OrderStatus) []string {
	var out []string
	for _, f := range []string{st.FacilityID, st.Facility} {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// indexFacilities puts cur's facility entries that old lacked, then purges
// old's that cur no longer has (a crash in between lists the order under
// both until its next change; the list re-checks each order's facility).
func (s *orderStore) indexFacilities(ctx context.Context, old, cur radgate.OrderStatus, tseq uint64, warn func(string, error)) {
	was, now := facilitiesOf(old), facilitiesOf(cur)
	if old.ID != "" && slices.Equal(was, now) {
		return
	}
	for _, f := range now {
		if old.ID != "" && slices.Contains(was, f) {
			continue
		}
		if _, err := s.js.Publish(ctx, broker.SubjectOrderFacilities+broker.Token(f)+"."+cur.ID, []byte(strconv.FormatUint(tseq, 10))); err != nil {
			warn("facility index", err)
			return
		}
	}
	for _, f := range was {
		if slices.Contains(now, f) {
			continue
		}
		str, err := s.indexStream(ctx, broker.StreamOrderFacilities)
		if err == nil {
			err = str.Purge(ctx, jetstream.WithPurgeSubject(broker.SubjectOrderFacilities+broker.Token(f)+"."+cur.ID))
		}
		if err != nil {
			warn("facility index", err)
		}
	}
}

// timeEntry returns order id's time-index sequence, writing its entry
// first when it has none (created: a new order; else a crash lost it).
func (s *orderStore) timeEntry(ctx context.Context, id string, created bool) (uint64, error) {
	subj := broker.SubjectOrderIndex + id
	if !created {
		str, err := s.indexStream(ctx, broker.StreamOrderIndex)
		if err != nil {
			return 0, err
		}
		m, err := str.GetLastMsgForSubject(ctx, subj)
		if err == nil {
			return m.Sequence, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, err
		}
	}
	ack, err := s.js.Publish(ctx, subj, []byte(id), jetstream.WithExpectLastSequencePerSubject(0))
	if created && err != nil && broker.IsWrongSequence(err) {
		return s.timeEntry(ctx, id, false) // written already: keep its place
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// indexStream returns the index stream name, looked up once.
func (s *orderStore) indexStream(ctx context.Context, name string) (jetstream.Stream, error) {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if str, ok := s.indexStreams[name]; ok {
		return str, nil
	}
	str, err := s.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	if s.indexStreams == nil {
		s.indexStreams = map[string]jetstream.Stream{}
	}
	s.indexStreams[name] = str
	return str, nil
}

// stateToken reports whether state can be a subject token of the state
// index (every radgate.OrderState can).
func stateToken(state string) bool {
	if state == "" {
		return false
	}
	for _, c := range state {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// ListOrders lists orders newest first (by arrival), those matching every
// filter of q, one page at a time (radgate.OrderLister).
func (p *Pipeline) ListOrders(ctx context.Context, q radgate.ListQuery) (radgate.ListPage, error) {
	return p.store.list(ctx, q)
}

func (s *orderStore) list(ctx context.Context, q radgate.ListQuery) (radgate.ListPage, error) {
	var page radgate.ListPage
	limit := q.Limit
	if limit <= 0 {
		limit = listDefault
	}
	limit = min(limit, listMax)
	if q.Search != "" {
		if st, ok, err := s.searchExact(ctx, q.Search); err != nil || ok {
			if ok && q.Cursor == "" && matches(st, q) {
				page.Orders = []radgate.OrderStatus{st}
			}
			return page, err
		}
	}
	str, err := s.js.Stream(ctx, broker.StreamOrderIndex)
	if err != nil {
		return page, fmt.Errorf("opening the order index: %w", err)
	}
	var seq uint64
	if q.Cursor != "" {
		seq, err = parseCursor(q.Cursor)
		if err != nil {
			return page, err
		}
	} else {
		seq = str.CachedInfo().State.LastSeq
		if info, err := str.Info(ctx); err == nil {
			seq = info.State.LastSeq
		}
	}
	if q.State != "" && q.Search == "" && stateToken(q.State) {
		seqs, ids, ok, err := s.indexEntries(ctx, broker.StreamOrderStates, broker.SubjectOrderStates+q.State+".", seq, str.CachedInfo().State.LastSeq)
		if err != nil {
			return page, err
		}
		if ok {
			return s.listEntries(ctx, q, limit, seqs, ids)
		}
	}
	if q.Facility != "" && q.Search == "" {
		seqs, ids, ok, err := s.indexEntries(ctx, broker.StreamOrderFacilities, broker.SubjectOrderFacilities+broker.Token(q.Facility)+".", seq, str.CachedInfo().State.LastSeq)
		if err != nil {
			return page, err
		}
		if ok {
			return s.listEntries(ctx, q, limit, seqs, ids)
		}
	}
	chunk := uint64(listChunk)
	if !filtered(q) {
		chunk = uint64(limit) + 1 // every order matches: read just the page
	}
	for read := 0; seq > 0; {
		if read >= listScanBudget {
			page.Next = cursor(seq)
			return page, nil
		}
		n := min(chunk, seq)
		entries, err := s.readIndex(ctx, str, seq, n, q.Search)
		if err != nil {
			return page, err
		}
		read += int(n)
		for k, e := range entries {
			at := seq - uint64(k)
			if !e.found {
				continue // aged out, or not the search's
			}
			if !q.Since.IsZero() && e.st.ReceivedAt.Before(q.Since) {
				return page, nil // the index is in arrival order: older ones follow
			}
			if !matches(e.st, q) {
				continue
			}
			if len(page.Orders) == limit {
				page.Next = cursor(at)
				return page, nil
			}
			page.Orders = append(page.Orders, e.st)
		}
		seq -= n
	}
	return page, nil
}

// indexEntries returns the time sequences (newest first, at most upTo) and
// ids of the orders under prefix in an index stream (the state or the
// facility index), or ok false when more than one order in listDense of
// total is there: then scanning the time index finds a page sooner than
// reading them all.
func (s *orderStore) indexEntries(ctx context.Context, stream, prefix string, upTo, total uint64) (seqs []uint64, ids []string, ok bool, err error) {
	what := "the state index"
	if stream == broker.StreamOrderFacilities {
		what = "the facility index"
	}
	cons, err := s.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		FilterSubject: prefix + "*", AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		MemoryStorage: true, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("reading %s: %w", what, err)
	}
	name := cons.CachedInfo().Name
	defer func() { _ = s.js.DeleteConsumer(context.WithoutCancel(ctx), stream, name) }()
	pending := cons.CachedInfo().NumPending
	if pending > total/listDense {
		return nil, nil, false, nil
	}
	type entry struct {
		seq uint64
		id  string
	}
	var entries []entry
	for got := uint64(0); got < pending; {
		batch, err := cons.Fetch(int(min(pending-got, 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, nil, false, fmt.Errorf("reading %s: %w", what, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			tseq, err := strconv.ParseUint(string(m.Data()), 10, 64)
			if err == nil && tseq <= upTo {
				entries = append(entries, entry{tseq, strings.TrimPrefix(m.Subject(), prefix)})
			}
		}
		if batch.Error() != nil {
			return nil, nil, false, fmt.Errorf("reading %s: %w", what, batch.Error())
		}
		if n == 0 {
			break
		}
		got += uint64(n)
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(b.seq, a.seq) })
	for _, e := range entries {
		seqs, ids = append(seqs, e.seq), append(ids, e.id)
	}
	return seqs, ids, true, nil
}

// listEntries reads the orders ids (at time sequences seqs, newest first)
// and pages those matching q.
func (s *orderStore) listEntries(ctx context.Context, q radgate.ListQuery, limit int, seqs []uint64, ids []string) (radgate.ListPage, error) {
	var page radgate.ListPage
	for len(ids) > 0 {
		n := min(len(ids), limit+1)
		sts := make([]indexEntry, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for k := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := s.get(ctx, ids[k])
				if errors.Is(err, radgate.ErrOrderNotFound) {
					return
				}
				sts[k], errs[k] = indexEntry{st: st, found: err == nil}, err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return page, err
		}
		for k, e := range sts {
			if !e.found || !matches(e.st, q) {
				continue // a stale entry: the order has moved on
			}
			if len(page.Orders) == limit {
				page.Next = cursor(seqs[k])
				return page, nil
			}
			page.Orders = append(page.Orders, e.st)
		}
		seqs, ids = seqs[n:], ids[n:]
	}
	return page, nil
}

// listDense: a state that more than one order in listDense has is listed
// by scanning the time index (a variable for the tests, which try both).
var listDense uint64 = 8

// listChunk is how many index entries ListOrders reads at once when it
// filters, listWorkers how many reads it has in flight.
const (
	listChunk   = 256
	listWorkers = 16
)

func filtered(q radgate.ListQuery) bool {
	return q.State != "" || q.Facility != "" || q.Route != "" || q.Engine != "" || q.Priority != "" ||
		!q.Since.IsZero() || !q.Until.IsZero() || q.Search != ""
}

type indexEntry struct {
	st    radgate.OrderStatus
	found bool
}

// readIndex reads the n index entries from sequence hi down, and each one's
// order, listWorkers at a time: entry k is sequence hi-k. An entry aged out,
// one whose order is gone, or one whose id does not start with prefix is
// not found.
func (s *orderStore) readIndex(ctx context.Context, str jetstream.Stream, hi, n uint64, prefix string) ([]indexEntry, error) {
	out := make([]indexEntry, n)
	errs := make([]error, n)
	next := make(chan uint64)
	var wg sync.WaitGroup
	for range min(listWorkers, int(n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				out[k], errs[k] = s.readEntry(ctx, str, hi-k, prefix)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

func (s *orderStore) readEntry(ctx context.Context, str jetstream.Stream, seq uint64, prefix string) (indexEntry, error) {
	m, err := str.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return indexEntry{}, nil
	}
	if err != nil {
		return indexEntry{}, fmt.Errorf("reading the order index at %d: %w", seq, err)
	}
	id := strings.TrimPrefix(m.Subject, broker.SubjectOrderIndex)
	if !strings.HasPrefix(id, prefix) {
		return indexEntry{}, nil
	}
	st, err := s.get(ctx, id)
	if errors.Is(err, radgate.ErrOrderNotFound) {
		return indexEntry{}, nil // the order aged out before its index entry
	}
	return indexEntry{st: st, found: err == nil}, err
}

// searchExact finds the order whose accession value or whole id is search.
func (s *orderStore) searchExact(ctx context.Context, search string) (radgate.OrderStatus, bool, error) {
	e, err := s.kv.Get(ctx, accKeyName(search))
	switch {
	case err == nil:
		st, err := s.get(ctx, string(e.Value()))
		if err == nil && st.Accession != nil && st.Accession.Value == search {
			return st, true, nil
		}
		if err != nil && !errors.Is(err, radgate.ErrOrderNotFound) {
			return st, false, err
		}
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return radgate.OrderStatus{}, false, fmt.Errorf("reading the accession index: %w", err)
	}
	st, err := s.get(ctx, search)
	if errors.Is(err, radgate.ErrOrderNotFound) {
		return st, false, nil
	}
	return st, err == nil, err
}

// matches reports whether st passes every filter of q but Search.
func matches(st radgate.OrderStatus, q radgate.ListQuery) bool {
	switch {
	case q.State != "" && string(st.State) != q.State,
		q.Facility != "" && st.Facility != q.Facility && st.FacilityID != q.Facility,
		q.Priority != "" && st.Priority != q.Priority && radgate.PriorityClass(st.Priority) != q.Priority,
		q.Engine != "" && !hasEngine(st, q.Engine),
		q.Route != "" && (st.Route == nil || !slices.Contains(st.Route.Routes, q.Route)),
		!q.Since.IsZero() && st.ReceivedAt.Before(q.Since),
		!q.Until.IsZero() && !st.ReceivedAt.Before(q.Until):
		return false
	}
	return true
}

func hasEngine(st radgate.OrderStatus, engine string) bool {
	_, ok := st.Engines[engine]
	return ok
}

// A cursor is the index sequence the next page starts at, in base 36 after
// a version tag; callers treat it as opaque.
func cursor(seq uint64) string { return "1." + strconv.FormatUint(seq, 36) }

func parseCursor(c string) (uint64, error) {
	v, ok := strings.CutPrefix(c, "1.")
	seq, err := strconv.ParseUint(v, 36, 64)
	if !ok || err != nil || seq == 0 {
		return 0, fmt.Errorf("order list cursor %q is not one this radgate gave", c)
	}
	return seq, nil
}
