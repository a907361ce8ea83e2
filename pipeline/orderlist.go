package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

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
	if old.ID == "" || old.State != cur.State {
		_, err := s.js.Publish(ctx, broker.SubjectOrderIndex+cur.ID, []byte(cur.ID),
			jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil && !broker.IsWrongSequence(err) && s.log != nil {
			s.log.Warn("writing the order list's time index", "order", cur.ID, "err", err)
		}
	}
	if cur.Accession != nil && cur.Accession.Value != "" && (old.Accession == nil || old.Accession.Value != cur.Accession.Value) {
		if _, err := s.kv.Put(ctx, accKeyName(cur.Accession.Value), []byte(cur.ID)); err != nil && s.log != nil {
			s.log.Warn("writing the order list's accession index", "order", cur.ID, "err", err)
		}
	}
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
	for read := 0; seq > 0; seq-- {
		if read == listScanBudget {
			page.Next = cursor(seq)
			return page, nil
		}
		read++
		m, err := str.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out
		}
		if err != nil {
			return page, fmt.Errorf("reading the order index at %d: %w", seq, err)
		}
		id := strings.TrimPrefix(m.Subject, broker.SubjectOrderIndex)
		if q.Search != "" && !strings.HasPrefix(id, q.Search) {
			continue
		}
		st, err := s.get(ctx, id)
		if errors.Is(err, radgate.ErrOrderNotFound) {
			continue // the order aged out before its index entry
		}
		if err != nil {
			return page, err
		}
		if !q.Since.IsZero() && st.ReceivedAt.Before(q.Since) {
			break // the index is in arrival order: older ones follow
		}
		if !matches(st, q) {
			continue
		}
		if len(page.Orders) == limit {
			page.Next = cursor(seq)
			return page, nil
		}
		page.Orders = append(page.Orders, st)
	}
	return page, nil
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
