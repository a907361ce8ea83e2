package pipeline

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// BenchmarkListOrders lists 100,000 orders in the store (embedded NATS):
// the first page, page 50 (by cursor), a first page filtered on a state
// only 1 order in 100 has (read from the state index), and one filtered on
// the state 99 in 100 have (scanning the time index), and filtered on a
// facility 99 in 100 orders have (scan) and one 1 in 100 have (the facility
// index). Compare ns/op of page50 to page1: the
// index is read from the cursor's sequence, so it should be flat.
//
//	go test ./pipeline -run '^$' -bench BenchmarkListOrders -benchtime 20x
func BenchmarkListOrders(b *testing.B) {
	const n = 100_000
	h := newIdleHarness(b, nil)
	js := h.topo.JS
	ctx := b.Context()
	t0 := time.Now().Add(-n * time.Second)
	var futs []jetstream.PubAckFuture
	flush := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("seeding timed out")
		}
		for _, f := range futs {
			select {
			case err := <-f.Err():
				b.Fatal(err)
			default:
			}
		}
		futs = futs[:0]
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%016x", i)
		st := radgate.OrderStatus{ID: id, Key: "k" + id, State: radgate.StateDelivered, Facility: "north", Priority: "routine",
			ReceivedAt: t0.Add(time.Duration(i) * time.Second), Accession: &radgate.Identifier{Value: fmt.Sprintf("A%d", i)},
			Engines: map[string]radgate.EngineProgress{"cxr": {State: radgate.StateDelivered}}}
		if i%100 == 0 {
			st.State = radgate.StateFailed
		}
		if i%100 == 50 {
			st.Facility = "east" // 1 in 100: read from the facility index
		}
		v, err := json.Marshal(st)
		require.NoError(b, err)
		f1, err := js.PublishAsync("$KV."+broker.BucketOrders+"."+orderKeyName(id), v)
		require.NoError(b, err)
		f2, err := js.PublishAsync(broker.SubjectOrderIndex+id, []byte(id))
		require.NoError(b, err)
		f3, err := js.PublishAsync(broker.SubjectOrderStates+string(st.State)+"."+id, []byte(fmt.Sprint(i)))
		require.NoError(b, err)
		f4, err := js.PublishAsync(broker.SubjectOrderFacilities+broker.Token(st.Facility)+"."+id, []byte(fmt.Sprint(i)))
		require.NoError(b, err)
		futs = append(futs, f1, f2, f3, f4)
		if i%5000 == 0 {
			flush()
		}
	}
	flush()
	cursor := ""
	for range 49 {
		page, err := h.p.ListOrders(ctx, radgate.ListQuery{Cursor: cursor})
		require.NoError(b, err)
		require.Len(b, page.Orders, listDefault)
		cursor = page.Next
	}
	run := func(name string, q radgate.ListQuery, want string) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				page, err := h.p.ListOrders(ctx, q)
				if err != nil || len(page.Orders) != listDefault || page.Orders[0].ID != want {
					b.Fatalf("page: %d orders, err %v", len(page.Orders), err)
				}
			}
		})
	}
	run("page1", radgate.ListQuery{}, fmt.Sprintf("%016x", n))
	run("page50", radgate.ListQuery{Cursor: cursor}, fmt.Sprintf("%016x", n-49*listDefault))
	run("failed_page1", radgate.ListQuery{State: string(radgate.StateFailed)}, fmt.Sprintf("%016x", n))
	run("delivered_page1", radgate.ListQuery{State: string(radgate.StateDelivered)}, fmt.Sprintf("%016x", n-1))
	run("facility_page1", radgate.ListQuery{Facility: "north"}, fmt.Sprintf("%016x", n))
	run("rare_facility_page1", radgate.ListQuery{Facility: "east"}, fmt.Sprintf("%016x", n-50))
	// The same page without the facility index (scanning the time index),
	// as before it existed.
	dense := listDense
	listDense = 1 << 62
	run("rare_facility_page1_scan", radgate.ListQuery{Facility: "east"}, fmt.Sprintf("%016x", n-50))
	listDense = dense
}
