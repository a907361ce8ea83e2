package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// DefaultDialTimeout bounds connecting, association set-up and each wait
// on the peer when Dialer.Timeout is 0.
const DefaultDialTimeout = 30 * time.Second

// Dialer opens associations as the requestor (SCU).
type Dialer struct {
	CallingAE, CalledAE string
	// TLS, when set, is DICOM TLS (BCP 195: TLS 1.2 or later).
	TLS *tls.Config
	// MaxPDULength is the maximum P-DATA-TF length announced and read
	// (DefaultMaxPDULength when 0).
	MaxPDULength uint32
	// Timeout bounds connecting and association set-up (ARTIM), the
	// release, and every wait on the peer within an operation
	// (DefaultDialTimeout when 0). A context deadline may end an
	// operation sooner.
	Timeout time.Duration
	// UserIdentity, when set, is proposed in the A-ASSOCIATE-RQ.
	UserIdentity *UserIdentity
	// RoleSelections proposes SCP/SCU roles per SOP class (C-GET needs
	// SCP for the storage classes it retrieves).
	RoleSelections map[string]Role
	// Logger gets association events with assoc, called AE and address.
	Logger *slog.Logger
}

// Association is an open association requested by a Dialer. Its methods
// may be called from several goroutines; they run one at a time.
type Association struct {
	a         *assoc
	id        string
	accepted  []PresentationContext
	roles     map[string]Role
	identity  []byte
	log       *slog.Logger
	timeout   time.Duration
	mu        sync.Mutex
	msgID     uint16
	closed    bool
	brokenErr error
	// info is the association as a StoreHandler sees the C-STOREs of a
	// C-GET: the peer calls (CallingAE), radgate is called.
	info AssociationInfo
}

