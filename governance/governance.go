package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/routing"
)

// Options configure New.
type Options struct {
	Topology *broker.Topology
	// Routes returns the route set in force (the acceptance minimums of a
	// route are read from it when an engine is activated). Routes and
	// Version are needed by Change only: recording results and labels
	// works without them.
	Routes func() *routing.Set
	// Version returns the model version of a loaded engine; ok is false
	// for an engine this process does not have.
	Version func(engine string) (version string, ok bool)
	// Audit is told of every state change made through Change (a FHIR
	// AuditEvent in radgate serve); nil: none.
	Audit Auditor
	// Logger receives one line per state change, evaluation and label
	// (identifiers only, never a verdict's text). Nil discards.
	Logger *slog.Logger
	// Reference returns what live monitoring compares an engine with (its
	// manifest's reference distribution, mark and validation accuracy); ok
	// is false for an engine without one. Nil: no PSI, agreement at 0.5.
	Reference func(engine string) (ref EngineReference, ok bool)
	// Drift is told of each drift alert raised (radgate serve writes a
	// FHIR Flag); nil: none.
	Drift DriftNotifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Auditor records a state change outside radgate (radgate serve writes a
// FHIR AuditEvent to the EHR's FHIR server).
type Auditor interface {
	// AuditChange writes the record of c and returns where it is (a FHIR
	// reference).
	AuditChange(ctx context.Context, c Change) (string, error)
}

// Governance keeps engine modes, recorded results, labels and
// evaluations. Its methods are safe for concurrent use by any number of
// radgate processes sharing the NATS server.
type Governance struct {
	o     Options
	log   *slog.Logger
	drift driftMemo
}

// New returns a Governance on o.Topology's buckets.
func New(o Options) *Governance {
	if o.Topology == nil || o.Topology.EngineState == nil || o.Topology.Scores == nil || o.Topology.Labels == nil {
		panic("governance: New needs a topology with the governance buckets (broker.EnsureTopology)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Governance{o: o, log: o.Logger.With("component", "governance")}
}

// Key names one engine standing: an engine's model version on a route at
// a facility.
type Key struct {
	Facility string `json:"facility"`
	Route    string `json:"route"`
	Engine   string `json:"engine"`
	Version  string `json:"version"`
}

func (k Key) String() string {
	return fmt.Sprintf("facility %q, route %s, engine %s version %s", k.Facility, k.Route, k.Engine, k.Version)
}

func (k Key) token() string {
	return broker.Token(k.Facility) + "." + broker.Token(k.Route) + "." + broker.Token(k.Engine) + "." + broker.Token(k.Version)
}

func (k Key) stateKey() string { return "s." + k.token() }

// facilityOf is the facility an order counts for: its configured
// facility's id, else the facility the order named (as usage does).
func facilityOf(st radgate.OrderStatus) string {
	if st.FacilityID != "" {
		return st.FacilityID
	}
	return st.Facility
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decoding %s of bucket %s: %w", key, kv.Bucket(), err)
	}
	return e.Revision(), nil
}

// logRecord appends v to RADGATE_GOVERNANCE under subject (msgID makes a
// retried append a no-op within the duplicate window) and returns its
// sequence.
func (g *Governance) logRecord(ctx context.Context, subject, msgID string, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	m := nats.NewMsg(broker.SubjectGovernance + subject)
	m.Data = b
	ack, err := g.o.Topology.JS.PublishMsg(ctx, m, jetstream.WithMsgID(msgID))
	if err != nil {
		return 0, fmt.Errorf("recording %s in %s: %w", subject, broker.StreamGovernance, err)
	}
	return ack.Sequence, nil
}

func isNotFound(err error) bool { return errors.Is(err, jetstream.ErrKeyNotFound) }
