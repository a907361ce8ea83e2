package inference

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Decoding limits. A Deflated Explicit VR Little Endian file is small on
// the wire and in pacs.max_instance_bytes, but deflate reaches about 1000:1:
// a 1 MB file can hold a 1 GB element of zeros. Decode inflates as a stream,
// counts every inflated byte against DecodeOptions, and never keeps the
// values of top-level private elements (odd groups), which nothing here
// reads.

// DefaultMaxInflatedBytes is the default DecodeOptions.MaxInflatedBytes:
// 256 MiB, more than any image Decode accepts (MaxPixels 16-bit words are
// 128 MiB) and the default pacs.max_instance_bytes.
const DefaultMaxInflatedBytes = 256 << 20

// DefaultMaxInflateRatio is the default DecodeOptions.MaxInflateRatio: 100.
// Lossless deflate of a radiograph gains 1.5 to 4 (the deflated sample of
// testdata: 1.8); only long runs of one value (a blank image, padding, a
// deflate bomb) get near deflate's ceiling of about 1000.
const DefaultMaxInflateRatio = 100

// inflateRatioFloor is what MaxInflateRatio always allows, whatever the
// compressed size, so a tiny file is never refused for its ratio alone.
const inflateRatioFloor = 1 << 20

// DecodeOptions bound what decoding one file may cost beyond its own size.
// The zero value means the defaults.
type DecodeOptions struct {
	// MaxInflatedBytes bounds a deflated data set once inflated (0:
	// DefaultMaxInflatedBytes). Every inflated byte counts, also those of
	// private elements that are skipped, not kept.
	MaxInflatedBytes int64
	// MaxInflateRatio bounds a deflated data set once inflated to this
	// multiple of its compressed size (0: DefaultMaxInflateRatio); at least
	// 1 MiB is always allowed.
	MaxInflateRatio float64
}

// ErrInflateLimit: a deflated data set inflates past a DecodeOptions limit
// (matched by *InflateLimitError). Such a file is refused, not retried.
var ErrInflateLimit = errors.New("deflated data set inflates past its limit")

// InflateLimitError says which limit a deflated data set inflated past.
type InflateLimitError struct {
	// Key is the configuration key of the limit: "pacs.max_inflated_bytes"
	// or "pacs.max_inflate_ratio".
	Key string
	// Limit is the number of inflated bytes allowed.
	Limit int64
	// Deflated is the compressed data set's size; Ratio the ratio limit
	// (for the ratio key).
	Deflated int64
	Ratio    float64
}

func (e *InflateLimitError) Error() string {
	if e.Key == keyMaxInflateRatio {
		return fmt.Sprintf("deflated data set of %d bytes inflates past %d bytes, %g × its size (limit %s %g)",
			e.Deflated, e.Limit, e.Ratio, e.Key, e.Ratio)
	}
	return fmt.Sprintf("deflated data set of %d bytes inflates past %d bytes (limit %s %d)", e.Deflated, e.Limit, e.Key, e.Limit)
}

// Is makes errors.Is(err, ErrInflateLimit) true.
func (e *InflateLimitError) Is(target error) bool { return target == ErrInflateLimit }

const (
	keyMaxInflatedBytes = "pacs.max_inflated_bytes"
	keyMaxInflateRatio  = "pacs.max_inflate_ratio"
)

// inflateLimit returns the inflated bytes allowed for a deflated data set of
// n bytes, as the error to give when they are exceeded.
func (o DecodeOptions) inflateLimit(n int) *InflateLimitError {
	abs := o.MaxInflatedBytes
	if abs <= 0 {
		abs = DefaultMaxInflatedBytes
	}
	ratio := o.MaxInflateRatio
	if ratio <= 0 {
		ratio = DefaultMaxInflateRatio
	}
	byRatio := max(int64(min(ratio*float64(n), float64(1<<62))), inflateRatioFloor)
	if byRatio < abs {
		return &InflateLimitError{Key: keyMaxInflateRatio, Limit: byRatio, Deflated: int64(n), Ratio: ratio}
	}
	return &InflateLimitError{Key: keyMaxInflatedBytes, Limit: abs, Deflated: int64(n)}
}

