package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	// StreamHistory is every order's append-only history: one message per
	// state change, on SubjectHistory + order id.
	StreamHistory = "RADGATE_HISTORY"
	// StreamOrderIndex is the order list's time index: one message per
	// order on SubjectOrderIndex + order id, written once when the order is
	// created, so the stream's sequence is arrival order (newest last). It is
	// kept as long as order state.
	StreamOrderIndex  = "RADGATE_ORDER_INDEX"
	SubjectOrderIndex = "radgate.index.time."
	// StreamOrderStates is the order list's state index: one message per
	// order on SubjectOrderStates + state + "." + id, its value the order's
	// sequence in StreamOrderIndex; a state change puts the new subject and
	// purges the old one. Kept as long as order state.
	StreamOrderStates  = "RADGATE_ORDER_STATES"
	SubjectOrderStates = "radgate.index.state."
	// StreamOrderFacilities is the order list's facility index: one message
	// per order and facility it is known by (its facility id and the name
	// its source gave, when they differ) on SubjectOrderFacilities +
	// Token(facility) + "." + id, its value the order's sequence in
	// StreamOrderIndex. Kept as long as order state.
	StreamOrderFacilities  = "RADGATE_ORDER_FACILITIES"
	SubjectOrderFacilities = "radgate.index.facility."

	BucketOrders   = "radgate_orders"
	BucketHeatmaps = "radgate_heatmaps"

	// BucketEngineState holds each engine's mode (shadow, active,
	// suspended) per facility × route × model version, every change kept
	// in the key's history (governance).
	BucketEngineState = "radgate_engine_state"
	// BucketScores holds every engine result recorded for measurement,
	// with the order's accession and study indexes (governance).
	BucketScores = "radgate_scores"
	// BucketLabels holds radiologists' verdicts as labels, one key per
	// result × read; a replaced verdict stays in the key's history.
	BucketLabels = "radgate_labels"
	// StreamGovernance is the append-only log of evaluations and engine
	// state changes, on SubjectGovernance + "evaluation." / "state." + key.
	StreamGovernance  = "RADGATE_GOVERNANCE"
	SubjectGovernance = "radgate.governance."

	SubjectOrders  = "radgate.orders."
	SubjectJobs    = "radgate.jobs."
	SubjectResults = "radgate.results."
	SubjectDLQ     = "radgate.dlq."
	SubjectHistory = "radgate.history."

	// HeaderOrderID carries the order id on every message.
	HeaderOrderID = "Radgate-Order-Id"
	// HeaderReason carries why a message went to the dead-letter stream.
	HeaderReason = "Radgate-Reason"
	// HeaderSubject carries the original subject of a dead-lettered message.
	HeaderSubject = "Radgate-Subject"
	// HeaderReplayOf marks a message replayed from the dead-letter stream
	// (radgate dlq replay) with the DLQ sequence it came from. The stages
	// pass it on to what they publish in turn (see replayReset).
	HeaderReplayOf = "Radgate-Replay-Of"
	// HeaderAttempts carries, on a dead letter, how many times the stage
	// was given the message before it gave up.
	HeaderAttempts = "Radgate-Attempts"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: an order or
// job re-sent within it is dropped at the broker. Beyond it, the order store
// and the destinations' conditional creates keep one result per order.
const DuplicateWindow = 10 * time.Minute

// EmbeddedServer is a nats-server running inside the radgate process, with
// JetStream on the data directory. Started with a Credential (as radgate
// serve does), it admits only clients holding it; without one (tests,
// radgate check's scratch server) it admits anyone. It has no TLS: it
// listens on loopback unless configured otherwise (nats.embedded_listen).
type EmbeddedServer struct {
	srv  *server.Server
	cred *Credential
	done chan struct{}
}

// Done is closed once the server has shut down, asked to or not.
func (e *EmbeddedServer) Done() <-chan struct{} { return e.done }

// Credential is the credential the server requires, nil when it admits
// anyone.
func (e *EmbeddedServer) Credential() *Credential { return e.cred }