// StoreContexts returns proposals for sopClasses, one context each with
// the given transfer syntaxes, plus Verification.
func StoreContexts(sopClasses []string, transferSyntaxes ...string) []PresentationContext {
	out := []PresentationContext{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	for _, c := range sopClasses {
		out = append(out, PresentationContext{AbstractSyntax: c, TransferSyntaxes: transferSyntaxes})
	}
	return out
}

// Dial connects to addr and requests an association with the proposed
// contexts (IDs 1, 3, 5… are assigned to those with ID 0). A rejection is
// a *RejectError naming the reason.
func (d *Dialer) Dial(ctx context.Context, addr string, contexts []PresentationContext) (*Association, error) {
	if err := checkAE(d.CallingAE); err != nil {
		return nil, fmt.Errorf("dimse: calling AE: %w", err)
	}
	if err := checkAE(d.CalledAE); err != nil {
		return nil, fmt.Errorf("dimse: called AE: %w", err)
	}
	if len(contexts) == 0 || len(contexts) > 128 {
		return nil, fmt.Errorf("dimse: %d presentation contexts proposed; 1 to 128 are allowed", len(contexts))
	}
	timeout := orDefault(d.Timeout, DefaultDialTimeout)
	maxPDU := d.MaxPDULength
	if maxPDU == 0 {
		maxPDU = DefaultMaxPDULength
	}
	p := &assocPDU{ProtocolVersion: 1, CalledAE: d.CalledAE, CallingAE: d.CallingAE, AppContext: ApplicationContext,
		User: userInfo{MaxPDULength: maxPDU, ImplClassUID: implementationClassUID, ImplVersion: ImplementationVersion, Identity: d.UserIdentity}}
	used := map[byte]bool{}
	for _, pc := range contexts {
		if pc.ID != 0 {
			if pc.ID%2 == 0 || used[pc.ID] {
				return nil, fmt.Errorf("dimse: presentation context ID %d is even or repeated", pc.ID)
			}
			used[pc.ID] = true
		}
	}
	next := byte(1)
	for _, pc := range contexts {
		if pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0 {
			return nil, fmt.Errorf("dimse: presentation context for %q needs an abstract syntax and transfer syntaxes", pc.AbstractSyntax)
		}
		if pc.ID == 0 {
			for used[next] {
				next += 2
			}
			pc.ID = next
			used[next] = true
		}
		p.Contexts = append(p.Contexts, PresentationContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
	}
	for _, uid := range slices.Sorted(maps.Keys(d.RoleSelections)) {
		p.User.Roles = append(p.User.Roles, RoleSelection{SOPClassUID: uid, Role: d.RoleSelections[uid]})
	}

	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := newAssocID()
	log = log.With("assoc", id, "called", d.CalledAE, "addr", addr)

	nd := net.Dialer{Timeout: timeout}
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: connecting to %s (%s): %w", d.CalledAE, addr, err)
	}
	if d.TLS != nil {
		cfg := d.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("dimse: TLS with %s (%s): %w", d.CalledAE, addr, err)
		}
		nc = tc
	}
	a := newAssoc(nc, max(maxPDU, minPDULength), timeout)
	stop := context.AfterFunc(ctx, a.interrupt)
	defer stop()
	fail := func(err error) (*Association, error) {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dimse: association with %s (%s): %w", d.CalledAE, addr, ctx.Err())
		}
		return nil, err
	}
	if err := a.write(encodeAssoc(p, true)); err != nil {
		return fail(fmt.Errorf("dimse: sending A-ASSOCIATE-RQ to %s (%s): %w", d.CalledAE, addr, err))
	}
	typ, body, err := a.readPDU()
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			a.abort(Abort{Source: AbortServiceProvider, Reason: pe.Reason})
		}
		return fail(fmt.Errorf("dimse: waiting for the answer of %s (%s): %w", d.CalledAE, addr, err))
	}
	switch typ {
	case pduAssociateRJ:
		rj, err := decodeReject(body)
		if err != nil {
			return fail(err)
		}
		log.Info("dimse: association rejected", "reject", rj.String())
		return fail(&RejectError{Reject: rj})
	case pduAbort:
		ab, _ := decodeAbort(body)
		return fail(fmt.Errorf("dimse: association request to %s (%s): %w", d.CalledAE, addr, &AbortedError{Abort: ab}))
	case pduAssociateAC:
	default:
		a.abort(Abort{Source: AbortServiceProvider, Reason: AbortUnexpectedPDU})
		return fail(fmt.Errorf("dimse: %s (%s) answered the A-ASSOCIATE-RQ with PDU type 0x%02x", d.CalledAE, addr, typ))
	}
	ac, err := decodeAssoc(body, false)
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			a.abort(Abort{Source: AbortServiceProvider, Reason: pe.Reason})
		}
		return fail(fmt.Errorf("dimse: A-ASSOCIATE-AC from %s (%s): %w", d.CalledAE, addr, err))
	}
	asc := &Association{a: a, id: id, log: log, timeout: timeout, roles: map[string]Role{},
		info: AssociationInfo{ID: id, CallingAE: d.CalledAE, CalledAE: d.CallingAE, Remote: nc.RemoteAddr(), TLS: d.TLS != nil}}
	a.maxRead, a.maxSend = maxPDU, ac.User.MaxPDULength
	a.contexts = map[byte]PresentationContext{}
	for _, got := range ac.Contexts {
		i := slices.IndexFunc(p.Contexts, func(pc PresentationContext) bool { return pc.ID == got.ID })
		if i < 0 {
			a.abort(Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter})
			return fail(fmt.Errorf("dimse: A-ASSOCIATE-AC from %s answers presentation context %d, which was not proposed", d.CalledAE, got.ID))
		}
		got.AbstractSyntax = p.Contexts[i].AbstractSyntax
		got.TransferSyntaxes = p.Contexts[i].TransferSyntaxes
		if got.Result == ContextAccepted {
			if !slices.Contains(got.TransferSyntaxes, got.TransferSyntax) {
				a.abort(Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter})
				return fail(fmt.Errorf("dimse: %s accepted context %d with transfer syntax %s, which was not proposed", d.CalledAE, got.ID, got.TransferSyntax))
			}
			a.contexts[got.ID] = got
		}
		asc.accepted = append(asc.accepted, got)
	}
	for _, r := range ac.User.Roles {
		asc.roles[r.SOPClassUID] = r.Role
	}
	if ac.User.HasIdentityResponse {
		asc.identity = ac.User.IdentityResponse
	}
	log.Info("dimse: association accepted", "contexts", len(a.contexts), "peer_max_pdu", ac.User.MaxPDULength, "peer_impl", ac.User.ImplClassUID)
	return asc, nil
}

