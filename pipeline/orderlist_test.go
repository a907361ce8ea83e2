package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// putOrder creates (or changes) order id through the store, as the stages do.
func putOrder(t testing.TB, s *orderStore, id string, fn func(*radgate.OrderStatus)) {
	t.Helper()
	_, err := s.update(context.Background(), id, true, func(st *radgate.OrderStatus) error {
		fn(st)
		return nil
	})
	require.NoError(t, err)
}

// listIDs lists one page both ways a state filter can be answered (the
// state index, scanning the time index) and requires the same page.
func listIDs(t *testing.T, p *Pipeline, q radgate.ListQuery) ([]string, string) {
	t.Helper()
	defer func(d uint64) { listDense = d }(listDense)
	listDense = 1 << 62 // scan
	scanned, err := p.ListOrders(t.Context(), q)
	require.NoError(t, err)
	listDense = 1 // the state index
	page, err := p.ListOrders(t.Context(), q)
	require.NoError(t, err)
	require.Equal(t, scanned, page, "the state index and the time scan disagree")
	var ids []string
	for _, o := range page.Orders {
		ids = append(ids, o.ID)
	}
	return ids, page.Next
}

func hexID(i int) string { return fmt.Sprintf("%08x", i) }

// seedOrders creates orders 1..n, one a minute from t0: odd ones at
// facility "north" and urgent, every third one delivered by engine "cxr"
// on route "chest", each with accession "A<i>".
func seedOrders(t *testing.T, s *orderStore, n int, t0 time.Time) {
	for i := 1; i <= n; i++ {
		putOrder(t, s, hexID(i), func(st *radgate.OrderStatus) {
			st.ReceivedAt = t0.Add(time.Duration(i) * time.Minute)
			st.Accession = &radgate.Identifier{System: "urn:acsn", Value: fmt.Sprintf("A%d", i)}
			st.Facility, st.Priority = "south", "routine"
			if i%2 == 1 {
				st.Facility, st.Priority = "north", "stat"
			}
		})
		if i%3 == 0 {
			putOrder(t, s, hexID(i), func(st *radgate.OrderStatus) {
				st.Route = &radgate.RouteDecision{Matched: true, Routes: []string{"chest"}, Engines: []string{"cxr"}}
				st.Engines = map[string]radgate.EngineProgress{"cxr": {State: radgate.StateDelivered}}
				st.State = radgate.StateDelivered
			})
		}
	}
}

func TestListOrdersNewestFirstAndFilters(t *testing.T) {
	h := newIdleHarness(t, nil)
	t0 := time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC)
	seedOrders(t, h.p.store, 12, t0)

	ids, next := listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{hexID(12), hexID(11), hexID(10), hexID(9), hexID(8), hexID(7), hexID(6), hexID(5), hexID(4), hexID(3), hexID(2), hexID(1)}, ids)
	require.Empty(t, next)

	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateDelivered)})
	require.Equal(t, []string{hexID(12), hexID(9), hexID(6), hexID(3)}, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateDelivered), Facility: "north"})
	require.Equal(t, []string{hexID(9), hexID(3)}, ids, "filters are ANDed")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Facility: "north"})
	require.Equal(t, []string{hexID(11), hexID(9), hexID(7), hexID(5), hexID(3), hexID(1)}, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Engine: "cxr", Route: "chest", Priority: "stat"})
	require.Equal(t, []string{hexID(9), hexID(3)}, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Route: "abdomen"})
	require.Empty(t, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Since: t0.Add(4 * time.Minute), Until: t0.Add(7 * time.Minute)})
	require.Equal(t, []string{hexID(6), hexID(5), hexID(4)}, ids, "Since inclusive, Until exclusive")
}

