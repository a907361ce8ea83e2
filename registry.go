package radgate

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/config"
)

// CommonDestinationKeys are the radgate.yaml keys every destination may set,
// whatever its type: the registry reads them, the type's constructor gets
// them ready to use (an authenticated HTTP client, the PDF renderer).
var CommonDestinationKeys = []string{"type", "timeout", "auth", "tls", "pdf_report"}

// DestinationType is a kind of result destination, registered by the adapter
// that implements it ("fhir" by adapters/fhirhttp, "dicomweb" by
// adapters/dicomweb, "hl7v2" by adapters/hl7v2). radgate serve and radgate
// check build every configured destination through its type, so a type
// registered anywhere linked into the binary — a test package included — is
// served and checked without a change to cmd/.
type DestinationType struct {
	// Name is the value of the destination's type key.
	Name string
	// Summary says in a line what the destination receives.
	Summary string
	// Keys are the destination keys the type reads besides
	// CommonDestinationKeys; setting any other key is a configuration error
	// naming these.
	Keys []string
	// HTTP marks a type that talks HTTP: its DestinationContext carries an
	// *http.Client built from the destination's auth and tls keys. Other
	// types may not set auth or tls.
	HTTP bool
	// TLS marks a type that is not HTTP but takes the tls key (client TLS:
	// ca_file, cert_file, key_file): its DestinationContext carries TLS,
	// nil when the destination sets none (DICOM TLS for the dimse type).
	TLS bool
	// Check validates a destination's keys and returns one error per
	// finding, keyed by the key at fault ("" for the destination as a whole).
	// It does no I/O. Nil checks nothing beyond Keys.
	Check func(d config.Destination) []KeyError
	// New builds the sink from a checked destination; it does no network I/O
	// (the first delivery connects). A sink that holds resources implements
	// io.Closer-style Close() error; one with best-effort start-up work
	// (publishing a CodeSystem) implements Preparer.
	New func(dc DestinationContext) (Sink, error)
	// Probe reaches the destination without writing anything (radgate check
	// --connect): nil means the type cannot be probed. ProbeDoes says how,
	// in a few words ("FHIR metadata", "MLLP connection").
	Probe     func(ctx context.Context, dc DestinationContext) error
	ProbeDoes string
}

// KeyError is a finding about one key of a destination.
type KeyError struct {
	Key     string
	Message string
}

// DestinationContext is what a destination type's constructor gets.
type DestinationContext struct {
	// Name is the destination's name in radgate.yaml ("fhir" for the fhir
	// section's built-in destination).
	Name   string
	Config config.Destination
	// HTTPClient sends the destination's requests with its auth and TLS
	// (HTTP types only); its Timeout is the destination's timeout.
	HTTPClient *http.Client
	// TLS is the destination's client TLS (types with TLS set; nil: the
	// destination sets no tls key).
	TLS *tls.Config
	// JetStream is where a sink keeps durable state of its own (the HL7 v2
	// outbox), within Retention (radgate.yaml's retention section).
	JetStream jetstream.JetStream
	Retention config.Retention
	// Images is where the orders' images are — the PACS, with radgate's
	// image store of pushed studies before it: a sink that needs the
	// scored instance itself (to derive a Secondary Capture) reads it
	// here, not from its own peer, which may not hold the study.
	Images StudySource
	// PDF renders the result's one-page report; nil unless pdf_report.
	PDF func(context.Context, Result) ([]byte, error)
	// EHR is the EHR's FHIR server (the fhir section): where a sink reads
	// what radgate does not store — the patient's name — at send time.
	EHR    EHR
	Logger *slog.Logger
}

// EHR is how to reach the EHR's FHIR server.
type EHR struct {
	BaseURL    string
	HTTPClient *http.Client
	Timeout    time.Duration
}

// Preparer is implemented by sinks with best-effort start-up work: radgate
// serve calls Prepare once and logs a failure without stopping, since the
// peer may come up later and every delivery retries.
type Preparer interface {
	Prepare(ctx context.Context) error
}

// Registry holds destination types by name. The package-level functions use
// the default registry, which adapters fill from their init functions;
// tests build their own with NewRegistry so nothing global leaks.
type Registry struct {
	mu    sync.RWMutex
	types map[string]DestinationType
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]DestinationType{}} }

var defaultRegistry = NewRegistry()

// DefaultRegistry is the registry adapters register into at init.
func DefaultRegistry() *Registry { return defaultRegistry }

// RegisterDestination adds t to the default registry; see
// Registry.RegisterDestination.
func RegisterDestination(t DestinationType) { defaultRegistry.RegisterDestination(t) }

// RegisterDestination adds a destination type. A duplicate or nameless type,
// or one without a constructor, is a programmer error and panics.
func (r *Registry) RegisterDestination(t DestinationType) {
	if t.Name == "" || t.New == nil {
		panic("radgate: a destination type needs a Name and a New function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[t.Name]; dup {
		panic(fmt.Sprintf("radgate: destination type %q registered twice", t.Name))
	}
	r.types[t.Name] = t
}

// Destination returns the type registered under name.
func (r *Registry) Destination(name string) (DestinationType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// DestinationTypes lists the registered type names, sorted.
func (r *Registry) DestinationTypes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckConfig checks every configured destination against its type: the
// type is registered, only its keys are set, and its own Check passes. Each
// finding is positioned at the key in radgate.yaml.
func (r *Registry) CheckConfig(cfg config.Config) config.Errors {
	var errs config.Errors
	for _, name := range cfg.DestinationNames() {
		d, ok := cfg.Destinations[name]
		if !ok {
			continue
		}
		path := "destinations." + name
		t, ok := r.Destination(d.Type)
		if !ok {
			if d.Type == "" {
				errs = append(errs, cfg.ErrorAt(path, fmt.Sprintf("type must be set (known: %v)", r.DestinationTypes())))
			} else {
				errs = append(errs, cfg.ErrorAt(path+".type", fmt.Sprintf("unknown destination type %q (known: %v)", d.Type, r.DestinationTypes())))
			}
			continue
		}
		for _, k := range cfg.KeysAt(path) {
			if slices.Contains(CommonDestinationKeys, k) || slices.Contains(t.Keys, k) {
				if !t.HTTP && (k == "auth" || k == "tls" && !t.TLS) {
					errs = append(errs, cfg.ErrorAt(path+"."+k, fmt.Sprintf("%s applies to HTTP destinations only; a %s destination does not use it", k, t.Name)))
				}
				continue
			}
			errs = append(errs, cfg.ErrorAt(path+"."+k, fmt.Sprintf("%s does not apply to a %s destination (its keys: %v)", k, t.Name, append(slices.Clone(CommonDestinationKeys), t.Keys...))))
		}
		if t.Check != nil {
			for _, ke := range t.Check(d) {
				p := path
				if ke.Key != "" {
					p += "." + ke.Key
				}
				errs = append(errs, cfg.ErrorAt(p, ke.Message))
			}
		}
	}
	return errs
}
