package hl7v2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/stretchr/testify/require"
)

// startServer starts a Server on a free port and closes it in Cleanup.
func startServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := NewServer(opts)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

func newClient(t *testing.T, addr string, opts ClientOptions) *Client {
	t.Helper()
	opts.Addr = addr
	if opts.Backoff == 0 {
		opts.Backoff = 10 * time.Millisecond
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = 5 * time.Second
	}
	c, err := NewClient(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// orderHandler is the handler radgate's intake would be: map the order,
// answer AA, or AE/AR with the error.
func orderHandler(got chan<- radgate.OrderEvent) Handler {
	return func(ctx context.Context, msg *Message) *Message {
		ev, err := OrderEvent(msg)
		switch {
		case errors.Is(err, ErrUnsupportedMessage):
			return NewACK(msg, AR, ErrorDetailOf(err))
		case err != nil:
			return NewACK(msg, AE, ErrorDetailOf(err))
		}
		if got != nil {
			got <- ev
		}
		return NewACK(msg, AA)
	}
}

func withControlID(t *testing.T, m *Message, id string) *Message {
	t.Helper()
	require.NoError(t, m.Set("MSH-10", id))
	return m
}

func TestServerClient(t *testing.T) {
	got := make(chan radgate.OrderEvent, 10)
	s := startServer(t, ServerOptions{Handler: orderHandler(got)})
	c := newClient(t, s.Addr().String(), ClientOptions{})
	ctx := t.Context()

	for i := range 3 {
		msg := withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), fmt.Sprintf("C%d", i))
		ack, err := c.Send(ctx, msg)
		require.NoError(t, err)
		a, err := ReadACK(ack)
		require.NoError(t, err)
		require.Equal(t, AA, a.Code)
		require.Equal(t, fmt.Sprintf("C%d", i), a.ControlID)
		require.Equal(t, "ACC-778899", (<-got).Accession.Value)
	}

	bad := withControlID(t, edit(t, "orm_o01.hl7", "OBR-18=", "-ZDS"), "BAD1")
	_, err := c.Send(ctx, bad)
	var ae *AckError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, AE, ae.Code)
	require.Equal(t, 1, ae.Attempts, "AE for the content is final (Table 0008)")
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing, Severity: SeverityError,
		Message: "OBR-18: no accession number (nor a Study Instance UID in ZDS-1)"}}, ae.Errors)

	c2 := newClient(t, s.Addr().String(), ClientOptions{})
	_, err = c2.Send(ctx, bad)
	require.ErrorIs(t, err, ErrApplicationError)
	require.True(t, errors.As(err, &ae))
	require.Equal(t, 1, ae.Attempts)

	adt := withControlID(t, edit(t, "orm_o01.hl7", "MSH-9=ADT^A01"), "ADT1")
	_, err = c.Send(ctx, adt)
	require.ErrorIs(t, err, ErrRejected)
	require.EqualError(t, err, `HL7 acknowledgement AR for message "ADT1": MSH-9: message type "ADT^A01": want ORM^O01 or OMI^O23 (200 Unsupported message type)`)
}

// rawExchange sends raw bytes in one block on a fresh connection and
// returns the ACK.
func rawExchange(t *testing.T, addr string, payload string) Ack {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	require.NoError(t, WriteFrame(conn, []byte(payload)))
	raw, err := NewFrameReader(conn, 0).ReadFrame()
	require.NoError(t, err)
	m, err := Parse(raw)
	require.NoError(t, err)
	a, err := ReadACK(m)
	require.NoError(t, err)
	return a
}

