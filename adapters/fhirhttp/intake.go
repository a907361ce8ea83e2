package fhirhttp

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/fhir"
)

// DefaultMaxBodyBytes is the default cap on an intake request body.
const DefaultMaxBodyBytes = 10 << 20

// DefaultMaxBundleEntries is the default cap on the entries of one Bundle.
const DefaultMaxBundleEntries = 100

// Source is the OrderEvent.Source of events from this adapter.
const Source = "fhir"

// IntakeOptions configures the HTTP intake.
type IntakeOptions struct {
	// MaxBodyBytes caps a request body; a larger one is answered 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxBundleEntries caps the entries of one Bundle; a larger Bundle is
	// answered 413 before any entry is read. Zero means
	// DefaultMaxBundleEntries.
	MaxBundleEntries int
	// Rate limits the orders each client hands in (see RateLimit); a zero
	// OrdersPerSecond turns it off.
	Rate RateLimit
	// ClientKey names the client a request counts against for Rate; nil
	// means RemoteClientKey. Behind authentication, name the
	// authenticated principal (BearerClientKey).
	ClientKey func(*http.Request) string
	// LimitKeys names the configuration keys of the limits in messages
	// (a sender is told which setting refused it); empty names none.
	LimitKeys LimitKeys
	// Logger receives one line per request outcome (ids and resource types
	// only, never patient data). Nil discards.
	Logger *slog.Logger
	// Now stamps OrderEvent.ReceivedAt and Verdict.ReceivedAt; nil means
	// time.Now.
	Now func() time.Time
	// Verdicts records radiologists' verdicts (DiagnosticReport, completed
	// read Task; see verdict.go). Nil: verdicts are answered 501
	// verdicts-disabled, never dropped.
	Verdicts radgate.VerdictRecorder
	// VerdictCodes is the table of coded conclusions taken as verdicts;
	// nil means fhir.DefaultVerdictCodes.
	VerdictCodes fhir.VerdictCodes
}

// LimitKeys are the configuration keys behind IntakeOptions' limits, named
// in the answers that enforce them ("http.limits.max_bundle_entries").
type LimitKeys struct {
	MaxBodyBytes, MaxBundleEntries, OrdersPerSecond, Burst string
}

// Intake is the HTTP intake of FHIR orders. It serves:
//
//	POST /fhir/ServiceRequest   one ServiceRequest
//	POST /fhir/ImagingStudy     one ImagingStudy
//	POST /fhir                  a transaction or batch Bundle of them (and
//	                            of verdicts)
//	POST /fhir/DiagnosticReport a radiologist's final report: a verdict
//	PUT  /fhir/DiagnosticReport/{id}
//	POST /fhir/Task             radgate's read Task completed: a verdict
//	PUT  /fhir/Task/{id}        (verdict.go says how verdicts are answered)
//	POST /fhir/notify           an R4 rest-hook notification: the matching
//	                            resource as the body (PUT and a /Type/id
//	                            suffix are accepted too); an empty body is a
//	                            heartbeat, answered 200
//	GET  /orders/{id}           the order's radgate.OrderStatus as JSON;
//	                            without patient data (names, MRNs,
//	                            accession numbers, study UIDs) unless the
//	                            caller has the httpauth.RolePHI role
//	GET  /orders/{id}/history   the order's history (radgate.HistoryEntry
//	                            list, oldest first): every state change of
//	                            the order, its engines and destinations
//
// A single resource that becomes an order is answered 202 Accepted with
// Location: /orders/{id} and the OrderStatus as the body, only after
// radgate.Intake.Accept returned, that is once the order is durable.
//
// A Bundle is answered 200 with a transaction-response (or batch-response)
// Bundle, as FHIR clients expect of a transaction: each order entry has
// response.status "202 Accepted" and response.location /orders/{id}; an entry
// of any other resource type (a Patient the orders point at) is read to
// resolve references, not stored, and says so in its response.outcome. A
// transaction is all or nothing as far as the client's mistakes go: every
// entry is validated before any is accepted, and one bad entry gets the whole
// Bundle a 400 naming each fault. If accepting fails half way (the message
// store is down), the answer is 503 and the client resends the whole Bundle:
// orders are keyed by accession number or study UID, so entries accepted the
// first time are not duplicated. In a batch each entry stands alone and gets
// its own status (202, 400, 413 or 503).
//
// Errors are OperationOutcomes whose issues carry the FHIR issue code and
// radgate's detail code (details.coding, system fhir.ErrorCodeSystem), and
// diagnostics written for the sender, never an internal error's text (that
// goes to the log):
//
//	400 invalid-resource        malformed JSON, a wrong resourceType, no
//	                            accession number or Study Instance UID
//	400 invalid-identifier      an identifier, reference, code or text with
//	                            control characters, blank or too long
//	                            (radgate.CheckIdentifier, CheckUID)
//	400 invalid-order           an order radgate.Intake refuses
//	                            (radgate.ErrInvalidOrder)
//	413 body-too-large          a body over MaxBodyBytes
//	413 bundle-too-large        a Bundle of more than MaxBundleEntries
//	413 order-too-large         an order the message store refuses as too
//	                            large: resending it unchanged cannot succeed
//	429 rate-limited            over the client's Rate, with Retry-After
//	503 order-store-unavailable any other failure to accept, with
//	                            Retry-After: nothing was accepted, retry
//	415, 405, 404               unsupported-media-type, method-not-allowed,
//	                            not-found
//
// Every element at fault is named in issue.expression, FHIRPath-style
// ("ServiceRequest.identifier[0].value", "Bundle.entry[3].resource.subject").
type Intake struct {
	in         radgate.Intake
	maxBody    int64
	maxEntries int
	limiter    *clientLimiter
	clientKey  func(*http.Request) string
	keys       LimitKeys
	log        *slog.Logger
	now        func() time.Time
	mux        *http.ServeMux

	verdicts     radgate.VerdictRecorder
	verdictCodes fhir.VerdictCodes
}

