package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func stateRecord(t *testing.T, js jetstream.JetStream) (StateRecord, uint64) {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), BucketMeta)
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), KeyStateVersion)
	require.NoError(t, err)
	var rec StateRecord
	require.NoError(t, json.Unmarshal(e.Value(), &rec))
	return rec, e.Revision()
}

// A fresh install records the current version and says so; a second start
// finds it equal and changes nothing; an install from before versions (its
// streams there, no version) is recorded as pre-versioned.
func TestStateVersionFreshEqualPreVersioned(t *testing.T) {
	nc := startNATS(t)
	var logs bytes.Buffer
	_, err := EnsureTopologyOn(t.Context(), nc, DefaultRetention(), Cluster{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	require.Contains(t, logs.String(), "JetStream state version recorded")
	require.Contains(t, logs.String(), "install=fresh")
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	rec, rev := stateRecord(t, js)
	require.Equal(t, StateRecord{StateVersion: StateVersion, RadgateVersion: RadgateVersion}, rec)

	logs.Reset()
	_, err = EnsureTopologyOn(t.Context(), nc, DefaultRetention(), Cluster{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	require.NotContains(t, logs.String(), "state version")
	_, rev2 := stateRecord(t, js)
	require.Equal(t, rev, rev2, "an equal version is not rewritten")

	// Pre-versioned: the layout is there, the version is not.
	require.NoError(t, js.DeleteKeyValue(t.Context(), BucketMeta))
	logs.Reset()
	_, err = EnsureTopologyOn(t.Context(), nc, DefaultRetention(), Cluster{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	require.Contains(t, logs.String(), "install=pre-versioned")
	rec, _ = stateRecord(t, js)
	require.Equal(t, StateVersion, rec.StateVersion)
}

// A state a later radgate wrote is refused with the reason, before any
// stream is re-declared over it.
func TestStateVersionNewerRefused(t *testing.T) {
	nc := startNATS(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: BucketMeta})
	require.NoError(t, err)
	_, err = kv.Put(t.Context(), KeyStateVersion, []byte(`{"state_version":7,"radgate_version":"v9"}`))
	require.NoError(t, err)
	_, err = EnsureTopologyOn(t.Context(), nc, DefaultRetention(), Cluster{})
	require.EqualError(t, err, "JetStream state is version 7, this radgate knows up to 2: upgrade radgate or restore a backup made by this version")
	var ne *NewerStateError
	require.ErrorAs(t, err, &ne)
	_, err = js.Stream(t.Context(), StreamOrders)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "nothing declared over a newer state")
}

// An older state is migrated in order, each migration run exactly once
// even with several starters at the same moment, and recorded; the others
// wait for it and go on at the new version.
func TestStateVersionMigratesOnceWithConcurrentStarters(t *testing.T) {
	nc := startNATS(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	rec, err := ensureState(t.Context(), js, 1, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rec.StateVersion)

	var runs12, runs23 atomic.Int32
	migs := []Migration{
		{From: 1, To: 2, Name: "test-rename", Run: func(ctx context.Context, js jetstream.JetStream) error {
			runs12.Add(1)
			time.Sleep(300 * time.Millisecond) // long enough for the others to find the claim
			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "radgate_migrated"})
			return err
		}},
		{From: 2, To: 3, Name: "test-second", Run: func(context.Context, jetstream.JetStream) error {
			runs23.Add(1)
			return nil
		}},
	}
	var logs safeBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	const starters = 4
	var wg sync.WaitGroup
	errs := make([]error, starters)
	recs := make([]StateRecord, starters)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range starters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], errs[i] = ensureState(ctx, js, 3, migs, logger)
		}()
	}
	wg.Wait()
	for i := range starters {
		require.NoError(t, errs[i])
		require.Equal(t, 3, recs[i].StateVersion)
	}
	require.EqualValues(t, 1, runs12.Load(), "migration 1→2 runs once")
	require.EqualValues(t, 1, runs23.Load(), "migration 2→3 runs once")
	rec, _ = stateRecord(t, js)
	require.Equal(t, StateRecord{StateVersion: 3, RadgateVersion: RadgateVersion, Migration: "test-second"}, rec)
	_, err = js.KeyValue(t.Context(), "radgate_migrated")
	require.NoError(t, err)
	require.Contains(t, logs.String(), "JetStream state migrated")
	require.Contains(t, logs.String(), "migration=test-rename")

	// A failed migration is reported and leaves the version (and no claim).
	require.NoError(t, js.DeleteKeyValue(t.Context(), BucketMeta))
	_, err = ensureState(t.Context(), js, 1, nil, nil)
	require.NoError(t, err)
	_, err = ensureState(t.Context(), js, 2, []Migration{{From: 1, To: 2, Name: "broken",
		Run: func(context.Context, jetstream.JetStream) error { return context.DeadlineExceeded }}}, nil)
	require.ErrorContains(t, err, "migration broken (state version 1 to 2)")
	rec, _ = stateRecord(t, js)
	require.Equal(t, 1, rec.StateVersion)
	require.Zero(t, rec.MigratingTo)
	// No migration from the recorded version: refused, naming it.
	_, err = ensureState(t.Context(), js, 2, nil, nil)
	require.ErrorContains(t, err, "no migration from it to 2")
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
