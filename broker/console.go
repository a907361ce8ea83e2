package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketConsoleSessions holds the operator console's sessions, one key per
// session id; the bucket's TTL is the session lifetime, so every serve
// process sharing the broker sees the same sessions and they expire on
// their own.
const BucketConsoleSessions = "radgate_console_sessions"

// ConsoleMarkerTTL is how long the session bucket keeps the marker of a
// key that expired.
const ConsoleMarkerTTL = time.Minute

// EnsureConsoleSessions creates (or updates to ttl) the console's session
// bucket. It allows per-key TTLs (jetstream.KeyTTL; LimitMarkerTTL, NATS
// 2.11 or later): the console's OIDC sign-in attempts last minutes, not a
// session's lifetime.
func EnsureConsoleSessions(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (jetstream.KeyValue, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("console session bucket: TTL %v must be positive", ttl)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketConsoleSessions,
		Description: "operator console sessions (TTL: console.session_ttl)", Storage: jetstream.FileStorage, TTL: ttl,
		LimitMarkerTTL: ConsoleMarkerTTL})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketConsoleSessions, err)
	}
	return kv, nil
}
