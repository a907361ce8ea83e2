package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is how radgate keeps its JetStream state (config nats.replicas
// and nats.publish_retry). The zero value is one copy and no retry: a
// single server.
type Cluster struct {
	// Replicas is how many copies of every stream, KV bucket and object
	// store radgate declares the cluster keeps; 0 or 1: one.
	Replicas int
	// PublishRetry bounds how long a write (a publish, a KV put, create,
	// update or delete) is retried while JetStream is unavailable for a
	// moment (IsUnavailable); 0: not retried.
	PublishRetry time.Duration
	// Logger, when set, is told of every request that needed more than one
	// attempt (component "nats": which, how many, how long, the first and
	// last error).
	Logger *slog.Logger
	// Edge makes the topology an edge's (issue 16, sites.go): its
	// RADGATE_JOBS is kept by limits (age and size) instead of as a work
	// queue, because nothing consumes it there: the hub's source reads it,
	// and resumes from the last job it took after a link cut.
	Edge bool
}

// maxAttempt bounds one attempt of a retried write: a request to a stream
// whose leader is gone goes unanswered, not refused, and must not use up
// the whole retry window.
const maxAttempt = 5 * time.Second

// JetStream wraps js so that every stream, KV bucket and object store
// created or updated through it gets c.Replicas copies (a config that
// names its own Replicas keeps them), and every Publish, PublishMsg, KV
// read and write (of the buckets opened through it) and create or update
// is retried for c.PublishRetry
// while IsUnavailable: a stream leader killed makes writes fail for the
// 4–6 s a new election takes. A publish keeps its Nats-Msg-Id across
// attempts, so JetStream drops a second copy of one that had landed; a KV
// create or update that finds, on a retry, its own value already written
// reports that revision. Everything else is js's.
func (c Cluster) JetStream(js jetstream.JetStream) jetstream.JetStream {
	if c.Replicas <= 1 && c.PublishRetry <= 0 {
		return js
	}
	return &clusterJS{JetStream: js, c: c}
}

// IsUnavailable reports whether err is JetStream being unreachable for a
// moment rather than refusing: no responders (a stream without a leader
// during an election, a connection between servers), a request timed out,
// the connection reconnecting, or the cluster saying it is temporarily
// unavailable. A write that failed so may be tried again.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	// "no suitable peers for placement, peer offline": a node is down or
	// not yet known to the meta leader (a cluster just started or one
	// restarting); another reason for the same code (too few servers,
	// no room) is a refusal.
	return apiErr.ErrorCode == errCodeClusterNotAvailable || apiErr.ErrorCode == errCodeClusterNotLeader ||
		apiErr.ErrorCode == errCodeNoSuitablePeers && strings.Contains(apiErr.Description, "peer offline")
}

// JetStream API error codes nats.go has no name for.
const (
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable
	errCodeClusterNotLeader    jetstream.ErrorCode = 10009 // JetStream cluster can not handle request
	errCodeReplicasNotClusterd jetstream.ErrorCode = 10074 // replicas > 1 not supported in non-clustered mode
	errCodeInsufficientRes     jetstream.ErrorCode = 10023 // insufficient resources
	errCodeNoSuitablePeers     jetstream.ErrorCode = 10005 // no suitable peers for placement
)

