package hl7v2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/radgate/radgate"
)

// Client defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultAckTimeout  = 30 * time.Second
	DefaultMaxAttempts = 3
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	// DefaultMaxAckSize bounds an acknowledgement: 1 MiB.
	DefaultMaxAckSize = 1 << 20
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Addr is the receiver's TCP address, host:port. Required.
	Addr string
	// DialTimeout bounds opening the connection. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// AckTimeout bounds writing a message and waiting for its ACK.
	// Default DefaultAckTimeout.
	AckTimeout time.Duration
	// MaxAttempts is how many times Send tries a message in all (1 means no
	// retry). Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles after each,
	// up to MaxBackoff. Defaults DefaultBackoff and DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxAckSize bounds an acknowledgement. Default DefaultMaxAckSize.
	MaxAckSize int
	// Logger receives connection and retry events (identifiers only);
	// nil discards them.
	Logger *slog.Logger
	// Dialer opens connections; nil means a net.Dialer with DialTimeout.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client sends messages over one MLLP connection and waits for each ACK.
// Sends are serialised (HL7 original mode has one message in flight per
// connection); the connection is opened on first use and reopened after a
// failure.
//
// Retries resend the message unchanged, with the same MSH-10, so a receiver
// can recognise a duplicate.
type Client struct {
	opts ClientOptions
	log  *slog.Logger

	mu     sync.Mutex // serialises Send and Connect; guards the fields below
	conn   net.Conn
	fr     *FrameReader
	closed bool

	done      chan struct{} // closed by Close: interrupts a Send in progress
	closeOnce sync.Once
}

// NewClient validates opts; it opens nothing (see Connect, Send).
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("hl7v2: ClientOptions.Addr is required (host:port)")
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return nil, fmt.Errorf("hl7v2: ClientOptions.Addr %q: %w", opts.Addr, err)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxAckSize <= 0 {
		opts.MaxAckSize = DefaultMaxAckSize
	}
	if opts.Dialer == nil {
		d := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
		opts.Dialer = d.DialContext
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, log: log.With("component", "hl7v2.client", "addr", opts.Addr), done: make(chan struct{})}, nil
}

// Dial is NewClient followed by Connect.
func Dial(ctx context.Context, opts ClientOptions) (*Client, error) {
	c, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Connect opens the connection if it is not open. Errors are transient
// (radgate.IsTransient).
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return c.connect(ctx)
}

func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	conn, err := c.opts.Dialer(dctx, "tcp", c.opts.Addr)
	if err != nil {
		return radgate.Transient(fmt.Errorf("hl7v2: connecting to %s: %w", c.opts.Addr, err))
	}
	c.conn, c.fr = conn, NewFrameReader(conn, c.opts.MaxAckSize)
	c.log.Debug("connected")
	return nil
}

func (c *Client) disconnect() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.fr = nil, nil
	}
}

// Close closes the connection, interrupting a Send in progress (it fails
// with ErrClosed, as do later ones). It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.disconnect()
	return nil
}

// Send sends msg (as Message.Wire gives it: in the character set its MSH-18
// declares) and returns its acknowledgement once an AA (or CA)
// arrives whose MSA-2 is msg's control id. It retries, with backoff, after
// a timeout, a broken connection (reconnecting) or an AE, up to
// MaxAttempts; an AR is final at once.
//
// Errors: an *AckError for AE/AR (errors.Is ErrApplicationError or
// ErrRejected); timeouts and connection failures wrapped in
// radgate.Transient (ErrAckTimeout for a missing ACK); ctx's error when it
// ends first; ErrClosed after Close.
func (c *Client) Send(ctx context.Context, msg *Message) (*Message, error) {
	ctrl := msg.ControlID()
	if ctrl == "" {
		return nil, errors.New("hl7v2: Send: the message has no control id (MSH-10)")
	}
	wire, _ := msg.Wire() // in the character set MSH-18 declares
	frame := AppendFrame(nil, wire)

	// Close interrupts the send through its context.
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	ctxErr := func() error {
		select {
		case <-c.done:
			return ErrClosed
		default:
		}
		return parent.Err()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	backoff := c.opts.Backoff
	var lastErr error
	attempts := 0
	freeReconnect, skipWait := true, false
	for attempts < c.opts.MaxAttempts {
		if attempts > 0 && !skipWait {
			c.log.Info("retrying", "control_id", ctrl, "attempt", attempts+1, "after", backoff, "err", lastErr)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("hl7v2: sending %s: %w (last error: %v)", ctrl, ctxErr(), lastErr)
			case <-t.C:
			}
			backoff = min(2*backoff, c.opts.MaxBackoff)
		}
		skipWait = false
		if c.closed {
			return nil, ErrClosed
		}
		reused := c.conn != nil
		ack, err := c.try(ctx, frame, ctrl)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("hl7v2: sending %s: %w", ctrl, ctxErr())
			}
			lastErr = err
			if reused && freeReconnect && !errors.Is(err, ErrAckTimeout) {
				// A connection the receiver closed while it sat idle fails on
				// first use: reconnect at once, without spending an attempt.
				c.log.Debug("connection was stale; reconnecting", "err", err)
				freeReconnect, skipWait = false, true
				continue
			}
			attempts++
			continue
		}
		attempts++
		a, _ := ReadACK(ack) // try checked it
		if a.Code.Accepted() {
			return ack, nil
		}
		ae := &AckError{Code: a.Code, ControlID: ctrl, Text: a.Text, Errors: a.Errors, Attempts: attempts}
		if !ae.Retryable() {
			return nil, ae
		}
		lastErr = ae
	}
	var ae *AckError
	if errors.As(lastErr, &ae) {
		return nil, radgate.Transient(ae) // the receiver could not take it yet: later
	}
	return nil, radgate.Transient(fmt.Errorf("hl7v2: sending %s to %s failed after %d attempts: %w", ctrl, c.opts.Addr, attempts, lastErr))
}

// try sends the frame once and waits for the matching ACK. Any error
// leaves the client disconnected.
func (c *Client) try(ctx context.Context, frame []byte, ctrl string) (ack *Message, err error) {
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	conn, fr := c.conn, c.fr
	defer func() {
		if err != nil {
			c.disconnect()
		}
	}()
	deadline := time.Now().Add(c.opts.AckTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(frame); err != nil {
		return nil, c.ioError("writing the message", err)
	}
	for {
		raw, err := fr.ReadFrame()
		if err != nil {
			return nil, c.ioError("reading the acknowledgement", err)
		}
		m, err := Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("hl7v2: unreadable acknowledgement: %w", err)
		}
		a, err := ReadACK(m)
		if err != nil {
			return nil, fmt.Errorf("hl7v2: unreadable acknowledgement: %w", err)
		}
		if a.ControlID != ctrl {
			// A late ACK of an earlier message: skip it.
			c.log.Warn("skipping acknowledgement of another message", "control_id", a.ControlID, "want", ctrl)
			continue
		}
		return m, nil
	}
}

func (c *Client) ioError(doing string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (%s, after %s)", ErrAckTimeout, doing, c.opts.AckTimeout)
	}
	return fmt.Errorf("hl7v2: %s: %w", doing, err)
}
