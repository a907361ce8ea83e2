package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Transfer syntaxes whose frames Decode reads. The names follow the
// inference package's TS… constants.
const (
	JPEGBaseline       = "1.2.840.10008.1.2.4.50" // JPEG Baseline (process 1), 8-bit lossy
	JPEGExtended       = "1.2.840.10008.1.2.4.51" // JPEG Extended (processes 2 and 4), 8- or 12-bit lossy
	JPEGLossless       = "1.2.840.10008.1.2.4.57" // JPEG Lossless, process 14, any predictor
	JPEGLosslessSV1    = "1.2.840.10008.1.2.4.70" // JPEG Lossless, process 14, selection value 1
	JPEGLSLossless     = "1.2.840.10008.1.2.4.80" // JPEG-LS lossless
	JPEGLSNearLossless = "1.2.840.10008.1.2.4.81" // JPEG-LS near-lossless (lossy)
	JPEG2000Lossless   = "1.2.840.10008.1.2.4.90" // JPEG 2000, lossless only
	JPEG2000           = "1.2.840.10008.1.2.4.91" // JPEG 2000, lossless or lossy
	RLELossless        = "1.2.840.10008.1.2.5"    // RLE Lossless (PS3.5 Annex G)
)

// catchPanics turns a panic in a decoder into an error; tests turn it off.
var catchPanics = true

// DefaultMaxBytes is the largest decoded frame (Rows × Columns ×
// SamplesPerPixel × BitsAllocated/8) that a zero Decoder accepts: 256 MiB,
// some seven times a 4096 × 4096 16-bit radiograph.
const DefaultMaxBytes = 256 << 20

var names = map[string]string{
	JPEGBaseline:       "JPEG Baseline",
	JPEGExtended:       "JPEG Extended 12-bit",
	JPEGLossless:       "JPEG Lossless",
	JPEGLosslessSV1:    "JPEG Lossless SV1",
	JPEGLSLossless:     "JPEG-LS Lossless",
	JPEGLSNearLossless: "JPEG-LS Near-Lossless",
	JPEG2000Lossless:   "JPEG 2000 Lossless",
	JPEG2000:           "JPEG 2000",
	RLELossless:        "RLE Lossless",
}

// Name returns a short human name for a transfer syntax this package knows,
// or the UID itself.
func Name(tsUID string) string {
	if n, ok := names[tsUID]; ok {
		return n
	}
	return tsUID
}

// Supported reports whether Decode can decode frames of the transfer syntax
// in this build. JPEG 2000 needs cgo (OpenJPEG); in a build without cgo it
// is not supported.
func Supported(tsUID string) bool {
	switch tsUID {
	case JPEGBaseline, JPEGExtended, JPEGLossless, JPEGLosslessSV1, RLELossless, JPEGLSLossless, JPEGLSNearLossless:
		return true
	case JPEG2000Lossless, JPEG2000:
		return haveOpenJPEG
	}
	return false
}

var (
	// ErrUnsupported means the transfer syntax, or a feature its stream
	// uses (JPEG arithmetic coding, hierarchical JPEG, subsampled JPEG
	// lossless, …), is not decoded by this package.
	ErrUnsupported = errors.New("not supported")
	// ErrInvalidFrame means the Frame's own attributes are impossible:
	// zero or absurd dimensions, Bits Allocated other than 8, 16 or 32,
	// Bits Stored above Bits Allocated, no data.
	ErrInvalidFrame = errors.New("invalid frame attributes")
	// ErrTooLarge means the decoded frame would exceed the Decoder's
	// MaxBytes; nothing of that size was allocated.
	ErrTooLarge = errors.New("frame exceeds the decoder's size limit")
	// ErrCorrupt means the encoded bytes are malformed or truncated, or
	// their own header disagrees with the Frame's attributes (dimensions,
	// samples per pixel, a precision above Bits Allocated).
	ErrCorrupt = errors.New("corrupt or mismatched stream")
)

// DecodeError is the error of every failed Decode: it names the transfer
// syntax and wraps the reason, which matches one of ErrUnsupported,
// ErrInvalidFrame, ErrTooLarge or ErrCorrupt under errors.Is.
type DecodeError struct {
	TransferSyntaxUID string // the frame's transfer syntax UID
	Name              string // its name, as Name gives it
	Err               error  // the reason
}

func (e *DecodeError) Error() string {
	if e.Name == e.TransferSyntaxUID || e.Name == "" {
		return fmt.Sprintf("decoding transfer syntax %s: %v", e.TransferSyntaxUID, e.Err)
	}
	return fmt.Sprintf("decoding %s (%s): %v", e.Name, e.TransferSyntaxUID, e.Err)
}

