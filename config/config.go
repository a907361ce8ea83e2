// Package config owns radgate.yaml: its schema, defaults, loading, and
// errors that name file:line:col. The comments on the fields below are the
// user documentation of each key.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of radgate.yaml.
type Config struct {
	// src is the file the Config was loaded from (for ErrorAt).
	src source

	// Role is what this radgate serve runs (role.go): all (the default:
	// every stage), hub (inference on the hub's cluster) or edge (a site:
	// intakes, order store, router, deliveries; linked to the hub as a
	// NATS leaf node, the edge section).
	Role string `yaml:"role"`
	// Edge is a site's link to the hub, for role edge.
	Edge Edge `yaml:"edge"`

	// Listen is the address of the HTTP intake (FHIR endpoints, /orders,
	// /healthz, /readyz, /metrics).
	Listen string `yaml:"listen"`
	// HTTP secures the intake: TLS, client certificates, bearer tokens
	// (see auth.go).
	HTTP HTTP `yaml:"http"`
	// DataDir holds the embedded NATS server's JetStream store and its
	// client credential (nats/credentials.nk, generated on the first start;
	// radgate dlq, hl7 and usage read it there).
	DataDir string `yaml:"data_dir"`
	// ModelsDir holds one folder per engine (model.onnx + model.yaml).
	ModelsDir string `yaml:"models_dir"`
	// Engines lists the engine ids every order is scored by. Empty means the
	// default engine, cxr-pneumonia-densenet121.
	Engines []string `yaml:"engines"`
	// RoutesFile is the route file (see package routing): which studies go to
	// which engines and where their results go. Empty: one built-in route
	// sends every order the engines accept to the "fhir" destination.
	// Relative paths are relative to the working directory. radgate serve
	// reloads it on SIGHUP and when the file changes.
	RoutesFile string `yaml:"routes_file"`
	// Facilities are the hospitals and sites radgate serves, each with the
	// identifiers that name it in every protocol (see facility.go). An
	// order is attributed to the facility one of its names resolves to.
	Facilities []Facility `yaml:"facilities"`
	// Destinations are result destinations that routes name, besides the
	// built-in "fhir" (the fhir section below). Names are lower-case
	// letters, digits, '-' and '_'.
	Destinations map[string]Destination `yaml:"destinations"`

	NATS      NATS      `yaml:"nats"`
	Inference Inference `yaml:"inference"`
	PACS      PACS      `yaml:"pacs"`
	FHIR      FHIR      `yaml:"fhir"`
	Orders    Orders    `yaml:"orders"`
	HL7v2     HL7v2     `yaml:"hl7v2"`
	DIMSE     DIMSE     `yaml:"dimse"`
	// Verdicts: how radiologists' verdicts coming back are read.
	Verdicts Verdicts `yaml:"verdicts"`
	// Retention bounds what radgate keeps in JetStream (see retention.go).
	Retention Retention `yaml:"retention"`
	// Console configures the operator console (see console.go).
	Console Console `yaml:"console"`
	// Runtime tunes the Go runtime of radgate serve (see runtime.go).
	Runtime Runtime `yaml:"runtime"`
}

// NATS selects the message broker.
type NATS struct {
	// URL of an external NATS server or cluster (nats://host:4222, comma
	// separated for several). Empty runs an embedded server on
	// embedded_listen with JetStream storage in data_dir/nats.
	URL string `yaml:"url"`
	// CredentialsFile authenticates radgate to the external server (url):
	// a NATS .creds file, or an NKey user seed (a hub's hub.nk from radgate
	// sites nats-config). The embedded server needs none: it generates its
	// own credential.
	CredentialsFile string `yaml:"credentials_file"`
	// EmbeddedListen is the host:port the embedded server listens on when
	// url is empty (default 127.0.0.1:4222). Other radgate commands on the
	// same host (radgate dlq) reach the running radgate serve there. The
	// embedded server admits only clients holding the NKey credential it
	// generates in data_dir/nats/credentials.nk (mode 0600), but it has no
	// TLS: keep it on a loopback address; to reach NATS from other hosts,
	// run a NATS server with TLS and set url instead. A port of 0 or -1
	// takes a free port (tests).
	EmbeddedListen string `yaml:"embedded_listen"`
	// Replicas is how many copies of every stream, KV bucket and object
	// store radgate declares a JetStream cluster keeps (1, 3 or 5; default
	// 1). More than 1 needs url to name a cluster with at least that many
	// servers: the embedded server is a single server. A changed value
	// updates the existing streams when radgate serve starts.
	Replicas int `yaml:"replicas"`
	// PublishRetry is how long a JetStream write on the order path is
	// retried, with backoff and the same message id, while the broker is
	// briefly unavailable (a stream leader lost and a new one elected,
	// usually within 4–6 s); default 30 s, at most 45 s: an intake answers
	// its sender only after it (HTTP within 60 s; HL7 and DIMSE senders
	// wait as long).
	PublishRetry Duration `yaml:"publish_retry"`
}

