package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Defaults of the Server's timers.
const (
	DefaultARTIM = 30 * time.Second
	DefaultIdle  = 5 * time.Minute
)

// Server is a DICOM upper layer acceptor: the Verification SCP and, with a
// StoreHandler, the Storage SCP. Its zero value with an AETitle and a
// Store is usable. A Server's fields must not change once Serve runs.
type Server struct {
	// AETitle is the called AE title answered; others are rejected
	// (called-AE-title-not-recognized).
	AETitle string
	// Addr is where Listen and ListenAndServe listen ("127.0.0.1:11112";
	// ":0" picks a port, which the Addr of Listen's listener tells).
	Addr string
	// TLS, when set, makes every connection DICOM TLS (PS3.15 B.9, BCP
	// 195: set MinVersion to TLS 1.2 or later; the caller chooses
	// certificates and client authentication).
	TLS *tls.Config
	// MaxPDULength is the maximum P-DATA-TF length announced, and the bound
	// on every PDU read (an A-ASSOCIATE-RQ may be up to 64 KiB whatever
	// this is). 0: DefaultMaxPDULength.
	MaxPDULength uint32
	// MaxAssociations bounds the associations open at once (beyond:
	// rejected-transient, temporary-congestion); MaxPerCaller bounds them
	// per calling AE title (local-limit-exceeded). 0: unlimited.
	MaxAssociations, MaxPerCaller int
	// MaxInstanceBytes bounds one C-STORE data set: beyond it the
	// handler's Read fails with ErrInstanceTooLarge and the association is
	// aborted. 0: unlimited.
	MaxInstanceBytes int64
	// ARTIM bounds the wait for the A-ASSOCIATE-RQ after a connection
	// opens and for the peer to close after the release (DefaultARTIM);
	// Idle bounds every other wait on the peer: between messages and
	// between the fragments of one (DefaultIdle).
	ARTIM, Idle time.Duration
	// Accept, when set, is called with every A-ASSOCIATE-RQ addressed to
	// AETitle, before the presentation contexts are chosen; a non-nil
	// Reject refuses the association with it.
	Accept func(ctx context.Context, rq *AssociateRequest) *Reject
	// Contexts chooses the presentation contexts accepted.
	Contexts ContextPolicy
	// Store receives C-STOREs; nil refuses the storage contexts.
	Store StoreHandler
	// Logger gets one line per association event with assoc, calling AE
	// and remote address; never patient data. nil: discard.
	Logger *slog.Logger

	mu        sync.Mutex
	open      int
	perCaller map[string]int
}

// StoreHandler receives the data sets of C-STORE requests.
type StoreHandler interface {
	// Store reads the data set (in rq.TransferSyntaxUID, without file
	// meta information) from data as it arrives and returns the status
	// sent back. When Read returns an error other than io.EOF (the
	// association was aborted or cut, a fragment did not arrive within
	// the idle time, the instance exceeds MaxInstanceBytes) the handler
	// must keep nothing of it; its return value is then not sent.
	// A handler that returns before io.EOF has its data set's rest read
	// and discarded. Handlers of different associations run concurrently.
	Store(ctx context.Context, rq *StoreRequest, data io.Reader) Status
}

// StoreHandlerFunc adapts a function to StoreHandler.
type StoreHandlerFunc func(ctx context.Context, rq *StoreRequest, data io.Reader) Status

// Store calls f.
func (f StoreHandlerFunc) Store(ctx context.Context, rq *StoreRequest, data io.Reader) Status {
	return f(ctx, rq, data)
}

// StoreRequest is a C-STORE-RQ's command as the handler sees it.
type StoreRequest struct {
	Association             AssociationInfo
	MessageID               uint16
	SOPClassUID             string
	SOPInstanceUID          string
	TransferSyntaxUID       string
	Priority                uint16
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// AssociationInfo identifies an association in handlers and logs.
type AssociationInfo struct {
	ID                  string // short random identifier, logged as assoc=
	CallingAE, CalledAE string
	Remote              net.Addr
	TLS                 bool
}

// Listen opens the TCP listener on s.Addr; its Addr tells the port when
// s.Addr asks for any (":0"). Pass it to Serve.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: listen %s: %w", s.Addr, err)
	}
	return ln, nil
}

