package hl7v2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"
)

// Handler processes one received message and returns the acknowledgement
// to send back (build it with NewACK). It runs on the connection's
// goroutine: the next message of that connection is read only after the
// ACK is written, which keeps HL7's original-mode ordering.
//
// Return (HL7 table 0008) AA only once the message is durably taken care
// of (for an order: published); AE when its content is wrong, which the
// sender must fix (sending it again does not help); AR when it was
// rejected for a reason unrelated to its content — it cannot be processed
// now (send it again later), or its type or version is not supported. A
// nil ACK is answered AR (207): silence is not acceptance. A handler that
// panics is answered AR (207) too, and the server goes on. ctx is
// cancelled when the server is force-closed.
type Handler func(ctx context.Context, msg *Message) *Message

// Server defaults.
const (
	DefaultReadTimeout  = 30 * time.Second
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxConnections bounds the connections open at once; a RIS or
	// interface engine keeps one or a few.
	DefaultMaxConnections = 64
	// DefaultMaxConnectionsPerSource bounds the connections open at once
	// from one source address.
	DefaultMaxConnectionsPerSource = 8
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is the TCP address to listen on ("127.0.0.1:2575"; port 0
	// picks a free one, see Server.Addr).
	Addr string
	// Handler answers each message. Required.
	Handler Handler
	// ReadTimeout bounds reading one message, from its first byte to its
	// end block. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long
	// between messages. Default DefaultIdleTimeout; negative means never.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing an ACK. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxMessageSize bounds a message; a larger one is read to its end,
	// discarded and answered AE (ERR-3 102, the limit in ERR-8): the
	// message itself is at fault, sending it again does not help.
	// Default DefaultMaxMessageSize.
	MaxMessageSize int
	// TLS, when set, makes the server speak MLLP over TLS: each connection
	// completes its handshake (within ReadTimeout) before anything is read.
	// With ClientAuth tls.RequireAndVerifyClientCert only peers holding a
	// certificate of ClientCAs get that far.
	TLS *tls.Config
	// AllowNetworks, when not empty, lists the networks connections may
	// come from; a connection from any other address is closed before
	// anything is read (and before a TLS handshake), with a log line
	// naming the address.
	AllowNetworks []netip.Prefix
	// MaxConnections bounds the connections open at once, and
	// MaxConnectionsPerSource those from one source IP address. A
	// connection over either is closed at once, with a log line naming
	// the limit. Defaults DefaultMaxConnections and
	// DefaultMaxConnectionsPerSource; negative means no limit.
	MaxConnections          int
	MaxConnectionsPerSource int
	// Logger receives connection and error events (identifiers only, never
	// message content); nil discards them.
	Logger *slog.Logger
}

// Server is an MLLP listener. Each connection gets a goroutine owned by the
// server; messages on one connection are handled one at a time.
//
// The server answers by itself, without calling the handler, messages it
// cannot parse (AR with an ERR naming the fault), messages whose MSH lacks
// MSH-9, MSH-10 or MSH-12 (AR, 101), and messages over MaxMessageSize (AE,
// 102).
type Server struct {
	opts ServerOptions
	log  *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*serverConn]struct{}
	bySource map[netip.Addr]int // open connections per source address
	closing  bool
	closed   chan struct{} // closed when every goroutine has exited
	closeErr error

	baseCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type serverConn struct {
	c   net.Conn // the TCP connection (closing it ends a TLS one too)
	src netip.Addr

	mu       sync.Mutex
	idle     bool
	draining bool
}

// NewServer validates opts; it does not listen (see Start).
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Handler == nil {
		return nil, errors.New("hl7v2: ServerOptions.Handler is required")
	}
	if opts.Addr == "" {
		return nil, errors.New("hl7v2: ServerOptions.Addr is required (host:port)")
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return nil, fmt.Errorf("hl7v2: ServerOptions.Addr %q: %w", opts.Addr, err)
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxConnectionsPerSource == 0 {
		opts.MaxConnectionsPerSource = DefaultMaxConnectionsPerSource
	}
	for _, p := range opts.AllowNetworks {
		if !p.IsValid() {
			return nil, errors.New("hl7v2: ServerOptions.AllowNetworks holds an invalid prefix")
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log.With("component", "hl7v2.server"), conns: map[*serverConn]struct{}{},
		bySource: map[netip.Addr]int{}}, nil
}

// Start listens on Addr and accepts connections until Close. It may be
// called once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	if s.ln != nil {
		return errors.New("hl7v2: server already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("hl7v2: listening on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	s.baseCtx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(1)
	go s.acceptLoop(ln)
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.opts.TLS != nil,
		"client_certificates", s.opts.TLS != nil && s.opts.TLS.ClientAuth == tls.RequireAndVerifyClientCert,
		"allow_networks", len(s.opts.AllowNetworks), "max_connections", s.opts.MaxConnections,
		"max_connections_per_source", s.opts.MaxConnectionsPerSource)
	return nil
}

// Addr returns the address the server listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (EMFILE, …): back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		sc := s.admit(c)
		if sc == nil {
			continue
		}
		go s.serveConn(sc)
	}
}