// EmbeddedAddr splits EmbeddedListen into host and port. A port of 0 or -1
// comes back as -1: any free port. The host is an IP address, "localhost",
// or empty (every interface).
func (n NATS) EmbeddedAddr() (host string, port int, err error) {
	host, p, err := net.SplitHostPort(n.EmbeddedListen)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:4222)", n.EmbeddedListen)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 1-65535 (0 or -1: any free port)", n.EmbeddedListen)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address or localhost", n.EmbeddedListen)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// EmbeddedIsLoopback reports whether EmbeddedListen names a loopback host.
func (n NATS) EmbeddedIsLoopback() bool {
	host, _, err := net.SplitHostPort(n.EmbeddedListen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IntakeLimits bound what one client of the HTTP intake may hand in, so
// that no sender can queue enough orders to hold up everyone's results.
// A client is the authenticated principal when http.auth is on (a JWT's
// issuer and subject, a static token), else the remote IP address.
type IntakeLimits struct {
	// MaxBundleEntries is the most entries one Bundle may have; a larger
	// Bundle is answered 413 (detail code bundle-too-large) and nothing of
	// it is taken.
	MaxBundleEntries int `yaml:"max_bundle_entries"`
	// OrdersPerSecond is the sustained rate at which one client may hand in
	// orders (each ServiceRequest or ImagingStudy counts one, a Bundle as
	// many as it carries). Over it, a request is answered 429 with
	// Retry-After (detail code rate-limited). 0 turns the limit off.
	OrdersPerSecond float64 `yaml:"orders_per_second"`
	// OrderBurst is how many orders a client may hand in at once before
	// orders_per_second applies; at least max_bundle_entries.
	OrderBurst int `yaml:"order_burst"`
	// MaxClients bounds the clients whose rate is tracked at once (memory);
	// past it, clients idle long enough to have their full burst back are
	// forgotten first, then the least recently seen.
	MaxClients int `yaml:"max_clients"`
}

// validateLimits adds the findings about http.limits.
func validateLimits(c *Config, bad func(path, msg string)) {
	l := c.HTTP.Limits
	if l.MaxBundleEntries < 1 {
		bad("http.limits.max_bundle_entries", fmt.Sprintf("must be at least 1, got %d", l.MaxBundleEntries))
	}
	if l.OrdersPerSecond < 0 {
		bad("http.limits.orders_per_second", "must not be negative (0 turns the limit off)")
	}
	if l.OrdersPerSecond > 0 && l.OrderBurst < l.MaxBundleEntries {
		bad("http.limits.order_burst", fmt.Sprintf("must be at least http.limits.max_bundle_entries (%d), so that a Bundle radgate takes can be paid for; got %d",
			l.MaxBundleEntries, l.OrderBurst))
	}
	if l.MaxClients < 1 {
		bad("http.limits.max_clients", fmt.Sprintf("must be at least 1, got %d", l.MaxClients))
	}
}

// Inference configures the scoring stage.
type Inference struct {
	// ONNXRuntimeLibrary is the path of libonnxruntime.so. Empty: the
	// RADGATE_ONNXRUNTIME_LIB environment variable, then the set-up script's
	// .tools/onnxruntime/lib/libonnxruntime.so.
	ONNXRuntimeLibrary string `yaml:"onnxruntime_library"`
	// Workers is how many jobs the inference stage has in flight (default
	// 4): their fetching, decoding and heatmap rendering overlap, and the
	// images they wait to score share one ONNX Runtime run (one session per
	// engine, one run at a time per engine).
	Workers int `yaml:"workers"`
	// Threads is ONNX Runtime's intra-op thread count per engine: how many
	// cores one run of one engine may use, the calling thread included. 0
	// (the default) means DefaultInferenceThreads. One thread scores an
	// image with the least CPU and starts no thread pool, so engines that
	// run at once never contend for the cores the PACS, the FHIR server
	// and the rest of radgate need (BENCHMARKS.md, "ONNX Runtime
	// threading"); more threads cut the wall time of a run only where cores
	// are otherwise idle.
	Threads int `yaml:"threads"`
	// Spinning lets idle intra-op threads busy-wait for work instead of
	// sleeping (ONNX Runtime's own default). Off by default: with two
	// threads on two shared cores it spent up to twice the CPU per image
	// for no gain in wall time. It matters only when threads is above 1.
	Spinning bool `yaml:"spinning"`
}

// DefaultInferenceThreads is the intra-op thread count per engine when
// inference.threads is 0.
const DefaultInferenceThreads = 1

// IntraOpThreads is the intra-op thread count each engine's session gets:
// Threads, or DefaultInferenceThreads when it is 0.
func (i Inference) IntraOpThreads() int {
	if i.Threads == 0 {
		return DefaultInferenceThreads
	}
	return i.Threads
}

// PACS is the image archive, reached over DICOMweb, or over DICOM's own
// network protocol when its dimse key is set.
type PACS struct {
	// DICOMwebURL is the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web.
	DICOMwebURL string `yaml:"dicomweb_url"`
	// Username for HTTP basic authentication (optional).
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile names a file holding the password (trailing newline ignored).
	PasswordFile string `yaml:"password_file"`
	// Timeout bounds each request to the PACS.
	Timeout Duration `yaml:"timeout"`
	// MaxInstanceBytes bounds one image retrieved over WADO-RS (default 256
	// MiB); a larger one fails its order with a reason naming the limit.
	MaxInstanceBytes int64 `yaml:"max_instance_bytes"`
	// MaxInflatedBytes bounds a Deflated Explicit VR Little Endian image
	// once inflated (default 256 MiB): max_instance_bytes bounds only its
	// compressed size, and deflate reaches about 1000:1. Inflation is a
	// stream that stops at the limit and fails the order with a reason
	// naming it; values of private elements are counted, never kept.
	MaxInflatedBytes int64 `yaml:"max_inflated_bytes"`
	// MaxInflateRatio bounds the same as a multiple of the compressed size
	// (default 100; at least 1 MiB is always allowed). Radiographs deflate
	// by 1.5 to 4; a deflate bomb by hundreds.
	MaxInflateRatio float64 `yaml:"max_inflate_ratio"`
	// Auth is how radgate authenticates to the PACS (instead of the
	// username and password keys above); TLS how it verifies it.
	Auth ClientAuth `yaml:"auth"`
	TLS  ClientTLS  `yaml:"tls"`
	// DIMSE, when set, makes the PACS a DIMSE-only one (C-FIND, then C-MOVE
	// or C-GET): radgate finds and retrieves studies there instead of over
	// DICOMweb (dicomweb_url and its keys are then unused). See
	// config/dimse.go.
	DIMSE *PACSDIMSE `yaml:"dimse,omitempty"`
}

// FHIR is the FHIR R4 server results are written to.
type FHIR struct {
	// BaseURL is the FHIR base, e.g. http://127.0.0.1:8103/fhir/R4.
	BaseURL string `yaml:"base_url"`
	// BearerTokenEnv names the environment variable holding a bearer token.
	BearerTokenEnv string `yaml:"bearer_token_env"`
	// Timeout bounds each request to the FHIR server.
	Timeout Duration `yaml:"timeout"`
	// SubscriptionEndpoint, when set, makes radgate create R4 rest-hook
	// Subscriptions on this FHIR server (active ServiceRequests, available
	// ImagingStudies) that notify the given URL — its own /fhir/notify as
	// the FHIR server reaches it, e.g. http://127.0.0.1:8080/fhir/notify.
	SubscriptionEndpoint string `yaml:"subscription_endpoint"`
	// SubscriptionTokenEnv names the environment variable holding the bearer
	// token the Subscriptions send with each notification (channel.header
	// "Authorization: Bearer …"): one of http.auth's static tokens when the
	// intake requires authentication.
	SubscriptionTokenEnv string `yaml:"subscription_token_env"`
	// SubscribeVerdicts adds, with SubscriptionEndpoint, the Subscriptions
	// that bring radiologists' verdicts back (final DiagnosticReports,
	// completed read Tasks: fhirhttp.VerdictSubscriptionCriteria). Off by
	// default: radgate's own final reports match too, so every result costs
	// one more notification, answered "not a verdict".
	SubscribeVerdicts bool `yaml:"subscribe_verdicts"`
	// PDFReport attaches the one-page PDF report to each DiagnosticReport as
	// presentedForm (default true).
	PDFReport bool `yaml:"pdf_report"`
	// Auth is how radgate authenticates to the FHIR server (instead of
	// bearer_token_env): bearer, basic or OAuth2 client credentials (SMART
	// Backend Services); TLS how it verifies it.
	Auth ClientAuth `yaml:"auth"`
	TLS  ClientTLS  `yaml:"tls"`
}

// Destination types.
const (
	DestinationFHIR     = "fhir"
	DestinationHL7v2    = "hl7v2"
	DestinationDICOMweb = "dicomweb"
)

// BuiltinDestination is the name of the destination the fhir section
// defines.
const BuiltinDestination = "fhir"

// Destination is one place results are delivered to.
type Destination struct {
	// Type is fhir (DiagnosticReport, Observation, Media, Task), hl7v2
	// (ORU^R01 over MLLP to a RIS), dicomweb (derived image and SR stored
	// into the study over STOW-RS) or dimse (the same over C-STORE).
	Type string `yaml:"type"`
	// URL is the FHIR base (fhir) or the DICOMweb root (dicomweb).
	URL string `yaml:"url"`
	// Address is the RIS's MLLP host:port (hl7v2).
	Address string `yaml:"address"`
	// Timeout bounds each request to the destination (default 30s).
	Timeout Duration `yaml:"timeout"`
	// Auth and TLS as in the fhir and pacs sections (fhir and dicomweb
	// destinations only).
	Auth ClientAuth `yaml:"auth"`
	TLS  ClientTLS  `yaml:"tls"`
	// PDFReport attaches the one-page PDF report: as the DiagnosticReport's
	// presentedForm (fhir), an ED OBX (hl7v2), an Encapsulated PDF in the
	// study (dicomweb, dimse).
	PDFReport bool `yaml:"pdf_report"`
	// SC and SR (dicomweb, dimse): store a Secondary Capture with the heatmap and
	// the result burned in, and a Comprehensive 3D SR (TID 1500, IHE AI
	// Results) (default: both).
	SC *bool `yaml:"sc"`
	SR *bool `yaml:"sr"`
	// SCWhenUnmarked (dicomweb, dimse): below the marking threshold the Secondary
	// Capture shows the radiograph with the text ("image", the default),
	// the text only ("text"), or is not stored ("none").
	SCWhenUnmarked string `yaml:"sc_when_unmarked"`
	// ParametricMap (dicomweb, dimse): also store the class activation map of a
	// marked result as a DICOM Parametric Map on the source's pixel grid,
	// which current viewers overlay with adjustable opacity (default
	// false).
	ParametricMap bool `yaml:"parametric_map"`
	// Charset (hl7v2) is the character set of the ORU^R01, as MSH-18
	// names it: "UNICODE UTF-8" (the default), "ISO IR87" (ISO 2022: ASCII
	// and JIS X 0208 kanji by escape sequences, MSH-18 "~ISO IR87") or
	// "ISO IR13" (ASCII and JIS X 0201 half-width katakana, MSH-18 "~ISO
	// IR13"), whichever the RIS reads.
	Charset string `yaml:"charset"`
	// SendingApplication, SendingFacility, ReceivingApplication and
	// ReceivingFacility (hl7v2) are MSH-3 to MSH-6 of the ORU^R01.
	SendingApplication   string `yaml:"sending_application"`
	SendingFacility      string `yaml:"sending_facility"`
	ReceivingApplication string `yaml:"receiving_application"`
	ReceivingFacility    string `yaml:"receiving_facility"`
	// Host and Port are the PACS's DICOM network node (dimse); CalledAE is
	// its AE title, CallingAE radgate's (default RADGATE).
	Host      string `yaml:"host"`
	Port      int    `yaml:"port"`
	CalledAE  string `yaml:"called_ae"`
	CallingAE string `yaml:"calling_ae"`
}

// DefaultDestinationTimeout bounds each request to a destination whose
// timeout is not set.
const DefaultDestinationTimeout = 30 * time.Second

// RequestTimeout is the destination's timeout, else
// DefaultDestinationTimeout.
func (d Destination) RequestTimeout() time.Duration {
	if t := d.Timeout.D(); t > 0 {
		return t
	}
	return DefaultDestinationTimeout
}

// StoreSC and StoreSR say what a dicomweb or dimse destination stores (both unless
// turned off).
func (d Destination) StoreSC() bool { return d.SC == nil || *d.SC }
func (d Destination) StoreSR() bool { return d.SR == nil || *d.SR }

// DestinationNames lists every destination routes may name: the built-in
// "fhir" and the configured ones, sorted.
func (c Config) DestinationNames() []string {
	names := []string{BuiltinDestination}
	for n := range c.Destinations {
		if n != BuiltinDestination {
			names = append(names, n)
		}
	}
	sort.Strings(names[1:])
	return names
}

// Orders sets how long radgate waits for what an order needs.
type Orders struct {
	// StudyWaitWindow is how long an order waits for its study to appear in
	// the PACS before it is answered failed (default 72 h; a study that
	// comes later still re-opens it within watch_after). A waiting order
	// holds no consumer slot: radgate learns of the study from events
	// (ImagingStudy, HL7 status) and from QIDO-RS looks that back off from
	// poll_min to poll_max, all orders together at most poll_rate a second.
	StudyWaitWindow Duration `yaml:"study_wait_window"`
	// StudyWaitOverrides set the wait per priority class (urgent,
	// routine), facility id and procedure code; the first entry whose
	// every given field matches wins. Not per route: routes match on study
	// facts not known while the order waits.
	StudyWaitOverrides []WaitOverride `yaml:"study_wait_overrides"`
	// StableAfter is how long a study's instance count must hold, as
	// radgate observes it, before it is scored (default 60 s): a study
	// arriving in pieces is scored once. A study already in the PACS when
	// the order first looks, or announced complete by an event, is scored
	// at once.
	StableAfter Duration `yaml:"stable_after"`
	// PollMin, PollMax and PollRate bound the QIDO-RS looks for waiting
	// studies (defaults 30 s, 15 min, 20 per second).
	PollMin  Duration `yaml:"poll_min"`
	PollMax  Duration `yaml:"poll_max"`
	PollRate float64  `yaml:"poll_rate"`
	// WatchAfter is how long an answered order's study is still looked at
	// (every poll_max) for added images, which make an amended result, and
	// a failed order's for late images (default 2 h). Events re-check an
	// order at any time.
	WatchAfter Duration `yaml:"watch_after"`
	// AckWait is how long a stage's message may go unacknowledged before
	// another worker gets it (default 60 s); stages send heartbeats at a
	// third of it while they work, so only a crashed worker's messages
	// move.
	AckWait Duration `yaml:"ack_wait"`
	// RetryMin and RetryMax bound the backoff between retries of a transient
	// failure (study not there yet, PACS or FHIR server unavailable).
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// DeliveryWindow is how long a result is retried against an unavailable
	// destination before it is reported failed.
	DeliveryWindow Duration `yaml:"delivery_window"`
	// MaxBodyBytes limits an intake request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInstancesPerStudy bounds the images of one study an engine is
	// given to score (default 50); an order whose study has more fails with
	// a reason naming the limit rather than fetching them all.
	MaxInstancesPerStudy int `yaml:"max_instances_per_study"`
	// MaxStudyBytes bounds what one engine's job may retrieve from the PACS
	// in total (default 1 GiB), counted as the images arrive; past it the
	// engine's result is failed with a reason naming the limit. Images are
	// scored one at a time, so this bounds PACS traffic and time per job,
	// not memory (a worker holds about two images at once).
	MaxStudyBytes int64 `yaml:"max_study_bytes"`
	// FairWindow is how many pending messages each router and inference
	// consumer holds to serve the facilities in turn (default 1024; shared
	// by a hub's processes): a burst from one facility delays another's
	// order by one turn once it is in the window. -1: stream order.
	FairWindow int `yaml:"fair_window"`
}

// WaitOverride sets the study wait for the orders it matches. Empty
// fields match anything; at least one must be given.
type WaitOverride struct {
	// Priority is a priority class: urgent (stat, asap, urgent) or routine.
	Priority string `yaml:"priority"`
	// Facility is a facility id (facilities[].id).
	Facility string `yaml:"facility"`
	// Procedure is a procedure code value (ServiceRequest.code, OBR-4),
	// any code system.
	Procedure string   `yaml:"procedure"`
	Wait      Duration `yaml:"wait"`
}

// HL7v2 is the HL7 v2 order intake: ORM^O01 and OMI^O23 over MLLP, for a
// RIS that does not speak FHIR. Each order becomes the same order event as
// a FHIR ServiceRequest. The sender gets (HL7 table 0008): AA once the order
// is durably stored; AE with an ERR naming the field (ERR-2) and its table
// 0357 code (ERR-3: 101 missing, 102 data type: control characters, too
// long, not a UID) for an order whose content is wrong, and for a message
// over max_message_bytes; AR with ERR-3 207 when radgate cannot store
// orders right now (NATS unavailable), for reasons unrelated to the content:
// the sender should resend it later; AR for other message types and for
// order controls radgate does not act on (HD, RP, …). ORC-1 CA, DC, OC
// (and the filler's OD, CR, DR) cancel the order: AE with ERR-3 204 when
// radgate never received it; ORC-5 CM marks the study complete.
//
// MLLP itself has no authentication. A listener on a non-loopback address
// is refused unless tls requires client certificates, allow_networks names
// the senders' networks, or allow_any_source says that anyone who reaches
// the address may send orders.
type HL7v2 struct {
	// Listen is the host:port of the MLLP listener, e.g. 127.0.0.1:2575.
	// Empty (the default) turns the HL7 v2 intake off.
	Listen string `yaml:"listen"`
	// TLS makes the listener speak MLLP over TLS (cert_file, key_file);
	// client_auth require (with client_ca_file) admits only senders with a
	// certificate signed by those CAs, refused in the handshake otherwise.
	TLS ServerTLS `yaml:"tls"`
	// AllowNetworks lists the networks (CIDR, e.g. 10.20.0.0/16, or a single
	// address) connections may come from. A connection from anywhere else
	// is closed before anything is read, and logged with its address.
	// Empty: any source.
	AllowNetworks []string `yaml:"allow_networks"`
	// AllowAnySource accepts a listener beyond loopback with neither client
	// certificates nor allow_networks: anyone who reaches the address can
	// submit orders. radgate logs a warning at start.
	AllowAnySource bool `yaml:"allow_any_source"`
	// MaxConnections bounds the MLLP connections open at once (default 64),
	// MaxConnectionsPerSource those from one source address (default 8). A
	// connection over either is closed at once, with a log line naming the
	// limit.
	MaxConnections          int `yaml:"max_connections"`
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// AccessionSystem is the identifier system given to accession numbers
	// from OBR-18 (and IPC-1 without an assigning authority). Set it to the
	// system your EHR's FHIR ServiceRequests use for accession numbers
	// (e.g. http://hospital.example.org/fhir/accession): an order's key is
	// the system and the number together, so only then do an ORM and a
	// ServiceRequest for the same study make one order and one report.
	// Empty (the default) leaves HL7 accession numbers without a system.
	AccessionSystem string `yaml:"accession_system"`
	// MaxMessageBytes bounds one HL7 message (default 1 MiB); a larger one
	// is answered AE (ERR-3 102) with a reason naming the limit.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// ReadTimeout bounds receiving one message, from its first byte to the
	// end of its MLLP block, and a TLS handshake (default 30s).
	ReadTimeout Duration `yaml:"read_timeout"`
	// IdleTimeout closes a connection that sends nothing for this long
	// between messages (default 10m).
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// AllowPrefixes parses AllowNetworks (a bare address is a network of one).
func (h HL7v2) AllowPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(h.AllowNetworks))
	for _, s := range h.AllowNetworks {
		p, err := parseNetwork(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseNetwork(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation (e.g. 10.20.0.0/16) or an IP address", s)
}

// CheckHL7Exposure refuses an MLLP listener reachable beyond loopback that
// neither requires client certificates nor restricts its sources, unless
// allow_any_source says so. radgate serve calls it after command-line
// overrides too.
func (c Config) CheckHL7Exposure() error {
	h := c.HL7v2
	if h.Listen == "" || IsLoopback(h.Listen) || len(h.AllowNetworks) > 0 || h.AllowAnySource ||
		(h.TLS.Enabled() && h.TLS.ClientAuth == ClientCertRequire) {
		return nil
	}
	return fmt.Errorf("hl7v2.listen %q is not a loopback address and MLLP has no authentication: set hl7v2.tls with client_auth require, or hl7v2.allow_networks (the senders' networks), or hl7v2.allow_any_source: true to take orders from anyone who reaches it", h.Listen)
}

// validateHL7v2 adds the findings about the hl7v2 section; badNode reports
// at a node of the file (an entry of allow_networks).
func validateHL7v2(c *Config, root *yaml.Node, bad func(path, msg string), badNode func(n *yaml.Node, path, msg string)) {
	h := c.HL7v2
	if h.Listen != "" {
		if err := checkHostPort(h.Listen); err != nil {
			bad("hl7v2.listen", err.Error())
		} else if h.Listen == c.Listen {
			bad("hl7v2.listen", fmt.Sprintf("%q is also the HTTP listen address", h.Listen))
		} else if err := c.CheckHL7Exposure(); err != nil {
			bad("hl7v2.listen", strings.TrimPrefix(err.Error(), fmt.Sprintf("hl7v2.listen %q ", h.Listen)))
		}
	}
	if s := h.AccessionSystem; s != "" {
		if u, err := url.Parse(s); err != nil || u.Scheme == "" || strings.ContainsAny(s, " \t|") {
			bad("hl7v2.accession_system", fmt.Sprintf("%q is not an absolute URI (e.g. http://hospital.example.org/fhir/accession or urn:oid:1.2.3)", s))
		}
	}
	if h.MaxMessageBytes <= 0 {
		bad("hl7v2.max_message_bytes", "must be positive")
	}
	if h.ReadTimeout <= 0 {
		bad("hl7v2.read_timeout", "must be positive")
	}
	if h.IdleTimeout <= 0 {
		bad("hl7v2.idle_timeout", "must be positive")
	}
	if h.MaxConnections <= 0 {
		bad("hl7v2.max_connections", "must be positive")
	}
	if h.MaxConnectionsPerSource <= 0 {
		bad("hl7v2.max_connections_per_source", "must be positive")
	} else if h.MaxConnections > 0 && h.MaxConnectionsPerSource > h.MaxConnections {
		bad("hl7v2.max_connections_per_source", fmt.Sprintf("%d is above hl7v2.max_connections (%d)", h.MaxConnectionsPerSource, h.MaxConnections))
	}
	list := nodeAt(root, "hl7v2.allow_networks")
	for i, s := range h.AllowNetworks {
		if _, err := parseNetwork(s); err != nil {
			var n *yaml.Node
			if list != nil && list.Kind == yaml.SequenceNode && i < len(list.Content) {
				n = list.Content[i]
			}
			badNode(n, "hl7v2.allow_networks", err.Error())
		}
	}

	validateServerTLS("hl7v2", h.TLS, h.Listen, bad)
}

// validateServerTLS adds the findings about section's tls (a listener's
// ServerTLS; listen is the section's listen address).
func validateServerTLS(section string, t ServerTLS, listen string, bad func(path, msg string)) {
	for _, f := range []struct{ path, file string }{{section + ".tls.cert_file", t.CertFile}, {section + ".tls.key_file", t.KeyFile},
		{section + ".tls.client_ca_file", t.ClientCAFile}} {
		if f.file == "" {
			continue
		}
		if st, err := os.Stat(f.file); err != nil {
			bad(f.path, fmt.Sprintf("cannot read %q: %v", f.file, unwrapPathError(err)))
		} else if st.IsDir() {
			bad(f.path, fmt.Sprintf("%q is a folder, not a file", f.file))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(section+".tls", "cert_file and key_file go together: set both or neither")
	}
	switch t.ClientAuth {
	case ClientCertNone:
		if t.ClientCAFile != "" {
			bad(section+".tls.client_auth", "client_ca_file is set but client_auth is none: use request or require")
		}
	case ClientCertRequest, ClientCertRequire:
		if !t.Enabled() {
			bad(section+".tls.client_auth", fmt.Sprintf("%s needs TLS: set cert_file and key_file", t.ClientAuth))
		}
		if t.ClientCAFile == "" {
			bad(section+".tls.client_auth", fmt.Sprintf("%s needs client_ca_file (the CAs that sign client certificates)", t.ClientAuth))
		}
	default:
		bad(section+".tls.client_auth", fmt.Sprintf("unknown mode %q (known: none, request, require)", t.ClientAuth))
	}
	if t.Enabled() && listen == "" {
		bad(section+".tls", fmt.Sprintf("is set but %s.listen is empty", section))
	}
}

// DefaultEngine is the engine used when none is configured.
const DefaultEngine = "cxr-pneumonia-densenet121"

// Default returns the configuration used when no file is given: everything
// embedded and on loopback. Load fills the same defaults into what a file
// leaves out.
func Default() Config {
	return Config{
		Role:   RoleAll,
		Listen: "127.0.0.1:8080",
		HTTP: HTTP{
			Limits: IntakeLimits{MaxBundleEntries: 100, OrdersPerSecond: 2, OrderBurst: 200, MaxClients: 10000},
			TLS:    ServerTLS{ClientAuth: ClientCertNone},
			Auth: IntakeAuth{Mode: AuthNone, Algorithms: []string{"RS256", "RS384", "ES256", "ES384"},
				Leeway: Duration(30 * time.Second), RolesClaim: "roles"},
		},
		DataDir:      "data",
		ModelsDir:    "models",
		Engines:      []string{DefaultEngine},
		Facilities:   []Facility{},
		Destinations: map[string]Destination{},
		Verdicts:     Verdicts{Codes: []VerdictCode{}},
		NATS:         NATS{EmbeddedListen: "127.0.0.1:4222", Replicas: 1, PublishRetry: Duration(30 * time.Second)},
		Inference:    Inference{Workers: 4},
		PACS: PACS{
			DICOMwebURL:      "http://127.0.0.1:8042/dicom-web",
			Timeout:          Duration(30 * time.Second),
			MaxInstanceBytes: 256 << 20,
			MaxInflatedBytes: 256 << 20,
			MaxInflateRatio:  100,
		},
		FHIR: FHIR{
			BaseURL:   "http://127.0.0.1:8103/fhir/R4",
			PDFReport: true,
			Timeout:   Duration(30 * time.Second),
		},
		Orders: Orders{
			StudyWaitWindow:      Duration(72 * time.Hour),
			StudyWaitOverrides:   []WaitOverride{},
			StableAfter:          Duration(60 * time.Second),
			PollMin:              Duration(30 * time.Second),
			PollMax:              Duration(15 * time.Minute),
			PollRate:             20,
			WatchAfter:           Duration(2 * time.Hour),
			AckWait:              Duration(60 * time.Second),
			RetryMin:             Duration(1 * time.Second),
			RetryMax:             Duration(30 * time.Second),
			DeliveryWindow:       Duration(1 * time.Hour),
			MaxBodyBytes:         10 << 20,
			MaxInstancesPerStudy: 50,
			MaxStudyBytes:        1 << 30,
			FairWindow:           1024,
		},
		HL7v2: HL7v2{
			TLS:                     ServerTLS{ClientAuth: ClientCertNone},
			AllowNetworks:           []string{},
			MaxConnections:          64,
			MaxConnectionsPerSource: 8,
			MaxMessageBytes:         1 << 20,
			ReadTimeout:             Duration(30 * time.Second),
			IdleTimeout:             Duration(10 * time.Minute),
		},
		DIMSE:     DefaultDIMSE(),
		Retention: DefaultRetention(),
		Console:   DefaultConsole(),
		Runtime:   DefaultRuntime(),
	}
}

// Duration is a time.Duration written in YAML as "30s", "10m", "1h".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 30s or 10m")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 30s, 10m, 1h)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Secret resolves a secret from an environment variable name or a file; it is
// never logged.
func Secret(envName, file string) (string, error) {
	if envName != "" {
		v, ok := os.LookupEnv(envName)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", envName)
		}
		return v, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}