// ListenAndServe listens on s.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts associations on ln until ctx ends; then it closes ln,
// aborts the associations still open (their handlers' contexts end and
// their data Reads fail) and returns nil once all have ended. With s.TLS
// each connection is wrapped in a TLS server. Serve returns an error when
// ln fails or the configuration is invalid.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := checkAE(s.AETitle); err != nil {
		_ = ln.Close()
		return fmt.Errorf("dimse: server AETitle: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("dimse: accept: %w", err)
		}
		delay = 0
		if s.TLS != nil {
			nc = tls.Server(nc, s.TLS)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, nc)
		}()
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) maxPDU() uint32 {
	if s.MaxPDULength > 0 {
		return s.MaxPDULength
	}
	return DefaultMaxPDULength
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// implementationClassUID identifies radgate's DICOM implementation
// (a 2.25 UUID-derived UID, fixed).
const implementationClassUID = "2.25.277135361960113624069052346398430717458"

// ImplementationVersion is the implementation version name announced.
const ImplementationVersion = "RADGATE_DIMSE1"

// serveConn runs one association from the connection's first byte to its
// close.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	info := AssociationInfo{ID: newAssocID(), CalledAE: s.AETitle, Remote: nc.RemoteAddr()}
	_, info.TLS = nc.(*tls.Conn)
	log := s.logger().With("assoc", info.ID, "remote", info.Remote.String())
	artim, idle := orDefault(s.ARTIM, DefaultARTIM), orDefault(s.Idle, DefaultIdle)
	a := newAssoc(nc, max(s.maxPDU(), minPDULength), artim)
	defer nc.Close()
	stop := context.AfterFunc(ctx, a.interrupt)
	defer stop()

	if tc, ok := nc.(*tls.Conn); ok {
		a.deadline(artim)
		if err := tc.HandshakeContext(ctx); err != nil {
			log.Warn("dimse: TLS handshake failed", "err", err)
			return
		}
	}
	typ, body, err := a.readPDU()
	if err != nil {
		s.connError(a, log, "reading A-ASSOCIATE-RQ", err)
		return
	}
	if typ != pduAssociateRQ {
		log.Warn("dimse: first PDU is not an A-ASSOCIATE-RQ", "type", typ)
		a.abort(Abort{Source: AbortServiceProvider, Reason: AbortUnexpectedPDU})
		return
	}
	p, err := decodeAssoc(body, true)
	if err != nil {
		s.connError(a, log, "decoding A-ASSOCIATE-RQ", err)
		return
	}
	rq := requestFromPDU(p, info.Remote)
	info.CallingAE = rq.CallingAE
	log = log.With("calling", rq.CallingAE)

	rj, ac, release := s.decide(ctx, p, rq)
	if release != nil {
		defer release()
	}
	if rj != nil {
		log.Info("dimse: association rejected", "called", rq.CalledAE, "reject", rj.String(), "user", rq.UserIdentity.String())
		a.deadline(artim)
		_, _ = nc.Write(encodeReject(*rj))
		a.awaitClose(artim)
		return
	}
	a.maxRead, a.maxSend, a.idle = s.maxPDU(), rq.MaxPDULength, idle
	a.contexts = map[byte]PresentationContext{}
	accepted := 0
	for _, pc := range ac.Contexts {
		if pc.Result == ContextAccepted {
			a.contexts[pc.ID] = pc
			accepted++
		}
	}
	if err := a.write(encodeAssoc(ac, false)); err != nil {
		log.Warn("dimse: writing A-ASSOCIATE-AC", "err", err)
		return
	}
	log.Info("dimse: association accepted", "contexts", len(ac.Contexts), "accepted", accepted,
		"max_pdu", rq.MaxPDULength, "impl", rq.ImplementationClassUID, "user", rq.UserIdentity.String())
	s.dataTransfer(ctx, a, info, log, artim)
}

// decide answers an A-ASSOCIATE-RQ: a rejection, or the A-ASSOCIATE-AC
// and a release function for the association counts it took.
func (s *Server) decide(ctx context.Context, p *assocPDU, rq *AssociateRequest) (*Reject, *assocPDU, func()) {
	switch {
	case p.ProtocolVersion&1 == 0:
		return &RejectProtocolVersionUnsupported, nil, nil
	case p.AppContext != ApplicationContext:
		return &RejectAppContextNotSupported, nil, nil
	case rq.CalledAE != s.AETitle:
		return &RejectCalledAENotRecognized, nil, nil
	}
	s.mu.Lock()
	switch {
	case s.MaxAssociations > 0 && s.open >= s.MaxAssociations:
		s.mu.Unlock()
		return &RejectTemporaryCongestion, nil, nil
	case s.MaxPerCaller > 0 && s.perCaller[rq.CallingAE] >= s.MaxPerCaller:
		s.mu.Unlock()
		return &RejectLocalLimitExceeded, nil, nil
	}
	if s.perCaller == nil {
		s.perCaller = map[string]int{}
	}
	s.open++
	s.perCaller[rq.CallingAE]++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.open--
		if s.perCaller[rq.CallingAE]--; s.perCaller[rq.CallingAE] <= 0 {
			delete(s.perCaller, rq.CallingAE)
		}
		s.mu.Unlock()
	}
	if s.Accept != nil {
		if rj := s.Accept(ctx, rq); rj != nil {
			return rj, nil, release
		}
	}
	return nil, acceptPDU(p, rq, s.Contexts, s.Store != nil, s.maxPDU()), release
}