// admit registers an accepted connection, or closes it at once (nothing
// read, nothing written) when its source is not allowed or a connection
// limit is reached, with a log line saying which.
func (s *Server) admit(c net.Conn) *serverConn {
	remote := c.RemoteAddr().String()
	src := sourceAddr(c.RemoteAddr())
	if len(s.opts.AllowNetworks) > 0 && !allowed(s.opts.AllowNetworks, src) {
		s.log.Warn("MLLP connection refused: its source is not in allow_networks", "remote", remote)
		_ = c.Close()
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	refuse := func(limit string, max int) *serverConn {
		s.log.Warn("MLLP connection refused: "+limit+" reached", "remote", remote, "limit", limit, "max", max)
		_ = c.Close()
		return nil
	}
	switch {
	case s.closing:
		_ = c.Close()
		return nil
	case s.opts.MaxConnections > 0 && len(s.conns) >= s.opts.MaxConnections:
		return refuse("max_connections", s.opts.MaxConnections)
	case s.opts.MaxConnectionsPerSource > 0 && s.bySource[src] >= s.opts.MaxConnectionsPerSource:
		return refuse("max_connections_per_source", s.opts.MaxConnectionsPerSource)
	}
	sc := &serverConn{c: c, src: src, idle: true}
	s.conns[sc] = struct{}{}
	s.bySource[src]++
	s.wg.Add(1)
	return sc
}

// sourceAddr is a connection's source IP address (IPv4-mapped IPv6
// addresses as IPv4).
func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func allowed(nets []netip.Prefix, ip netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// setActive marks the connection busy with a message; false when the
// server is draining and the connection should end instead.
func (c *serverConn) setActive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.idle = false
	return true
}

func (c *serverConn) setIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = true
	return !c.draining
}

// drain asks the connection to end after its current message; an idle
// connection is closed at once.
func (c *serverConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.idle {
		_ = c.c.Close()
	}
}

