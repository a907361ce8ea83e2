package billing

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
)

func newMeter(t *testing.T) (*UsageMeter, jetstream.JetStream) {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	u, err := EnsureUsageMeter(t.Context(), js)
	require.NoError(t, err)
	return u, js
}

func month(t *testing.T, u *UsageMeter, m string) []UsageRow {
	t.Helper()
	rows, err := u.Month(t.Context(), m)
	require.NoError(t, err)
	return rows
}

var errCrash = errors.New("crash")

// A crash after either write of Count, then the retry the pipeline makes
// (the job redelivered, scored again, its result published again): the
// analysis is counted once, never lost, never twice.
func TestCountSurvivesACrashBetweenItsWrites(t *testing.T) {
	for _, step := range []string{"marked", "counted"} {
		t.Run("crash after "+step, func(t *testing.T) {
			u, _ := newMeter(t)
			at := time.Date(2026, 11, 30, 23, 59, 58, 0, time.UTC)
			u.crashAt = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			_, err := u.Count(t.Context(), "res-1", "eng-a", "St Mary", at)
			require.ErrorIs(t, err, errCrash)

			// The retry is scored again a few seconds later, on the next
			// day: it still counts under the first attempt's day.
			u.crashAt = nil
			counted, err := u.Count(t.Context(), "res-1", "eng-a", "St Mary", at.Add(5*time.Second))
			require.NoError(t, err)
			require.Equal(t, step == "marked", counted, "only a retry that finds no count counts")
			counted, err = u.Count(t.Context(), "res-1", "eng-a", "St Mary", at.Add(time.Hour))
			require.NoError(t, err)
			require.False(t, counted, "a later redelivery or replay is not counted again")

			require.Equal(t, []UsageRow{{Facility: "St Mary", Engine: "eng-a", Analyses: 1}}, month(t, u, "2026-11"))
			require.Empty(t, month(t, u, "2026-12"))
		})
	}
}

// Counts an older radgate kept (u.<day> totals, markers holding a time)
// still add up, and a result it counted is not counted again.
func TestCountReadsTheOlderLayout(t *testing.T) {
	u, _ := newMeter(t)
	ctx := t.Context()
	_, err := u.counts.Put(ctx, "u.2026-11-03.eng-a."+hexOf("St Mary"), []byte("41"))
	require.NoError(t, err)
	_, err = u.seen.Put(ctx, "r.old-1", []byte("2026-11-03T10:00:00Z"))
	require.NoError(t, err)
	counted, err := u.Count(ctx, "old-1", "eng-a", "St Mary", time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.False(t, counted)
	counted, err = u.Count(ctx, "new-1", "eng-a", "St Mary", time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.True(t, counted)
	require.Equal(t, []UsageRow{{Facility: "St Mary", Engine: "eng-a", Analyses: 42}}, month(t, u, "2026-11"))
}

// retention.usage reaches the counts bucket; restarting without limits
// lifts them.
func TestUsageRetention(t *testing.T) {
	_, js := newMeter(t)
	_, err := EnsureUsageMeterWith(t.Context(), js, broker.Limits{MaxAge: 800 * 24 * time.Hour, MaxBytes: 1 << 30})
	require.NoError(t, err)
	info := func() jetstream.StreamConfig {
		s, err := js.Stream(t.Context(), broker.KVStream(BucketUsage))
		require.NoError(t, err)
		i, err := s.Info(t.Context())
		require.NoError(t, err)
		return i.Config
	}
	require.Equal(t, 800*24*time.Hour, info().MaxAge)
	require.Equal(t, int64(1<<30), info().MaxBytes)
	require.Equal(t, jetstream.DiscardNew, info().Discard)
	_, err = EnsureUsageMeter(t.Context(), js)
	require.NoError(t, err)
	require.Zero(t, info().MaxAge, "usage is kept forever by default")
	require.Equal(t, int64(-1), info().MaxBytes)
}

func hexOf(s string) string { return countKey(time.Time{}, "x", s)[len("c.0001-01.01.x."):] }
