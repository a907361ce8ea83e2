package main

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// limits is one store's retention as the broker takes it.
func limits(s config.StoreLimits) broker.Limits {
	return broker.Limits{MaxAge: s.MaxAge.D(), MaxBytes: int64(s.MaxBytes)}
}

// brokerRetention is radgate.yaml's retention section for
// broker.EnsureTopologyWith.
func brokerRetention(r config.Retention) broker.Retention {
	return broker.Retention{
		OrderEvents: limits(r.OrderEvents), Jobs: limits(r.Jobs), Results: limits(r.Results),
		DLQ: limits(r.DLQ), OrderState: limits(r.OrderState), Heatmaps: limits(r.Heatmaps),
	}
}

// outboxLimits is retention.hl7_outbox for the HL7 v2 result sinks.
func outboxLimits(r config.Retention) hl7v2.OutboxLimits {
	return hl7v2.OutboxLimits{MaxAge: r.HL7Outbox.MaxAge.D(), MaxBytes: int64(r.HL7Outbox.MaxBytes)}
}

// startStorageMonitor polls every store's size into the
// radgate_storage_* metrics until the returned stop is called (which waits
// for the poller to end).
func startStorageMonitor(ctx context.Context, js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (stop func(), err error) {
	stores := append(broker.TopologyStores(),
		broker.Store{Label: broker.StoreHL7Outbox, Stream: broker.ObjectStream(hl7v2.BucketOutbox)},
		broker.Store{Label: broker.StoreUsage, Stream: broker.KVStream(billing.BucketUsage)})
	mon, err := broker.NewStorageMonitor(broker.StorageMonitorOptions{JS: js, Stores: stores, Registerer: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		mon.Run(ctx)
	}()
	return func() { cancel(); <-done }, nil
}
