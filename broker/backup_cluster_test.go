package broker

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// A single server's state backed up and restored onto a real three-node
// cluster with three copies of each stream; there, two starters at once
// run a migration once.
func TestBackupRestoreOntoCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	single := startNATS(t)
	topo, err := EnsureTopology(ctx, single)
	require.NoError(t, err)
	for i := range 50 {
		_, err := topo.JS.Publish(ctx, OrderSubject("routine", NoFacility, "fhir"), []byte{byte(i)})
		require.NoError(t, err)
	}
	// The jobs stream is a work queue with its consumer: read by gets.
	_, err = topo.JS.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{Durable: "inference", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	for i := range 3 {
		_, err := topo.JS.Publish(ctx, JobSubject("routine", NoFacility, "eng-a"), []byte{byte(i)})
		require.NoError(t, err)
	}
	for _, v := range []string{"received", "scored", "delivered"} {
		_, err = topo.Orders.Put(ctx, "o1", []byte(v))
		require.NoError(t, err)
	}
	png := bytes.Repeat([]byte("heatmap"), 100_000) // several chunks
	_, err = topo.Heatmaps.PutBytes(ctx, "r1", png)
	require.NoError(t, err)
	dir := t.TempDir()
	m, err := Backup(ctx, topo.JS, dir)
	require.NoError(t, err)

	for _, s := range m.Streams {
		if s.Name == StreamJobs {
			require.EqualValues(t, 3, s.Messages)
		}
	}

	c := testenv.StartNATSCluster(t, 3)
	nc, err := Connect(c.ClientURLs(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	start := time.Now()
	_, err = Restore(ctx, js, dir, RestoreOptions{Replicas: 3})
	require.NoError(t, err)
	t.Logf("restore of %d streams onto 3 nodes, R3: %v", len(m.Streams), time.Since(start))
	for _, s := range m.Streams {
		st, err := js.Stream(ctx, s.Name)
		require.NoError(t, err)
		info := st.CachedInfo()
		require.Equal(t, 3, info.Config.Replicas, s.Name)
		require.Equal(t, s.Messages, info.State.Msgs, s.Name)
	}
	topo2, err := EnsureTopologyOn(ctx, nc, DefaultRetention(), Cluster{Replicas: 3, PublishRetry: 30 * time.Second})
	require.NoError(t, err)
	hist, err := topo2.Orders.History(ctx, "o1")
	require.NoError(t, err)
	require.Len(t, hist, 3)
	require.Equal(t, "delivered", string(hist[2].Value()))
	got, err := topo2.Heatmaps.GetBytes(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, png, got)

	// Two starters on the cluster, one migration run.
	var runs atomic.Int32
	migs := []Migration{{From: StateVersion, To: StateVersion + 1, Name: "test-cluster", Run: func(context.Context, jetstream.JetStream) error {
		runs.Add(1)
		time.Sleep(300 * time.Millisecond)
		return nil
	}}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := Connect(c.ClientURLs(), "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			cjs, _ := jetstream.New(conn)
			_, errs[i] = ensureState(ctx, Cluster{Replicas: 3}.JetStream(cjs), StateVersion+1, migs, nil)
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.EqualValues(t, 1, runs.Load())
}
