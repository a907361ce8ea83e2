package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	return info.Config
}

// Configured limits reach every stream and bucket, with the discard policy
// README documents, and a changed configuration replaces them on the next
// start (CreateOrUpdate), including back to "no limit".
func TestEnsureTopologyAppliesRetention(t *testing.T) {
	nc := startNATS(t)
	const day = 24 * time.Hour
	r := Retention{
		OrderEvents: Limits{MaxAge: 7 * day, MaxBytes: 1 << 30},
		Jobs:        Limits{MaxAge: 2 * day, MaxBytes: 64 << 20},
		Results:     Limits{MaxAge: 14 * day, MaxBytes: 2 << 30},
		DLQ:         Limits{MaxAge: 60 * day, MaxBytes: 256 << 20},
		OrderState:  Limits{MaxAge: 60 * day, MaxBytes: 512 << 20},
		Heatmaps:    Limits{MaxAge: 10 * day, MaxBytes: 4 << 30},
	}
	topo, err := EnsureTopologyWith(t.Context(), nc, r)
	require.NoError(t, err)
	js := topo.JS
	for _, c := range []struct {
		stream  string
		want    Limits
		discard jetstream.DiscardPolicy
	}{
		{StreamOrders, r.OrderEvents, jetstream.DiscardNew},
		{StreamJobs, r.Jobs, jetstream.DiscardNew},
		{StreamResults, r.Results, jetstream.DiscardNew},
		{StreamDLQ, r.DLQ, jetstream.DiscardOld},
		{KVStream(BucketOrders), r.OrderState, jetstream.DiscardNew},
		{ObjectStream(BucketHeatmaps), r.Heatmaps, jetstream.DiscardNew},
	} {
		cfg := streamConfig(t, js, c.stream)
		require.Equal(t, c.want.MaxAge, cfg.MaxAge, c.stream)
		require.Equal(t, c.want.MaxBytes, cfg.MaxBytes, c.stream)
		require.Equal(t, c.discard, cfg.Discard, c.stream)
	}
	kvs, err := topo.Orders.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, 60*day, kvs.TTL())
	require.Equal(t, int64(5), kvs.History(), "the bucket keeps its own settings")

	// A restart with other values (here the defaults: ages, no size limit)
	// replaces them.
	topo, err = EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	def := DefaultRetention()
	for stream, want := range map[string]time.Duration{
		StreamOrders: def.OrderEvents.MaxAge, StreamJobs: def.Jobs.MaxAge, StreamResults: def.Results.MaxAge,
		StreamDLQ: def.DLQ.MaxAge, KVStream(BucketOrders): def.OrderState.MaxAge, ObjectStream(BucketHeatmaps): def.Heatmaps.MaxAge,
	} {
		cfg := streamConfig(t, topo.JS, stream)
		require.Equal(t, want, cfg.MaxAge, stream)
		require.Equal(t, int64(-1), cfg.MaxBytes, stream)
	}
	require.Equal(t, 30*day, def.OrderEvents.MaxAge, "the ages that were fixed in code stay the defaults")
	require.Equal(t, 90*day, def.DLQ.MaxAge)
}

// A full orders stream refuses the new order (the intake answers 503 / AE
// and the sender resends) instead of dropping an older one still in
// flight; a full DLQ drops its oldest dead letter.
func TestFullStoresRefuseNewOrDropOldest(t *testing.T) {
	nc := startNATS(t)
	r := DefaultRetention()
	r.OrderEvents.MaxBytes = 8 << 10
	r.DLQ.MaxBytes = 8 << 10
	topo, err := EnsureTopologyWith(t.Context(), nc, r)
	require.NoError(t, err)
	ctx := t.Context()
	payload := bytes.Repeat([]byte("x"), 1000)
	var refused error
	for i := 0; i < 20 && refused == nil; i++ {
		_, refused = topo.JS.Publish(ctx, OrderSubject("routine", NoFacility, "o"+string(rune('a'+i))), payload)
	}
	require.Error(t, refused, "the orders stream refuses new events when full")
	s, err := topo.JS.Stream(ctx, StreamOrders)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.FirstSeq, "no accepted order was dropped")

	for i := 0; i < 20; i++ {
		_, err := topo.JS.Publish(ctx, SubjectDLQ+"stage", payload)
		require.NoError(t, err, "the DLQ always takes a new dead letter")
	}
	s, err = topo.JS.Stream(ctx, StreamDLQ)
	require.NoError(t, err)
	info, err = s.Info(ctx)
	require.NoError(t, err)
	require.Greater(t, info.State.FirstSeq, uint64(1), "the oldest dead letters made room")
	require.LessOrEqual(t, info.State.Bytes, uint64(8<<10))
}

// The monitor reports bytes / max_bytes per store, warns above 80 %, skips
// a store that does not exist yet, and stops with its context.
func TestStorageMonitorReportsTheUsedRatio(t *testing.T) {
	nc := startNATS(t)
	r := DefaultRetention()
	r.Results.MaxBytes = 64 << 10
	topo, err := EnsureTopologyWith(t.Context(), nc, r)
	require.NoError(t, err)
	ctx := t.Context()
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	stores := append(TopologyStores(), Store{StoreHL7Outbox, ObjectStream("radgate_hl7_out")})
	m, err := NewStorageMonitor(StorageMonitorOptions{JS: topo.JS, Stores: stores, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)

	used := func(stream string) uint64 {
		s, err := topo.JS.Stream(ctx, stream)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		return info.State.Bytes
	}
	payload := bytes.Repeat([]byte("r"), 2000)
	for i := 0; i < 10; i++ {
		_, err := topo.JS.Publish(ctx, ResultSubject("fhir", "routine", NoFacility, "eng"), payload)
		require.NoError(t, err)
	}
	m.Poll(ctx)
	n := used(StreamResults)
	require.InDelta(t, float64(n)/float64(64<<10), testutil.ToFloat64(m.ratio.WithLabelValues(StoreResults)), 1e-12)
	require.InDelta(t, float64(n), testutil.ToFloat64(m.used.WithLabelValues(StoreResults)), 0)
	require.InDelta(t, float64(64<<10), testutil.ToFloat64(m.max.WithLabelValues(StoreResults)), 0)
	require.Less(t, float64(n)/float64(64<<10), 0.8)
	require.NotContains(t, logs.String(), "nearly full")

	// Stores without a size limit have bytes but no ratio; the missing
	// outbox has nothing.
	names := map[string]bool{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				names[mf.GetName()+"/"+l.GetValue()] = true
			}
		}
	}
	require.True(t, names["radgate_storage_used_ratio/results"])
	require.False(t, names["radgate_storage_used_ratio/jobs"])
	require.True(t, names["radgate_storage_used_bytes/jobs"])
	require.False(t, names["radgate_storage_used_bytes/hl7_outbox"])

	for used(StreamResults) < 54<<10 {
		_, err := topo.JS.Publish(ctx, ResultSubject("fhir", "routine", NoFacility, "eng"), payload)
		require.NoError(t, err)
	}
	m.Poll(ctx)
	ratio := testutil.ToFloat64(m.ratio.WithLabelValues(StoreResults))
	require.Greater(t, ratio, 0.8)
	require.Contains(t, logs.String(), "store nearly full")
	require.Contains(t, logs.String(), "store=results")
	require.Contains(t, logs.String(), `when_full="refuses new writes"`)
	m.Poll(ctx)
	require.Equal(t, 1, strings.Count(logs.String(), "store nearly full"), "warned once, not every poll")

	// Run polls until its context ends, then returns.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(runCtx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