// Retry calls f until it succeeds, fails with an error that is not
// IsUnavailable, or window has passed since the first call (then the last
// error), waiting 100 ms doubling to 2 s between attempts. Each attempt
// gets at most 5 s of ctx. attempt counts from 0.
func Retry(ctx context.Context, window time.Duration, f func(ctx context.Context, attempt int) error) error {
	deadline := time.Now().Add(window)
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, maxAttempt)
		err := f(actx, attempt)
		cancel()
		if err == nil || !IsUnavailable(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// clusterJS is Cluster.JetStream's wrapper.
type clusterJS struct {
	jetstream.JetStream
	c Cluster
}

func (j *clusterJS) retry(ctx context.Context, what string, f func(ctx context.Context, attempt int) error) error {
	if j.c.PublishRetry <= 0 {
		return f(ctx, 0)
	}
	start, attempts := time.Now(), 0
	var first error
	err := Retry(ctx, j.c.PublishRetry, func(ctx context.Context, attempt int) error {
		attempts++
		err := f(ctx, attempt)
		if attempt == 0 {
			first = err
		}
		return err
	})
	if attempts > 1 && j.c.Logger != nil {
		log := j.c.Logger.With("component", "nats", "op", what, "attempts", attempts,
			"took", time.Since(start).Round(time.Millisecond), "first_err", first)
		if IsUnavailable(err) {
			log.Warn("JetStream request failed after retrying", "err", err)
		} else {
			log.Info("JetStream request retried", "err", err) // answered: done, or a definite refusal
		}
	}
	return err
}

func (j *clusterJS) Publish(ctx context.Context, subject string, payload []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	m := nats.NewMsg(subject)
	m.Data = payload
	return j.PublishMsg(ctx, m, opts...)
}

func (j *clusterJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (ack *jetstream.PubAck, err error) {
	err = j.retry(ctx, "publish "+m.Subject, func(ctx context.Context, _ int) error {
		ack, err = j.JetStream.PublishMsg(ctx, m, opts...)
		return err
	})
	return ack, err
}

// replicas returns n when set, else the cluster's.
func (j *clusterJS) replicas(n int) int {
	if n == 0 && j.c.Replicas > 1 {
		return j.c.Replicas
	}
	return n
}

// explain says what a refused create or update with n replicas means.
func (j *clusterJS) explain(kind, name string, n int, err error) error {
	if err == nil || n <= 1 {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeReplicasNotClusterd:
			return fmt.Errorf("%s %s: nats.replicas %d needs a JetStream cluster, but %s is a single server: %w",
				kind, name, n, j.Conn().ConnectedUrlRedacted(), err)
		case errCodeInsufficientRes, errCodeNoSuitablePeers:
			return fmt.Errorf("%s %s: nats.replicas %d needs at least %d JetStream servers with room in the cluster: %w",
				kind, name, n, n, err)
		}
	}
	return fmt.Errorf("%s %s with %d replicas: %w", kind, name, n, err)
}

func (j *clusterJS) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "CreateStream", "stream", cfg.Name, cfg.Replicas, func(ctx context.Context) (jetstream.Stream, error) { return j.JetStream.CreateStream(ctx, cfg) })
}

func (j *clusterJS) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "UpdateStream", "stream", cfg.Name, cfg.Replicas, func(ctx context.Context) (jetstream.Stream, error) { return j.JetStream.UpdateStream(ctx, cfg) })
}

func (j *clusterJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "CreateOrUpdateStream", "stream", cfg.Name, cfg.Replicas, func(ctx context.Context) (jetstream.Stream, error) { return j.JetStream.CreateOrUpdateStream(ctx, cfg) })
}

// declare makes one create or update of a stream, bucket or object store,
// retried as a write is, and names it (kind and name) when it is refused.
func declare[T any](ctx context.Context, j *clusterJS, op, kind, name string, replicas int, f func(context.Context) (T, error)) (T, error) {
	var v T
	err := j.retry(ctx, op+" "+name, func(ctx context.Context, _ int) (err error) {
		v, err = f(ctx)
		return err
	})
	return v, j.explain(kind, name, replicas, err)
}

func (j *clusterJS) kv(kv jetstream.KeyValue, err error) (jetstream.KeyValue, error) {
	if err != nil {
		return nil, err
	}
	return &clusterKV{KeyValue: kv, j: j}, nil
}

func (j *clusterJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return j.kv(j.JetStream.KeyValue(ctx, bucket))
}

