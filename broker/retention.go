package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound one stream or bucket. MaxAge 0 keeps messages until a size
// limit needs their room (or forever); MaxBytes 0 sets no size limit.
type Limits struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// Retention holds the Limits of each stream and bucket EnsureTopologyWith
// makes (config retention.*). The HL7 outbox and the usage counts are
// bounded where they are made (adapters/hl7v2, billing).
type Retention struct {
	OrderEvents Limits // StreamOrders
	Jobs        Limits // StreamJobs
	Results     Limits // StreamResults
	DLQ         Limits // StreamDLQ
	OrderState  Limits // BucketOrders
	Heatmaps    Limits // BucketHeatmaps
}

// DefaultRetention is what radgate keeps when radgate.yaml does not say:
// 30 days of order events, jobs, results and heatmaps; 90 days of dead
// letters and of order state (which must outlive every message naming the
// order); no size limit. config.Default().Retention says the same.
func DefaultRetention() Retention {
	const day = 24 * time.Hour
	return Retention{
		OrderEvents: Limits{MaxAge: 30 * day},
		Jobs:        Limits{MaxAge: 30 * day},
		Results:     Limits{MaxAge: 30 * day},
		DLQ:         Limits{MaxAge: 90 * day},
		OrderState:  Limits{MaxAge: 90 * day},
		Heatmaps:    Limits{MaxAge: 30 * day},
	}
}

// Store labels: the store label of the storage metrics, one per stream or
// bucket (the keys of radgate.yaml's retention section).
const (
	StoreOrderEvents = "order_events"
	StoreJobs        = "jobs"
	StoreResults     = "results"
	StoreDLQ         = "dlq"
	StoreOrderState  = "order_state"
	// StoreOrderHistory is the order history stream; it is kept under the
	// order_state limits (retention.order_state), labelled apart.
	StoreOrderHistory = "order_history"
	// StoreOrderIndex is the order list's index; kept under the
	// order_state limits, labelled apart.
	StoreOrderIndex = "order_index"
	// StoreOrderStates is the order list's state index, likewise.
	StoreOrderStates = "order_states"
	// StoreOrderFacilities is the order list's facility index, likewise.
	StoreOrderFacilities = "order_facilities"
	StoreHeatmaps        = "heatmaps"
	StoreHL7Outbox       = "hl7_outbox"
	// StoreImages is the image store of radgate's Storage SCP (retention.images).
	StoreImages = "images"
	// StoreImageMessages is the image store's stream (instances that fit
	// one message), kept under retention.images, labelled apart.
	StoreImageMessages = "image_messages"
	StoreUsage         = "usage"
	// StoreDIMSESent is what the dimse destinations stored, for their
	// rejection notes; kept under the order_state age, labelled apart.
	StoreDIMSESent = "dimse_sent"
)

// DiscardPolicy is what store (a Store… label) does once it holds max_bytes (README,
// "Retention"). Everything that is still in flight refuses new writes
// (DiscardNew): the writer gets an error and retries or refuses its sender,
// so nothing accepted is dropped. Only the dead-letter stream drops its
// oldest entries (DiscardOld): it is the record of work already given up
// on (the order itself stays failed, with its reason, in the order state),
// and refusing new dead letters would leave each poisoned message cycling
// through redelivery. Buckets and object stores are DiscardNew whatever is
// asked (nats.go's KV and object store always are).
func DiscardPolicy(store string) jetstream.DiscardPolicy { return discard[store] }

var discard = map[string]jetstream.DiscardPolicy{
	StoreOrderEvents:   jetstream.DiscardNew,
	StoreJobs:          jetstream.DiscardNew,
	StoreResults:       jetstream.DiscardNew,
	StoreDLQ:           jetstream.DiscardOld,
	StoreOrderState:    jetstream.DiscardNew,
	StoreHeatmaps:      jetstream.DiscardNew,
	StoreHL7Outbox:     jetstream.DiscardNew,
	StoreImages:        jetstream.DiscardNew,
	StoreImageMessages: jetstream.DiscardNew,
	StoreUsage:         jetstream.DiscardNew,
	StoreDIMSESent:     jetstream.DiscardNew,
}

// KVStream and ObjectStream name the stream behind a KV bucket and an
// object store.
func KVStream(bucket string) string     { return "KV_" + bucket }
func ObjectStream(bucket string) string { return "OBJ_" + bucket }

// Store is one stream or bucket the StorageMonitor watches.
type Store struct {
	Label  string // the metrics' store label (Store…)
	Stream string // the JetStream stream behind it
}

// TopologyStores are the stores EnsureTopologyWith makes.
func TopologyStores() []Store {
	return []Store{
		{StoreOrderEvents, StreamOrders},
		{StoreJobs, StreamJobs},
		{StoreResults, StreamResults},
		{StoreDLQ, StreamDLQ},
		{StoreOrderState, KVStream(BucketOrders)},
		{StoreOrderHistory, StreamHistory},
		{StoreOrderIndex, StreamOrderIndex},
		{StoreOrderStates, StreamOrderStates},
		{StoreOrderFacilities, StreamOrderFacilities},
		{StoreHeatmaps, ObjectStream(BucketHeatmaps)},
	}
}

