package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream, bucket and subject names. Every stage reads and writes only these.
const (
	StreamOrders  = "RADGATE_ORDERS"
	StreamJobs    = "RADGATE_JOBS"
	StreamResults = "RADGATE_RESULTS"
	StreamDLQ     = "RADGATE_DLQ"

	BucketOrders   = "radgate_orders"
	BucketHeatmaps = "radgate_heatmaps"

	subjectOrders  = "radgate.orders."
	subjectJobs    = "radgate.jobs."
	subjectResults = "radgate.results."
	subjectDLQ     = "radgate.dlq."

	// HeaderOrderID carries the order id on every message.
	HeaderOrderID = "Radgate-Order-Id"
	// HeaderReason carries why a message went to the dead-letter stream.
	HeaderReason = "Radgate-Reason"
	// HeaderSubject carries the original subject of a dead-lettered message.
	HeaderSubject = "Radgate-Subject"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: an order or
// job re-sent within it is dropped at the broker. Beyond it, the order store
// and the destinations' conditional creates keep one result per order.
const DuplicateWindow = 10 * time.Minute

// EmbeddedServer is a nats-server running inside the radgate process, on
// 127.0.0.1 only, with JetStream on the data directory.
type EmbeddedServer struct {
	srv *server.Server
}

// StartEmbedded starts nats-server in-process with JetStream file storage in
// storeDir. port -1 picks a free port.
func StartEmbedded(storeDir string, port int) (*EmbeddedServer, error) {
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating NATS store dir: %w", err)
	}
	abs, err := filepath.Abs(storeDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "radgate-embedded",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   abs,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS server not ready within 10s")
	}
	return &EmbeddedServer{srv: srv}, nil
}

// ClientURL is the URL clients connect to.
func (e *EmbeddedServer) ClientURL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect opens a NATS connection that keeps reconnecting.
func Connect(url, credsFile string, logger *slog.Logger) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name("radgate"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if credsFile != "" {
		opts = append(opts, nats.UserCredentials(credsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// Topology holds the JetStream streams and buckets radgate uses.
type Topology struct {
	JS       jetstream.JetStream
	Orders   jetstream.KeyValue
	Heatmaps jetstream.ObjectStore
}

// EnsureTopology creates or updates every stream and bucket. It is
// idempotent and safe to run from every radgate process of a cluster.
func EnsureTopology(ctx context.Context, nc *nats.Conn) (*Topology, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	streams := []jetstream.StreamConfig{
		{
			Name: StreamOrders, Subjects: []string{subjectOrders + ">"},
			Description: "accepted intake events, one per resource received",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow, MaxAge: 30 * 24 * time.Hour,
		},
		{
			Name: StreamJobs, Subjects: []string{subjectJobs + ">"},
			Description: "one scoring job per study × engine",
			Storage:     jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
			Duplicates: DuplicateWindow, MaxAge: 30 * 24 * time.Hour,
		},
		{
			Name: StreamResults, Subjects: []string{subjectResults + ">"},
			Description: "one result per order × engine, read by each destination",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow, MaxAge: 30 * 24 * time.Hour,
		},
		{
			Name: StreamDLQ, Subjects: []string{subjectDLQ + ">"},
			Description: "messages a stage gave up on, with the reason",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			MaxAge: 90 * 24 * time.Hour,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketOrders, Description: "order state and reference index",
		Storage: jetstream.FileStorage, History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketOrders, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketHeatmaps, Description: "heatmap PNGs by result id",
		Storage: jetstream.FileStorage, TTL: 30 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("creating object store %s: %w", BucketHeatmaps, err)
	}
	return &Topology{JS: js, Orders: kv, Heatmaps: obj}, nil
}
