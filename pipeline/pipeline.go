package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/routing"
)

// Governor is what the pipeline asks of engine governance (implemented by
// governance.Governance; an interface so that the pipeline does not import
// it).
type Governor interface {
	// Mode is the mode engine e's result for the order st is in now: a
	// result not radgate.EngineActive is recorded but goes to no
	// destination. The router asks it too, to fill RouteDecision.Modes.
	Mode(ctx context.Context, st radgate.OrderStatus, e radgate.EngineInfo) (radgate.EngineMode, error)
	// Measure records a result (r.Order set) for measurement, whatever
	// its outcome and mode; idempotent per result.
	Measure(ctx context.Context, r radgate.Result, mode radgate.EngineMode) error
}

// Options configures a Pipeline.
type Options struct {
	Topology *broker.Topology
	// Usage counts every scored analysis per facility × engine × day; nil
	// counts nothing.
	Usage *billing.UsageMeter
	// Facilities attributes orders to configured facilities (routes and
	// usage use the facility id); nil attributes none.
	Facilities *radgate.Facilities
	Source     radgate.StudySource
	Engines    []radgate.Engine
	// Sinks are the result destinations by name; each gets its own durable
	// consumer, so a slow one never holds back another.
	Sinks map[string]radgate.Sink
	// Routes decides which engines score an order and where the results
	// go. Nil: every engine, every sink (routing.Default).
	Routes *routing.Set
	// Governance records every engine result for measurement and says
	// whether it may be delivered (governance.Governance); nil: every
	// result is delivered and none recorded.
	Governance Governor
	// PatientAge reads the age of an order's Patient (its reference) at
	// the order's date from the EHR, for an engine with an age range when
	// neither the image nor the order gave one (the FHIR client's
	// PatientAge in serve); nil: not read, the age stays unknown.
	PatientAge func(ctx context.Context, patient string, at time.Time) (*radgate.PatientAge, error)

	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// StudyWaitWindow is how long an order waits for its study (default
	// 72 h); WaitFor, when set, decides it per order (priority, facility,
	// procedure code) and returns 0 to use StudyWaitWindow.
	StudyWaitWindow time.Duration
	WaitFor         func(radgate.OrderStatus) time.Duration
	// StableAfter is how long a study's instance count must stay the same,
	// as radgate observes it, before the study is scored (default 60 s;
	// negative: at once).
	StableAfter time.Duration
	// PollMin and PollMax bound how often a waiting order's study is looked
	// for in the PACS (default 30 s growing to 15 min); PollRate caps the
	// PACS queries of all waiting orders together (per second, default 20).
	PollMin, PollMax time.Duration
	PollRate         float64
	// WatchAfter is how long an answered order's study is still watched for
	// added images (and a failed one's for late images) at PollMax (default
	// 2 h). Events (ImagingStudy, HL7 status) re-check it at any time.
	WatchAfter time.Duration
	// AckWait is how long a stage's message may go without an ack or a
	// heartbeat before JetStream gives it to another worker (default 60 s);
	// every stage sends heartbeats at a third of it while it works.
	AckWait time.Duration
	// DeliveryWindow bounds how long a result is retried at a destination.
	DeliveryWindow time.Duration
	// RetryMin and RetryMax bound the exponential backoff of retries.
	RetryMin, RetryMax time.Duration
	// InferenceWorkers is how many jobs are scored at once.
	InferenceWorkers int
	// RouterWorkers is how many orders are resolved against the PACS at once.
	RouterWorkers int
	// FairWindow is how many pending messages each router and inference
	// consumer holds to serve the facilities in turn (fair.go; default
	// DefaultFairWindow; it is the consumer's MaxAckPending, shared by the
	// processes of a hub). Negative: stream order (no turns), for
	// comparison.
	FairWindow int
	// MaxInstancesPerStudy bounds the images one engine is given for one
	// order (default 50); a study with more fails with a reason naming it.
	MaxInstancesPerStudy int
	// MaxStudyBytes bounds what one job retrieves from the PACS in total
	// (default 1 GiB), counted as images arrive; past it the engine's result
	// is failed with a reason naming orders.max_study_bytes.
	MaxStudyBytes int64

	// Role is which stages run (issue 16): RoleAll (the default) every
	// one; RoleHub the inference stage only; RoleEdge the router, the
	// deliveries and the watcher of waiting orders, not the inference.
	Role Role
	// Facility, on an edge, is its site's facility id: every order it
	// takes is that facility's (its jobs go to the hub under it).
	Facility string
	// EdgeImages, on a hub, is the image store of facility's edge, read
	// through its JetStream domain: the images of the edge's jobs.
	EdgeImages func(ctx context.Context, facility string) (radgate.StudySource, error)
	// StageImages, on an edge, copies a job's images into the edge's image
	// store before the job is published, so the hub reads them there.
	StageImages func(ctx context.Context, job Job) error

	// Now is the clock (tests replace it).
	Now func() time.Time
}