// noLimit is n, or -1 (JetStream's "no limit") for 0.
func noLimit(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// Defaults of StorageMonitorOptions.
const (
	DefaultStorageInterval  = time.Minute
	DefaultStorageWarnRatio = 0.8
	// storageRewarn is how often a store that stays above the warning ratio
	// is logged again.
	storageRewarn = time.Hour
)

// StorageMonitorOptions configure a StorageMonitor.
type StorageMonitorOptions struct {
	// JS reads the streams' state. Required.
	JS jetstream.JetStream
	// Stores to watch. A stream that does not exist (yet: the HL7 outbox
	// appears with the first ORU^R01) is skipped until it does.
	Stores []Store
	// Interval between polls (default DefaultStorageInterval).
	Interval time.Duration
	// WarnRatio is the share of max_bytes above which a store is logged at
	// warning level (default DefaultStorageWarnRatio).
	WarnRatio float64
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Logger receives the warnings (store labels and sizes only); nil
	// discards.
	Logger *slog.Logger
}

// StorageMonitor exports how full each store is:
//
//	radgate_storage_used_bytes{store}  bytes stored now
//	radgate_storage_max_bytes{store}   its max_bytes (0: no limit)
//	radgate_storage_used_ratio{store}  used / max_bytes, for stores with a limit
//
// and logs a warning when a store passes WarnRatio of its limit (then
// hourly while it stays there), so an operator acts before the store
// refuses writes (see Discard).
type StorageMonitor struct {
	opts  StorageMonitorOptions
	log   *slog.Logger
	used  *prometheus.GaugeVec
	max   *prometheus.GaugeVec
	ratio *prometheus.GaugeVec

	mu     sync.Mutex
	warned map[string]time.Time // store label → last warning while above WarnRatio
}

// NewStorageMonitor validates opts and registers the metrics; it does no
// I/O.
func NewStorageMonitor(opts StorageMonitorOptions) (*StorageMonitor, error) {
	if opts.JS == nil {
		return nil, errors.New("broker: StorageMonitorOptions.JS is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultStorageInterval
	}
	if opts.WarnRatio <= 0 {
		opts.WarnRatio = DefaultStorageWarnRatio
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &StorageMonitor{
		opts: opts, log: log.With("component", "storage"),
		used: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "radgate_storage_used_bytes",
			Help: "Bytes stored in each JetStream stream or bucket radgate uses."}, []string{"store"}),
		max: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "radgate_storage_max_bytes",
			Help: "The max_bytes limit of each store (retention.<store>.max_bytes); 0: no limit."}, []string{"store"}),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "radgate_storage_used_ratio",
			Help: "Bytes stored / max_bytes, for each store with a size limit; at 1 the store refuses new writes (the DLQ drops its oldest)."}, []string{"store"}),
		warned: map[string]time.Time{},
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{m.used, m.max, m.ratio} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("broker: registering storage metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run polls every Interval, first at once, until ctx ends; the caller
// owns the goroutine it runs in.
func (m *StorageMonitor) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		m.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads every store's size once and updates the metrics. A store it
// cannot read keeps its last values (and is logged at debug level: NATS
// being away is reported elsewhere).
func (m *StorageMonitor) Poll(ctx context.Context) {
	for _, st := range m.opts.Stores {
		s, err := m.opts.JS.Stream(ctx, st.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err != nil {
			m.log.Debug("reading a store's size failed", "store", st.Label, "stream", st.Stream, "err", err)
			continue
		}
		used, limit := info.State.Bytes, info.Config.MaxBytes
		m.used.WithLabelValues(st.Label).Set(float64(used))
		if limit <= 0 {
			m.max.WithLabelValues(st.Label).Set(0)
			m.ratio.DeleteLabelValues(st.Label)
			continue
		}
		ratio := float64(used) / float64(limit)
		m.max.WithLabelValues(st.Label).Set(float64(limit))
		m.ratio.WithLabelValues(st.Label).Set(ratio)
		m.warn(st, ratio, used, limit)
	}
}

func (m *StorageMonitor) warn(st Store, ratio float64, used uint64, limit int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last, above := m.warned[st.Label]
	if ratio < m.opts.WarnRatio {
		if above {
			delete(m.warned, st.Label)
			m.log.Info("store back below its warning level", "store", st.Label, "used_bytes", used, "max_bytes", limit)
		}
		return
	}
	if above && time.Since(last) < storageRewarn {
		return
	}
	m.warned[st.Label] = time.Now()
	m.log.Warn("store nearly full: raise retention."+st.Label+".max_bytes or shorten its max_age",
		"store", st.Label, "stream", st.Stream, "used_bytes", used, "max_bytes", limit,
		"used_percent", int(ratio*100), "when_full", whenFull(st.Label))
}

// whenFull says what a full store does, for the warning.
func whenFull(label string) string {
	if discard[label] == jetstream.DiscardOld {
		return "drops its oldest entries"
	}
	return "refuses new writes"
}