// Unwrap returns the reason.
func (e *DecodeError) Unwrap() error { return e.Err }

// Frame describes one encapsulated frame to decode: the bytes of the frame
// as assembled from the Pixel Data fragments (for a single-frame image, all
// fragments concatenated; trailing zero padding is harmless) and the image
// pixel module attributes of its data set.
type Frame struct {
	TransferSyntaxUID string // (0002,0010)
	Data              []byte // the frame's encapsulated bytes; Decode never modifies or keeps them

	Rows                int // (0028,0010)
	Columns             int // (0028,0011)
	SamplesPerPixel     int // (0028,0002): 1 or 3
	BitsAllocated       int // (0028,0100): 8, 16 or 32 — the word size of the output
	BitsStored          int // (0028,0101): 1 … BitsAllocated
	PixelRepresentation int // (0028,0103): 0 unsigned, 1 two's complement

	// PhotometricInterpretation (0028,0004) is optional. It is used only
	// to decide colour conversion where the stream alone does not say:
	// JPEG 2000 with YBR_ICT / YBR_RCT produces RGB (OpenJPEG applies the
	// inverse component transform the codestream declares).
	PhotometricInterpretation string
}

// Pixels is a decoded frame laid out exactly as native (uncompressed)
// Explicit VR Little Endian Pixel Data with the frame's Bits Allocated:
// row-major, samples interleaved (Planar Configuration 0), one little-endian
// word of BitsAllocated/8 bytes per sample. The words hold the stored values:
// no Modality LUT, no VOI, no masking to Bits Stored. Signed samples
// (Pixel Representation 1) are sign-extended to the whole word when the
// codec yields signed values (JPEG 2000); the codecs that code bit patterns
// (JPEG, JPEG-LS) yield the pattern, zero-extended, which the Bits Stored
// handling of the grey-scale pipeline sign-extends as it would for native
// data.
type Pixels struct {
	Data            []byte // len = Rows × Columns × SamplesPerPixel × BitsAllocated/8
	Rows, Columns   int
	SamplesPerPixel int
	BitsAllocated   int // 8, 16 or 32, as the Frame said

	// Precision is the sample precision the stream declares (JPEG P, the
	// JPEG-LS bits per sample, the JPEG 2000 component precision; for RLE
	// the Frame's Bits Stored).
	Precision int
	// NearLossless is the JPEG-LS NEAR parameter of the stream: the
	// largest absolute error of any sample against the encoder's input
	// (0 for lossless JPEG-LS and for every other codec).
	NearLossless int
	// PhotometricInterpretation is the photometric interpretation of the
	// decoded samples when the codec changed it — "RGB" after a
	// YCbCr-to-RGB conversion of JPEG or the inverse component transform
	// of JPEG 2000 — and "" when the samples are as the data set's
	// (0028,0004) describes them.
	PhotometricInterpretation string
}

// Len returns the number of samples, Rows × Columns × SamplesPerPixel.
func (p *Pixels) Len() int { return p.Rows * p.Columns * p.SamplesPerPixel }

// Word returns the i-th sample's stored word (0 ≤ i < Len()), unsigned.
func (p *Pixels) Word(i int) uint32 {
	switch p.BitsAllocated {
	case 8:
		return uint32(p.Data[i])
	case 16:
		return uint32(binary.LittleEndian.Uint16(p.Data[2*i:]))
	default:
		return binary.LittleEndian.Uint32(p.Data[4*i:])
	}
}

// A Decoder decodes frames within a size limit. The zero Decoder is ready to
// use with DefaultMaxBytes; a Decoder is safe for concurrent use.
type Decoder struct {
	// MaxBytes bounds the decoded frame size in bytes (Rows × Columns ×
	// SamplesPerPixel × BitsAllocated/8); 0 means DefaultMaxBytes. Frames
	// above it fail with ErrTooLarge before anything is allocated. Grey-scale
	// frames need little beyond the output (a few lines, or OpenJPEG's
	// 32-bit component buffer: twice a 16-bit output); subsampled colour
	// JPEG up to about three times it.
	MaxBytes int
}

// Decode decodes one frame with the zero Decoder. See Decoder.Decode.
func Decode(f Frame) (*Pixels, error) {
	var d Decoder
	return d.Decode(f)
}