var _ http.Handler = (*Intake)(nil)

// NewIntake returns the intake handler, handing orders to in. Mount it at
// the root of the listener (it answers unknown paths 404 with an
// OperationOutcome), or at "/fhir", "/fhir/" and "/orders/".
func NewIntake(in radgate.Intake, opts IntakeOptions) *Intake {
	if in == nil {
		panic("fhirhttp: NewIntake with a nil radgate.Intake")
	}
	h := &Intake{in: in, maxBody: opts.MaxBodyBytes, maxEntries: opts.MaxBundleEntries,
		clientKey: opts.ClientKey, keys: opts.LimitKeys, log: opts.Logger, now: opts.Now,
		verdicts: opts.Verdicts, verdictCodes: opts.VerdictCodes}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.maxEntries <= 0 {
		h.maxEntries = DefaultMaxBundleEntries
	}
	h.limiter = newClientLimiter(opts.Rate, h.maxEntries)
	if h.clientKey == nil {
		h.clientKey = RemoteClientKey
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "fhir-intake")
	if h.now == nil {
		h.now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir", h.methods(h.postBundle, http.MethodPost))
	mux.HandleFunc("/fhir/{$}", h.methods(h.postBundle, http.MethodPost))
	mux.HandleFunc("/fhir/ServiceRequest", h.methods(h.postResource(fhir.ParseServiceRequest), http.MethodPost))
	mux.HandleFunc("/fhir/ImagingStudy", h.methods(h.postResource(fhir.ParseImagingStudy), http.MethodPost))
	h.verdictRoutes(mux)
	mux.HandleFunc("/fhir/notify", h.methods(h.notify, http.MethodPost, http.MethodPut))
	mux.HandleFunc("/fhir/notify/", h.methods(h.notify, http.MethodPost, http.MethodPut))
	mux.HandleFunc("/orders/{id}", h.methods(h.getOrder, http.MethodGet, http.MethodHead))
	mux.HandleFunc("/orders/{id}/history", h.methods(h.getHistory, http.MethodGet, http.MethodHead))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			fmt.Sprintf("no such endpoint: %s (radgate serves POST /fhir, /fhir/ServiceRequest, /fhir/ImagingStudy, /fhir/DiagnosticReport, /fhir/Task, /fhir/notify, PUT /fhir/DiagnosticReport/{id}, /fhir/Task/{id} and GET /orders/{id}, /orders/{id}/history)", clipPath(r.URL.Path))).
			WithDetail(fhir.DetailNotFound))
	})
	h.mux = mux
	return h
}

// ServeHTTP implements http.Handler.
func (h *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Intake) methods(next http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range allowed {
			if r.Method == m {
				next(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeOutcome(w, http.StatusMethodNotAllowed, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotSupported,
			fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, clipPath(r.URL.Path), strings.Join(allowed, ", "))).
			WithDetail(fhir.DetailMethodNotAllowed))
	}
}

// readBody checks the media type and reads the body within the limit; on
// failure it has answered the request.
func (h *Intake) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			writeOutcome(w, http.StatusUnsupportedMediaType, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotSupported,
				fmt.Sprintf("unreadable Content-Type %q: send application/fhir+json", clipText(ct))).WithDetail(fhir.DetailUnsupportedMediaType))
			return nil, false
		case mt != "application/fhir+json" && mt != "application/json" && mt != "application/json+fhir":
			writeOutcome(w, http.StatusUnsupportedMediaType, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotSupported,
				fmt.Sprintf("Content-Type %s not supported: radgate reads FHIR JSON (application/fhir+json or application/json)", clipText(mt))).
				WithDetail(fhir.DetailUnsupportedMediaType))
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.log.Warn("request body too large", "path", r.URL.Path, "limit_bytes", tooBig.Limit)
			writeOutcome(w, http.StatusRequestEntityTooLarge, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTooCostly,
				fmt.Sprintf("request body larger than %d bytes%s", tooBig.Limit, h.keyNote(h.keys.MaxBodyBytes))).
				WithDetail(fhir.DetailBodyTooLarge))
			return nil, false
		}
		h.log.Info("request body not read", "path", r.URL.Path, "error", err)
		writeOutcome(w, http.StatusBadRequest, fhir.NewOutcome(fhir.SeverityError, fhir.IssueStructure,
			"the request body could not be read to its end: send it again").WithDetail(fhir.DetailInvalidResource))
		return nil, false
	}
	return body, true
}

