package service

import (
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/adapters/dimse"
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

// storageMonitor watches every store's size for the radgate_storage_*
// metrics (its Run is one of the service's long-running parts).
func storageMonitor(js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (*broker.StorageMonitor, error) {
	stores := append(broker.TopologyStores(),
		broker.Store{Label: broker.StoreHL7Outbox, Stream: broker.ObjectStream(hl7v2.BucketOutbox)},
		broker.Store{Label: broker.StoreUsage, Stream: broker.KVStream(billing.BucketUsage)},
		broker.Store{Label: broker.StoreImages, Stream: broker.ObjectStream(dimse.BucketImages)},
		broker.Store{Label: broker.StoreImageMessages, Stream: dimse.StreamImages},
		broker.Store{Label: broker.StoreDIMSESent, Stream: broker.ObjectStream(dimse.BucketSent)})
	return broker.NewStorageMonitor(broker.StorageMonitorOptions{JS: js, Stores: stores, Registerer: reg, Logger: logger})
}