func TestServerRejectsMalformed(t *testing.T) {
	var calls atomic.Int32
	s := startServer(t, ServerOptions{Handler: func(ctx context.Context, msg *Message) *Message {
		calls.Add(1)
		return NewACK(msg, AA)
	}})
	addr := s.Addr().String()
	for _, c := range []struct {
		name, payload, ctrl string
		want                ErrorDetail
	}{
		{"not HL7", "hello", "", ErrorDetail{Code: CodeSegmentSequence, Severity: SeverityError,
			Message: `segment 1: message does not start with an MSH segment (it starts with "hel"…)`}},
		{"bad segment after a good MSH", "MSH|^~\\&|A|B|C|D|x||ORM^O01|C5|P|2.5.1\rPID|1\rbad segment", "C5", ErrorDetail{Code: CodeSegmentSequence, Severity: SeverityError,
			Message: `segment 3: invalid segment ID "bad "…: want three capital letters or digits, starting with a letter`}},
		{"no control id", "MSH|^~\\&|A|B|C|D|x||ORM^O01||P|2.5.1\r", "", ErrorDetail{Loc: Location{Segment: "MSH", Seq: 1, Field: 10}, Code: CodeRequiredFieldMissing,
			Severity: SeverityError, Message: "MSH-10: missing message control id"}},
		{"no trigger", "MSH|^~\\&|A|B|C|D|x||ORM|C6|P|2.5.1\r", "C6", ErrorDetail{Loc: Location{Segment: "MSH", Seq: 1, Field: 9, Comp: 2}, Code: CodeRequiredFieldMissing,
			Severity: SeverityError, Message: "MSH-9-2: missing trigger event"}},
		{"no version", "MSH|^~\\&|A|B|C|D|x||ORM^O01|C8|P\r", "C8", ErrorDetail{Loc: Location{Segment: "MSH", Seq: 1, Field: 12}, Code: CodeRequiredFieldMissing,
			Severity: SeverityError, Message: "MSH-12: missing version id"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := rawExchange(t, addr, c.payload)
			require.Equal(t, AR, a.Code)
			require.Equal(t, c.ctrl, a.ControlID)
			require.Equal(t, []ErrorDetail{c.want}, a.Errors)
		})
	}
	require.Zero(t, calls.Load(), "the handler never sees a malformed message")
}

func TestServerNilACKAndPanic(t *testing.T) {
	s := startServer(t, ServerOptions{Handler: func(ctx context.Context, msg *Message) *Message {
		if msg.ControlID() == "PANIC" {
			panic("handler bug")
		}
		return nil
	}})
	for _, ctrl := range []string{"NIL", "PANIC"} {
		a := rawExchange(t, s.Addr().String(), "MSH|^~\\&|A|B|C|D|x||ORM^O01|"+ctrl+"|P|2.5.1\r")
		require.Equal(t, AR, a.Code, ctrl) // table 0008: an internal error, not the content
		require.Equal(t, ctrl, a.ControlID)
		require.Equal(t, CodeInternalError, a.Errors[0].Code)
	}
}

func TestServerOversize(t *testing.T) {
	s := startServer(t, ServerOptions{MaxMessageSize: 1024, Handler: orderHandler(nil)})
	c := newClient(t, s.Addr().String(), ClientOptions{})
	big := withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "BIG")
	nte := big.AddSegment("NTE")
	require.NoError(t, nte.Set("3", strings.Repeat("x", 4000)))
	_, err := c.Send(t.Context(), big)
	// Table 0008: AE, the content (its size) is at fault, not radgate's
	// state: sent again it would be refused again.
	require.ErrorIs(t, err, ErrApplicationError)
	var ae *AckError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, "BIG", ae.ControlID)
	require.Equal(t, CodeDataTypeError, ae.Errors[0].Code)
	require.Contains(t, ae.Errors[0].Message, "exceeds the maximum of 1024 bytes")

	// The connection is still in step: the next message is answered.
	ack, err := c.Send(t.Context(), withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "SMALL"))
	require.NoError(t, err)
	require.Equal(t, "SMALL", ack.Get("MSA-2"))
}

func TestServerCloseDrains(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", Handler: func(ctx context.Context, msg *Message) *Message {
		if msg.ControlID() == "SLOW" {
			close(entered)
			<-release
		}
		return NewACK(msg, AA)
	}})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	addr := s.Addr().String()

	idle := newClient(t, addr, ClientOptions{})
	_, err = idle.Send(t.Context(), withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "FIRST"))
	require.NoError(t, err)

	busy := newClient(t, addr, ClientOptions{MaxAttempts: 1})
	sent := make(chan error, 1)
	slow := withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "SLOW")
	go func() {
		_, err := busy.Send(context.Background(), slow)
		sent <- err
	}()
	<-entered

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	// Close waits for the busy handler…
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was busy", err)
	case <-time.After(100 * time.Millisecond):
	}
	// …and no new connection is accepted meanwhile.
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err)
	close(release)
	require.NoError(t, <-sent, "the busy message is acknowledged before the connection closes")
	require.NoError(t, <-closed)
	require.NoError(t, s.Close(t.Context()), "Close is idempotent")

	// The idle connection was closed; sending now fails.
	_, err = idle.Send(t.Context(), withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "AFTER"))
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err))
}