// postResource serves POST /fhir/ServiceRequest and /fhir/ImagingStudy.
func (h *Intake) postResource(parse func([]byte) (*fhir.OrderResource, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readBody(w, r)
		if !ok {
			return
		}
		parsed, err := parse(body)
		o := &order{OrderResource: parsed}
		if !h.admit(w, r, 1) {
			return
		}
		if err == nil {
			o.count, err = instanceCount(o.ResourceType, body, o.ResourceType)
		}
		if err != nil {
			h.rejected(w, r, err)
			return
		}
		h.acceptOne(w, r, o)
	}
}

// admit spends n of the client's tokens (see RateLimit); when its bucket
// cannot pay, it answers 429 with Retry-After and returns false.
func (h *Intake) admit(w http.ResponseWriter, r *http.Request, n int) bool {
	if h.limiter == nil {
		return true
	}
	client := h.clientKey(r)
	wait := h.limiter.take(client, max(n, 1), h.now())
	if wait == 0 {
		return true
	}
	secs := retryAfter(wait)
	h.log.Warn("request refused: client over its order rate", "path", r.URL.Path, "client", client,
		"orders", n, "retry_after_s", secs)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	keys := ""
	if h.keys.OrdersPerSecond != "" && h.keys.Burst != "" {
		keys = fmt.Sprintf(" (%s, %s)", h.keys.OrdersPerSecond, h.keys.Burst)
	}
	writeOutcome(w, http.StatusTooManyRequests, fhir.NewOutcome(fhir.SeverityError, fhir.IssueThrottled,
		fmt.Sprintf("too many orders from this client: radgate takes %g orders per second from one client, up to %d at once%s; "+
			"nothing of this request was accepted: send it again in %d s", float64(h.limiter.limit), h.limiter.burst, keys, secs)).
		WithDetail(fhir.DetailRateLimited))
	return false
}

// keyNote is " (key)" naming the setting behind a limit, or "".
func (h *Intake) keyNote(key string) string {
	if key == "" {
		return ""
	}
	return " (" + key + ")"
}

// notify serves R4 rest-hook notifications.
func (h *Intake) notify(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		h.log.Debug("rest-hook heartbeat")
		writeOutcome(w, http.StatusOK, fhir.NewOutcome(fhir.SeverityInformation, fhir.IssueInformational, "heartbeat received"))
		return
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &head) == nil && head.ResourceType == "Bundle" {
		h.serveBundle(w, r, body)
		return
	}
	if fhir.IsVerdictResource(head.ResourceType) {
		h.verdict(w, r, body, head.ResourceType, "")
		return
	}
	parsed, err := fhir.ParseResource(body)
	if !h.admit(w, r, 1) {
		return
	}
	o := &order{OrderResource: parsed}
	if err == nil {
		o.count, err = instanceCount(o.ResourceType, body, o.ResourceType)
	}
	if err != nil {
		h.rejected(w, r, err)
		return
	}
	h.acceptOne(w, r, o)
}