// Role is which of the stages a Pipeline runs (radgate serve's role).
type Role int

const (
	// RoleAll runs every stage.
	RoleAll Role = iota
	// RoleHub runs the inference stage only: a hub process scoring the
	// jobs the edges' sources bring into the hub's RADGATE_JOBS.
	RoleHub
	// RoleEdge runs the router, the deliveries and the watcher of waiting
	// orders: a site whose jobs are scored by the hub.
	RoleEdge
)

// Pipeline carries orders from intake to delivery over JetStream. It
// implements Intake. Every stage is a durable pull consumer with explicit
// acks: a message is acknowledged only after what it led to (the next
// message, or the destination's write) is durable.
type Pipeline struct {
	opts  Options
	log   *slog.Logger
	js    jetstream.JetStream
	store *orderStore
	m     *metrics
	// stages and results are the last hour beside m (LastHour): messages
	// per stage × verdict with their handling time, results per engine ×
	// outcome with the time from the order's receipt.
	stages, results *Window

	routesMu sync.RWMutex
	rs       routeState

	mu      sync.Mutex
	running []*stageRunner
	watcher *watcher
	// parts are the delivery stages' held parts of results, by stage.
	parts map[string]*partAssembler
}

var _ radgate.Intake = (*Pipeline)(nil)

