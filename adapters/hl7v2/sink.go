package hl7v2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
)

// BucketOutbox is the JetStream object store holding every ORU^R01 the
// result sink sent (or tried to send), one object per result copy: <key>.hl7
// (see OutboxKey: the result id for the first result, <result id>-r2 for
// amended revision 2, <result id>-r2x for the retraction of revision 2), the
// message as sent but for PID-5 (never stored) and its character set (kept
// in UTF-8; Message.Wire converts it to what MSH-18 declares on every send),
// with its delivery record in the object's metadata (Meta* keys).
const BucketOutbox = "radgate_hl7_out"

// Metadata keys of a stored message.
const (
	MetaResultID    = "result_id"
	MetaRevision    = "revision" // Result.Revision (1 the first)
	MetaStatus      = "status"   // Result.Status: final, amended, retracted
	MetaOrderID     = "order_id"
	MetaControlID   = "control_id"  // MSH-10
	MetaDestination = "destination" // host:port it was sent to
	MetaStoredAt    = "stored_at"   // RFC 3339, when it was stored (before the first send)
	MetaSentAt      = "sent_at"     // when the last acknowledgement arrived
	MetaAckCode     = "ack_code"    // MSA-1 of that acknowledgement (AA, AE, …)
	MetaAckError    = "ack_error"   // the refusal, ERR segments included
	MetaLastError   = "last_error"  // the last transport error (no answer, refused)
	MetaAttempts    = "attempts"    // how many times Deliver or resend sent it
)

// PDFFunc renders the human-readable report of a scored result (see package
// report). An error it wraps with radgate.Transient is retried; any other
// ends the delivery.
type PDFFunc func(ctx context.Context, r radgate.Result) ([]byte, error)

// ResultSinkOptions configure a ResultSink.
type ResultSinkOptions struct {
	// JS is the JetStream context of radgate's NATS; the sink stores every
	// message in BucketOutbox (created when absent) before sending it.
	// Required.
	JS jetstream.JetStream
	// Address is the RIS's MLLP listener, host:port. Required.
	Address string
	// ORU tunes the message: applications and facilities (MSH-3..6),
	// authorities, delimiters. ControlID, Time and PDF are set by the sink.
	ORU ORUOptions
	// PDF, when set, renders the report attached as an ED OBX.
	PDF PDFFunc
	// Client tunes the MLLP client (timeouts, attempts, backoff); Addr is
	// Address. AE is never retried by the sink: it is final.
	Client ClientOptions
	// Patients, when set, gives each ORU its PID-5 (and, for an order
	// known only by a FHIR Patient reference, its PID-3) when it is sent;
	// without it PID-5 is UnknownName. The name is never stored: the
	// outbox keeps the message with UnknownName, and each send reads the
	// name again.
	Patients PatientSource
	// Logger receives delivery events (identifiers only); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Outbox bounds BucketOutbox (config retention.hl7_outbox); applied
	// when the sink first creates or opens it.
	Outbox OutboxLimits
}

// OutboxLimits bound BucketOutbox: MaxAge 0 keeps messages forever, MaxBytes
// 0 sets no size limit. A full outbox refuses new messages (a transient
// delivery error: the result is retried within the delivery window).
type OutboxLimits struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// ResultSink delivers results to a RIS as ORU^R01 over MLLP (radgate.Sink).
//
// Before the first send of a result the message is stored in BucketOutbox
// (object <key>.hl7, see OutboxKey), so it can be inspected and re-sent
// (radgate hl7 show, resend). Each (Result.ID, Revision, Status) is a copy
// of its own, with its own MSH-10 (see ORU): the first result, each amended
// revision and each retraction are stored, sent and acknowledged
// separately. The stored message carries no patient name (PID-5
// UnknownName): Deliver reads the name from Patients and writes it into the
// copy it sends; radgate hl7 resend sends the stored message as it is.
// Delivering a result copy again sends the stored message unchanged, with
// the same MSH-10, or nothing when its ACK was already AA: the RIS sees one
// control id per result copy.
//
// Deliver returns once the RIS acknowledged with AA (or CA). Following HL7
// Table 0008, AE and CE (the content was wrong) are permanent errors naming
// the ACK's ERR segments (an *AckError), and so is an AR or CR for a reason
// that resending cannot change (unsupported message type, say); an AR or
// CR for an application internal error (ERR-3 207) or without a code — the
// receiver could not take it now — is retried, as are no answer, a refused
// or broken connection and a timeout (radgate.Transient).
type ResultSink struct {
	opts   ResultSinkOptions
	log    *slog.Logger
	client *Client

	mu     sync.Mutex // serialises Deliver (one message in flight per connection anyway)
	outbox *Outbox
}