// StartEmbedded starts nats-server in-process on 127.0.0.1 with JetStream
// file storage in storeDir, admitting any client. port -1 picks a free port.
func StartEmbedded(storeDir string, port int) (*EmbeddedServer, error) {
	return StartEmbeddedOn(storeDir, "127.0.0.1", port)
}

// StartEmbeddedOn is StartEmbedded on host (an IP address or "localhost";
// empty: every interface). port 0 or -1 picks a free port.
func StartEmbeddedOn(storeDir, host string, port int) (*EmbeddedServer, error) {
	return StartEmbeddedWith(EmbeddedOptions{StoreDir: storeDir, Host: host, Port: port})
}

// EmbeddedOptions configure StartEmbeddedWith.
type EmbeddedOptions struct {
	// StoreDir holds the JetStream store.
	StoreDir string
	// Host is an IP address or "localhost"; empty: every interface.
	Host string
	// Port 0 or -1 picks a free port.
	Port int
	// Credential, when set, is the only user the server admits: a client
	// without it, or with another key, is refused at connect.
	Credential *Credential
	// Logger receives nats-server's own log (component "nats"): its errors
	// and warnings at those levels, its notices at debug. nil discards it.
	Logger *slog.Logger
	// LogDebug passes nats-server's debug lines to Logger too (at debug):
	// for diagnosing a link by hand, never on in serve.
	LogDebug bool
	// ServerName names the server (in a hub's /leafz, in stream
	// placement); empty: "radgate-embedded".
	ServerName string
	// Domain is the JetStream domain (an edge's EdgeDomain): clients
	// beyond a leaf link reach this server's JetStream through
	// "$JS.<domain>.API". Empty: none.
	Domain string
	// Leaf, when set, makes the server a leaf node of a hub: it connects
	// to the hub's leafnode listener and keeps reconnecting.
	Leaf *LeafRemote
	// MaxPayload is the largest message the server takes (max_payload);
	// 0: 8 MiB. Tests set a small one to send results in parts.
	MaxPayload int32
}

// LeafRemote is the hub a leaf node connects to.
type LeafRemote struct {
	// URLs are the hub nodes' leafnode listeners (nats-leaf://host:port).
	URLs []string
	// Credential is the site's NKey user on the hub (SiteCredentialPath):
	// the hub grants it the site's subjects only (SitePermissions).
	Credential *Credential
	// ReconnectWait is how long the server waits between tries (nats-server's
	// default, 1 s, when 0).
	ReconnectWait time.Duration
}

// StartEmbeddedWith starts nats-server in-process as o says and waits until
// it accepts connections.
func StartEmbeddedWith(o EmbeddedOptions) (*EmbeddedServer, error) {
	storeDir, host, port, logger := o.StoreDir, o.Host, o.Port, o.Logger
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating NATS store dir: %w", err)
	}
	abs, err := filepath.Abs(storeDir)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port, 4222
	}
	where := net.JoinHostPort(host, strconv.Itoa(port))
	if port > 0 {
		// nats-server opens the JetStream store before it listens: a port
		// already taken (most likely by a radgate serve on the same
		// data_dir) must stop us before a second server touches the store.
		ln, err := net.Listen("tcp", where)
		if err != nil {
			return nil, fmt.Errorf("starting the embedded NATS server on %s: %w", where, err)
		}
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName: "radgate-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   abs,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if o.ServerName != "" {
		opts.ServerName = o.ServerName
	}
	if o.MaxPayload > 0 {
		opts.MaxPayload = o.MaxPayload
	}
	opts.JetStreamDomain = o.Domain
	if o.Leaf != nil {
		opts.FeatureFlags = maps.Clone(FeatureFlags)
		remote, err := o.Leaf.options()
		if err != nil {
			return nil, err
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
		opts.LeafNode.ReconnectInterval = o.Leaf.ReconnectWait
	}
	if o.Credential != nil {
		// No NoAuthUser: a client that presents nothing is refused.
		opts.Nkeys = []*server.NkeyUser{{Nkey: o.Credential.PublicKey()}}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fatal := &serverLogger{log: logger.With("component", "nats")}
	srv.SetLoggerV2(fatal, o.LogDebug, false, false)
	go srv.Start()
	// A port taken meanwhile ends the server's start-up at once, but
	// ReadyForConnections would wait out its whole timeout: poll both.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if srv.ReadyForConnections(100 * time.Millisecond) {
			e := &EmbeddedServer{srv: srv, cred: o.Credential, done: make(chan struct{})}
			go func() { srv.WaitForShutdown(); close(e.done) }()
			return e, nil
		}
		if msg := fatal.get(); msg != "" || time.Now().After(deadline) {
			srv.Shutdown()
			if msg == "" {
				msg = "not ready within 10s"
			}
			return nil, fmt.Errorf("starting the embedded NATS server on %s: %s", where, msg)
		}
	}
}