// acceptPDU builds the A-ASSOCIATE-AC for an accepted request.
func acceptPDU(p *assocPDU, rq *AssociateRequest, policy ContextPolicy, store bool, maxPDU uint32) *assocPDU {
	ac := &assocPDU{
		ProtocolVersion: 1,
		CalledAE:        p.CalledAE,
		CallingAE:       p.CallingAE,
		AppContext:      ApplicationContext,
		Contexts:        negotiate(rq.Contexts, policy, store),
		User: userInfo{
			MaxPDULength: maxPDU,
			ImplClassUID: implementationClassUID,
			ImplVersion:  ImplementationVersion,
		},
	}
	if p.User.HasAsync {
		// One operation at a time each way (PS3.7 D.3.3.3).
		ac.User.HasAsync, ac.User.AsyncInvoked, ac.User.AsyncPerf = true, 1, 1
	}
	for _, r := range p.User.Roles {
		// This acceptor never sends C-STOREs on a C-GET: it accepts the
		// requestor as SCU and refuses it as SCP.
		ac.User.Roles = append(ac.User.Roles, RoleSelection{SOPClassUID: r.SOPClassUID, Role: Role{SCU: r.SCU}})
	}
	if rq.UserIdentity != nil && rq.UserIdentity.PositiveResponseRequested {
		// Username and username+passcode answer with an empty server
		// response (PS3.7 D.3.3.7.2).
		ac.User.HasIdentityResponse = true
	}
	return ac
}

func requestFromPDU(p *assocPDU, remote net.Addr) *AssociateRequest {
	rq := &AssociateRequest{
		CallingAE:              p.CallingAE,
		CalledAE:               p.CalledAE,
		Remote:                 remote,
		Contexts:               p.Contexts,
		MaxPDULength:           p.User.MaxPDULength,
		ImplementationClassUID: p.User.ImplClassUID,
		ImplementationVersion:  p.User.ImplVersion,
		UserIdentity:           p.User.Identity,
	}
	if len(p.User.Roles) > 0 {
		rq.RoleSelections = map[string]Role{}
		for _, r := range p.User.Roles {
			rq.RoleSelections[r.SOPClassUID] = r.Role
		}
	}
	return rq
}