func (h *Intake) acceptOne(w http.ResponseWriter, r *http.Request, o *order) {
	ev := h.event(o)
	st, err := h.in.Accept(r.Context(), ev)
	if err != nil {
		code, oo := acceptError(err, o.OrderResource)
		h.log.Warn("order not accepted", "path", r.URL.Path, "resource_type", o.ResourceType, "status", code, "error", err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		writeOutcome(w, code, oo)
		return
	}
	h.log.Info("order accepted", "path", r.URL.Path, "resource_type", o.ResourceType, "order_id", st.ID, "state", st.State,
		"action", actionName(ev.Action), "study_complete", ev.StudyComplete)
	w.Header().Set("Location", "/orders/"+st.ID)
	writeJSON(w, http.StatusAccepted, "application/json", acceptedStatus(st))
}

// acceptedStatus is the order's status as the 202 answer shows it: without
// the reasons of a failed or rejected order, engine or delivery, which are
// written for the operator and can quote a peer (a PACS query's path, a
// FHIR server's refusal). GET /orders/{id} serves the whole status.
func acceptedStatus(st radgate.OrderStatus) radgate.OrderStatus {
	st.Reason = ""
	if st.Engines != nil {
		engines := make(map[string]radgate.EngineProgress, len(st.Engines))
		for id, e := range st.Engines {
			e.Reason = ""
			if e.Deliveries != nil {
				ds := make(map[string]radgate.DeliveryProgress, len(e.Deliveries))
				for d, p := range e.Deliveries {
					p.Reason = ""
					ds[d] = p
				}
				e.Deliveries = ds
			}
			engines[id] = e
		}
		st.Engines = engines
	}
	return st
}

// postBundle serves POST /fhir.
func (h *Intake) postBundle(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	h.serveBundle(w, r, body)
}

func (h *Intake) serveBundle(w http.ResponseWriter, r *http.Request, body []byte) {
	b, err := fhir.ParseIntakeBundle(body, fhir.BundleOptions{MaxEntries: h.maxEntries, VerdictCodes: h.verdictCodes})
	orders := 0
	if err == nil {
		for _, e := range b.Entries {
			if !e.Ignored() {
				orders++
			}
		}
	}
	if !h.admit(w, r, orders) {
		return
	}
	var tooMany *fhir.EntryLimitError
	if errors.As(err, &tooMany) {
		h.log.Warn("Bundle refused: too many entries", "path", r.URL.Path, "entries", tooMany.Entries, "limit", tooMany.Max)
		writeOutcome(w, http.StatusRequestEntityTooLarge, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTooCostly,
			fmt.Sprintf("the Bundle has %d entries; radgate takes at most %d in one Bundle%s: send them in Bundles of at most %d",
				tooMany.Entries, tooMany.Max, h.keyNote(h.keys.MaxBundleEntries), tooMany.Max), "Bundle.entry").
			WithDetail(fhir.DetailBundleTooLarge))
		return
	}
	if err != nil {
		h.rejected(w, r, err)
		return
	}
	counts := bundleInstanceCounts(body, b)
	if b.Type == "transaction" {
		h.transaction(w, r, b, counts)
		return
	}
	h.batch(w, r, b, counts)
}

var ignoredOutcome = fhir.NewOutcome(fhir.SeverityInformation, fhir.IssueInformational,
	"not stored: radgate takes ServiceRequest and ImagingStudy (and verdicts: DiagnosticReport, Task) only; this entry was read to resolve references")

func (h *Intake) transaction(w http.ResponseWriter, r *http.Request, b *fhir.IntakeBundle, counts map[int]int) {
	if err := b.Err(); err != nil {
		h.bundleRejected(w, r, b, err)
		return
	}
	if h.verdicts == nil && hasVerdicts(b) {
		h.log.Warn("transaction refused: it holds verdicts and verdicts are not enabled", "path", r.URL.Path)
		writeOutcome(w, http.StatusNotImplemented, verdictsDisabled())
		return
	}
	resp := make([]fhir.EntryResponse, len(b.Entries))
	accepted := 0
	for i, e := range b.Entries {
		switch {
		case e.Ignored():
			resp[i] = fhir.EntryResponse{Status: "200 OK", Outcome: ignoredOutcome}
			continue
		case e.NotVerdict != "":
			resp[i] = fhir.EntryResponse{Status: "200 OK", Outcome: notVerdictOutcome(e.NotVerdict)}
			continue
		case e.Verdict != nil:
			code, oo, err := h.record(r.Context(), e.Verdict)
			if err != nil {
				note := fmt.Sprintf("%d earlier entries were accepted", accepted)
				if code == http.StatusServiceUnavailable {
					note += "; resending the whole Bundle is safe"
					w.Header().Set("Retry-After", "5")
				}
				for j := range oo.Issues {
					oo.Issues[j].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
					oo.Issues[j].Diagnostics = fmt.Sprintf("Bundle.entry[%d]: %s (%s)", i, oo.Issues[j].Diagnostics, note)
				}
				h.log.Warn("transaction not accepted: verdict not recorded", "entry", i, "read_id", e.Verdict.ReadID,
					"accepted_before", accepted, "status", code, "error", err)
				writeOutcome(w, code, oo)
				return
			}
			accepted++
			resp[i] = fhir.EntryResponse{Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Outcome: oo}
			continue
		}
		st, err := h.in.Accept(r.Context(), h.event(&order{OrderResource: e.Order, count: counts[e.Index]}))
		if err != nil {
			code, oo := acceptError(err, e.Order)
			note := fmt.Sprintf("%d earlier entries were accepted", accepted)
			if code == http.StatusServiceUnavailable {
				note += "; resending the whole Bundle is safe"
			}
			for j := range oo.Issues {
				oo.Issues[j].Expression = []string{fmt.Sprintf("Bundle.entry[%d]", i)}
				oo.Issues[j].Diagnostics = fmt.Sprintf("Bundle.entry[%d]: %s (%s)", i, oo.Issues[j].Diagnostics, note)
			}
			h.log.Warn("transaction not accepted", "entry", i, "resource_type", e.ResourceType, "accepted_before", accepted, "status", code, "error", err)
			if code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			writeOutcome(w, code, oo)
			return
		}
		accepted++
		h.log.Info("order accepted", "path", r.URL.Path, "entry", i, "resource_type", e.ResourceType, "order_id", st.ID, "state", st.State)
		resp[i] = fhir.EntryResponse{Status: "202 Accepted", Location: "/orders/" + st.ID}
	}
	writeRaw(w, http.StatusOK, "application/fhir+json", fhir.BuildResponseBundle("transaction-response", resp))
}