// NewPipeline validates opts; it does no I/O.
func NewPipeline(opts Options) (*Pipeline, error) {
	if opts.Topology == nil {
		return nil, errors.New("routing: no JetStream topology")
	}
	if opts.Source == nil {
		return nil, errors.New("routing: no study source")
	}
	if len(opts.Engines) == 0 {
		return nil, errors.New("routing: no engine")
	}
	if len(opts.Sinks) == 0 {
		return nil, errors.New("routing: no result destination")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StudyWaitWindow <= 0 {
		opts.StudyWaitWindow = 72 * time.Hour
	}
	if opts.StableAfter == 0 {
		opts.StableAfter = 60 * time.Second
	}
	if opts.PollMin <= 0 {
		opts.PollMin = 30 * time.Second
	}
	if opts.PollMax < opts.PollMin {
		opts.PollMax = max(opts.PollMin, 15*time.Minute)
	}
	if opts.PollRate <= 0 {
		opts.PollRate = 20
	}
	if opts.WatchAfter <= 0 {
		opts.WatchAfter = 2 * time.Hour
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 60 * time.Second
	}
	if opts.DeliveryWindow <= 0 {
		opts.DeliveryWindow = time.Hour
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = 30 * opts.RetryMin
	}
	if opts.InferenceWorkers <= 0 {
		opts.InferenceWorkers = 1
	}
	if opts.FairWindow == 0 {
		opts.FairWindow = DefaultFairWindow
	}
	if opts.RouterWorkers <= 0 {
		opts.RouterWorkers = 4
	}
	if opts.MaxInstancesPerStudy <= 0 {
		opts.MaxInstancesPerStudy = 50
	}
	if opts.MaxStudyBytes <= 0 {
		opts.MaxStudyBytes = 1 << 30
	}
	p := &Pipeline{
		opts:   opts,
		log:    opts.Logger.With("component", "pipeline"),
		js:     opts.Topology.JS,
		m:      newMetrics(opts.Registerer),
		stages: NewWindow(opts.Now), results: NewWindow(opts.Now),
		rs: routeState{engines: map[string]radgate.Engine{}},
	}
	p.store = &orderStore{kv: opts.Topology.Orders, now: opts.Now, js: opts.Topology.JS, log: p.log, invalid: p.m.invalid}
	var ids []string
	for _, e := range opts.Engines {
		id := e.Info().ID
		if _, dup := p.rs.engines[id]; dup {
			return nil, fmt.Errorf("routing: engine %q configured twice", id)
		}
		p.rs.engines[id] = e
		ids = append(ids, id)
	}
	p.rs.set = opts.Routes
	if p.rs.set == nil {
		sinks := make([]string, 0, len(opts.Sinks))
		for name := range opts.Sinks {
			sinks = append(sinks, name)
		}
		slices.Sort(sinks)
		p.rs.set = routing.Default(ids, sinks)
	}
	for _, d := range p.rs.set.Destinations() {
		if _, ok := opts.Sinks[d]; !ok {
			return nil, fmt.Errorf("routing: the routes name destination %q, which has no sink", d)
		}
	}
	return p, nil
}

// Accept implements Intake: it merges ev into its order in the order store
// and publishes it to the ORDERS stream, returning once JetStream has
// acknowledged both.
func (p *Pipeline) Accept(ctx context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = p.opts.Now()
	}
	ev = withoutPatientName(ev)
	if ev.Action == radgate.ActionCancel {
		return p.cancel(ctx, ev)
	}
	id, key, err := p.resolveOrder(ctx, ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	st, err := p.store.update(ctx, id, true, func(st *radgate.OrderStatus) error {
		if c := st.Cancelled; c != nil {
			return fmt.Errorf("%w: order %s (%s) was cancelled at %s (%s); a new order needs a new accession number",
				radgate.ErrOrderCancelled, id, describeEvent(ev), c.At.UTC().Format(time.RFC3339), c.Reason)
		}
		merge(st, key, ev)
		return nil
	})
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	if ev.ResourceType == "ServiceRequest" && ev.ServiceRequest != nil && ev.ServiceRequest.Reference != "" {
		if err := p.store.indexRef(ctx, ev.ServiceRequest.Reference, id); err != nil {
			return radgate.OrderStatus{}, err
		}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	msg := nats.NewMsg(broker.OrderSubject(classOf(st), p.facilityOf(st), ev.Source))
	msg.Data = data
	msg.Header.Set(broker.HeaderOrderID, id)
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(eventMsgID(id, ev))); err != nil {
		return radgate.OrderStatus{}, fmt.Errorf("publishing order %s: %w", id, err)
	}
	p.m.accepted.WithLabelValues(ev.Source).Inc()
	p.log.Info("order accepted", "order", id, "source", ev.Source, "resource", ev.ResourceType)
	return st, nil
}

// resolveOrder finds the order an event belongs to: an ImagingStudy without
// an accession number joins the order of the ServiceRequest it is based on.
func (p *Pipeline) resolveOrder(ctx context.Context, ev radgate.OrderEvent) (id, key string, err error) {
	if ev.Accession == nil || ev.Accession.Value == "" {
		for _, b := range ev.BasedOn {
			if b.Reference == "" {
				continue
			}
			if oid, ok, err := p.store.lookupRef(ctx, b.Reference); err != nil {
				return "", "", err
			} else if ok {
				st, err := p.store.get(ctx, oid)
				if err != nil {
					return "", "", err
				}
				return oid, st.Key, nil
			}
		}
	}
	key, err = radgate.OrderKey(ev)
	if err != nil {
		return "", "", err
	}
	return radgate.OrderID(key), key, nil
}

// eventMsgID identifies one intake event for JetStream's duplicate window:
// the same resource posted twice is stored once.
// withoutPatientName drops what would store the patient's name: radgate
// never keeps one. A FHIR subject's display text is usually the name, so
// the order keeps the patient's reference and identifier only; an output
// that needs the name (the ORU's PID-5) reads it at send time from the
// order's source.
func withoutPatientName(ev radgate.OrderEvent) radgate.OrderEvent {
	if ev.Patient != nil && ev.Patient.Display != "" {
		p := *ev.Patient
		p.Display = ""
		ev.Patient = &p
	}
	return ev
}

func eventMsgID(orderID string, ev radgate.OrderEvent) string {
	ref := ""
	switch {
	case ev.EventID != "":
		ref = ev.EventID
	case ev.ResourceType == "ServiceRequest" && !ev.ServiceRequest.IsZero():
		ref = ev.ServiceRequest.Reference
	case ev.ResourceType == "ImagingStudy" && !ev.ImagingStudy.IsZero():
		ref = ev.ImagingStudy.Reference
	}
	if ref == "" {
		b, _ := json.Marshal(struct {
			A *radgate.Identifier
			S string
			P []radgate.Coding
		}{ev.Accession, ev.StudyInstanceUID, ev.ProcedureCodes})
		sum := sha256.Sum256(b)
		ref = hex.EncodeToString(sum[:8])
	}
	return orderID + "." + ev.Source + "." + ev.ResourceType + "." + ref
}

// Status implements Intake.
func (p *Pipeline) Status(ctx context.Context, id string) (radgate.OrderStatus, error) {
	return p.store.get(ctx, id)
}

// Start creates the durable consumers and starts consuming, and starts
// the watcher of orders waiting for their study. Stop drains them.
//
// Every stage has two consumers, one per priority class
// (radgate.PriorityClass): urgent work (stat, asap, urgent) has its own
// workers and its own queue, so it never waits behind routine work. The
// router's and inference's consumers serve the facilities in turn within
// a window of FairWindow messages (fair.go).
func (p *Pipeline) Start(ctx context.Context) error {
	var stages []*stageRunner
	add := func(name, stream, durable, prefix string, routine, urgent, window int, handle func(context.Context, jetstream.Msg) verdict) {
		for _, c := range []struct {
			class   string
			workers int
		}{{radgate.PriorityUrgent, urgent}, {radgate.PriorityRoutine, routine}} {
			n, d := name, durable
			if c.class == radgate.PriorityUrgent {
				n, d = name+"-urgent", durable+"-urgent"
			}
			stages = append(stages, &stageRunner{name: n, stream: stream, durable: d, filter: prefix + c.class + ".>",
				workers: c.workers, window: window, ackWait: p.opts.AckWait, handle: handle})
		}
	}
	fair := max(p.opts.FairWindow, 0)
	role := p.opts.Role
	if role != RoleHub {
		add("router", broker.StreamOrders, "router", broker.SubjectOrders, p.opts.RouterWorkers, p.opts.RouterWorkers, fair, p.route)
	}
	if role != RoleEdge {
		add("inference", broker.StreamJobs, "inference", broker.SubjectJobs, p.opts.InferenceWorkers, max(1, p.opts.InferenceWorkers/2), fair, p.score)
	}
	if role != RoleHub {
		for name, sink := range p.opts.Sinks {
			add("deliver-"+name, broker.StreamResults, "deliver-"+broker.Token(name), broker.SubjectResults+broker.Token(name)+".", 4, 2, 0, p.deliverTo(name, sink))
		}
	}
	for _, s := range stages {
		s.p = p
		if s.stream == broker.StreamResults {
			s.pending = 2 * maxResultParts
		}
		if err := s.start(ctx); err != nil {
			_ = p.Stop(context.Background())
			return err
		}
		p.mu.Lock()
		p.running = append(p.running, s)
		p.mu.Unlock()
	}
	if role == RoleHub {
		return nil // the edges watch their waiting orders
	}
	w, err := p.startWatcher(ctx)
	if err != nil {
		_ = p.Stop(context.Background())
		return err
	}
	p.mu.Lock()
	p.watcher = w
	p.mu.Unlock()
	return nil
}

// Stop drains every stage: no new messages are taken, in-flight ones finish
// (or are left unacknowledged for redelivery when ctx expires).
func (p *Pipeline) Stop(ctx context.Context) error {
	p.mu.Lock()
	running, w := p.running, p.watcher
	p.running, p.watcher = nil, nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	if w != nil {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop() }()
	}
	for _, s := range running {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping pipeline: %w", ctx.Err())
	}
}