func (s *Server) serveConn(sc *serverConn) {
	defer s.wg.Done()
	remote := sc.c.RemoteAddr().String()
	log := s.log.With("remote", remote)
	defer func() {
		_ = sc.c.Close()
		s.mu.Lock()
		delete(s.conns, sc)
		if s.bySource[sc.src]--; s.bySource[sc.src] <= 0 {
			delete(s.bySource, sc.src)
		}
		s.mu.Unlock()
		log.Debug("connection closed")
	}()
	log.Debug("connection opened")
	conn := sc.c
	if s.opts.TLS != nil {
		tc := tls.Server(sc.c, s.opts.TLS)
		_ = tc.SetDeadline(time.Now().Add(s.opts.ReadTimeout))
		if err := tc.HandshakeContext(s.baseCtx); err != nil {
			log.Warn("MLLP TLS handshake failed; connection closed", "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			log = log.With("client_certificate", certs[0].Subject.String())
		}
		log.Debug("TLS handshake done")
		conn = tc
	}
	fr := NewFrameReader(conn, s.opts.MaxMessageSize)
	for {
		if s.opts.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		} else {
			_ = conn.SetReadDeadline(time.Time{})
		}
		if err := fr.wait(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("connection idle or broken", "err", err)
			}
			return
		}
		if !sc.setActive() {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
		raw, err := fr.ReadFrame()
		var ack *Message
		var tooBig *FrameTooLargeError
		switch {
		case errors.As(err, &tooBig):
			log.Warn("message too large", "size", tooBig.Size, "max", tooBig.Max)
			hdr, _ := ParseHeader(tooBig.Head)
			// Table 0008: AE, the message is at fault (its size), not
			// radgate's state; sent again it would be refused again.
			ack = NewACK(hdr, AE, ErrorDetail{Code: CodeDataTypeError, Severity: SeverityError, Message: tooBig.Error()})
		case err != nil:
			log.Warn("reading message failed; closing the connection", "err", err)
			return
		default:
			ack = s.handle(raw, log)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if err := WriteFrame(conn, ack.Encode()); err != nil {
			log.Warn("writing ACK failed", "err", err)
			return
		}
		if !sc.setIdle() {
			return
		}
	}
}

// handle parses a message (in UTF-8: FromWire) and runs the handler,
// returning the ACK.
func (s *Server) handle(raw []byte, log *slog.Logger) (ack *Message) {
	msg, err := Parse(FromWire(raw))
	if err != nil {
		hdr, _ := ParseHeader(raw)
		log.Warn("rejected malformed message", "control_id", controlIDOf(hdr), "err", err)
		return NewACK(hdr, AR, ErrorDetailOf(err))
	}
	if err := ValidateHeader(msg); err != nil {
		log.Warn("rejected message with an incomplete header", "control_id", msg.ControlID(), "err", err)
		return NewACK(msg, AR, ErrorDetailOf(err))
	}
	log = log.With("control_id", msg.ControlID(), "type", msg.Type().String())
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ack = NewACK(msg, AR, ErrorDetail{Code: CodeInternalError, Severity: SeverityError, Message: "internal error while processing the message"})
		}
	}()
	ack = s.opts.Handler(s.baseCtx, msg)
	if ack == nil {
		log.Error("handler returned no acknowledgement")
		return NewACK(msg, AR, ErrorDetail{Code: CodeInternalError, Severity: SeverityError, Message: "the application gave no acknowledgement"})
	}
	if a, err := ReadACK(ack); err == nil {
		log.Debug("acknowledged", "ack", a.Code)
	}
	return ack
}

func controlIDOf(m *Message) string {
	if m == nil {
		return ""
	}
	return m.ControlID()
}

// ValidateHeader checks the MSH fields every message must carry for an
// exchange: MSH-9 (code, and trigger unless the message is an ACK),
// MSH-10 and MSH-12. Errors are *Error with code 101.
func ValidateHeader(m *Message) error {
	missing := func(field, comp int, what string) error {
		return &Error{Loc: Location{Segment: "MSH", Seq: 1, Field: field, Comp: comp}, Line: 1,
			Code: CodeRequiredFieldMissing, Msg: "missing " + what, Err: ErrMalformed}
	}
	t := m.Type()
	switch {
	case t.Code == "":
		return missing(9, 1, "message type")
	case t.Trigger == "" && t.Code != "ACK":
		return missing(9, 2, "trigger event")
	case m.ControlID() == "":
		return missing(10, 0, "message control id")
	case m.Version() == "":
		return missing(12, 0, "version id")
	}
	return nil
}

// Close stops accepting connections, closes idle ones, lets connections
// busy with a message finish it (handler and ACK), then closes them. At
// about three quarters of ctx's deadline it force-closes what is left and
// cancels the handlers' context. It returns ctx's error if goroutines were
// still running when ctx ended. Close is idempotent; it works on a server
// that was never started.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		done := s.closed
		s.mu.Unlock()
		if done == nil {
			return nil
		}
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.closing = true
	s.closed = make(chan struct{})
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for c := range s.conns {
		c.drain()
	}
	cancel := s.cancel
	s.mu.Unlock()

	go func() {
		s.wg.Wait()
		close(s.closed)
	}()

	force := make(<-chan time.Time)
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl) * 3 / 4)
		defer t.Stop()
		force = t.C
	}
	select {
	case <-s.closed:
	case <-force:
		s.forceClose(cancel)
	case <-ctx.Done():
		s.forceClose(cancel)
	}
	select {
	case <-s.closed:
		if cancel != nil {
			cancel()
		}
		s.log.Info("stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hl7v2: closing the server: %w", ctx.Err())
	}
}

func (s *Server) forceClose(cancel context.CancelFunc) {
	s.log.Warn("force-closing connections still busy")
	if cancel != nil {
		cancel()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.c.Close()
	}
	s.mu.Unlock()
}
