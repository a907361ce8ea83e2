package dimse

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultMaxPDULength is the maximum P-DATA-TF length announced and read
// when none is configured: 128 KiB, large enough that the 12 bytes of PDU
// and PDV headers per fragment cost nothing measurable, small enough that
// a hundred associations hold 13 MiB of read buffers.
const DefaultMaxPDULength = 128 << 10

// defaultSendLength is the fragment size used when the peer announces an
// unlimited (0) maximum length.
const defaultSendLength = 128 << 10

// ErrReleased is returned when the peer asks for a release where a
// message was expected.
var errReleaseRequested = errors.New("dimse: A-RELEASE-RQ received")

// AbortedError is returned when the peer aborts the association.
type AbortedError struct{ Abort Abort }

func (e *AbortedError) Error() string {
	return "dimse: association aborted by the peer (" + e.Abort.String() + ")"
}

// ErrInstanceTooLarge is the error a StoreHandler's data Read returns when
// the data set grows beyond Server.MaxInstanceBytes.
var ErrInstanceTooLarge = errors.New("dimse: data set larger than the server's MaxInstanceBytes")

// ErrDataSetCut is wrapped by the error a data Read returns when the
// association ends before the data set's last fragment.
var ErrDataSetCut = errors.New("dimse: data set cut before its last fragment")

// newAssocID returns a short random identifier for logs.
func newAssocID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// assoc is one established (or being established) association: the
// connection, the PDU reader with its bound, the accepted contexts, and
// the PDVs of the P-DATA-TF being read. One goroutine reads and writes;
// interrupt may be called from any other.
type assoc struct {
	nc      net.Conn
	br      *bufio.Reader
	maxRead uint32 // bound on a PDU's length field
	maxSend uint32 // the peer's maximum P-DATA-TF length; 0: unlimited
	idle    time.Duration

	contexts map[byte]PresentationContext // accepted only
	buf      []byte
	pdvs     []pdv
	next     int

	wbuf []byte
	// dsr reads the data set being sent (writeDataSet), kept for the next.
	dsr *bufio.Reader

	// midPDU is set when a write stopped inside a PDU: an A-ABORT
	// written after it would be read as part of that PDU, so none is.
	midPDU bool

	mu          sync.Mutex
	interrupted bool
}

func newAssoc(nc net.Conn, maxRead uint32, idle time.Duration) *assoc {
	return &assoc{nc: nc, br: bufio.NewReaderSize(nc, 32<<10), maxRead: maxRead, idle: idle}
}

// interrupt makes every pending and later read or write fail at once.
func (a *assoc) interrupt() {
	a.mu.Lock()
	a.interrupted = true
	a.mu.Unlock()
	_ = a.nc.SetDeadline(time.Now())
}

// deadline sets the read and write deadline d from now (none when d is 0),
// unless the association was interrupted.
func (a *assoc) deadline(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.interrupted:
		_ = a.nc.SetDeadline(time.Now())
	case d > 0:
		_ = a.nc.SetDeadline(time.Now().Add(d))
	default:
		_ = a.nc.SetDeadline(time.Time{})
	}
}

func (a *assoc) wasInterrupted() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.interrupted
}

// readPDU reads the next PDU within the idle time.
func (a *assoc) readPDU() (byte, []byte, error) {
	a.deadline(a.idle)
	if a.buf == nil {
		a.buf = make([]byte, 0, min(a.maxRead, 64<<10))
	}
	typ, body, err := readPDU(a.br, a.maxRead, a.buf)
	if err == nil && cap(body) > cap(a.buf) {
		a.buf = body[:0]
	}
	return typ, body, err
}

// write sends b within the idle time.
func (a *assoc) write(b []byte) error {
	a.deadline(a.idle)
	n, err := a.nc.Write(b)
	if err != nil && n > 0 && n < len(b) {
		a.midPDU = true
	}
	return err
}

// abort sends an A-ABORT, best effort, and closes the connection. After a
// write cut inside a PDU it only closes.
func (a *assoc) abort(ab Abort) {
	if !a.midPDU {
		_ = a.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = a.nc.Write(encodeAbort(ab))
	}
	_ = a.nc.Close()
}