var (
	_ radgate.Sink        = (*ResultSink)(nil)
	_ radgate.PictureUser = (*ResultSink)(nil)
)

// Pictures: the ORU carries text, and the PDF report when attached, which
// shows the preview or the radiograph's thumbnail.
func (s *ResultSink) Pictures() radgate.Pictures {
	if s.opts.PDF != nil {
		return radgate.PicturePreview | radgate.PictureThumbnail
	}
	return 0
}

// NewResultSink validates opts; it does no I/O (the bucket is created on
// first use, the connection opened on first send).
func NewResultSink(opts ResultSinkOptions) (*ResultSink, error) {
	if opts.JS == nil {
		return nil, errors.New("hl7v2: ResultSinkOptions.JS is required (the outbox is a JetStream object store)")
	}
	if strings.TrimSpace(opts.Address) == "" {
		return nil, errors.New("hl7v2: ResultSinkOptions.Address is required (the RIS's MLLP host:port)")
	}
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("hl7v2: ResultSinkOptions.Address %q: %w", opts.Address, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	copts := opts.Client
	copts.Addr = opts.Address
	if copts.Logger == nil {
		copts.Logger = log
	}
	c, err := NewClient(copts)
	if err != nil {
		return nil, err
	}
	return &ResultSink{opts: opts, log: log.With("component", "hl7v2.sink", "destination", opts.Address), client: c}, nil
}

// Close closes the MLLP connection; it is idempotent.
func (s *ResultSink) Close() error { return s.client.Close() }

// Deliver stores and sends r's ORU^R01 (see ResultSink).
func (s *ResultSink) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	if strings.TrimSpace(r.ID) == "" {
		return radgate.Receipt{}, fmt.Errorf("hl7v2: delivering a result: %w: Result.ID is empty", ErrInvalidResult)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outbox == nil {
		ob, err := CreateOutbox(ctx, s.opts.JS, s.opts.Outbox)
		if err != nil {
			return radgate.Receipt{}, radgate.Transient(err)
		}
		s.outbox = ob
	}
	key := OutboxKey(r)
	fail := func(doing string, err error) (radgate.Receipt, error) {
		return radgate.Receipt{}, fmt.Errorf("hl7v2: delivering result %s: %s: %w", key, doing, err)
	}
	// The patient's demographics, read once per delivery, never stored.
	var (
		demo    Demographics
		demoErr error
		looked  bool
	)
	lookup := func() (Demographics, error) {
		if !looked && s.opts.Patients != nil {
			demo, demoErr = s.opts.Patients.Demographics(ctx, r)
		}
		looked = true
		return demo, demoErr
	}

	stored, raw, err := s.outbox.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotStored):
		if p := r.Order.Patient; p == nil || p.Identifier == nil || strings.TrimSpace(p.Identifier.Value) == "" {
			// PID-3 from the FHIR Patient the order points at.
			d, err := lookup()
			if err != nil {
				return fail("reading the patient identifier for PID-3", err)
			}
			if d.Identifier == nil {
				what := "the order has no patient identifier"
				if p != nil && p.Reference != "" {
					what = fmt.Sprintf("the order names its patient only as %s, and ", p.Reference)
					if d.Source == "" {
						what += "no FHIR server is configured to read it"
					} else {
						what += d.Source + " on the FHIR server has no identifier"
					}
				}
				return fail("building the ORU^R01", fmt.Errorf("%w: no patient identifier for PID-3: %s", ErrInvalidResult, what))
			}
			pat := radgate.Reference{Identifier: d.Identifier}
			if p != nil {
				pat.Reference = p.Reference
			}
			r.Order.Patient = &pat
		}
		msg, err := s.build(ctx, r)
		if err != nil {
			return fail("building the ORU^R01", err)
		}
		raw = msg.Encode()
		now := s.opts.Now().UTC()
		stored = StoredMessage{ResultID: r.ID, Revision: r.EffectiveRevision(), Status: resultStatus(r),
			OrderID: r.Order.ID, ControlID: msg.ControlID(), Destination: s.opts.Address, StoredAt: now}
		if err := s.outbox.put(ctx, stored, raw); err != nil {
			return fail("storing the message", radgate.Transient(err))
		}
	case err != nil:
		return fail("reading the outbox", radgate.Transient(err))
	case stored.AckCode.Accepted():
		// Delivered before: the RIS has this control id already.
		s.log.Info("result already delivered", "result_id", r.ID, "revision", r.EffectiveRevision(), "status", resultStatus(r),
			"order_id", r.Order.ID, "control_id", stored.ControlID, "ack", stored.AckCode)
		return radgate.Receipt{Report: receiptOf(stored.ControlID)}, nil
	default:
		s.log.Info("sending the stored message again", "result_id", r.ID, "revision", r.EffectiveRevision(), "status", resultStatus(r),
			"control_id", stored.ControlID, "last_ack", stored.AckCode)
	}

	msg, err := Parse(raw)
	if err != nil {
		return fail("reading the stored message", err)
	}
	if s.opts.Patients != nil {
		d, err := lookup()
		if err != nil {
			return fail("reading the patient's name for PID-5", err)
		}
		if err := setPatientName(msg, d.Name); err != nil {
			return fail("writing PID-5", err)
		}
		if err := declareCharset(msg, s.opts.ORU.Charset); err != nil {
			return fail("declaring MSH-18", err)
		}
		if _, n := msg.Wire(); n > 0 {
			s.log.Warn("characters the RIS's character set cannot hold were substituted", "result_id", r.ID,
				"charset", s.opts.ORU.Charset, "characters", n)
		}
		s.log.Debug("patient demographics read for the ORU", "result_id", r.ID, "from", orNone(d.Source), "name", !d.Name.IsZero())
	}
	stored, err = s.outbox.send(ctx, s.client, stored, msg, s.opts.Address, s.opts.Now)
	if err != nil {
		s.log.Warn("result not delivered", "result_id", r.ID, "revision", r.EffectiveRevision(), "status", resultStatus(r),
			"order_id", r.Order.ID, "control_id", stored.ControlID, "transient", radgate.IsTransient(err), "error", err)
		return fail("sending to "+s.opts.Address, err)
	}
	s.log.Info("result delivered", "result_id", r.ID, "revision", r.EffectiveRevision(), "status", resultStatus(r),
		"order_id", r.Order.ID, "control_id", stored.ControlID, "ack", stored.AckCode)
	return radgate.Receipt{Report: receiptOf(stored.ControlID)}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// receiptOf names a delivered ORU in radgate.Receipt.Report.
