package broker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// streamSubjects lists a stream's messages as "subject order-id" (and, in
// the DLQ, the subject the dead letter names).
func streamSubjects(t *testing.T, js jetstream.JetStream, name string) []string {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	require.NoError(t, err)
	var out []string
	require.NoError(t, readFrom(t.Context(), s, s.CachedInfo().State.FirstSeq, s.CachedInfo().State.LastSeq, func(m BackupMessage) error {
		line := m.Subject + " " + m.Header.Get(HeaderOrderID)
		if name == StreamDLQ {
			line += " " + m.Header.Get(HeaderSubject)
		}
		out = append(out, line)
		return nil
	}))
	sort.Strings(out)
	return out
}

// A state of version 1 (subjects without the facility) is migrated once by
// concurrent starters: pending work moves to the facility subjects (the
// facility from the result, else from the order), finished work stays,
// the dead letters name the new subjects, and a copy a crashed run left
// is not made twice.
func TestMigrationFacilityTokenMovesPendingWorkOnce(t *testing.T) {
	nc := startNATS(t)
	topo, err := EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	js := topo.JS
	ctx := t.Context()
	meta, err := js.KeyValue(ctx, BucketMeta)
	require.NoError(t, err)
	_, err = meta.Put(ctx, KeyStateVersion, []byte(`{"state_version":1,"radgate_version":"v1"}`))
	require.NoError(t, err)
	_, err = topo.Orders.Put(ctx, "o.a1", []byte(`{"id":"a1","facility_id":"north"}`))
	require.NoError(t, err)
	_, err = topo.Orders.Put(ctx, "o.a2", []byte(`{"id":"a2"}`))
	require.NoError(t, err)

	pub := func(subject, order, msgID string, data string, hdr ...string) uint64 {
		m := nats.NewMsg(subject)
		m.Data = []byte(data)
		m.Header.Set(HeaderOrderID, order)
		if msgID != "" {
			m.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			m.Header.Set(hdr[i], hdr[i+1])
		}
		ack, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
		return ack.Sequence
	}
	// ORDERS: one finished (the router acknowledged it), three pending, one
	// of them half-migrated by a run that died between copy and delete.
	pub("radgate.orders.routine.fhir", "a0", "ev0", "{}")
	router, err := js.CreateOrUpdateConsumer(ctx, StreamOrders, jetstream.ConsumerConfig{Durable: "router",
		FilterSubject: SubjectOrders + "routine.>", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	m, err := router.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.NoError(t, m.DoubleAck(ctx))
	pub("radgate.orders.routine.fhir", "a1", "ev1", `{"source":"fhir"}`)
	pub("radgate.orders.urgent.hl7", "a2", "ev2", "{}")
	half := pub("radgate.orders.routine.watch", "a3", "", "{}")
	pub(OrderSubject("routine", "", "watch"), "a3", "", "{}", HeaderMigratedFrom, strconv.FormatUint(half, 10))
	// JOBS, RESULTS, DLQ: pending.
	pub("radgate.jobs.routine.eng-a", "a1", "job.a1", "{}")
	pub("radgate.results.fhir.routine.eng-a", "a2", "result.a2", `{"order":{"id":"a2","facility_id":"south"}}`)
	pub(SubjectDLQ+"inference", "a1", "", "{}", HeaderSubject, "radgate.jobs.routine.eng-x", HeaderReason, "engine not loaded")

	// Three processes start at once.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Connect(nc.ConnectedUrl(), "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, errs[i] = EnsureTopologyOn(cctx, c, DefaultRetention(), Cluster{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	rec, _ := stateRecord(t, js)
	require.Equal(t, StateRecord{StateVersion: 2, RadgateVersion: RadgateVersion, Migration: "facility-subject-token"}, rec)

	require.Equal(t, []string{
		"radgate.orders.routine._.watch a3",
		"radgate.orders.routine.fhir a0", // finished: left as history
		"radgate.orders.routine.north.fhir a1",
		"radgate.orders.urgent._.hl7 a2",
	}, streamSubjects(t, js, StreamOrders))
	require.Equal(t, []string{"radgate.jobs.routine.north.eng-a a1"}, streamSubjects(t, js, StreamJobs))
	require.Equal(t, []string{"radgate.results.fhir.routine.south.eng-a a2"}, streamSubjects(t, js, StreamResults))
	require.Equal(t, []string{"radgate.dlq.inference a1 radgate.jobs.routine.north.eng-x"}, streamSubjects(t, js, StreamDLQ))

	// Payload, headers and message id come along; the id still in the
	// duplicate window is suffixed.
	s, err := js.Stream(ctx, StreamOrders)
	require.NoError(t, err)
	got, err := s.GetLastMsgForSubject(ctx, "radgate.orders.routine.north.fhir")
	require.NoError(t, err)
	require.Equal(t, `{"source":"fhir"}`, string(got.Data))
	require.Equal(t, "ev1.v2", got.Header.Get(jetstream.MsgIDHeader))
	require.NotEmpty(t, got.Header.Get(HeaderMigratedFrom))

	// The router's filter takes the moved order next, and not the finished one.
	m, err = router.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.Equal(t, "radgate.orders.routine._.watch", m.Subject(), fmt.Sprint(m.Headers()))

	line, err := CheckStateVersion(ctx, js)
	require.NoError(t, err)
	require.Equal(t, "JetStream state version 2 (radgate dev), as this radgate's", line)
}
