// Package broker is radgate's JetStream layer: the embedded nats-server (the
// default, one process), connecting to an external server or cluster, the
// streams, KV buckets and object store every stage uses (EnsureTopology),
// and the dead-letter stream with its replay (DLQ).
package broker