func receiptOf(controlID string) string { return "ORU^R01/" + controlID }

func (s *ResultSink) build(ctx context.Context, r radgate.Result) (*Message, error) {
	o := s.opts.ORU
	o.ControlID = ""
	o.Time = s.opts.Now()
	o.PDF = nil
	if s.opts.PDF != nil && r.Outcome == radgate.OutcomeScored {
		pdf, err := s.opts.PDF(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("rendering the PDF report: %w", err)
		}
		o.PDF = pdf
	}
	return ORU(r, o)
}

// ErrNotStored: the outbox holds no message for the result id.
var ErrNotStored = errors.New("no HL7 message stored for this result")

// StoredMessage is the delivery record of a stored message.
type StoredMessage struct {
	ResultID string `json:"result_id"`
	// Revision and Status are the result copy's (Result.Revision, 1 the
	// first; Result.Status); zero in records stored before revisions
	// existed, which are first results.
	Revision    int                  `json:"revision,omitempty"`
	Status      radgate.ResultStatus `json:"status,omitempty"`
	OrderID     string               `json:"order_id,omitempty"`
	ControlID   string               `json:"control_id"`
	Destination string               `json:"destination"`
	StoredAt    time.Time            `json:"stored_at"`
	// SentAt is when the last acknowledgement arrived (zero: none yet).
	SentAt    time.Time `json:"sent_at,omitzero"`
	AckCode   AckCode   `json:"ack_code,omitempty"`
	AckError  string    `json:"ack_error,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Attempts  int       `json:"attempts"`
	// Size is the message's size in bytes.
	Size uint64 `json:"size"`
}

// Key is the record's outbox key (see OutboxKey).
func (m StoredMessage) Key() string { return m.ResultID + revisionSuffix(m.Revision, m.Status) }

// OutboxKey is the outbox key of a result copy, what radgate hl7 show and
// resend take: the result id for the first (final) result, "<result
// id>-r<N>" for amended revision N, "<result id>-r<N>x" for the retraction
// of revision N.
func OutboxKey(r radgate.Result) string {
	return r.ID + revisionSuffix(r.EffectiveRevision(), resultStatus(r))
}

func (m StoredMessage) metadata() map[string]string {
	md := map[string]string{
		MetaResultID: m.ResultID, MetaControlID: m.ControlID, MetaDestination: m.Destination,
		MetaStoredAt: m.StoredAt.UTC().Format(time.RFC3339Nano),
	}
	set := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	set(MetaOrderID, m.OrderID)
	if m.Revision > 0 {
		md[MetaRevision] = fmt.Sprint(m.Revision)
	}
	set(MetaStatus, string(m.Status))
	if !m.SentAt.IsZero() {
		md[MetaSentAt] = m.SentAt.UTC().Format(time.RFC3339Nano)
	}
	set(MetaAckCode, string(m.AckCode))
	set(MetaAckError, m.AckError)
	set(MetaLastError, m.LastError)
	if m.Attempts > 0 {
		md[MetaAttempts] = fmt.Sprint(m.Attempts)
	}
	return md
}

func storedFromInfo(info *jetstream.ObjectInfo) StoredMessage {
	md := info.Metadata
	m := StoredMessage{
		ResultID: md[MetaResultID], OrderID: md[MetaOrderID], ControlID: md[MetaControlID],
		Destination: md[MetaDestination], AckCode: AckCode(md[MetaAckCode]), AckError: md[MetaAckError],
		LastError: md[MetaLastError], Size: info.Size, Status: radgate.ResultStatus(md[MetaStatus]),
	}
	_, _ = fmt.Sscan(md[MetaRevision], &m.Revision)
	if m.ResultID == "" {
		m.ResultID = strings.TrimSuffix(info.Name, ".hl7")
	}
	m.StoredAt, _ = time.Parse(time.RFC3339Nano, md[MetaStoredAt])
	m.SentAt, _ = time.Parse(time.RFC3339Nano, md[MetaSentAt])
	_, _ = fmt.Sscan(md[MetaAttempts], &m.Attempts)
	return m
}

// Outbox is BucketOutbox: the stored ORU^R01 messages.
type Outbox struct {
	store jetstream.ObjectStore
}

// OpenOutbox opens BucketOutbox; with create it is created when absent
// (CreateOutbox with no limits), else a missing bucket is an error saying so.
func OpenOutbox(ctx context.Context, js jetstream.JetStream, create bool) (*Outbox, error) {
	if create {
		return CreateOutbox(ctx, js, OutboxLimits{})
	}
	st, err := js.ObjectStore(ctx, BucketOutbox)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("hl7v2: no HL7 message has been stored yet (object store %s does not exist)", BucketOutbox)
	}
	if err != nil {
		return nil, fmt.Errorf("hl7v2: opening object store %s: %w", BucketOutbox, err)
	}
	return &Outbox{store: st}, nil
}

// CreateOutbox creates BucketOutbox (file storage) or sets its limits to l.
func CreateOutbox(ctx context.Context, js jetstream.JetStream, l OutboxLimits) (*Outbox, error) {
	maxBytes := l.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1 // no limit, also on a store that had one
	}
	st, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      BucketOutbox,
		Description: "ORU^R01 messages sent to a RIS, by result id, with their delivery record",
		Storage:     jetstream.FileStorage,
		TTL:         l.MaxAge,
		MaxBytes:    maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("hl7v2: opening object store %s: %w", BucketOutbox, err)
	}
	return &Outbox{store: st}, nil
}

// ObjectName is the outbox object of a key (see OutboxKey).
func ObjectName(key string) string { return key + ".hl7" }

// Get returns the record and the message stored under key: a result id
// (its first result) or OutboxKey's "<result id>-r<N>[x]" (ErrNotStored when
// there is none).
func (o *Outbox) Get(ctx context.Context, key string) (StoredMessage, []byte, error) {
	name := ObjectName(key)
	info, err := o.store.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return StoredMessage{}, nil, fmt.Errorf("%w: %s (object %s in %s)", ErrNotStored, key, name, BucketOutbox)
	}
	if err != nil {
		return StoredMessage{}, nil, fmt.Errorf("hl7v2: reading %s: %w", name, err)
	}
	raw, err := o.store.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return StoredMessage{}, nil, fmt.Errorf("%w: %s (object %s in %s)", ErrNotStored, key, name, BucketOutbox)
	}
	if err != nil {
		return StoredMessage{}, nil, fmt.Errorf("hl7v2: reading %s: %w", name, err)
	}
	return storedFromInfo(info), raw, nil
}

// List returns every stored message's record, oldest first.
func (o *Outbox) List(ctx context.Context) ([]StoredMessage, error) {
	infos, err := o.store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hl7v2: listing %s: %w", BucketOutbox, err)
	}
	out := make([]StoredMessage, 0, len(infos))
	for _, info := range infos {
		if info.Deleted {
			continue
		}
		out = append(out, storedFromInfo(info))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StoredAt.Equal(out[j].StoredAt) {
			return out[i].StoredAt.Before(out[j].StoredAt)
		}
		return out[i].Key() < out[j].Key()
	})
	return out, nil
}

// Resend sends the message stored under key (see Get), unchanged (same
// MSH-10), to addr and records the outcome. copts tunes the client (Addr is
// addr). Errors are as ResultSink.Deliver's.
func (o *Outbox) Resend(ctx context.Context, key, addr string, copts ClientOptions) (StoredMessage, error) {
	m, raw, err := o.Get(ctx, key)
	if err != nil {
		return m, err
	}
	msg, err := Parse(raw)
	if err != nil {
		return m, fmt.Errorf("hl7v2: reading the stored message of %s: %w", key, err)
	}
	copts.Addr = addr
	c, err := NewClient(copts)
	if err != nil {
		return m, err
	}
	defer c.Close()
	return o.send(ctx, c, m, msg, addr, time.Now)
}

func (o *Outbox) put(ctx context.Context, m StoredMessage, raw []byte) error {
	_, err := o.store.Put(ctx, jetstream.ObjectMeta{
		Name:        ObjectName(m.Key()),
		Description: "ORU^R01 " + m.ControlID,
		Metadata:    m.metadata(),
	}, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("hl7v2: storing %s in %s: %w", ObjectName(m.Key()), BucketOutbox, err)
	}
	return nil
}

// send sends msg with c and records the outcome in m's metadata (the
// destination is the last one that answered). An ACK
// other than AA/CA is a permanent *AckError; anything else that failed is
// radgate.Transient (ctx's own end included: the message may be sent again).
func (o *Outbox) send(ctx context.Context, c *Client, m StoredMessage, msg *Message, addr string, now func() time.Time) (StoredMessage, error) {
	m.Attempts++
	ack, sendErr := c.Send(ctx, msg)
	var ae *AckError
	switch {
	case sendErr == nil:
		a, _ := ReadACK(ack) // Send checked it
		m.AckCode, m.AckError, m.LastError = a.Code, "", ""
		m.SentAt, m.Destination = now().UTC(), addr
	case errors.As(sendErr, &ae):
		m.AckCode, m.AckError = ae.Code, ae.Error()
		m.SentAt, m.Destination = now().UTC(), addr
	default:
		m.LastError = sendErr.Error()
		sendErr = radgate.Transient(sendErr)
	}
	// Record the outcome even when ctx ended: the send is over either way.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := o.store.UpdateMeta(uctx, ObjectName(m.Key()), jetstream.ObjectMeta{
		Name: ObjectName(m.Key()), Description: "ORU^R01 " + m.ControlID, Metadata: m.metadata(),
	}); err != nil && sendErr == nil {
		// Delivered all the same; a later Deliver would send it again with
		// the same control id, which the RIS recognises.
		return m, nil
	}
	return m, sendErr
}
