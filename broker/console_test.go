package broker

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The session bucket allows per-key TTLs, also when it was created by a
// radgate that did not ask for them.
func TestConsoleSessionsAllowKeyTTL(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: BucketConsoleSessions, Storage: jetstream.FileStorage, TTL: time.Hour})
	require.NoError(t, err)

	kv, err := EnsureConsoleSessions(t.Context(), js, 2*time.Hour)
	require.NoError(t, err)
	st, err := kv.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2*time.Hour, st.TTL())
	assert.Equal(t, ConsoleMarkerTTL, st.LimitMarkerTTL())

	_, err = kv.Create(t.Context(), "short", []byte("x"), jetstream.KeyTTL(time.Second))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := kv.Get(t.Context(), "short")
		return err != nil
	}, 10*time.Second, 100*time.Millisecond, "the key expires after its own TTL")
}