func TestServerCloseForces(t *testing.T) {
	entered := make(chan struct{})
	s, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", Handler: func(ctx context.Context, msg *Message) *Message {
		close(entered)
		<-ctx.Done() // a handler that only stops when told to
		return NewACK(msg, AE)
	}})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	c := newClient(t, s.Addr().String(), ClientOptions{MaxAttempts: 1})
	stuck := withControlID(t, mustParse(t, readFixture(t, "orm_o01.hl7")), "STUCK")
	go func() { _, _ = c.Send(context.Background(), stuck) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.Close(ctx), "force-closed at ¾ of the deadline, the handler returned")
	// The handler would block forever; Close must not. The bound leaves
	// scheduling slack for a loaded CI machine under the race detector.
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestServerNeverStarted(t *testing.T) {
	s, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", Handler: orderHandler(nil)})
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	require.ErrorIs(t, s.Start(t.Context()), ErrClosed)
	require.Nil(t, s.Addr())

	_, err = NewServer(ServerOptions{Addr: "127.0.0.1:0"})
	require.EqualError(t, err, "hl7v2: ServerOptions.Handler is required")
	_, err = NewServer(ServerOptions{Addr: "nonsense", Handler: orderHandler(nil)})
	require.ErrorContains(t, err, `hl7v2: ServerOptions.Addr "nonsense"`)
}

func TestServerIdleTimeout(t *testing.T) {
	s := startServer(t, ServerOptions{IdleTimeout: 100 * time.Millisecond, Handler: orderHandler(nil)})
	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(3*time.Second)))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err, "the server closes an idle connection")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestServerReadTimeout(t *testing.T) {
	s := startServer(t, ServerOptions{ReadTimeout: 100 * time.Millisecond, Handler: orderHandler(nil)})
	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("\x0bMSH|^~\\&|")) // and nothing more
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(3*time.Second)))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err, "the server gives up on a message that never ends")
	require.Less(t, time.Since(start), 2*time.Second)
}

// fakePeer is a scripted MLLP receiver: serve runs for each connection
// (numbered from 0) on its own goroutine.
type fakePeer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	msgs  atomic.Int32
}

func newFakePeer(t *testing.T, serve func(p *fakePeer, n int, conn net.Conn, fr *FrameReader)) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &fakePeer{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, conn)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				serve(p, n, conn, NewFrameReader(conn, 0))
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *fakePeer) addr() string { return p.ln.Addr().String() }

// read reads one message and counts it.
func (p *fakePeer) read(fr *FrameReader) *Message {
	raw, err := fr.ReadFrame()
	if err != nil {
		return nil
	}
	p.msgs.Add(1)
	m, err := Parse(raw)
	if err != nil {
		return nil
	}
	return m
}

func (p *fakePeer) answer(conn net.Conn, m *Message, code AckCode, details ...ErrorDetail) {
	_ = WriteFrame(conn, NewACK(m, code, details...).Encode())
}

func oru(t *testing.T, ctrl string) *Message {
	t.Helper()
	m, err := ORU(sampleResult(), ORUOptions{ControlID: ctrl})
	require.NoError(t, err)
	return m
}

func TestClientTimeout(t *testing.T) {
	p := newFakePeer(t, func(p *fakePeer, n int, conn net.Conn, fr *FrameReader) {
		for p.read(fr) != nil { // never answers
		}
	})
	c := newClient(t, p.addr(), ClientOptions{AckTimeout: 150 * time.Millisecond, MaxAttempts: 2})
	start := time.Now()
	_, err := c.Send(t.Context(), oru(t, "T1"))
	require.ErrorIs(t, err, ErrAckTimeout)
	require.True(t, radgate.IsTransient(err))
	require.ErrorContains(t, err, "hl7v2: sending T1 to "+p.addr()+" failed after 2 attempts: timed out waiting for the HL7 acknowledgement")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.Eventually(t, func() bool { return p.msgs.Load() == 2 }, time.Second, 10*time.Millisecond, "sent twice")
}