// verdict is what a stage handler decided for its message.
type verdict struct {
	kind   verdictKind
	delay  time.Duration
	reason string
	// also are messages the handler held that share the verdict, settled
	// after the handled one: acked after its ack, terminated after its
	// dead letter (the parts of a result, parts.go). A retry leaves them
	// held.
	also []jetstream.Msg
	// letter, when set, is what a dead letter keeps in place of the
	// message (deadLetter).
	letter *letter
}

// letter is what a dead letter keeps in place of the message its stage
// gave up on, where sending that message again would not redo the work:
// the subject a replay publishes to, and its body.
type letter struct {
	subject string
	data    []byte
}

type verdictKind int

const (
	ack verdictKind = iota
	retry
	terminate // Term + dead-letter copy
	hold      // left unacknowledged: the handler keeps it (a result's part, parts.go)
)

func done() verdict                    { return verdict{kind: ack} }
func retryIn(d time.Duration) verdict  { return verdict{kind: retry, delay: d} }
func deadLetter(reason string) verdict { return verdict{kind: terminate, reason: reason} }
func held() verdict                    { return verdict{kind: hold} }
func (p *Pipeline) backoff(n uint64) time.Duration {
	d := p.opts.RetryMin
	for i := uint64(1); i < n && d < p.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, p.opts.RetryMax)
}