// serverLogger passes nats-server's log to slog and keeps its first fatal
// message (a port already in use, say) for the start-up error.
type serverLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	msg string
}

var _ server.Logger = (*serverLogger)(nil)

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msg == "" {
		l.msg = msg
	}
}

func (l *serverLogger) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (*serverLogger) Tracef(string, ...any)             {}

// ClientURL is the URL clients connect to: the listening address, with a
// wildcard host (0.0.0.0, ::) replaced by loopback.
func (e *EmbeddedServer) ClientURL() string {
	addr, ok := e.srv.Addr().(*net.TCPAddr)
	if !ok {
		return e.srv.ClientURL()
	}
	ip := addr.IP
	if ip.IsUnspecified() {
		// Go reports a listener on 0.0.0.0 as [::]: go by what was asked.
		ip = net.IPv4(127, 0, 0, 1)
		if strings.Contains(e.srv.ClientURL(), "[") {
			ip = net.IPv6loopback
		}
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// InProcess is the option that connects a client to the server inside this
// process, without a socket (radgate serve's own connection to its embedded
// server): a message is handed over in memory, not written to loopback TCP
// and read back. The client still authenticates as any other.
func (e *EmbeddedServer) InProcess() nats.Option { return nats.InProcessServer(e.srv) }

// Jsz is the server's JetStream report as its /jsz monitoring endpoint
// gives it (an edge has no HTTP listener): for diagnosing a link by hand,
// e.g. its sourcing consumers (DirectConsumer).
func (e *EmbeddedServer) Jsz(opts *server.JSzOptions) (*server.JSInfo, error) { return e.srv.Jsz(opts) }

// Shutdown stops the server and waits for it.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect opens a NATS connection that keeps reconnecting, authenticated by
// credsFile (a .creds file or an NKey seed: CredentialsOption) when set, with extra options after radgate's
// (an embedded server's Credential.Option).
func Connect(url, credsFile string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
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
		o, err := CredentialsOption(credsFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
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
	// Governance: engine states, results recorded for measurement, labels.
	EngineState, Scores, Labels jetstream.KeyValue
}

// GovernanceHistory is how many revisions of an engine state or a label
// the buckets keep (the most JetStream allows); every change is also in
// StreamGovernance.
const GovernanceHistory = 64

// EnsureTopology is EnsureTopologyWith the DefaultRetention.
func EnsureTopology(ctx context.Context, nc *nats.Conn) (*Topology, error) {
	return EnsureTopologyWith(ctx, nc, DefaultRetention())
}

// EnsureTopologyWith creates every stream and bucket, or updates an
// existing one to r's limits (and the discard policy of DiscardPolicy), so a
// changed retention takes effect when radgate restarts. It is idempotent
// and safe to run from every radgate process of a cluster, as long as they
// share one retention configuration: the last to start wins.
func EnsureTopologyWith(ctx context.Context, nc *nats.Conn, r Retention) (*Topology, error) {
	return EnsureTopologyOn(ctx, nc, r, Cluster{})
}

// EnsureTopologyOn is EnsureTopologyWith on a cluster: every stream, bucket
// and object store gets c.Replicas copies (an existing one is updated to
// them; a change NATS refuses is an error naming it), and Topology.JS is
// c.JetStream, so what is created through it later (the usage meter, the
// destinations' stores) gets them too, and its writes are retried for
// c.PublishRetry while a leader is being elected. It first brings the
// state version in BucketMeta to StateVersion (EnsureStateVersion), and
// refuses a state a later radgate wrote.
func EnsureTopologyOn(ctx context.Context, nc *nats.Conn, r Retention, c Cluster) (*Topology, error) {
	plain, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	js := c.JetStream(plain)
	// The state version first: a newer layout is refused before anything
	// is re-declared over it, an older one migrated (stateversion.go).
	if _, err := EnsureStateVersion(ctx, js, c.Logger); err != nil {
		return nil, err
	}
	streams := []jetstream.StreamConfig{
		{
			Name: StreamOrders, Subjects: []string{SubjectOrders + ">"},
			Description: "accepted intake events, one per resource received",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow, MaxAge: r.OrderEvents.MaxAge, MaxBytes: r.OrderEvents.MaxBytes,
			Discard: discard[StoreOrderEvents],
		},
		{
			Name: StreamJobs, Subjects: []string{SubjectJobs + ">"},
			Description: "one scoring job per study × engine",
			Storage:     jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
			Duplicates: DuplicateWindow, MaxAge: r.Jobs.MaxAge, MaxBytes: r.Jobs.MaxBytes,
			Discard: discard[StoreJobs],
		},
		{
			Name: StreamResults, Subjects: []string{SubjectResults + ">"},
			Description: "one result per order × engine, read by each destination",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow, MaxAge: r.Results.MaxAge, MaxBytes: r.Results.MaxBytes,
			Discard: discard[StoreResults],
		},
		{
			Name: StreamDLQ, Subjects: []string{SubjectDLQ + ">"},
			Description: "messages a stage gave up on, with the reason",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			MaxAge: r.DLQ.MaxAge, MaxBytes: r.DLQ.MaxBytes,
			Discard: discard[StoreDLQ],
		},
		{
			Name: StreamHistory, Subjects: []string{SubjectHistory + ">"},
			Description: "each order's state changes, append-only (kept as long as order state)",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow, MaxAge: r.OrderState.MaxAge, MaxBytes: r.OrderState.MaxBytes,
			Discard: discard[StoreOrderState],
		},
		{
			Name: StreamOrderIndex, Subjects: []string{SubjectOrderIndex + ">"},
			Description: "the order list's time index: one message per order, in arrival order (kept as long as order state)",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxMsgsPerSubject: 1,
			Duplicates: DuplicateWindow, MaxAge: r.OrderState.MaxAge, MaxBytes: r.OrderState.MaxBytes,
			Discard: discard[StoreOrderState], AllowDirect: true,
		},
		{
			Name: StreamOrderStates, Subjects: []string{SubjectOrderStates + ">"},
			Description: "the order list's state index: one message per order, on its current state (kept as long as order state)",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxMsgsPerSubject: 1,
			Duplicates: DuplicateWindow, MaxAge: r.OrderState.MaxAge, MaxBytes: r.OrderState.MaxBytes,
			Discard: discard[StoreOrderState],
		},
		{
			Name: StreamOrderFacilities, Subjects: []string{SubjectOrderFacilities + ">"},
			Description: "the order list's facility index: one message per order and facility (kept as long as order state)",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxMsgsPerSubject: 1,
			Duplicates: DuplicateWindow, MaxAge: r.OrderState.MaxAge, MaxBytes: r.OrderState.MaxBytes,
			Discard: discard[StoreOrderState],
		},
		{
			Name: StreamGovernance, Subjects: []string{SubjectGovernance + ">"},
			Description: "evaluations and engine state changes (who, when, why, evidence), append-only, kept without limit",
			Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow,
		},
	}
	for i := range streams {
		if streams[i].Name == StreamJobs && c.Edge {
			streams[i].Retention = jetstream.LimitsPolicy
			streams[i].Description = "one scoring job per study × engine, kept here until its age limit: the hub's RADGATE_JOBS sources it"
		}
	}
	for _, sc := range streams {
		if sc.MaxBytes == 0 {
			sc.MaxBytes = -1 // no limit, also on a stream that had one
		}
		if sc.Name == StreamJobs || sc.Name == StreamResults {
			// Keep the link sources radgate sites sources declared (hub
			// and edges): an update without them would drop them.
			switch s, err := js.Stream(ctx, sc.Name); {
			case err == nil:
				sc.Sources = s.CachedInfo().Config.Sources
			case !errors.Is(err, jetstream.ErrStreamNotFound):
				return nil, fmt.Errorf("reading stream %s: %w", sc.Name, err)
			}
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	if !c.Edge {
		// The update above wrote the sources it read, and a hub source
		// declared meanwhile (another hub process starting) may have been
		// lost by it: the recorded set is applied again (KeyHubSources;
		// nothing when none is recorded, as on every install but a hub).
		if _, err := DeclareHubSources(ctx, js, nil, false); err != nil {
			return nil, err
		}
	}
	// Buckets and object stores refuse new writes when full (nats.go sets
	// DiscardNew on every KV and object store stream).
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketOrders, Description: "order state and reference index",
		Storage: jetstream.FileStorage, History: 5,
		TTL: r.OrderState.MaxAge, MaxBytes: noLimit(r.OrderState.MaxBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketOrders, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketHeatmaps, Description: "heatmap PNGs by result id",
		Storage: jetstream.FileStorage, TTL: r.Heatmaps.MaxAge, MaxBytes: noLimit(r.Heatmaps.MaxBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("creating object store %s: %w", BucketHeatmaps, err)
	}
	t := &Topology{JS: js, Orders: kv, Heatmaps: obj}
	// Governance keeps what a hospital's acceptance and audit rest on:
	// small records, kept without age or size limit.
	for _, b := range []struct {
		dst         *jetstream.KeyValue
		name, descr string
		history     uint8
	}{
		{&t.EngineState, BucketEngineState, "engine mode per facility × route × engine × model version", GovernanceHistory},
		{&t.Scores, BucketScores, "every engine result recorded for measurement, and its order's indexes", 1},
		{&t.Labels, BucketLabels, "radiologists' verdicts as labels, per result × read", GovernanceHistory},
	} {
		if *b.dst, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b.name, Description: b.descr,
			Storage: jetstream.FileStorage, History: b.history}); err != nil {
			return nil, fmt.Errorf("creating bucket %s: %w", b.name, err)
		}
	}
	return t, nil
}

// BindTopology binds to the buckets a running radgate created with
// EnsureTopology, creating and changing nothing: for tools and tests
// beside radgate serve.
func BindTopology(ctx context.Context, js jetstream.JetStream) (*Topology, error) {
	t := &Topology{JS: js}
	var err error
	if t.Heatmaps, err = js.ObjectStore(ctx, BucketHeatmaps); err != nil {
		return nil, fmt.Errorf("binding object store %s: %w", BucketHeatmaps, err)
	}
	for name, dst := range map[string]*jetstream.KeyValue{BucketOrders: &t.Orders, BucketEngineState: &t.EngineState,
		BucketScores: &t.Scores, BucketLabels: &t.Labels} {
		if *dst, err = js.KeyValue(ctx, name); err != nil {
			return nil, fmt.Errorf("binding bucket %s (is radgate serve running on this NATS?): %w", name, err)
		}
	}
	return t, nil
}

// Token makes s safe as one NATS subject token.
func Token(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' || c == '*' || c == '>' || c == ' ' || c < 0x21 || c > 0x7e {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// IsWrongSequence reports whether err is JetStream refusing an update whose
// expected last sequence is no longer the latest (a concurrent writer won).
func IsWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return true
	}
	return strings.Contains(err.Error(), "wrong last sequence")
}