// ID is the association's identifier in logs.
func (as *Association) ID() string { return as.id }

// Contexts returns every presentation context as the acceptor answered it.
func (as *Association) Contexts() []PresentationContext { return slices.Clone(as.accepted) }

// Accepted returns the transfer syntaxes accepted for an abstract syntax,
// one per accepted context, in the order proposed.
func (as *Association) Accepted(sopClass string) []string {
	var out []string
	for _, pc := range as.accepted {
		if pc.AbstractSyntax == sopClass && pc.Result == ContextAccepted {
			out = append(out, pc.TransferSyntax)
		}
	}
	return out
}

// Role returns the roles the acceptor answered for a SOP class's role
// selection, and whether it answered one.
func (as *Association) Role(sopClass string) (Role, bool) { r, ok := as.roles[sopClass]; return r, ok }

// UserIdentityResponse is the acceptor's positive user identity response,
// nil when it sent none.
func (as *Association) UserIdentityResponse() []byte { return as.identity }

func (as *Association) findContext(sopClass, ts string) (PresentationContext, bool) {
	for _, pc := range as.accepted {
		if pc.Result == ContextAccepted && pc.AbstractSyntax == sopClass && (ts == "" || pc.TransferSyntax == ts) {
			return pc, true
		}
	}
	return PresentationContext{}, false
}

// begin starts an operation: one at a time, on a live association, with
// ctx able to interrupt it.
func (as *Association) begin(ctx context.Context) (func(error) error, error) {
	return as.beginWith(ctx, as.a.interrupt)
}

// beginWith is begin with onDone called when ctx ends during the
// operation (begin: interrupt the association). The operation's end waits
// for an onDone already started.
func (as *Association) beginWith(ctx context.Context, onDone func()) (func(error) error, error) {
	as.mu.Lock()
	if as.closed {
		as.mu.Unlock()
		return nil, fmt.Errorf("dimse: association %s is closed", as.id)
	}
	if as.brokenErr != nil {
		as.mu.Unlock()
		return nil, fmt.Errorf("dimse: association %s failed earlier: %w", as.id, as.brokenErr)
	}
	if err := ctx.Err(); err != nil {
		as.mu.Unlock()
		return nil, err
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { defer close(done); onDone() })
	return func(err error) error {
		if !stop() {
			<-done
		}
		if err != nil {
			// The association's state is unknown: end it.
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			var ab *AbortedError
			if !errors.As(err, &ab) {
				reason := AbortNotSpecified
				var pe *ProtocolError
				if errors.As(err, &pe) {
					reason = pe.Reason
				}
				src := AbortServiceProvider
				if ctx.Err() != nil {
					src = AbortServiceUser
				}
				as.a.abort(Abort{Source: src, Reason: reason})
			} else {
				as.a.nc.Close()
			}
			as.brokenErr = err
			as.log.Warn("dimse: association ended by an error", "err", err)
		}
		as.mu.Unlock()
		return err
	}, nil
}

func (as *Association) nextMessageID() uint16 {
	as.msgID++
	if as.msgID == 0 {
		as.msgID = 1
	}
	return as.msgID
}

// Echo sends a C-ECHO-RQ and waits for its success.
func (as *Association) Echo(ctx context.Context) error {
	pc, ok := as.findContext(VerificationSOPClass, "")
	if !ok {
		return fmt.Errorf("dimse: association %s has no accepted Verification context", as.id)
	}
	end, err := as.begin(ctx)
	if err != nil {
		return err
	}
	rq := NewCommand(CEchoRQ)
	id := as.nextMessageID()
	rq.SetUint16(TagMessageID, id)
	rq.SetString(TagAffectedSOPClassUID, VerificationSOPClass)
	st, err := as.exchange(pc.ID, rq, nil, CEchoRSP, id)
	if err = end(err); err != nil {
		return err
	}
	if !st.IsSuccess() {
		return fmt.Errorf("dimse: C-ECHO answered %s", st)
	}
	return nil
}