// nextPDV returns the next PDV of an accepted presentation context.
func (a *assoc) nextPDV() (pdv, error) {
	for a.next >= len(a.pdvs) {
		typ, body, err := a.readPDU()
		if err != nil {
			return pdv{}, err
		}
		switch typ {
		case pduPData:
			a.pdvs, err = parsePData(body, a.pdvs[:0])
			a.next = 0
			if err != nil {
				return pdv{}, err
			}
		case pduReleaseRQ:
			return pdv{}, errReleaseRequested
		case pduAbort:
			ab, _ := decodeAbort(body)
			return pdv{}, &AbortedError{Abort: ab}
		default:
			return pdv{}, protoErr(AbortUnexpectedPDU, "PDU type 0x%02x during data transfer", typ)
		}
	}
	p := a.pdvs[a.next]
	a.next++
	if _, ok := a.contexts[p.ContextID]; !ok {
		return pdv{}, protoErr(AbortInvalidPDUParameter, "PDV on presentation context %d, which was not accepted", p.ContextID)
	}
	return p, nil
}

// readCommand reassembles the next command set.
func (a *assoc) readCommand() (byte, *Command, error) {
	var cmd []byte
	for {
		p, err := a.nextPDV()
		if err != nil {
			return 0, nil, err
		}
		if !p.Command {
			return 0, nil, protoErr(AbortUnexpectedPDUParameter, "data set fragment on context %d where a command was expected", p.ContextID)
		}
		if cmd != nil && p.ContextID != cmd[0] {
			return 0, nil, protoErr(AbortUnexpectedPDUParameter, "command fragments on contexts %d and %d", cmd[0], p.ContextID)
		}
		if cmd == nil {
			cmd = []byte{p.ContextID}
		}
		if len(cmd)-1+len(p.Data) > maxCommandLength {
			return 0, nil, protoErr(AbortInvalidPDUParameter, "command set longer than %d bytes", maxCommandLength)
		}
		cmd = append(cmd, p.Data...)
		if p.Last {
			c, err := DecodeCommand(cmd[1:])
			if err != nil {
				return 0, nil, &ProtocolError{Reason: AbortInvalidPDUParameter, Msg: err.Error()}
			}
			return cmd[0], c, nil
		}
	}
}

// dataReader streams a data set from its PDVs. Once it has returned an
// error it keeps returning it.
type dataReader struct {
	a     *assoc
	ctx   byte
	cur   []byte
	done  bool // last fragment seen
	err   error
	n     int64
	limit int64 // 0: none
}

func (d *dataReader) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		v, err := d.a.nextPDV()
		switch {
		case err != nil:
			d.err = fmt.Errorf("%w: %w", ErrDataSetCut, err)
		case v.Command:
			d.err = protoErr(AbortUnexpectedPDUParameter, "command fragment on context %d inside a data set", v.ContextID)
		case v.ContextID != d.ctx:
			d.err = protoErr(AbortUnexpectedPDUParameter, "data set fragments on contexts %d and %d", d.ctx, v.ContextID)
		default:
			d.n += int64(len(v.Data))
			if d.limit > 0 && d.n > d.limit {
				d.err = ErrInstanceTooLarge
				continue
			}
			d.cur, d.done = v.Data, v.Last
		}
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

// chunk is the PDV data size that fits the peer's maximum length.
func (a *assoc) chunk() int {
	if a.maxSend == 0 {
		return defaultSendLength
	}
	return max(int(a.maxSend)-pdvHeaderLength, 1)
}

// writeCommand sends a command set, fragmented as the peer's maximum
// length requires.
func (a *assoc) writeCommand(ctx byte, c *Command) error {
	b := c.Encode()
	ch := a.chunk()
	for {
		n := min(len(b), ch)
		last := n == len(b)
		a.wbuf = appendPDataHeader(a.wbuf[:0], ctx, true, last, n)
		a.wbuf = append(a.wbuf, b[:n]...)
		if err := a.write(a.wbuf); err != nil {
			return err
		}
		b = b[n:]
		if last {
			return nil
		}
	}
}

// writeDataSet sends a data set read from r, one PDV per P-DATA-TF.
func (a *assoc) writeDataSet(ctx byte, r io.Reader) error {
	ch := a.chunk()
	const hdr = pduHeaderLength + pdvHeaderLength
	if cap(a.wbuf) < hdr+ch {
		a.wbuf = make([]byte, 0, hdr+ch)
	}
	if size := min(ch, 64<<10); a.dsr == nil || a.dsr.Size() != size {
		a.dsr = bufio.NewReaderSize(r, size)
	} else {
		a.dsr.Reset(r)
	}
	br := a.dsr
	defer br.Reset(nil) // r is not kept
	for {
		buf := a.wbuf[:hdr+ch]
		n, err := io.ReadFull(br, buf[hdr:])
		last := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			return &sourceError{err}
		default:
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				return &sourceError{perr}
			}
		}
		appendPDataHeader(buf[:0], ctx, false, last, n)
		if err := a.write(buf[:hdr+n]); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// sourceError is a failure to read the data set being sent (not the
// network's).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "dimse: reading the data set to send: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