func TestListOrdersSearch(t *testing.T) {
	h := newIdleHarness(t, nil)
	seedOrders(t, h.p.store, 30, time.Now())

	ids, _ := listIDs(t, h.p, radgate.ListQuery{Search: "A7"})
	require.Equal(t, []string{hexID(7)}, ids, "an accession value, exactly (not A70…)")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Search: hexID(0x1d)})
	require.Equal(t, []string{hexID(0x1d)}, ids, "a whole order id")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Search: "0000001"})
	require.Equal(t, []string{hexID(0x1e), hexID(0x1d), hexID(0x1c), hexID(0x1b), hexID(0x1a),
		hexID(0x19), hexID(0x18), hexID(0x17), hexID(0x16), hexID(0x15), hexID(0x14), hexID(0x13), hexID(0x12),
		hexID(0x11), hexID(0x10)}, ids, "the start of an order id")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Search: "A7", State: string(radgate.StateDelivered)})
	require.Empty(t, ids, "search is ANDed with the filters")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Search: "nope"})
	require.Empty(t, ids)
}

func TestListOrdersPagesStayPutWhileOrdersArrive(t *testing.T) {
	h := newIdleHarness(t, nil)
	seedOrders(t, h.p.store, 25, time.Now())

	p1, next := listIDs(t, h.p, radgate.ListQuery{Limit: 10})
	require.Len(t, p1, 10)
	require.Equal(t, hexID(25), p1[0])
	// New orders arrive between pages: the next page goes on where the
	// first ended, neither repeating nor skipping an order.
	seedMore := func(from, to int) {
		for i := from; i <= to; i++ {
			putOrder(t, h.p.store, hexID(i), func(*radgate.OrderStatus) {})
		}
	}
	seedMore(26, 31)
	p2, next := listIDs(t, h.p, radgate.ListQuery{Limit: 10, Cursor: next})
	require.Equal(t, hexID(15), p2[0])
	seedMore(32, 33)
	p3, next := listIDs(t, h.p, radgate.ListQuery{Limit: 10, Cursor: next})
	require.Equal(t, []string{hexID(5), hexID(4), hexID(3), hexID(2), hexID(1)}, p3)
	require.Empty(t, next)

	first, _ := listIDs(t, h.p, radgate.ListQuery{Limit: 1})
	require.Equal(t, []string{hexID(33)}, first)

	// A state filter pages the same way: 33 orders, 24, 21 … delivered.
	q := radgate.ListQuery{State: string(radgate.StateDelivered), Limit: 3}
	d1, next := listIDs(t, h.p, q)
	require.Equal(t, []string{hexID(24), hexID(21), hexID(18)}, d1)
	putOrder(t, h.p.store, hexID(34), func(st *radgate.OrderStatus) { st.State = radgate.StateDelivered })
	q.Cursor = next
	d2, _ := listIDs(t, h.p, q)
	require.Equal(t, []string{hexID(15), hexID(12), hexID(9)}, d2)

	_, err := h.p.ListOrders(t.Context(), radgate.ListQuery{Cursor: "garbage"})
	require.ErrorContains(t, err, `cursor "garbage"`)

	all, _ := listIDs(t, h.p, radgate.ListQuery{Limit: 10000})
	require.Len(t, all, 34, "Limit is capped, not refused")
}

func TestListOrdersStateChangeMovesBetweenFilters(t *testing.T) {
	h := newIdleHarness(t, nil)
	putOrder(t, h.p.store, "ab01", func(*radgate.OrderStatus) {})
	ids, _ := listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateReceived)})
	require.Equal(t, []string{"ab01"}, ids)

	putOrder(t, h.p.store, "ab01", func(st *radgate.OrderStatus) { st.State = radgate.StateRouted })
	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateReceived)})
	require.Empty(t, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateRouted)})
	require.Equal(t, []string{"ab01"}, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"ab01"}, ids, "a state change does not list the order twice")
}