func (h *Intake) batch(w http.ResponseWriter, r *http.Request, b *fhir.IntakeBundle, counts map[int]int) {
	resp := make([]fhir.EntryResponse, len(b.Entries))
	for i, e := range b.Entries {
		switch {
		case e.Err != nil && fhir.IsVerdictResource(e.ResourceType):
			code := verdictParseStatus(e.Err)
			resp[i] = fhir.EntryResponse{Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
				Outcome: fhir.OutcomeFromError(e.Err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidVerdict)}
			h.logRejected(r, e.Err)
		case e.Err != nil:
			resp[i] = fhir.EntryResponse{Status: "400 Bad Request", Outcome: fhir.OutcomeFromError(e.Err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidResource)}
			h.logRejected(r, e.Err)
		case e.Ignored():
			resp[i] = fhir.EntryResponse{Status: "200 OK", Outcome: ignoredOutcome}
		case e.NotVerdict != "":
			resp[i] = fhir.EntryResponse{Status: "200 OK", Outcome: notVerdictOutcome(e.NotVerdict)}
		case e.Verdict != nil && h.verdicts == nil:
			resp[i] = fhir.EntryResponse{Status: "501 Not Implemented", Outcome: verdictsDisabled()}
		case e.Verdict != nil:
			code, oo, err := h.record(r.Context(), e.Verdict)
			if err != nil {
				h.log.Warn("batch entry not recorded", "entry", i, "read_id", e.Verdict.ReadID, "status", code, "error", err)
			}
			resp[i] = fhir.EntryResponse{Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Outcome: oo}
		default:
			st, err := h.in.Accept(r.Context(), h.event(&order{OrderResource: e.Order, count: counts[e.Index]}))
			if err != nil {
				code, oo := acceptError(err, e.Order)
				h.log.Warn("batch entry not accepted", "entry", i, "resource_type", e.ResourceType, "status", code, "error", err)
				resp[i] = fhir.EntryResponse{Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Outcome: oo}
				continue
			}
			h.log.Info("order accepted", "path", r.URL.Path, "entry", i, "resource_type", e.ResourceType, "order_id", st.ID, "state", st.State)
			resp[i] = fhir.EntryResponse{Status: "202 Accepted", Location: "/orders/" + st.ID}
		}
	}
	writeRaw(w, http.StatusOK, "application/fhir+json", fhir.BuildResponseBundle("batch-response", resp))
}

// getOrder serves GET /orders/{id}.
func (h *Intake) getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := h.in.Status(r.Context(), id)
	switch {
	case errors.Is(err, radgate.ErrOrderNotFound):
		writeOutcome(w, http.StatusNotFound, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			fmt.Sprintf("order %q not found", clipText(id))).WithDetail(fhir.DetailNotFound))
	case err != nil:
		h.log.Warn("order status unavailable", "order_id", id, "error", err)
		w.Header().Set("Retry-After", "5")
		writeOutcome(w, http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
			"the order store is unavailable right now: ask again later").WithDetail(fhir.DetailOrderStoreUnavailable))
	default:
		if !httpauth.HasRole(r, httpauth.RolePHI) {
			st = withoutPatientData(st)
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, "application/json", st)
	}
}

// redacted stands in, in texts shown to callers without the phi role, for
// an identifying value.
const redacted = "[redacted]"

