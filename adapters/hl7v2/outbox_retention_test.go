package hl7v2

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// retention.hl7_outbox reaches the outbox the sink creates (before its
// first send, here refused by a closed port), and a later start with other
// limits replaces them.
func TestSinkCreatesTheOutboxWithItsLimits(t *testing.T) {
	js := embeddedJS(t)
	outbox := func() jetstream.StreamConfig {
		s, err := js.Stream(t.Context(), "OBJ_"+BucketOutbox)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		return info.Config
	}
	s, err := NewResultSink(ResultSinkOptions{JS: js, Address: "127.0.0.1:1",
		Outbox: OutboxLimits{MaxAge: 90 * 24 * time.Hour, MaxBytes: 1 << 30},
		Client: ClientOptions{DialTimeout: 200 * time.Millisecond, MaxAttempts: 1}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Deliver(t.Context(), sampleResult())
	require.True(t, radgate.IsTransient(err), "nothing listens: %v", err)
	cfg := outbox()
	require.Equal(t, 90*24*time.Hour, cfg.MaxAge)
	require.Equal(t, int64(1<<30), cfg.MaxBytes)
	require.Equal(t, jetstream.DiscardNew, cfg.Discard, "a full outbox refuses new messages")

	_, err = CreateOutbox(t.Context(), js, OutboxLimits{MaxAge: 7 * 24 * time.Hour})
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, outbox().MaxAge)
	require.Equal(t, int64(-1), outbox().MaxBytes)
}