// connError logs a failure to read from the peer and aborts when the
// peer broke the protocol.
func (s *Server) connError(a *assoc, log *slog.Logger, doing string, err error) {
	var pe *ProtocolError
	var ab *AbortedError
	switch {
	case errors.As(err, &pe):
		log.Warn("dimse: protocol error, aborting", "while", doing, "err", err)
		a.abort(Abort{Source: AbortServiceProvider, Reason: pe.Reason})
	case errors.As(err, &ab):
		log.Warn("dimse: peer aborted", "while", doing, "abort", ab.Abort.String())
	case errors.Is(err, ErrInstanceTooLarge):
		log.Warn("dimse: instance too large, aborting", "while", doing, "max_bytes", s.MaxInstanceBytes)
		a.abort(Abort{Source: AbortServiceUser})
	case a.wasInterrupted():
		log.Info("dimse: server stopping, aborting", "while", doing)
		a.abort(Abort{Source: AbortServiceUser})
	case isTimeout(err):
		log.Warn("dimse: timer expired, aborting", "while", doing)
		a.abort(Abort{Source: AbortServiceProvider, Reason: AbortNotSpecified})
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		log.Warn("dimse: connection closed by the peer without release", "while", doing)
	default:
		log.Warn("dimse: connection failed", "while", doing, "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// awaitClose waits, at most d, for the peer to close the connection, as
// the acceptor does after A-ASSOCIATE-RJ and A-RELEASE-RP.
func (a *assoc) awaitClose(d time.Duration) {
	a.deadline(d)
	_, _ = io.Copy(io.Discard, io.LimitReader(a.br, 1<<16))
}

// dataTransfer serves DIMSE messages until release, abort or error.
func (s *Server) dataTransfer(ctx context.Context, a *assoc, info AssociationInfo, log *slog.Logger, artim time.Duration) {
	for {
		ctxID, cmd, err := a.readCommand()
		if errors.Is(err, errReleaseRequested) {
			if err := a.write(encodeRelease(pduReleaseRP)); err != nil {
				log.Warn("dimse: writing A-RELEASE-RP", "err", err)
				return
			}
			log.Info("dimse: association released")
			a.awaitClose(artim)
			return
		}
		if err != nil {
			s.connError(a, log, "waiting for a command", err)
			return
		}
		pc := a.contexts[ctxID]
		var rsp *Command
		switch cmd.Field() {
		case CEchoRQ:
			rsp = response(cmd, CEchoRSP, StatusSuccess)
			if cmd.HasDataSet() {
				err = drain(a, ctxID, 0)
			}
		case CStoreRQ:
			rsp, err = s.store(ctx, a, info, log, pc, cmd)
		default:
			log.Warn("dimse: unsupported command", "field", fmt.Sprintf("0x%04x", cmd.Field()), "context", ctxID)
			rsp = response(cmd, cmd.Field()|0x8000, StatusUnrecognizedOperation)
			if cmd.HasDataSet() {
				err = drain(a, ctxID, 0)
			}
		}
		if err != nil {
			s.connError(a, log, fmt.Sprintf("reading the data set of command 0x%04x", cmd.Field()), err)
			return
		}
		if err := a.writeCommand(ctxID, rsp); err != nil {
			log.Warn("dimse: writing a response", "err", err)
			return
		}
	}
}

// response builds the response to rq with the SOP class and instance of
// the request.
func response(rq *Command, field uint16, st Status) *Command {
	c := NewCommand(field)
	if id, ok := rq.Uint16(TagMessageID); ok {
		c.SetUint16(TagMessageIDBeingRespondedTo, id)
	}
	if v := rq.String(TagAffectedSOPClassUID); v != "" {
		c.SetString(TagAffectedSOPClassUID, v)
	}
	if v := rq.String(TagAffectedSOPInstanceUID); v != "" {
		c.SetString(TagAffectedSOPInstanceUID, v)
	}
	c.SetUint16(TagStatus, uint16(st))
	return c
}

func drain(a *assoc, ctxID byte, limit int64) error {
	d := &dataReader{a: a, ctx: ctxID, limit: limit}
	_, err := io.Copy(io.Discard, d)
	return err
}

// store serves one C-STORE-RQ: the handler reads the data set as it
// arrives. An error means the association must end.
func (s *Server) store(ctx context.Context, a *assoc, info AssociationInfo, log *slog.Logger, pc PresentationContext, cmd *Command) (*Command, error) {
	rq := &StoreRequest{
		Association:       info,
		SOPClassUID:       cmd.String(TagAffectedSOPClassUID),
		SOPInstanceUID:    cmd.String(TagAffectedSOPInstanceUID),
		TransferSyntaxUID: pc.TransferSyntax,
		MoveOriginatorAE:  cmd.String(TagMoveOriginatorAETitle),
	}
	rq.MessageID, _ = cmd.Uint16(TagMessageID)
	rq.Priority, _ = cmd.Uint16(TagPriority)
	rq.MoveOriginatorMessageID, _ = cmd.Uint16(TagMoveOriginatorMessageID)
	if !cmd.HasDataSet() {
		log.Warn("dimse: C-STORE-RQ without a data set", "msg_id", rq.MessageID)
		return response(cmd, CStoreRSP, StatusCannotUnderstand), nil
	}
	var st Status
	switch {
	case s.Store == nil:
		st = StatusSOPClassNotSupported
	case rq.SOPClassUID != pc.AbstractSyntax:
		log.Warn("dimse: C-STORE SOP class differs from its presentation context's", "context", pc.ID,
			"sop_class", rq.SOPClassUID, "abstract_syntax", pc.AbstractSyntax)
		st = StatusDataSetDoesNotMatch
	case rq.SOPInstanceUID == "":
		st = StatusCannotUnderstand
	}
	d := &dataReader{a: a, ctx: pc.ID, limit: s.MaxInstanceBytes}
	if st == StatusSuccess {
		hctx, cancel := context.WithCancel(ctx)
		st = s.Store.Store(hctx, rq, d)
		cancel()
	}
	if d.err == nil && !d.done || len(d.cur) > 0 {
		_, _ = io.Copy(io.Discard, d)
	}
	if d.err != nil {
		log.Warn("dimse: C-STORE data set failed; the handler kept nothing", "msg_id", rq.MessageID,
			"sop_instance", rq.SOPInstanceUID, "bytes", d.n, "err", d.err)
		return nil, d.err
	}
	log.Info("dimse: C-STORE", "msg_id", rq.MessageID, "sop_class", rq.SOPClassUID, "sop_instance", rq.SOPInstanceUID,
		"ts", rq.TransferSyntaxUID, "bytes", d.n, "status", st.String())
	return response(cmd, CStoreRSP, st), nil
}
