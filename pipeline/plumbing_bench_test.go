package pipeline

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/radgate/radgate"
)

// BenchmarkOrderPlumbing: what an order costs radgate around its engine —
// the order store's KV reads and writes, its history, the ORDERS, JOBS and
// RESULTS streams and their consumers' acks, the object store, usage, JSON
// — with an engine and a destination that cost nothing (the harness's
// scorer and recorder) and the embedded NATS server in this process. Each
// iteration posts 20 orders at once and waits until the destination has
// all their results (the last iteration's until they are delivered);
// cpu-ms/order is the process CPU (getrusage: NATS included) per order,
// B/op and allocs/op are per iteration (20 orders).
//
//	go test ./pipeline -run '^$' -bench OrderPlumbing -benchtime 20x -count 5
func BenchmarkOrderPlumbing(b *testing.B) {
	const orders = 20
	h := newBenchHarness(b, func(o *Options) { o.StableAfter = -1 })
	ctx := context.Background()
	seq := 0
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportAllocs()
	start := cpu()
	var ids []string
	for b.Loop() {
		ids = ids[:0]
		for range orders {
			seq++
			acsn := fmt.Sprintf("P%d", seq)
			h.arch.add(acsn, "7."+acsn, "CR", "CHEST", "sop-1")
			st, err := h.p.Accept(ctx, sr(acsn, "p"+acsn))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, st.ID)
		}
		// The recorder, not the order store, says when: polling the
		// store would cost as much as some of what is measured.
		for delivered(h.sink) < seq {
			time.Sleep(time.Millisecond)
		}
	}
	for _, id := range ids {
		for {
			st, err := h.p.Status(ctx, id)
			if err == nil && st.State.Terminal() {
				if st.State != radgate.StateDelivered {
					b.Fatalf("order %s: %s", id, st.State)
				}
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	b.ReportMetric(float64((cpu()-start).Microseconds())/1e3/float64(b.N*orders), "cpu-ms/order")
}

// delivered counts the results r has (results() copies them).
func delivered(r *recorder) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}