// capReader passes at most limit bytes of r and then fails with exceeded,
// if r has more.
type capReader struct {
	r        io.Reader
	left     int64
	exceeded error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n > 0 {
			return 0, c.exceeded
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// inflateDataSet inflates a deflated (explicit VR little endian) data set
// as a stream within o's limits. It keeps the elements in order, except the
// top-level private ones, which are read past (and counted) but not kept.
func inflateDataSet(deflated []byte, o DecodeOptions) ([]byte, error) {
	lim := o.inflateLimit(len(deflated))
	cr := &capReader{r: flate.NewReader(bytes.NewReader(deflated)), left: lim.Limit, exceeded: lim}
	s := inflater{r: bufio.NewReaderSize(cr, 64<<10)}
	if err := s.dataSet(); err != nil {
		var le *InflateLimitError
		if errors.As(err, &le) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: inflating the deflated data set: %v", ErrMalformed, err)
	}
	return s.out.Bytes(), nil
}

type inflater struct {
	r   *bufio.Reader
	out bytes.Buffer
	hdr [12]byte
}

// errTruncated: the inflated stream ends inside an element.
var errTruncated = errors.New("truncated inside an element")

// read reads n header bytes into s.hdr; a stream that ends first is
// errTruncated (or io.EOF when it ends before the first byte and eofOK).
func (s *inflater) read(n int, eofOK bool) ([]byte, error) {
	b := s.hdr[:n]
	if m, err := io.ReadFull(s.r, b); err != nil {
		if m == 0 && eofOK && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errTruncated
		}
		return nil, err
	}
	return b, nil
}

// copyN copies n value bytes to w.
func (s *inflater) copyN(w io.Writer, n int64) error {
	if _, err := io.CopyN(w, s.r, n); err != nil {
		if errors.Is(err, io.EOF) {
			return errTruncated
		}
		return err
	}
	return nil
}

// dataSet reads the top-level elements to the end of the stream.
func (s *inflater) dataSet() error {
	le := binary.LittleEndian
	for {
		h, err := s.read(8, true)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		g, e := le.Uint16(h), le.Uint16(h[2:])
		var w io.Writer = &s.out
		if g%2 == 1 {
			w = io.Discard // private: nothing here reads it
		}
		if err := s.element(w, g, e, 0); err != nil {
			return fmt.Errorf("element (%04X,%04X): %w", g, e, err)
		}
	}
}

// element copies to w one element whose first 8 header bytes are in s.hdr,
// then its value.
func (s *inflater) element(w io.Writer, g, e uint16, depth int) error {
	le := binary.LittleEndian
	if g == 0xFFFE {
		return fmt.Errorf("unexpected delimiter (%04X,%04X)", g, e)
	}
	hdr := s.hdr[:8]
	vr := string(hdr[4:6])
	vl := uint32(le.Uint16(hdr[6:]))
	if longVR(vr) {
		if _, err := io.ReadFull(s.r, s.hdr[8:12]); err != nil {
			return errTruncated
		}
		hdr = s.hdr[:12]
		vl = le.Uint32(hdr[8:])
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if vl != undefinedLength {
		return s.copyN(w, int64(vl))
	}
	return s.sequence(w, depth+1)
}

// sequence copies the items (or fragments) of an undefined-length value up
// to and including its Sequence Delimitation Item.
func (s *inflater) sequence(w io.Writer, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("sequences nested deeper than %d", maxNesting)
	}
	le := binary.LittleEndian
	for {
		h, err := s.read(8, false)
		if err != nil {
			return err
		}
		g, e, vl := le.Uint16(h), le.Uint16(h[2:]), le.Uint32(h[4:])
		if _, err := w.Write(h); err != nil {
			return err
		}
		switch {
		case g == 0xFFFE && e == 0xE0DD:
			return nil
		case g != 0xFFFE || e != 0xE000:
			return fmt.Errorf("expected an item, found (%04X,%04X)", g, e)
		case vl != undefinedLength:
			if err := s.copyN(w, int64(vl)); err != nil {
				return err
			}
		default:
			if err := s.item(w, depth); err != nil {
				return err
			}
		}
	}
}

// item copies the elements of an undefined-length item up to and including
// its Item Delimitation Item.
func (s *inflater) item(w io.Writer, depth int) error {
	le := binary.LittleEndian
	for {
		h, err := s.read(8, false)
		if err != nil {
			return err
		}
		g, e := le.Uint16(h), le.Uint16(h[2:])
		if g == 0xFFFE && e == 0xE00D {
			_, err := w.Write(h)
			return err
		}
		if err := s.element(w, g, e, depth); err != nil {
			return err
		}
	}
}