// stageRunner runs one durable consumer with a bounded pool of workers.
// With a window, it holds up to window messages in a fairQueue and its
// workers serve the facilities in turn; without, messages are handled in
// stream order.
type stageRunner struct {
	p       *Pipeline
	name    string
	stream  string
	durable string
	filter  string
	workers int
	window  int
	// pending adds to the consumer's MaxAckPending (without a window):
	// the parts of results a delivery holds until their last one came.
	pending int
	ackWait time.Duration
	handle  func(ctx context.Context, msg jetstream.Msg) verdict

	cc jetstream.ConsumeContext
	q  *fairQueue
	// keepDone ends the keep-alive of the messages q holds.
	keepDone chan struct{}
	sem      chan struct{}
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

func (s *stageRunner) start(ctx context.Context) error {
	maxAck, pull := 4*s.workers+s.pending, s.workers
	if s.window > 0 {
		maxAck, pull = max(s.window, s.workers), min(max(s.window, s.workers), 64)
	}
	cons, err := s.p.js.CreateOrUpdateConsumer(ctx, s.stream, jetstream.ConsumerConfig{
		Durable:       s.durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.ackWait,
		MaxDeliver:    -1, // bounded by each stage's time window instead
		FilterSubject: s.filter,
		MaxAckPending: maxAck,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("creating consumer %s on %s: %w", s.durable, s.stream, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithValue(context.Background(), stageKey{}, s.name))
	handler := s.inOrder()
	if s.window > 0 {
		handler = s.inTurn(maxAck)
	}
	cc, err := cons.Consume(handler, jetstream.PullMaxMessages(pull), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.p.log.Log(context.Background(), consumerErrorLevel(err), "consumer error", "stage", s.name, "err", err)
	}))
	if err != nil {
		if s.q != nil {
			s.q.close()
			close(s.keepDone)
		}
		return fmt.Errorf("consuming %s: %w", s.durable, err)
	}
	s.cc = cc
	return nil
}

// inOrder handles messages in stream order, up to workers at once.
func (s *stageRunner) inOrder() jetstream.MessageHandler {
	s.sem = make(chan struct{}, s.workers)
	return func(msg jetstream.Msg) {
		s.sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			s.process(msg)
		}()
	}
}