// Decode decodes one encapsulated frame of one of the transfer syntaxes
// for which Supported is true into native little-endian words (see Pixels).
//
// Before decoding, the frame's attributes are checked (ErrInvalidFrame), the
// output size against MaxBytes (ErrTooLarge), and then the stream's own
// header against the attributes: its dimensions and number of components
// must equal Columns, Rows and SamplesPerPixel, and its precision must fit in
// BitsAllocated (ErrCorrupt). Every error is a *DecodeError naming the
// transfer syntax. Malformed input never panics and never makes the C
// libraries read or write outside their buffers.
func (d *Decoder) Decode(f Frame) (px *Pixels, err error) {
	fail := func(err error) error {
		return &DecodeError{TransferSyntaxUID: f.TransferSyntaxUID, Name: Name(f.TransferSyntaxUID), Err: err}
	}
	if !Supported(f.TransferSyntaxUID) {
		switch f.TransferSyntaxUID {
		case JPEG2000Lossless, JPEG2000:
			return nil, fail(fmt.Errorf("%w: this build has no cgo, which OpenJPEG needs", ErrUnsupported))
		}
		return nil, fail(fmt.Errorf("%w: not an encapsulated transfer syntax this package decodes", ErrUnsupported))
	}
	max := d.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if err := f.check(max); err != nil {
		return nil, fail(err)
	}
	// A bug in a pure-Go decoder must not take the process down: turn a
	// panic into an error. (The tests, fuzzing included, run without this
	// net, so that a panic fails them.)
	if catchPanics {
		defer func() {
			if r := recover(); r != nil {
				px, err = nil, fail(fmt.Errorf("%w: internal decoder error: %v", ErrCorrupt, r))
			}
		}()
	}
	switch f.TransferSyntaxUID {
	case RLELossless:
		px, err = decodeRLE(&f)
	case JPEGBaseline, JPEGExtended, JPEGLossless, JPEGLosslessSV1:
		px, err = decodeJPEG(&f)
	case JPEGLSLossless, JPEGLSNearLossless:
		px, err = decodeJPEGLS(&f)
	case JPEG2000Lossless, JPEG2000:
		px, err = decodeJPEG2000(&f)
	}
	if err != nil {
		return nil, fail(err)
	}
	return px, nil
}

// check validates the frame's attributes and its output size.
func (f *Frame) check(maxBytes int) error {
	switch {
	case len(f.Data) == 0:
		return fmt.Errorf("%w: no encapsulated data", ErrInvalidFrame)
	case f.Rows <= 0 || f.Rows > 65535 || f.Columns <= 0 || f.Columns > 65535:
		return fmt.Errorf("%w: %d rows × %d columns (each must be 1…65535)", ErrInvalidFrame, f.Rows, f.Columns)
	case f.SamplesPerPixel != 1 && f.SamplesPerPixel != 3:
		return fmt.Errorf("%w: Samples per Pixel %d (must be 1 or 3)", ErrInvalidFrame, f.SamplesPerPixel)
	case f.BitsAllocated != 8 && f.BitsAllocated != 16 && f.BitsAllocated != 32:
		return fmt.Errorf("%w: Bits Allocated %d (must be 8, 16 or 32)", ErrInvalidFrame, f.BitsAllocated)
	case f.BitsStored < 1 || f.BitsStored > f.BitsAllocated:
		return fmt.Errorf("%w: Bits Stored %d with Bits Allocated %d", ErrInvalidFrame, f.BitsStored, f.BitsAllocated)
	case f.PixelRepresentation != 0 && f.PixelRepresentation != 1:
		return fmt.Errorf("%w: Pixel Representation %d (must be 0 or 1)", ErrInvalidFrame, f.PixelRepresentation)
	}
	// At most 65535² × 3 × 4 bytes: no overflow in int64.
	size := int64(f.Rows) * int64(f.Columns) * int64(f.SamplesPerPixel) * int64(f.BitsAllocated/8)
	if size > int64(maxBytes) {
		return fmt.Errorf("%w: %d × %d × %d samples of %d bits is %d bytes, limit %d", ErrTooLarge,
			f.Rows, f.Columns, f.SamplesPerPixel, f.BitsAllocated, size, maxBytes)
	}
	return nil
}

// newPixels allocates the output for f.
func newPixels(f *Frame, precision int) *Pixels {
	n := f.Rows * f.Columns * f.SamplesPerPixel * (f.BitsAllocated / 8)
	return &Pixels{
		Data:            make([]byte, n),
		Rows:            f.Rows,
		Columns:         f.Columns,
		SamplesPerPixel: f.SamplesPerPixel,
		BitsAllocated:   f.BitsAllocated,
		Precision:       precision,
	}
}

// put stores sample i (0 ≤ i < Len()) as a word, truncated to the word size.
func (p *Pixels) put(i int, v uint32) {
	switch p.BitsAllocated {
	case 8:
		p.Data[i] = byte(v)
	case 16:
		binary.LittleEndian.PutUint16(p.Data[2*i:], uint16(v))
	default:
		binary.LittleEndian.PutUint32(p.Data[4*i:], v)
	}
}

// corrupt formats an ErrCorrupt reason.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// unsupported formats an ErrUnsupported reason.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}