// An order is listed under its facility id and the facility its source
// named; a change of either moves it, and it is never listed twice.
func TestListOrdersFacilityChangeMovesBetweenFilters(t *testing.T) {
	h := newIdleHarness(t, nil)
	putOrder(t, h.p.store, "fa01", func(st *radgate.OrderStatus) { st.Facility = "North Clinic" })
	putOrder(t, h.p.store, "fa02", func(st *radgate.OrderStatus) { st.Facility = "south" })
	ids, _ := listIDs(t, h.p, radgate.ListQuery{Facility: "North Clinic"})
	require.Equal(t, []string{"fa01"}, ids)

	putOrder(t, h.p.store, "fa01", func(st *radgate.OrderStatus) { st.FacilityID = "north" })
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Facility: "north"})
	require.Equal(t, []string{"fa01"}, ids, "by its facility id")
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Facility: "North Clinic"})
	require.Equal(t, []string{"fa01"}, ids, "and still by the name its source gave")

	putOrder(t, h.p.store, "fa01", func(st *radgate.OrderStatus) { st.Facility, st.FacilityID = "south", "south" })
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Facility: "north"})
	require.Empty(t, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{Facility: "south"})
	require.Equal(t, []string{"fa02", "fa01"}, ids, "newest first by arrival, listed once")
	str, err := h.topo.JS.Stream(t.Context(), broker.StreamOrderFacilities)
	require.NoError(t, err)
	info, err := str.Info(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs, "the old facilities' entries are purged")
}

// A crash between the order's write and its index's leaves the index stale:
// an order written without its index entry, an accession pointing at an
// order that no longer has it, an entry for an order gone. None shows a
// wrong order or state, and the next change of the order indexes it.
func TestListOrdersStaleIndexNeverShowsWrongState(t *testing.T) {
	h := newIdleHarness(t, nil)
	s := h.p.store
	putOrder(t, s, "cd01", func(st *radgate.OrderStatus) {
		st.Accession = &radgate.Identifier{Value: "ACC1"}
	})
	// The index says ACC1 is order cd01, but the order was re-written
	// (without its index) with another accession and a new state.
	raw := []byte(`{"id":"cd01","key":"k","state":"failed","accession":{"value":"ACC2"}}`)
	_, err := s.kv.Put(t.Context(), orderKeyName("cd01"), raw)
	require.NoError(t, err)
	ids, _ := listIDs(t, h.p, radgate.ListQuery{Search: "ACC1"})
	require.Empty(t, ids, "a stale accession entry finds nothing")
	page, err := h.p.ListOrders(t.Context(), radgate.ListQuery{State: string(radgate.StateReceived)})
	require.NoError(t, err)
	require.Empty(t, page.Orders, "the list reads the current state, not the index's")
	page, err = h.p.ListOrders(t.Context(), radgate.ListQuery{})
	require.NoError(t, err)
	require.Len(t, page.Orders, 1)
	require.Equal(t, radgate.StateFailed, page.Orders[0].State)

	// An order created without its time entry (the crash came first) is
	// listed once its next state change writes it.
	_, err = s.kv.Create(t.Context(), orderKeyName("cd02"), []byte(`{"id":"cd02","state":"received"}`))
	require.NoError(t, err)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"cd01"}, ids)
	putOrder(t, s, "cd02", func(st *radgate.OrderStatus) { st.State = radgate.StateRouted })
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"cd02", "cd01"}, ids)

	// A crash between putting the new state entry and purging the old one
	// leaves the order in two states' indexes: it lists under its current
	// one only.
	_, err = h.topo.JS.Publish(t.Context(), broker.SubjectOrderStates+"received.cd02", []byte("2"))
	require.NoError(t, err)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateReceived)})
	require.Empty(t, ids)
	ids, _ = listIDs(t, h.p, radgate.ListQuery{State: string(radgate.StateRouted)})
	require.Equal(t, []string{"cd02"}, ids)

	// An entry whose order is gone (aged out, deleted) is skipped.
	require.NoError(t, s.kv.Purge(t.Context(), orderKeyName("cd01")))
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"cd02"}, ids)

	// The entry is written once: a repeated write leaves the order where it was.
	s.indexOrder(t.Context(), radgate.OrderStatus{}, radgate.OrderStatus{ID: "cd01"})
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"cd02"}, ids)
	str, err := h.topo.JS.Stream(t.Context(), broker.StreamOrderIndex)
	require.NoError(t, err)
	info, err := str.Info(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs)
	putOrder(t, s, "cd01", func(*radgate.OrderStatus) {}) // created again
	ids, _ = listIDs(t, h.p, radgate.ListQuery{})
	require.Equal(t, []string{"cd02", "cd01"}, ids, "in its first place")
}