// withoutPatientData is an order's status as a caller without the phi role
// sees it: states, route, engines and deliveries, with nothing that
// identifies the patient. Left out: the patient reference (its identifier
// is the MRN, its display the name), the patient's age, the accession number, the Study
// Instance UID, the ServiceRequest and ImagingStudy references (their
// identifiers are placer and accession numbers or the study UID) and the
// order key (built from the accession number or study UID); those values
// are also replaced in the free-text reasons, which quote them ("study not
// found … (accession number …)").
//
// Fields are copied one by one: a field added to radgate.OrderStatus later
// stays hidden from these callers until it is added here.
func withoutPatientData(st radgate.OrderStatus) radgate.OrderStatus {
	scrub := scrubberFor(st)

	out := radgate.OrderStatus{
		ID:             st.ID,
		State:          st.State,
		Reason:         scrub(st.Reason),
		ProcedureCodes: st.ProcedureCodes,
		Facility:       st.Facility,
		FacilityID:     st.FacilityID,
		Priority:       st.Priority,
		Modalities:     st.Modalities,
		Sources:        st.Sources,
		ReplayOf:       st.ReplayOf,
		WaitUntil:      st.WaitUntil,
		ReceivedAt:     st.ReceivedAt,
		UpdatedAt:      st.UpdatedAt,
	}
	if st.Study != nil {
		so := *st.Study // counts and times only
		out.Study = &so
	}
	if st.Cancelled != nil {
		c := *st.Cancelled
		c.Reason = scrub(c.Reason)
		out.Cancelled = &c
	}
	if st.Route != nil {
		rd := *st.Route
		rd.Reason = scrub(rd.Reason)
		out.Route = &rd
	}
	if st.Engines != nil {
		out.Engines = make(map[string]radgate.EngineProgress, len(st.Engines))
		for name, e := range st.Engines {
			e.Reason = scrub(e.Reason)
			if e.Caveats != nil {
				cs := make([]string, len(e.Caveats))
				for i, c := range e.Caveats {
					cs[i] = scrub(c)
				}
				e.Caveats = cs
			}
			if e.Images != nil {
				// Which images were scored, by view and why not; not their UIDs.
				ims := make([]radgate.ImageNote, len(e.Images))
				for i, im := range e.Images {
					ims[i] = radgate.ImageNote{View: im.View, Scored: im.Scored, Reason: scrub(im.Reason)}
				}
				e.Images = ims
			}
			if e.Deliveries != nil {
				ds := make(map[string]radgate.DeliveryProgress, len(e.Deliveries))
				for dest, d := range e.Deliveries {
					d.Reason = scrub(d.Reason)
					if d.Objects != nil {
						// A DICOM object's path names the study.
						objs := make([]radgate.DeliveredObject, len(d.Objects))
						for i, o := range d.Objects {
							o.Ref = scrub(o.Ref)
							objs[i] = o
						}
						d.Objects = objs
					}
					ds[dest] = d
				}
				e.Deliveries = ds
			}
			out.Engines[name] = e
		}
	}
	return out
}

// scrubberFor replaces, in a free text, the values of st that identify the
// patient (accession number, study UID, references and their identifiers).
func scrubberFor(st radgate.OrderStatus) func(string) string {
	var values []string
	addRef := func(r *radgate.Reference) {
		if r == nil {
			return
		}
		values = append(values, r.Reference, r.Display)
		if r.Identifier != nil {
			values = append(values, r.Identifier.Value)
		}
	}
	if st.Accession != nil {
		values = append(values, st.Accession.Value)
	}
	values = append(values, st.StudyInstanceUID, "urn:oid:"+st.StudyInstanceUID)
	addRef(st.Patient)
	addRef(st.ServiceRequest)
	addRef(st.ImagingStudy)
	// Longest first, so that a value containing another is replaced whole.
	slices.SortFunc(values, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	var pairs []string
	for _, v := range slices.Compact(values) {
		if v = strings.TrimSpace(v); len(v) >= 3 && v != "urn:oid:" {
			pairs = append(pairs, v, redacted)
		}
	}
	return strings.NewReplacer(pairs...).Replace
}

// getHistory serves GET /orders/{id}/history: the order's append-only
// history, oldest first, as JSON; reasons without patient data unless the
// caller has the phi role.
func (h *Intake) getHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	hr, ok := h.in.(radgate.HistoryReader)
	if !ok {
		writeOutcome(w, http.StatusNotFound, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			"this radgate keeps no order history").WithDetail(fhir.DetailNotFound))
		return
	}
	st, err := h.in.Status(r.Context(), id)
	var hist []radgate.HistoryEntry
	if err == nil {
		hist, err = hr.History(r.Context(), id)
	}
	switch {
	case errors.Is(err, radgate.ErrOrderNotFound):
		writeOutcome(w, http.StatusNotFound, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			fmt.Sprintf("order %q not found", clipText(id))).WithDetail(fhir.DetailNotFound))
	case err != nil:
		h.log.Warn("order history unavailable", "order_id", id, "error", err)
		w.Header().Set("Retry-After", "5")
		writeOutcome(w, http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
			"the order store is unavailable right now: ask again later").WithDetail(fhir.DetailOrderStoreUnavailable))
	default:
		if !httpauth.HasRole(r, httpauth.RolePHI) {
			scrub := scrubberFor(st)
			for i := range hist {
				hist[i].Reason = scrub(hist[i].Reason)
			}
		}
		if hist == nil {
			hist = []radgate.HistoryEntry{}
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, "application/json", hist)
	}
}

// rejected answers a request whose body cannot become an order. err is a
// *fhir.FieldError, or several joined: their messages are written for the
// sender and never repeat a value whole.
func (h *Intake) rejected(w http.ResponseWriter, r *http.Request, err error) {
	h.logRejected(r, err)
	writeOutcome(w, http.StatusBadRequest, fhir.OutcomeFromError(err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidResource))
}

