package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// v1Layout makes the work streams keep what a radgate of state version 1
// wrote: a stream subject transform drops the facility token from every
// subject published to them, so the pipeline, running, leaves the old
// layout behind (subjects, message ids, the dead letters' HeaderSubject),
// and state version 1 is recorded. on=false removes the transforms, as the
// upgraded radgate's streams have none.
func v1Layout(t *testing.T, js jetstream.JetStream, on bool) {
	t.Helper()
	ctx := t.Context()
	for name, tr := range map[string]*jetstream.SubjectTransformConfig{
		broker.StreamOrders:  {Source: broker.SubjectOrders + "*.*.*", Destination: broker.SubjectOrders + "{{wildcard(1)}}.{{wildcard(3)}}"},
		broker.StreamJobs:    {Source: broker.SubjectJobs + "*.*.*", Destination: broker.SubjectJobs + "{{wildcard(1)}}.{{wildcard(3)}}"},
		broker.StreamResults: {Source: broker.SubjectResults + "*.*.*.*", Destination: broker.SubjectResults + "{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(4)}}"},
	} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		cfg.SubjectTransform = nil
		if on {
			cfg.SubjectTransform = tr
		}
		_, err = js.UpdateStream(ctx, cfg)
		require.NoError(t, err, name)
	}
	if on {
		meta, err := js.KeyValue(ctx, broker.BucketMeta)
		require.NoError(t, err)
		_, err = meta.Put(ctx, broker.KeyStateVersion, []byte(`{"state_version":1,"radgate_version":"v1"}`))
		require.NoError(t, err)
	}
}

// lastSubject is the subject of the last message of stream.
func lastSubject(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	require.NoError(t, err)
	m, err := s.GetMsg(t.Context(), s.CachedInfo().State.LastSeq)
	require.NoError(t, err)
	return m.Subject
}

// v1Work leaves a state of version 1 with work pending in it: one order
// delivered, three whose results wait for a destination that is down,
// three accepted while radgate was stopped, and a dead letter. It returns
// the orders' ids.
func v1Work(t *testing.T, h *harness) []string {
	t.Helper()
	ctx := t.Context()
	v1Layout(t, h.topo.JS, true)
	require.NoError(t, h.p.Start(ctx))
	ev := func(acsn string) radgate.OrderEvent {
		e := sr(acsn, strings.ToLower(acsn))
		e.Facility = "North"
		return e
	}
	var ids []string
	accept := func(acsn string) radgate.OrderStatus {
		h.arch.add(acsn, "9."+acsn, "CR", "CHEST", "sop-1")
		st, err := h.p.Accept(ctx, ev(acsn))
		require.NoError(t, err)
		ids = append(ids, st.ID)
		return st
	}
	first := accept("M0")
	h.waitState(t, first.ID, radgate.StateDelivered)
	h.sink.mu.Lock()
	h.sink.failFor = 1 << 30
	h.sink.mu.Unlock()
	for _, a := range []string{"M1", "M2", "M3"} {
		h.waitState(t, accept(a).ID, radgate.StateScored)
	}
	job := nats.NewMsg(broker.JobSubject(radgate.PriorityRoutine, "north", "eng-x"))
	job.Data = []byte(fmt.Sprintf(`{"order_id":%q,"engine":"eng-x"}`, first.ID))
	job.Header.Set(broker.HeaderOrderID, first.ID)
	_, err := h.topo.JS.PublishMsg(ctx, job)
	require.NoError(t, err)
	waitDeadLetters(t, broker.NewDLQ(h.topo.JS), "inference", 1)
	stop, cancel := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, h.p.Stop(stop))
	cancel()
	for _, a := range []string{"M4", "M5", "M6"} {
		accept(a)
	}
	// What v1 wrote: no facility token.
	for _, s := range []string{broker.StreamOrders, broker.StreamResults} {
		subj := lastSubject(t, h.topo.JS, s)
		_, ok := broker.FacilityOfSubject(subj)
		require.False(t, ok, subj)
	}
	return ids
}

// northHarness is an idle harness with the facility "north"; arch, when
// set, is its PACS.
func northHarness(t *testing.T, arch *archive) *harness {
	h := newIdleHarness(t, func(o *Options) {
		o.Facilities = radgate.NewFacilities([]config.Facility{{ID: "north", Name: "North"}})
		o.DeliveryWindow = time.Minute
		if arch != nil {
			o.Source = arch
		}
	})
	if arch != nil {
		h.arch = arch
	}
	return h
}

