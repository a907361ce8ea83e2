package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// Replicas 3 on a single server stops at the first stream, naming it and
// saying a cluster is needed.
func TestReplicasOnASingleServer(t *testing.T) {
	nc := startNATS(t)
	_, err := EnsureTopologyOn(t.Context(), nc, DefaultRetention(), Cluster{Replicas: 3})
	require.ErrorContains(t, err, "bucket "+BucketMeta+": nats.replicas 3 needs a JetStream cluster, but nats://127.0.0.1:") // the state version is read first
	require.ErrorContains(t, err, "is a single server")
}

// On a real three-node cluster: every stream, bucket and object store
// radgate declares (and one created later through Topology.JS, as the
// destinations' stores are) gets the configured replicas, and an existing
// one is updated to them; a stream leader killed with SIGKILL loses no
// publish and doubles none (retried with the same message id), KV writes
// go on, and a pull consumer keeps consuming after the leader change and
// after its own leader is killed.
func TestClusterReplicasAndLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := testenv.StartNATSCluster(t, 3)
	nc, err := Connect(c.ClientURLs(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// One copy first, then three: the existing streams are updated.
	_, err = EnsureTopologyOn(ctx, nc, DefaultRetention(), Cluster{Replicas: 1})
	require.NoError(t, err)
	topo, err := EnsureTopologyOn(ctx, nc, DefaultRetention(), Cluster{Replicas: 3, PublishRetry: 30 * time.Second})
	require.NoError(t, err)
	// More copies than servers: refused, naming the stream.
	_, err = EnsureTopologyOn(ctx, nc, DefaultRetention(), Cluster{Replicas: 5, PublishRetry: 30 * time.Second})
	require.ErrorContains(t, err, "creating bucket "+BucketMeta+": bucket "+BucketMeta)
	require.ErrorContains(t, err, "nats.replicas 5 needs at least 5 JetStream servers with room in the cluster")
	t.Logf("replicas 5 on 3 servers: %v", err)
	_, err = topo.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "later"})
	require.NoError(t, err)
	names := topo.JS.StreamNames(ctx)
	n := 0
	for name := range names.Name() {
		s, err := topo.JS.Stream(ctx, name)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, info.Config.Replicas, name)
		n++
	}
	require.NoError(t, names.Err())
	require.Equal(t, 16, n) // 9 streams, 5 buckets, 2 object stores

	// Publishes and KV creates, two writers, while the jobs stream's leader
	// is killed.
	st, err := topo.JS.Stream(ctx, StreamJobs)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	leader := c.Node(info.Cluster.Leader)
	require.NotNil(t, leader)
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 5 * time.Second})
	require.NoError(t, err)
	var mu sync.Mutex
	got := map[string]int{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		got[m.Headers().Get(HeaderOrderID)]++
		mu.Unlock()
		_ = m.Ack()
	})
	require.NoError(t, err)
	defer cc.Stop()

	const perWriter = 150
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("o%d-%d", w, i)
				m := nats.NewMsg(JobSubject("routine", NoFacility, id))
				m.Header.Set(HeaderOrderID, id)
				if _, err := topo.JS.PublishMsg(ctx, m, jetstream.WithMsgID("job."+id)); err != nil {
					errs <- fmt.Errorf("publishing %s: %w", id, err)
					return
				}
				if _, err := topo.Orders.Create(ctx, "t."+id, []byte(id)); err != nil {
					errs <- fmt.Errorf("creating key of %s: %w", id, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	killed := time.Now()
	c.Kill9(leader)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d publishes and KV creates done %v after the kill of %s", 2*perWriter, time.Since(killed).Round(time.Millisecond), leader.Name)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2*perWriter
	}, 60*time.Second, 100*time.Millisecond, "the consumer did not get every job after the leader change")
	info, err = st.Info(ctx)
	require.NoError(t, err)
	require.NotEqual(t, leader.Name, info.Cluster.Leader)
	require.Equal(t, uint64(2*perWriter), info.State.LastSeq, "a job published twice")
	keys, err := topo.Orders.ListKeysFiltered(ctx, "t.>")
	require.NoError(t, err)
	k := 0
	for range keys.Keys() {
		k++
	}
	require.Equal(t, 2*perWriter, k)

	// The health report names the missing replica, on the new leader.
	var report string
	require.Eventually(t, func() bool {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		hs, err := ClusterHealth(hctx, topo.JS)
		if err != nil {
			return false
		}
		for _, h := range hs {
			if h.Name == StreamJobs && h.Leader != "" {
				report = h.What() + ": " + h.Summary()
				return h.Problem() != nil && strings.Contains(h.Problem().Error(), "replica "+leader.Name)
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "the health report does not name replica %s", leader.Name)
	t.Logf("after the kill: %s", report)

	// The restarted node catches up, and the report says all is well.
	c.Restart(leader)
	require.Eventually(t, func() bool {
		info, err := st.Info(ctx)
		if err != nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "the restarted node's replica is not current")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		hs, err := ClusterHealth(hctx, topo.JS)
		cancel()
		var probs []string
		if err != nil {
			probs = append(probs, err.Error())
		} else if len(hs) != 15 { // "later" is not radgate's
			probs = append(probs, fmt.Sprintf("%d streams reported", len(hs)))
		}
		for _, h := range hs {
			if err := h.Problem(); err != nil {
				probs = append(probs, h.What()+": "+err.Error())
			}
		}
		if len(probs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the restart the health report still says: %s", strings.Join(probs, "; "))
		}
	}

	// The consumer's own leader killed: it keeps consuming what comes after.
	ci, err := cons.Info(ctx)
	require.NoError(t, err)
	cleader := c.Node(ci.Cluster.Leader)
	require.NotNil(t, cleader)
	c.Kill9(cleader)
	for i := range 50 {
		id := fmt.Sprintf("after-%d", i)
		m := nats.NewMsg(JobSubject("routine", NoFacility, id))
		m.Header.Set(HeaderOrderID, id)
		_, err := topo.JS.PublishMsg(ctx, m, jetstream.WithMsgID("job."+id))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2*perWriter+50
	}, 60*time.Second, 100*time.Millisecond, "the consumer stopped when its leader %s was killed", cleader.Name)
	ci, err = cons.Info(ctx)
	require.NoError(t, err)
	require.NotEqual(t, cleader.Name, ci.Cluster.Leader)
	t.Logf("consumer leader %s killed: consuming on, new leader %s", cleader.Name, ci.Cluster.Leader)
	c.Restart(cleader)
}

// Retry: an unavailable broker is tried again with backoff until it
// answers; a refusal ends it at once; the window bounds it.
func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(t.Context(), 10*time.Second, func(context.Context, int) error {
		calls++
		if calls < 3 {
			return fmt.Errorf("publishing: %w", jetstream.ErrNoStreamResponse)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)

	calls = 0
	refused := &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}
	err = Retry(t.Context(), 10*time.Second, func(context.Context, int) error { calls++; return refused })
	require.ErrorIs(t, err, refused)
	require.Equal(t, 1, calls)

	start := time.Now()
	err = Retry(t.Context(), 500*time.Millisecond, func(context.Context, int) error { return nats.ErrNoResponders })
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.Less(t, time.Since(start), 2*time.Second)

	require.True(t, IsUnavailable(&jetstream.APIError{ErrorCode: 10008}))
	require.False(t, IsUnavailable(jetstream.ErrKeyExists))
	// A peer not yet (or no longer) known: wait for it; too few servers:
	// a refusal at once.
	require.True(t, IsUnavailable(&jetstream.APIError{ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}))
	require.False(t, IsUnavailable(&jetstream.APIError{ErrorCode: 10005, Description: "no suitable peers for placement"}))
}