// logRejected logs where a request was at fault, never the message itself
// (it may quote values from the resource).
func (h *Intake) logRejected(r *http.Request, err error) {
	var paths []string
	for _, is := range fhir.OutcomeFromError(err, fhir.IssueInvalid).Issues {
		paths = append(paths, strings.Join(is.Expression, ",")+"("+string(is.Code)+")")
	}
	h.log.Info("request rejected", "path", r.URL.Path, "faults", strings.Join(paths, " "))
}

// acceptError maps an Accept error about order resource o to an HTTP
// status and an outcome for the sender: a stable detail code and a message
// written for them, never the error's own text (which names the broker's
// internals; the caller logs it) — except for radgate.ErrOrderCancelled,
// whose text radgate.Intake writes for the sender (identifiers only).
func acceptError(err error, o *fhir.OrderResource) (int, *fhir.Outcome) {
	switch {
	case errors.Is(err, radgate.ErrUnknownOrder):
		return http.StatusNotFound, fhir.NewOutcome(fhir.SeverityError, fhir.IssueNotFound,
			fmt.Sprintf("%s: radgate has no such order to cancel (it never received one of this %s)", orderName(o), orderKeyName(o))).
			WithDetail(fhir.DetailNotFound)
	case errors.Is(err, radgate.ErrOrderCancelled):
		return http.StatusConflict, fhir.NewOutcome(fhir.SeverityError, IssueConflict,
			fmt.Sprintf("%s: %s", orderName(o), clipText(err.Error()))).WithDetail(DetailOrderCancelled)
	case errors.Is(err, radgate.ErrInvalidOrder):
		// Written for the sender by radgate.Intake ("no accession number
		// and no Study Instance UID").
		return http.StatusBadRequest, fhir.OutcomeFromError(err, fhir.IssueInvalid).WithDetail(fhir.DetailInvalidOrder)
	case tooLarge(err):
		return http.StatusRequestEntityTooLarge, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTooCostly,
			"the order is larger than radgate's message store takes; sending it again unchanged cannot succeed: "+
				"leave out repeated codes, references and texts").WithDetail(fhir.DetailOrderTooLarge)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
			"the order could not be stored in time; nothing was accepted: send it again").WithDetail(fhir.DetailOrderStoreUnavailable)
	}
	return http.StatusServiceUnavailable, fhir.NewOutcome(fhir.SeverityError, fhir.IssueTransient,
		"the order store is unavailable; nothing was accepted: send it again later").WithDetail(fhir.DetailOrderStoreUnavailable)
}