// Store sends one C-STORE-RQ with the data set (in transferSyntax,
// without file meta information) and returns the status answered. The
// error is non-nil only when the exchange itself failed (then the
// association is aborted) or no accepted context fits.
func (as *Association) Store(ctx context.Context, sopClass, sopInstance, transferSyntax string, dataset io.Reader) (Status, error) {
	pc, ok := as.findContext(sopClass, transferSyntax)
	if !ok {
		return 0, fmt.Errorf("dimse: association %s has no accepted context for SOP class %s in transfer syntax %s (accepted for it: %v)",
			as.id, sopClass, transferSyntax, as.Accepted(sopClass))
	}
	end, err := as.begin(ctx)
	if err != nil {
		return 0, err
	}
	rq := NewCommand(CStoreRQ)
	id := as.nextMessageID()
	rq.SetUint16(TagMessageID, id)
	rq.SetString(TagAffectedSOPClassUID, sopClass)
	rq.SetString(TagAffectedSOPInstanceUID, sopInstance)
	rq.SetUint16(TagPriority, PriorityMedium)
	rq.SetUint16(TagCommandDataSetType, DataSetPresent)
	st, err := as.exchange(pc.ID, rq, dataset, CStoreRSP, id)
	return st, end(err)
}

// exchange sends a request (and its data set) and reads its response.
func (as *Association) exchange(ctxID byte, rq *Command, data io.Reader, rspField, id uint16) (Status, error) {
	as.a.idle = as.timeout
	if err := as.a.writeCommand(ctxID, rq); err != nil {
		return 0, err
	}
	if data != nil {
		if err := as.a.writeDataSet(ctxID, data); err != nil {
			return 0, err
		}
	}
	quickAck(as.a.nc)
	_, rsp, err := as.a.readCommand()
	if err != nil {
		return 0, err
	}
	if rsp.Field() != rspField {
		return 0, protoErr(AbortUnexpectedPDUParameter, "response command 0x%04x to a 0x%04x request", rsp.Field(), rq.Field())
	}
	if got, _ := rsp.Uint16(TagMessageIDBeingRespondedTo); got != id {
		return 0, protoErr(AbortInvalidPDUParameter, "response to message %d where %d was awaited", got, id)
	}
	if rsp.HasDataSet() {
		if err := drain(as.a, ctxID, 1<<20); err != nil {
			return 0, err
		}
	}
	st, ok := rsp.Status()
	if !ok {
		return 0, protoErr(AbortInvalidPDUParameter, "response without a status")
	}
	return st, nil
}

// Release asks for an orderly release and waits for it (at most the
// Dialer's Timeout), then closes the connection.
func (as *Association) Release(ctx context.Context) error {
	end, err := as.begin(ctx)
	if err != nil {
		return err
	}
	err = as.release()
	if err == nil {
		as.closed = true
		as.a.nc.Close()
		as.log.Info("dimse: association released")
	}
	return end(err)
}

func (as *Association) release() error {
	if err := as.a.write(encodeRelease(pduReleaseRQ)); err != nil {
		return err
	}
	for {
		typ, body, err := as.a.readPDU()
		if err != nil {
			return fmt.Errorf("dimse: waiting for A-RELEASE-RP: %w", err)
		}
		switch typ {
		case pduReleaseRP:
			return nil
		case pduAbort:
			ab, _ := decodeAbort(body)
			return &AbortedError{Abort: ab}
		case pduReleaseRQ:
			// Release collision (PS3.8 7.2.2): the requestor answers.
			if err := as.a.write(encodeRelease(pduReleaseRP)); err != nil {
				return err
			}
		case pduPData:
			// A late fragment; nothing is awaited any more.
		default:
			return protoErr(AbortUnexpectedPDU, "PDU type 0x%02x while waiting for A-RELEASE-RP", typ)
		}
	}
}

// Abort sends an A-ABORT and closes the connection.
func (as *Association) Abort() error {
	as.a.interrupt() // unblock an operation in progress
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed {
		return nil
	}
	as.closed = true
	as.a.abort(Abort{Source: AbortServiceUser})
	return nil
}