func (j *clusterJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return j.kv(declare(ctx, j, "CreateKeyValue", "bucket", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.KeyValue, error) { return j.JetStream.CreateKeyValue(ctx, cfg) }))
}

func (j *clusterJS) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return j.kv(declare(ctx, j, "UpdateKeyValue", "bucket", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.KeyValue, error) { return j.JetStream.UpdateKeyValue(ctx, cfg) }))
}

func (j *clusterJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return j.kv(declare(ctx, j, "CreateOrUpdateKeyValue", "bucket", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	}))
}

func (j *clusterJS) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "CreateObjectStore", "object store", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return j.JetStream.CreateObjectStore(ctx, cfg)
	})
}

func (j *clusterJS) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "UpdateObjectStore", "object store", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return j.JetStream.UpdateObjectStore(ctx, cfg)
	})
}

func (j *clusterJS) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = j.replicas(cfg.Replicas)
	return declare(ctx, j, "CreateOrUpdateObjectStore", "object store", cfg.Bucket, cfg.Replicas, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return j.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

// clusterKV retries a bucket's writes as clusterJS does its publishes.
type clusterKV struct {
	jetstream.KeyValue
	j *clusterJS
}

// Get is retried too: a read of a key whose stream lost its leader waits
// for an answer that does not come until the new leader is elected.
func (kv *clusterKV) Get(ctx context.Context, key string) (e jetstream.KeyValueEntry, err error) {
	err = kv.j.retry(ctx, "get "+kv.Bucket(), func(ctx context.Context, _ int) error {
		e, err = kv.KeyValue.Get(ctx, key)
		return err
	})
	return e, err
}

func (kv *clusterKV) Put(ctx context.Context, key string, value []byte) (rev uint64, err error) {
	err = kv.j.retry(ctx, "put "+kv.Bucket(), func(ctx context.Context, _ int) error {
		rev, err = kv.KeyValue.Put(ctx, key, value)
		return err
	})
	return rev, err
}

func (kv *clusterKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return kv.Put(ctx, key, []byte(value))
}

// written reports the key's revision when it holds value: a retried write
// whose earlier attempt landed after all.
func (kv *clusterKV) written(ctx context.Context, key string, value []byte) (uint64, bool) {
	e, err := kv.KeyValue.Get(ctx, key)
	if err != nil || !bytes.Equal(e.Value(), value) {
		return 0, false
	}
	return e.Revision(), true
}

func (kv *clusterKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (rev uint64, err error) {
	err = kv.j.retry(ctx, "create "+kv.Bucket(), func(ctx context.Context, attempt int) error {
		rev, err = kv.KeyValue.Create(ctx, key, value, opts...)
		if attempt > 0 && errors.Is(err, jetstream.ErrKeyExists) {
			if r, ok := kv.written(ctx, key, value); ok {
				rev, err = r, nil
			}
		}
		return err
	})
	return rev, err
}

func (kv *clusterKV) Update(ctx context.Context, key string, value []byte, revision uint64) (rev uint64, err error) {
	err = kv.j.retry(ctx, "update "+kv.Bucket(), func(ctx context.Context, attempt int) error {
		rev, err = kv.KeyValue.Update(ctx, key, value, revision)
		if attempt > 0 && err != nil && (errors.Is(err, jetstream.ErrKeyExists) || IsWrongSequence(err)) {
			if r, ok := kv.written(ctx, key, value); ok && r > revision {
				rev, err = r, nil
			}
		}
		return err
	})
	return rev, err
}

func (kv *clusterKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return kv.j.retry(ctx, "delete "+kv.Bucket(), func(ctx context.Context, _ int) error { return kv.KeyValue.Delete(ctx, key, opts...) })
}

func (kv *clusterKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return kv.j.retry(ctx, "purge "+kv.Bucket(), func(ctx context.Context, _ int) error { return kv.KeyValue.Purge(ctx, key, opts...) })
}
