package hl7v2

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MLLP framing bytes: a block is StartBlock, the message, EndBlock,
// CarriageReturn.
const (
	StartBlock     = 0x0B
	EndBlock       = 0x1C
	CarriageReturn = 0x0D
)

// DefaultMaxMessageSize bounds an MLLP block when no limit is configured:
// 16 MiB, room for an ORU carrying a PDF report.
const DefaultMaxMessageSize = 16 << 20

// FrameReader reads MLLP blocks from a stream.
type FrameReader struct {
	r   *bufio.Reader
	max int
}

// NewFrameReader reads blocks of at most maxSize bytes (between the framing
// bytes) from r; maxSize ≤ 0 means DefaultMaxMessageSize.
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 32<<10), max: maxSize}
}

// FrameTooLargeError is returned by ReadFrame for a block over the limit.
// The whole block has been consumed, so the stream stays in step: the
// caller may answer (with an AR built from Head) and read on. It matches
// ErrTooLarge.
type FrameTooLargeError struct {
	// Max is the limit, Size the block's actual size.
	Max, Size int
	// Head is the block's first bytes (up to Max): enough to read its MSH.
	Head []byte
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("MLLP message of %d bytes exceeds the maximum of %d bytes", e.Size, e.Max)
}

// Is matches ErrTooLarge.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrTooLarge }

// wait blocks until a byte is available, skipping line ends and spaces
// between blocks. It returns io.EOF at a clean end of stream.
func (fr *FrameReader) wait() error {
	for {
		b, err := fr.r.Peek(1)
		if err != nil {
			return err
		}
		switch b[0] {
		case '\r', '\n', ' ', '\t':
			_, _ = fr.r.ReadByte()
		default:
			return nil
		}
	}
}

// ReadFrame returns the next block's content, without the framing bytes.
// Line ends and spaces between blocks are skipped. It returns io.EOF at a
// clean end of stream, io.ErrUnexpectedEOF for a stream cut inside a
// block, an error wrapping ErrFraming for bytes that break the framing
// (after which the stream cannot be trusted), and a *FrameTooLargeError
// for a block over the limit.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	if err := fr.wait(); err != nil {
		return nil, err
	}
	c, _ := fr.r.ReadByte()
	if c != StartBlock {
		return nil, fmt.Errorf("%w: byte 0x%02X where a start block (0x0B) was expected", ErrFraming, c)
	}
	var buf bytes.Buffer
	size := 0
	for {
		chunk, err := fr.r.ReadSlice(EndBlock)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		data := chunk
		if err == nil {
			data = chunk[:len(chunk)-1]
		}
		if i := bytes.IndexByte(data, StartBlock); i >= 0 {
			return nil, fmt.Errorf("%w: start block (0x0B) inside a message, at byte %d", ErrFraming, size+i)
		}
		if room := fr.max - buf.Len(); room > 0 {
			buf.Write(data[:min(len(data), room)])
		}
		size += len(data)
		if err == nil {
			break
		}
	}
	c, err := fr.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if c != CarriageReturn {
		return nil, fmt.Errorf("%w: end block (0x1C) followed by 0x%02X instead of a carriage return (0x0D)", ErrFraming, c)
	}
	if size > fr.max {
		return nil, &FrameTooLargeError{Max: fr.max, Size: size, Head: buf.Bytes()}
	}
	return buf.Bytes(), nil
}

// AppendFrame appends msg in an MLLP block to dst.
func AppendFrame(dst, msg []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, msg...)
	return append(dst, EndBlock, CarriageReturn)
}

// WriteFrame writes msg to w in an MLLP block, in one Write call.
func WriteFrame(w io.Writer, msg []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, len(msg)+3), msg))
	return err
}
