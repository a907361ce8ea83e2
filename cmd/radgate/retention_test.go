package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// radgate serve applies radgate.yaml's retention section to the streams
// and buckets, and exports how full each store is on /metrics.
func TestServeAppliesRetentionAndReportsStorage(t *testing.T) {
	ext, err := broker.StartEmbedded(t.TempDir(), -1) // where we can look
	require.NoError(t, err)
	t.Cleanup(ext.Shutdown)
	rg := startRadgate(t, func(c *config.Config) {
		c.NATS.URL = ext.ClientURL()
		c.Retention.Results = config.StoreLimits{MaxAge: 7 * config.Day, MaxBytes: 1 << 30}
		c.Retention.DLQ.MaxBytes = 256 << 20
		c.Retention.Usage.MaxAge = 3650 * config.Day
	})
	nc, err := broker.Connect(ext.ClientURL(), "", nil)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cfg := func(stream string) jetstream.StreamConfig {
		s, err := js.Stream(t.Context(), stream)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		return info.Config
	}
	require.Equal(t, 7*24*time.Hour, cfg(broker.StreamResults).MaxAge)
	require.Equal(t, int64(1<<30), cfg(broker.StreamResults).MaxBytes)
	require.Equal(t, jetstream.DiscardNew, cfg(broker.StreamResults).Discard)
	require.Equal(t, int64(256<<20), cfg(broker.StreamDLQ).MaxBytes)
	require.Equal(t, jetstream.DiscardOld, cfg(broker.StreamDLQ).Discard)
	require.Equal(t, 90*24*time.Hour, cfg(broker.KVStream(broker.BucketOrders)).MaxAge, "order state: the default")
	require.Equal(t, 3650*24*time.Hour, cfg(broker.KVStream(billing.BucketUsage)).MaxAge)

	require.Eventually(t, func() bool {
		resp, err := http.Get(rg.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := string(b)
		return strings.Contains(m, `radgate_storage_used_ratio{store="results"} 0`) &&
			strings.Contains(m, `radgate_storage_max_bytes{store="dlq"} 2.68435456e+08`) &&
			strings.Contains(m, `radgate_storage_used_bytes{store="order_state"}`) &&
			strings.Contains(m, `radgate_storage_used_bytes{store="usage"}`)
	}, 10*time.Second, 50*time.Millisecond)
}