func TestClientReconnects(t *testing.T) {
	t.Run("after the server closed an idle connection", func(t *testing.T) {
		p := newFakePeer(t, func(p *fakePeer, n int, conn net.Conn, fr *FrameReader) {
			if m := p.read(fr); m != nil {
				p.answer(conn, m, AA)
			}
			_ = conn.Close() // one message per connection, then hang up
		})
		c := newClient(t, p.addr(), ClientOptions{MaxAttempts: 1})
		for i := range 3 {
			ack, err := c.Send(t.Context(), oru(t, fmt.Sprintf("R%d", i)))
			require.NoError(t, err, "send %d", i)
			require.Equal(t, fmt.Sprintf("R%d", i), ack.Get("MSA-2"))
		}
		require.EqualValues(t, 3, p.msgs.Load())
	})
	t.Run("after the server dropped the connection without an ACK", func(t *testing.T) {
		p := newFakePeer(t, func(p *fakePeer, n int, conn net.Conn, fr *FrameReader) {
			for {
				m := p.read(fr)
				if m == nil {
					return
				}
				if n == 0 {
					_ = conn.Close() // crash on the first connection
					return
				}
				p.answer(conn, m, AA)
			}
		})
		c := newClient(t, p.addr(), ClientOptions{MaxAttempts: 2})
		ack, err := c.Send(t.Context(), oru(t, "D1"))
		require.NoError(t, err)
		require.Equal(t, "D1", ack.Get("MSA-2"))
		require.EqualValues(t, 2, p.msgs.Load(), "the same message, sent again on a new connection")
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c := newClient(t, addr, ClientOptions{MaxAttempts: 2})
		_, err = c.Send(t.Context(), oru(t, "X1"))
		require.True(t, radgate.IsTransient(err))
		require.ErrorContains(t, err, "failed after 2 attempts: hl7v2: connecting to "+addr)
	})
}

func TestClientAcks(t *testing.T) {
	staleACK := NewACK(mustParse(t, "MSH|^~\\&|A|B|C|D|x||ORU^R01|OLD|P|2.5.1\r"), AA).Encode()
	p := newFakePeer(t, func(p *fakePeer, n int, conn net.Conn, fr *FrameReader) {
		attempts := map[string]int{}
		for {
			m := p.read(fr)
			if m == nil {
				return
			}
			ctrl := m.ControlID()
			attempts[ctrl]++
			switch {
			case strings.HasPrefix(ctrl, "AR"):
				p.answer(conn, m, AR, ErrorDetail{Code: CodeUnsupportedMessageType, Message: "no ORU here"})
			case strings.HasPrefix(ctrl, "AE-ONCE") && attempts[ctrl] == 1:
				p.answer(conn, m, AE, ErrorDetail{Code: CodeRecordLocked, Message: "locked"})
			case strings.HasPrefix(ctrl, "STALE"):
				// An ACK of some earlier message first, then the right one.
				_ = WriteFrame(conn, staleACK)
				p.answer(conn, m, CA)
			default:
				p.answer(conn, m, AA)
			}
		}
	})
	c := newClient(t, p.addr(), ClientOptions{})

	_, err := c.Send(t.Context(), oru(t, "AR1"))
	require.ErrorIs(t, err, ErrRejected)
	require.False(t, radgate.IsTransient(err))
	require.EqualError(t, err, `HL7 acknowledgement AR for message "AR1": no ORU here (200 Unsupported message type)`)
	require.EqualValues(t, 1, p.msgs.Load(), "AR is not retried")

	ack, err := c.Send(t.Context(), oru(t, "AE-ONCE"))
	require.NoError(t, err, "AE for a locked record (206) is retried")
	require.Equal(t, "AA", ack.Get("MSA-1"))
	require.EqualValues(t, 3, p.msgs.Load())

	ack, err = c.Send(t.Context(), oru(t, "STALE"))
	require.NoError(t, err)
	require.Equal(t, "CA", ack.Get("MSA-1"))

	_, err = c.Send(t.Context(), mustParse(t, "MSH|^~\\&|A\r"))
	require.EqualError(t, err, "hl7v2: Send: the message has no control id (MSH-10)")

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = c.Send(t.Context(), oru(t, "LATE"))
	require.ErrorIs(t, err, ErrClosed)
}

func TestClientContext(t *testing.T) {
	p := newFakePeer(t, func(p *fakePeer, n int, conn net.Conn, fr *FrameReader) {
		for p.read(fr) != nil {
		}
	})
	c := newClient(t, p.addr(), ClientOptions{AckTimeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Send(ctx, oru(t, "CTX"))
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 2*time.Second)

	// Close interrupts a Send waiting for its ACK.
	time.AfterFunc(100*time.Millisecond, func() { _ = c.Close() })
	start = time.Now()
	_, err = c.Send(t.Context(), oru(t, "CLOSED"))
	require.ErrorIs(t, err, ErrClosed)
	require.Less(t, time.Since(start), 2*time.Second)

	_, err = NewClient(ClientOptions{})
	require.EqualError(t, err, "hl7v2: ClientOptions.Addr is required (host:port)")
	dc, err := Dial(t.Context(), ClientOptions{Addr: p.addr()})
	require.NoError(t, err)
	require.NoError(t, dc.Close())
}