// startBoth starts two radgate processes on one state at the same moment,
// each bringing the state to the current version first; they share the
// stages' durable consumers.
func startBoth(t *testing.T, h *harness) {
	t.Helper()
	url := h.topo.JS.Conn().ConnectedUrl()
	opts := h.p.opts
	opts.Registerer = prometheus.NewRegistry()
	p2, err := NewPipeline(opts)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*Pipeline{h.p, p2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := broker.Connect(url, "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			t.Cleanup(nc.Close)
			if _, errs[i] = broker.EnsureTopology(t.Context(), nc); errs[i] == nil {
				errs[i] = p.Start(t.Context())
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.p.Stop(ctx)
		_ = p2.Stop(ctx)
	})
}

// deliveredOnce waits for every order to be delivered and checks each
// result went to the destination exactly once.
func deliveredOnce(t *testing.T, h *harness, ids []string) {
	t.Helper()
	for _, id := range ids {
		h.waitState(t, id, radgate.StateDelivered)
	}
	time.Sleep(500 * time.Millisecond) // a second delivery, were there one, has had its chance
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	require.Len(t, h.sink.times, len(ids))
	for rid, n := range h.sink.times {
		require.Equal(t, 1, n, "result %s delivered %d times", rid, n)
	}
}

// A state version 1 radgate left with work pending — orders not yet
// routed, results not yet delivered, a dead letter — is migrated when the
// upgraded radgate starts, by one of two processes starting at once: every
// order is delivered once (the one delivered before too), and the dead
// letter names its subject of the new layout.
func TestV1StateUpgradedDeliversEveryOrderOnce(t *testing.T) {
	h := northHarness(t, nil)
	ids := v1Work(t, h)
	v1Layout(t, h.topo.JS, false)
	h.sink.heal()
	startBoth(t, h)
	deliveredOnce(t, h, ids)
	rec, found, err := broker.ReadStateVersion(t.Context(), h.topo.JS)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, broker.StateVersion, rec.StateVersion)
	dl := waitDeadLetters(t, broker.NewDLQ(h.topo.JS), "inference", 1)[0]
	require.Equal(t, broker.JobSubject(radgate.PriorityRoutine, "north", "eng-x"), dl.Subject)
	f, ok := broker.FacilityOfSubject(lastSubject(t, h.topo.JS, broker.StreamResults))
	require.True(t, ok)
	require.Equal(t, "north", f)
}

// A backup of a state version 1 radgate, restored by this one, is migrated
// by the restore, and serve on it delivers every order once.
func TestV1BackupRestoredIsMigratedAndDelivered(t *testing.T) {
	h := northHarness(t, nil)
	ids := v1Work(t, h)
	v1Layout(t, h.topo.JS, false) // a real v1 install's streams had no transform
	dir := filepath.Join(t.TempDir(), "v1")
	m, err := broker.Backup(t.Context(), h.topo.JS, dir)
	require.NoError(t, err)
	require.Equal(t, 1, m.StateVersion)

	h2 := northHarness(t, h.arch)
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{Force: true})
	require.NoError(t, err)
	rec, _, err := broker.ReadStateVersion(t.Context(), h2.topo.JS)
	require.NoError(t, err)
	require.Equal(t, broker.StateRecord{StateVersion: broker.StateVersion, RadgateVersion: broker.RadgateVersion,
		Migration: "facility-subject-token"}, rec)
	// The orders accepted while v1 was stopped, not yet routed: no facility
	// known to the order yet.
	require.Equal(t, broker.OrderSubject(radgate.PriorityRoutine, "", "fhir"), lastSubject(t, h2.topo.JS, broker.StreamOrders))
	startBoth(t, h2)
	// The order delivered before the backup is not delivered again.
	for _, id := range ids {
		h2.waitState(t, id, radgate.StateDelivered)
	}
	time.Sleep(500 * time.Millisecond)
	h2.sink.mu.Lock()
	defer h2.sink.mu.Unlock()
	require.Len(t, h2.sink.times, len(ids)-1)
	for rid, n := range h2.sink.times {
		require.Equal(t, 1, n, "result %s delivered %d times", rid, n)
	}
}
