package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/internal/testenv"
)

// clusterReport is what check --connect prints about the cluster, and how
// many of its steps failed.
func clusterReport(t *testing.T, run func(step func(string, error) bool)) (string, int) {
	t.Helper()
	var b strings.Builder
	failed := 0
	run(func(what string, err error) bool {
		if err != nil {
			failed++
			fmt.Fprintf(&b, "FAIL %s: %v\n", what, err)
			return false
		}
		fmt.Fprintf(&b, "ok   %s\n", what)
		return true
	})
	return b.String(), failed
}

// check --connect on a real three-node cluster: every radgate stream and
// bucket with its leader and current replicas; with a node killed, the
// streams it held name it as a replica not current (or have no leader
// yet); a stream with fewer copies than nats.replicas is reported too.
func TestCheckReportsClusterHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := testenv.StartNATSCluster(t, 3)
	nc, err := broker.Connect(c.ClientURLs(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, err = broker.EnsureTopologyOn(ctx, nc, broker.DefaultRetention(), broker.Cluster{Replicas: 3})
	require.NoError(t, err)

	report := func(replicas int) (string, int) {
		return clusterReport(t, func(step func(string, error) bool) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			checkCluster(cctx, nc, replicas, step)
		})
	}
	// A bucket just created may have a replica one message behind for a
	// moment: healthy once every replica has caught up.
	var out string
	var failed int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, failed = report(3); failed == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("healthy:\n%s", out)
	require.Zero(t, failed, out)
	require.Contains(t, out, "ok   nats: connected to server n")
	require.Contains(t, out, ", cluster hub; the JetStream API answers")
	require.Regexp(t, `ok   stream RADGATE_ORDERS: 3 replicas, leader n\d; n\d current; n\d current`, out)
	require.Regexp(t, `ok   bucket radgate_orders: 3 replicas, leader n\d; n\d current; n\d current`, out)
	require.Regexp(t, `ok   object store radgate_heatmaps: 3 replicas`, out)

	// Asked for five copies: every one is short.
	out, failed = report(5)
	require.Equal(t, 15, failed, out) // 9 streams, 5 buckets (radgate_meta among them), 1 object store
	require.Contains(t, out, "FAIL stream RADGATE_JOBS: 3 replicas")
	require.Contains(t, out, "3 copies where nats.replicas is 5")

	// A node killed (not the one we are connected to): the report names it.
	var victim *testenv.NATSNode
	for _, n := range c.Nodes {
		if n.Name != nc.ConnectedServerName() {
			victim = n
			break
		}
	}
	c.Kill9(victim)
	require.Eventually(t, func() bool {
		out, failed = report(3)
		return failed > 0 && strings.Contains(out, "replica "+victim.Name+" not current") || strings.Contains(out, "replica "+victim.Name+" offline")
	}, 30*time.Second, 500*time.Millisecond, "the report does not name %s", victim.Name)
	t.Logf("with %s killed:\n%s", victim.Name, out)
}

// check --connect says what serve will make of the recorded state version:
// the same, or a newer one serve refuses (a failed step with the reason).
func TestCheckReportsStateVersion(t *testing.T) {
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	report := func() (string, int) {
		return clusterReport(t, func(step func(string, error) bool) { checkCluster(t.Context(), nc, 1, step) })
	}
	out, failed := report()
	require.Zero(t, failed, out)
	require.Contains(t, out, fmt.Sprintf("ok   JetStream state version %d (radgate dev), as this radgate's", broker.StateVersion))

	kv, err := topo.JS.KeyValue(t.Context(), broker.BucketMeta)
	require.NoError(t, err)
	_, err = kv.Put(t.Context(), broker.KeyStateVersion, []byte(`{"state_version":9,"radgate_version":"v9.0.0"}`))
	require.NoError(t, err)
	out, failed = report()
	require.Equal(t, 1, failed, out)
	require.Contains(t, out, "FAIL JetStream state version 9 (radgate v9.0.0): JetStream state is version 9, this radgate knows up to 2: upgrade radgate or restore a backup made by this version")
}