// inTurn queues messages by facility (up to limit) for workers that take
// the facilities in turn, and keeps the queued ones alive.
func (s *stageRunner) inTurn(limit int) jetstream.MessageHandler {
	s.q = newFairQueue(limit)
	for range s.workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				msg, ok := s.q.pop()
				if !ok {
					return
				}
				s.process(msg)
			}
		}()
	}
	s.keepDone = make(chan struct{})
	if every := s.ackWait / 3; every > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-s.keepDone:
					return
				case <-t.C:
					for _, m := range s.q.waiting() {
						_ = m.InProgress()
					}
				}
			}
		}()
	}
	return func(msg jetstream.Msg) {
		if !s.q.push(facilityKey(msg.Subject()), msg) {
			_ = msg.Nak() // stopping: for whoever takes it next
		}
	}
}

// consumerErrorLevel is how loud a JetStream consumer error is: a consumer
// that is gone stops its stage (error); the connection closing is the
// normal end (debug); anything else — missed heartbeats, a leader change —
// is retried by the client but worth seeing (warn).
func consumerErrorLevel(err error) slog.Level {
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
		return slog.LevelError
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrDrainTimeout):
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func (s *stageRunner) stop(ctx context.Context) {
	if s.cc == nil {
		return
	}
	s.cc.Drain()
	if s.q != nil {
		// What waits for its turn goes back at once; the workers finish
		// what they hold.
		for _, m := range s.q.close() {
			_ = m.Nak()
		}
		close(s.keepDone)
	}
	select {
	case <-s.cc.Closed():
	case <-ctx.Done():
	}
	workersDone := make(chan struct{})
	go func() { s.wg.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-ctx.Done():
		s.cancel() // abandon: unacked messages are redelivered after AckWait
		<-workersDone
	}
	s.cancel()
}

func (s *stageRunner) process(msg jetstream.Msg) {
	start := time.Now()
	log := s.p.log.With("stage", s.name, "order", msg.Headers().Get(broker.HeaderOrderID))
	v := func() (v verdict) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("stage panicked", "panic", r, "stack", string(debug.Stack()))
				v = deadLetter(fmt.Sprintf("internal error in stage %s: %v", s.name, r))
			}
		}()
		stopBeat := s.heartbeat(msg)
		defer stopBeat()
		return s.handle(s.ctx, msg)
	}()
	var err error
	switch v.kind {
	case hold:
	case ack:
		err = msg.DoubleAck(s.ctx)
		for _, m := range v.also {
			if aerr := m.DoubleAck(s.ctx); aerr != nil {
				err = aerr
			}
		}
	case retry:
		err = msg.NakWithDelay(v.delay)
	case terminate:
		if dlqErr := s.p.deadLetter(s.ctx, s.name, msg, v.reason, v.letter); dlqErr != nil {
			log.Error("dead-lettering failed; leaving the message for redelivery", "err", dlqErr)
			_ = msg.NakWithDelay(s.p.opts.RetryMax)
			for _, m := range v.also {
				_ = m.NakWithDelay(s.p.opts.RetryMax)
			}
			return
		}
		err = msg.TermWithReason(v.reason)
		for _, m := range v.also {
			_ = m.TermWithReason(v.reason)
		}
		s.p.failOrder(s.ctx, msg.Headers().Get(broker.HeaderOrderID), s.name, v.reason)
	}
	if err != nil {
		log.Warn("acknowledging failed", "err", err)
	}
	if v.kind == hold {
		return // counted when its result is delivered
	}
	took, kind := time.Since(start), [...]string{"ack", "retry", "dead-letter"}[v.kind]
	fac := s.p.facilityLabel(msg.Subject())
	s.p.m.handled.WithLabelValues(s.name, kind, fac).Inc()
	s.p.m.latency.WithLabelValues(s.name, fac).Observe(took.Seconds())
	s.p.stages.Record(s.name, kind, took)
}

