package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// A serve-like state (an order taken to a delivered result with its
// heatmap, orders at two facilities in the order list's indexes, their
// histories, governance state) backed up, restored on a new server, reads
// back the same: the order list with its filters, an order's status and
// history, the heatmap. Restore then refuses the now non-empty target
// (unless forced), and a backup of a newer state version.
func TestBackupRestoreServeState(t *testing.T) {
	h := newIdleHarness(t, nil)
	require.NoError(t, h.p.Start(t.Context()))
	h.arch.add("A1", "1.2.3", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("A1", "sr1"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, h.p.Stop(ctx))
	cancel()
	seedOrders(t, h.p.store, 12, time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC))
	_, err = h.topo.EngineState.Put(t.Context(), "north.chest.cxr.v1", []byte(`{"mode":"shadow"}`))
	require.NoError(t, err)
	_, err = h.topo.EngineState.Put(t.Context(), "north.chest.cxr.v1", []byte(`{"mode":"live"}`))
	require.NoError(t, err)
	var heatmap string
	hl := h.topo.Heatmaps.List
	objs, err := hl(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, objs, "the delivered result's heatmap")
	heatmap = objs[0].Name
	want, err := h.topo.Heatmaps.GetBytes(t.Context(), heatmap)
	require.NoError(t, err)

	queries := []radgate.ListQuery{{}, {State: string(radgate.StateDelivered)}, {Facility: "north"},
		{State: string(radgate.StateDelivered), Facility: "north"}}
	var lists [][]string
	for _, q := range queries {
		ids, _ := listIDs(t, h.p, q)
		lists = append(lists, ids)
	}
	hist, err := h.p.History(t.Context(), string(st.ID))
	require.NoError(t, err)
	require.NotEmpty(t, hist)

	dir := filepath.Join(t.TempDir(), "backup")
	start := time.Now()
	m, err := broker.Backup(t.Context(), h.topo.JS, dir)
	require.NoError(t, err)
	t.Logf("backup: %d streams in %v", len(m.Streams), time.Since(start))
	require.Equal(t, broker.StateVersion, m.StateVersion)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	names := map[string]uint64{}
	for _, s := range m.Streams {
		fi, err := os.Stat(filepath.Join(dir, s.File))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), s.File)
		names[s.Name] = s.Messages
	}
	for _, s := range []string{broker.StreamOrders, broker.StreamResults, broker.StreamHistory, broker.StreamOrderIndex,
		broker.StreamOrderStates, broker.StreamOrderFacilities, broker.KVStream(broker.BucketOrders),
		broker.ObjectStream(broker.BucketHeatmaps), broker.KVStream(broker.BucketEngineState), broker.KVStream(broker.BucketMeta)} {
		require.NotZero(t, names[s], s)
	}
	_, err = broker.Backup(t.Context(), h.topo.JS, dir)
	require.ErrorContains(t, err, "already holds a backup")

	// A new server, as serve would declare it, then the restore.
	h2 := newIdleHarness(t, nil)
	start = time.Now()
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{})
	require.NoError(t, err)
	t.Logf("restore: %v", time.Since(start))
	for i, q := range queries {
		ids, _ := listIDs(t, h2.p, q)
		require.Equal(t, lists[i], ids, "list %+v", q)
	}
	got, err := h2.p.Status(t.Context(), string(st.ID))
	require.NoError(t, err)
	require.Equal(t, st.State, got.State)
	require.Equal(t, st.Engines, got.Engines)
	hist2, err := h2.p.History(t.Context(), string(st.ID))
	require.NoError(t, err)
	require.Equal(t, hist, hist2)
	png, err := h2.topo.Heatmaps.GetBytes(t.Context(), heatmap)
	require.NoError(t, err)
	require.Equal(t, want, png)
	es, err := h2.topo.EngineState.History(t.Context(), "north.chest.cxr.v1")
	require.NoError(t, err)
	require.Len(t, es, 2, "a bucket's history per key")
	require.Equal(t, `{"mode":"live"}`, string(es[1].Value()))
	// serve started on the restored state: its stages' new consumers read
	// the restored streams from the start, and deliver nothing twice.
	require.NoError(t, h2.p.Start(t.Context()))
	time.Sleep(1500 * time.Millisecond)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, h2.p.Stop(ctx))
	cancel()
	require.Empty(t, h2.sink.results(), "a result delivered before the backup is delivered again")
	again, err := h2.p.Status(t.Context(), string(st.ID))
	require.NoError(t, err)
	require.Equal(t, radgate.StateDelivered, again.State)

	// A new order after the restore goes in and is listed first.
	putOrder(t, h2.p.store, hexID(100), func(st *radgate.OrderStatus) { st.Facility = "north" })
	idx, err := h2.topo.JS.Stream(t.Context(), broker.StreamOrderIndex)
	require.NoError(t, err)
	lm, err := idx.GetLastMsgForSubject(t.Context(), broker.SubjectOrderIndex+hexID(100))
	require.NoError(t, err, "the new order's time entry")
	t.Logf("after: seq %d, last %d", lm.Sequence, idx.CachedInfo().State.LastSeq)
	ids, _ := listIDs(t, h2.p, radgate.ListQuery{})
	require.Equal(t, append([]string{hexID(100)}, lists[0]...), ids)
	ids, _ = listIDs(t, h2.p, radgate.ListQuery{Facility: "north"})
	require.Equal(t, append([]string{hexID(100)}, lists[2]...), ids)

	// The target now holds messages: refused, unless forced.
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{})
	require.ErrorContains(t, err, "refusing to overwrite streams that hold messages: ")
	require.ErrorContains(t, err, broker.StreamOrders+" (")
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{Force: true})
	require.NoError(t, err)
	ids, _ = listIDs(t, h2.p, radgate.ListQuery{Facility: "north"})
	require.Equal(t, lists[2], ids)

	// A backup of a newer state version is refused, as is a damaged one.
	b, err := os.ReadFile(filepath.Join(dir, broker.ManifestFile))
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	raw["state_version"] = broker.StateVersion + 1
	b, _ = json.Marshal(raw)
	require.NoError(t, os.WriteFile(filepath.Join(dir, broker.ManifestFile), b, 0o600))
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{Force: true})
	require.ErrorContains(t, err, fmt.Sprintf("the backup is of JetStream state version %d", broker.StateVersion+1))
	require.NoError(t, os.WriteFile(filepath.Join(dir, m.Streams[0].File), []byte("{}\n"), 0o600))
	_, err = broker.ReadManifest(dir)
	require.ErrorContains(t, err, "the backup is damaged")
}

// An empty install backs up (every stream, no messages) and restores.
func TestBackupRestoreEmptyInstall(t *testing.T) {
	h := newIdleHarness(t, nil)
	dir := t.TempDir()
	m, err := broker.Backup(t.Context(), h.topo.JS, dir)
	require.NoError(t, err)
	require.NotEmpty(t, m.Streams)
	for _, s := range m.Streams {
		if s.Name != broker.KVStream(broker.BucketMeta) {
			require.Zero(t, s.Messages, s.Name)
		}
	}
	h2 := newIdleHarness(t, nil)
	_, err = broker.Restore(t.Context(), h2.topo.JS, dir, broker.RestoreOptions{})
	require.NoError(t, err)
	for _, s := range m.Streams {
		str, err := h2.topo.JS.Stream(t.Context(), s.Name)
		require.NoError(t, err, s.Name)
		require.Equal(t, s.Messages, str.CachedInfo().State.Msgs, s.Name)
	}
	_, err = h2.topo.JS.Stream(t.Context(), broker.StreamJobs)
	require.NotErrorIs(t, err, jetstream.ErrStreamNotFound)
}