// tooLarge reports whether the broker refused a message as too large: the
// client's payload limit (nats.ErrMaxPayload) or the stream's maximum
// message size. That is the sender's order, not an outage: 413, not 503.
func tooLarge(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// order is an intake resource with what fhir.OrderResource does not
// carry: ImagingStudy.numberOfInstances (0 when absent).
type order struct {
	*fhir.OrderResource
	count int
}

// IssueConflict is the R4 issue-type code of a request that conflicts with
// the order's state (an amendment of a cancelled order).
const IssueConflict fhir.IssueCode = "conflict"

// DetailOrderCancelled is radgate's detail code (fhir.ErrorCodeSystem) of
// an event refused because its order was cancelled.
const DetailOrderCancelled = "order-cancelled"

// Cancelling statuses: a ServiceRequest in one of these becomes an
// OrderEvent with Action radgate.ActionCancel.
var cancelStatuses = []string{"revoked", "entered-in-error"}

// event maps an intake resource to routing's OrderEvent: a ServiceRequest
// revoked or entered in error cancels its order (Reason "FHIR
// ServiceRequest status revoked"); an ImagingStudy available announces its
// study complete with numberOfInstances instances.
func (h *Intake) event(o *order) radgate.OrderEvent {
	ev := radgate.OrderEvent{
		Source:           Source,
		ResourceType:     o.ResourceType,
		ReceivedAt:       h.now().UTC(),
		StudyInstanceUID: o.StudyInstanceUID,
		Patient:          toRoutingRef(o.Subject),
		Modalities:       o.Modalities,
		Facility:         o.Facility,
		Priority:         o.Priority,
	}
	ev.Age = o.Age(ev.ReceivedAt)
	if o.Accession != nil {
		ev.Accession = &radgate.Identifier{System: o.Accession.System, Value: o.Accession.Value}
	}
	for _, c := range o.Codes {
		ev.ProcedureCodes = append(ev.ProcedureCodes, radgate.Coding{System: c.System, Code: c.Code, Display: c.Display})
	}
	for i := range o.BasedOn {
		ev.BasedOn = append(ev.BasedOn, *toRoutingRef(&o.BasedOn[i]))
	}
	switch o.ResourceType {
	case "ServiceRequest":
		ev.ServiceRequest = toRoutingRef(o.Self)
		if slices.Contains(cancelStatuses, o.Status) {
			ev.Action = radgate.ActionCancel
			ev.Reason = "FHIR ServiceRequest status " + o.Status
		}
	case "ImagingStudy":
		ev.ImagingStudy = toRoutingRef(o.Self)
		if o.Status == "available" {
			ev.StudyComplete = true
			ev.InstanceCount = o.count
		}
		// A study based on exactly one ServiceRequest names the order's request.
		if len(o.BasedOn) == 1 && isServiceRequestRef(o.BasedOn[0]) {
			ev.ServiceRequest = toRoutingRef(&o.BasedOn[0])
		}
	}
	return ev
}

func actionName(a radgate.OrderAction) string {
	if a == radgate.ActionOrder {
		return "order"
	}
	return string(a)
}

// orderName names an order resource for its sender by what identifies the
// order, never by patient data: "ServiceRequest/12", else its accession
// number, else its Study Instance UID.
func orderName(o *fhir.OrderResource) string {
	switch {
	case o == nil:
		return "the order"
	case o.ID != "":
		return o.ResourceType + "/" + o.ID
	case o.Accession != nil:
		if o.Accession.System != "" {
			return fmt.Sprintf("%s with accession number %s|%s", o.ResourceType, clipText(o.Accession.System), clipText(o.Accession.Value))
		}
		return fmt.Sprintf("%s with accession number %s", o.ResourceType, clipText(o.Accession.Value))
	case o.StudyInstanceUID != "":
		return fmt.Sprintf("%s of study %s", o.ResourceType, o.StudyInstanceUID)
	}
	return "the " + o.ResourceType
}

// orderKeyName says what keys the order: its accession number, else its
// study.
func orderKeyName(o *fhir.OrderResource) string {
	if o != nil && o.Accession == nil && o.StudyInstanceUID != "" {
		return "Study Instance UID"
	}
	return "accession number"
}

// instanceCount reads numberOfInstances of an ImagingStudy (0 when absent;
// fhir.OrderResource does not carry it); path names the resource in errors.
// The resource was decoded already, so the value is an integer or absent.
func instanceCount(resourceType string, resource []byte, path string) (int, error) {
	if resourceType != "ImagingStudy" {
		return 0, nil
	}
	var v struct {
		N *int64 `json:"numberOfInstances"`
	}
	if err := json.Unmarshal(resource, &v); err != nil || v.N == nil {
		return 0, nil
	}
	if *v.N < 0 || *v.N > maxInstanceCount {
		return 0, &fhir.FieldError{Path: path + ".numberOfInstances", Code: fhir.IssueValue,
			Msg: fmt.Sprintf("%d is not a number of instances (0 to %d)", *v.N, maxInstanceCount)}
	}
	return int(*v.N), nil
}

// maxInstanceCount bounds ImagingStudy.numberOfInstances (an R4
// unsignedInt).
const maxInstanceCount = 1<<31 - 1

// bundleInstanceCounts reads numberOfInstances of each ImagingStudy entry
// of a Bundle, by entry index; an entry whose count is not one gets the
// error as its Err.
func bundleInstanceCounts(body []byte, b *fhir.IntakeBundle) map[int]int {
	var raw struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return nil
	}
	counts := map[int]int{}
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Order == nil || e.Order.ResourceType != "ImagingStudy" || e.Index >= len(raw.Entry) {
			continue
		}
		n, err := instanceCount(e.ResourceType, raw.Entry[e.Index].Resource, fmt.Sprintf("Bundle.entry[%d].resource", e.Index))
		if err != nil {
			e.Order, e.Err = nil, err
			continue
		}
		counts[e.Index] = n
	}
	return counts
}

func isServiceRequestRef(r fhir.Reference) bool {
	if r.Reference != "" {
		return strings.HasPrefix(r.Reference, "ServiceRequest/") || strings.Contains(r.Reference, "/ServiceRequest/")
	}
	return r.Identifier != nil && r.Identifier.Value != ""
}

func toRoutingRef(r *fhir.Reference) *radgate.Reference {
	if r == nil {
		return nil
	}
	out := &radgate.Reference{Reference: r.Reference, Display: r.Display}
	if r.Identifier != nil {
		out.Identifier = &radgate.Identifier{System: r.Identifier.System, Value: r.Identifier.Value}
	}
	return out
}

// clipPath and clipText cut what a request sent to a length a message may
// repeat.
func clipPath(p string) string { return clipText(p) }

func clipText(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func writeOutcome(w http.ResponseWriter, code int, o *fhir.Outcome) {
	writeRaw(w, code, "application/fhir+json", o.JSON())
}

func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, fhir.NewOutcome(fhir.SeverityError, fhir.IssueException, "writing the response: "+err.Error()))
		return
	}
	writeRaw(w, code, contentType, b)
}

func writeRaw(w http.ResponseWriter, code int, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