// heartbeat tells JetStream that msg is still being worked on, every
// third of the AckWait, until the returned func is called: a handler that
// runs long (a slow PACS, a slow destination) is never given to a second
// worker while it works.
func (s *stageRunner) heartbeat(msg jetstream.Msg) func() {
	every := s.ackWait / 3
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// failOrder makes a dead-lettered message visible on its order: every engine
// not yet finished is marked failed with the reason, so GET /orders/{id}
// never shows an order waiting for work that will not come. A replay
// (radgate dlq replay) re-opens it.
func (p *Pipeline) failOrder(ctx context.Context, orderID, stage, reason string) {
	if orderID == "" {
		return
	}
	why := fmt.Sprintf("dead-lettered by stage %s: %s (inspect with radgate dlq list; re-run with radgate dlq replay)", stage, reason)
	_, err := p.store.update(ctx, orderID, false, func(o *radgate.OrderStatus) error {
		changed := false
		engines := orderEngines(*o)
		if len(engines) == 0 {
			engines = []string{radgate.RouterEngine}
		}
		for _, eid := range engines {
			if cur, ok := o.Engines[eid]; !ok || !cur.State.Terminal() {
				if o.Engines == nil {
					o.Engines = map[string]radgate.EngineProgress{}
				}
				o.Engines[eid] = radgate.EngineProgress{State: radgate.StateFailed, Reason: why}
				changed = true
			}
		}
		if !changed {
			return errSkip
		}
		recompute(o)
		return nil
	})
	if err != nil && !errors.Is(err, radgate.ErrOrderNotFound) {
		p.log.Warn("recording a dead letter on its order failed", "order", orderID, "err", err)
	}
}

// deadLetter keeps a copy of msg with the reason in the DLQ stream.
func (p *Pipeline) deadLetter(ctx context.Context, stage string, msg jetstream.Msg, reason string, as *letter) error {
	if as == nil && msg.Headers().Get(HeaderPart) != "" {
		as = rescoreLetter(msg)
	}
	if as == nil {
		as = &letter{subject: msg.Subject(), data: msg.Data()}
	}
	out := nats.NewMsg(broker.SubjectDLQ + broker.Token(stage))
	out.Data = as.data
	out.Header.Set(broker.HeaderOrderID, msg.Headers().Get(broker.HeaderOrderID))
	out.Header.Set(broker.HeaderReason, reason)
	out.Header.Set(broker.HeaderSubject, as.subject)
	if r := msg.Headers().Get(broker.HeaderReplayOf); r != "" {
		out.Header.Set(broker.HeaderReplayOf, r) // a replay that failed again says so
	}
	if md, err := msg.Metadata(); err == nil {
		out.Header.Set(broker.HeaderAttempts, strconv.FormatUint(md.NumDelivered, 10))
	}
	_, err := p.js.PublishMsg(ctx, out)
	return err
}

// msgAge is how long ago JetStream first stored msg.
func msgAge(msg jetstream.Msg, now time.Time) (time.Duration, uint64) {
	md, err := msg.Metadata()
	if err != nil {
		return 0, 1
	}
	return now.Sub(md.Timestamp), md.NumDelivered
}

type metrics struct {
	accepted *prometheus.CounterVec
	handled  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	results  *prometheus.CounterVec
	invalid  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_intake_orders_accepted_total", Help: "Intake events accepted, by source.",
		}, []string{"source"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_stage_messages_total", Help: "Messages handled by each stage, by verdict and facility (a configured facility's id, or _).",
		}, []string{"stage", "verdict", "facility"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "radgate_stage_handle_seconds", Help: "Time a stage spends on one message, by facility (a configured facility's id, or _).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stage", "facility"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_results_total", Help: "Results produced, by engine and outcome.",
		}, []string{"engine", "outcome"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "radgate_order_invalid_transitions_total", Help: "Order state changes not in the state machine (a bug; logged at error level).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.handled, m.latency, m.results, m.invalid)
	}
	return m
}
