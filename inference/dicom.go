package inference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"

	"github.com/radgate/radgate/inference/codec"
)

// Transfer syntax UIDs that this package names or decodes.
const (
	TSImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	TSExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	TSDeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	TSExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	TSJPEGBaseline                   = "1.2.840.10008.1.2.4.50"
	TSJPEGExtended                   = "1.2.840.10008.1.2.4.51"
	TSJPEGLossless                   = "1.2.840.10008.1.2.4.57"
	TSJPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	TSJPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	TSJPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	TSJPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	TSJPEG2000                       = "1.2.840.10008.1.2.4.91"
	TSRLELossless                    = "1.2.840.10008.1.2.5"
)

// MaxPixels bounds Rows × Columns of an image this package decodes (64 Mi
// pixels, a 256 MiB float32 plane). Projection radiographs are at most about
// 25 M pixels; a larger header is treated as malformed rather than trusted
// with memory.
const MaxPixels = 64 << 20

// MaxImageEdge bounds Rows and Columns each (8192): an image larger than
// 8192 × 8192 is refused with ErrUnsupportedImage naming its size.
const MaxImageEdge = 8192

var transferSyntaxNames = map[string]string{
	TSImplicitVRLittleEndian:         "Implicit VR Little Endian",
	TSExplicitVRLittleEndian:         "Explicit VR Little Endian",
	TSDeflatedExplicitVRLittleEndian: "Deflated Explicit VR Little Endian",
	TSExplicitVRBigEndian:            "Explicit VR Big Endian",
	TSJPEGBaseline:                   "JPEG Baseline",
	TSJPEGExtended:                   "JPEG Extended 12-bit",
	TSJPEGLossless:                   "JPEG Lossless",
	TSJPEGLosslessSV1:                "JPEG Lossless SV1",
	TSJPEGLSLossless:                 "JPEG-LS Lossless",
	TSJPEGLSNearLossless:             "JPEG-LS Near-Lossless",
	TSJPEG2000Lossless:               "JPEG 2000 Lossless",
	TSJPEG2000:                       "JPEG 2000",
	"1.2.840.10008.1.2.4.92":         "JPEG 2000 Part 2 Multi-component Lossless",
	"1.2.840.10008.1.2.4.93":         "JPEG 2000 Part 2 Multi-component",
	"1.2.840.10008.1.2.4.201":        "HTJ2K Lossless",
	"1.2.840.10008.1.2.4.202":        "HTJ2K Lossless RPCL",
	"1.2.840.10008.1.2.4.203":        "HTJ2K",
	TSRLELossless:                    "RLE Lossless",
}

// TransferSyntaxName returns a short human name for a transfer syntax UID,
// or "unknown transfer syntax".
func TransferSyntaxName(tsUID string) string {
	if n, ok := transferSyntaxNames[tsUID]; ok {
		return n
	}
	if info, err := uid.Lookup(tsUID); err == nil && info.Type == uid.TypeTransferSyntax {
		return info.Name
	}
	return "unknown transfer syntax"
}

// Decodable reports whether Decode can decode pixel data in this transfer
// syntax: the native ones (implicit/explicit VR little endian, explicit big
// endian, deflated) and 8-bit JPEG (Baseline; Extended only when the stream is
// 8-bit).
func Decodable(tsUID string) bool {
	switch tsUID {
	case TSImplicitVRLittleEndian, TSExplicitVRLittleEndian, TSDeflatedExplicitVRLittleEndian,
		TSExplicitVRBigEndian, TSJPEGBaseline:
		return true
	}
	return codec.Supported(tsUID)
}

// Decode errors. Every error Decode returns wraps one of these (or is an
// *UnsupportedTransferSyntaxError or an *InflateLimitError), so callers can tell a bad file (never
// worth retrying) from anything else.
var (
	// ErrNotDICOM: the bytes are not a DICOM Part 10 file (no "DICM" marker
	// after the 128-byte preamble, or no file meta information).
	ErrNotDICOM = errors.New("not a DICOM Part 10 file")
	// ErrMalformed: the file claims to be DICOM but cannot be read (truncated,
	// bad element, inconsistent image attributes).
	ErrMalformed = errors.New("malformed DICOM")
	// ErrNoPixelData: a valid DICOM object with no Pixel Data (a structured
	// report, an RT plan, …).
	ErrNoPixelData = errors.New("no pixel data")
	// ErrUnsupportedImage: a readable image this package does not handle
	// (palette colour, 1-bit, float pixel data, …).
	ErrUnsupportedImage = errors.New("unsupported image")
	// ErrUnsupportedTransferSyntax is what *UnsupportedTransferSyntaxError
	// matches with errors.Is.
	ErrUnsupportedTransferSyntax = errors.New("transfer syntax not decoded")
)

// UnsupportedTransferSyntaxError says that the pixel data is encoded in a
// transfer syntax this package does not decode (yet).
type UnsupportedTransferSyntaxError struct {
	UID  string // the Transfer Syntax UID (0002,0010)
	Name string // its name, from TransferSyntaxName
	// Detail optionally says why (e.g. "12-bit JPEG"); may be empty.
	Detail string
}

func (e *UnsupportedTransferSyntaxError) Error() string {
	s := fmt.Sprintf("transfer syntax %s (%s) is not decoded yet", e.UID, e.Name)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrUnsupportedTransferSyntax) true.
func (e *UnsupportedTransferSyntaxError) Is(target error) bool {
	return target == ErrUnsupportedTransferSyntax
}

func unsupportedTS(tsUID, detail string) error {
	return &UnsupportedTransferSyntaxError{UID: tsUID, Name: TransferSyntaxName(tsUID), Detail: detail}
}

// Meta is what radgate reads from a DICOM header. No patient demographics
// but the age at the study (Age, which intended use needs; never the birth
// date): nothing else here is PHI beyond the UIDs and the accession number.
type Meta struct {
	SOPClassUID       string
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string
	AccessionNumber   string
	Modality          string
	BodyPartExamined  string
	ViewPosition      string
	// InstitutionName is (0008,0080), decoded by its Specific Character
	// Set (package dicomcs): ISO 2022 IR 87 kanji, half-width katakana,
	// UTF-8 and the ISO 8859 sets alike. Facility matching reads it.
	InstitutionName string
	// Manufacturer is (0008,0070), kept for the input mix live monitoring
	// reports.
	Manufacturer      string
	TransferSyntaxUID string

	PhotometricInterpretation string
	Rows, Columns             int
	SamplesPerPixel           int
	BitsAllocated             int
	BitsStored                int
	HighBit                   int
	PixelRepresentation       int // 0 unsigned, 1 two's complement
	PlanarConfiguration       int
	NumberOfFrames            int

	// RescaleSlope and RescaleIntercept are the Modality LUT as a linear
	// function (1 and 0 when absent).
	RescaleSlope, RescaleIntercept float64
	// HasWindow tells whether WindowCenter/WindowWidth hold the first pair of
	// (0028,1050)/(0028,1051).
	HasWindow                 bool
	WindowCenter, WindowWidth float64
	// VOILUTFunction is (0028,1056): "" (LINEAR), LINEAR_EXACT or SIGMOID.
	VOILUTFunction string
	// HasVOILUTSequence and HasModalityLUTSequence tell whether (0028,3010)
	// and (0028,3000) are present.
	HasVOILUTSequence      bool
	HasModalityLUTSequence bool
	// PresentationIntentType is (0008,0068), upper-cased: "FOR PRESENTATION",
	// "FOR PROCESSING" or "" when absent.
	PresentationIntentType string
	// PixelSpacing is the row and column spacing in mm: Pixel Spacing
	// (0028,0030), else Imager Pixel Spacing (0018,1164); PixelSpacingFrom
	// names the attribute. Zero (and "") when neither holds two positive
	// numbers (absent, unreadable, or 0 for "not calibrated").
	PixelSpacing     [2]float64
	PixelSpacingFrom string
	// Age is the patient's age at the study date: Patient's Age, else
	// Patient's Birth Date against Study Date; unknown (with the problem,
	// if any) otherwise. A bad value is no error: it makes the age unknown.
	Age Age
}

// forProcessingSOPClasses are the DX, mammography and intra-oral "For
// Processing" storage SOP classes (PS3.4 B.5).
var forProcessingSOPClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1.1.1", // Digital X-Ray Image Storage – For Processing
	"1.2.840.10008.5.1.4.1.1.1.2.1", // Digital Mammography X-Ray Image Storage – For Processing
	"1.2.840.10008.5.1.4.1.1.1.3.1", // Digital Intra-Oral X-Ray Image Storage – For Processing
}

// ForProcessing reports raw detector data: Presentation Intent Type FOR
// PROCESSING, or a For Processing SOP class. Such an image is not meant to
// be looked at as it stands: the modality's own processing (log transform,
// equalisation, edge enhancement) has not been applied.
func (m *Meta) ForProcessing() bool {
	return m.PresentationIntentType == "FOR PROCESSING" || slices.Contains(forProcessingSOPClasses, m.SOPClassUID)
}

// IntentWarning returns, for a FOR PROCESSING image, a caution about the
// scored rendering; "" for any other image. Decode treats such an image like
// any other (window if present, else VOI LUT, else the full stored-bit range,
// which is what FOR PROCESSING data usually gets, having no VOI); the engines
// were trained on display renderings, so the score deserves this caution.
func (m *Meta) IntentWarning() string {
	if !m.ForProcessing() {
		return ""
	}
	if m.HasWindow || m.HasVOILUTSequence {
		return "FOR PROCESSING image: scored with its VOI on raw detector data, not a display rendering"
	}
	return "FOR PROCESSING image: scored with the stored-bit range, not a display rendering"
}

// TransferSyntaxName is the name of m.TransferSyntaxUID.
func (m *Meta) TransferSyntaxName() string { return TransferSyntaxName(m.TransferSyntaxUID) }

// Image is a decoded radiograph: the first frame, after the PS3.3 grey-scale
// pipeline, as one float32 plane.
type Image struct {
	Meta Meta
	// Width and Height are Columns and Rows.
	Width, Height int
	// Pixels holds Width×Height values in row-major order, each in 0..1 with
	// air dark (MONOCHROME2 sense): Modality LUT, then VOI (first window;
	// else VOI LUT Sequence; else the full range of the stored bits), then
	// MONOCHROME1 inversion.
	//
	// Decode leaves Pixels nil for a grey image of at most 16 bits allocated
	// (every radiograph it is meant for): it keeps the stored words and the
	// pipeline as one lookup table instead, and Preprocess and RenderHeatmap
	// read rows through the table, so the full-size plane is never built for
	// scoring. Plane returns the plane in every case, building it on first
	// use; At reads one pixel either way.
	Pixels []float32
	// VOI says which VOI transform produced the values, e.g. "window
	// 550/1024 (LINEAR)", "VOI LUT Sequence", "stored range 0..1023".
	VOI string

	stored *storedPlane // the stored words when Pixels is nil
}

// At returns the pixel at column x, row y.
func (img *Image) At(x, y int) float32 {
	if img.Pixels == nil && img.stored != nil {
		return img.stored.at(x, y)
	}
	return img.Pixels[y*img.Width+x]
}

// DecodeFile reads and decodes a DICOM file. See Decode.
func DecodeFile(path string) (*Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// DecodeReader reads r to the end and decodes it. See Decode.
func DecodeReader(r io.Reader) (*Image, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading DICOM: %w", err)
	}
	return Decode(data)
}

// Decode decodes a DICOM Part 10 file held in data: its header into Meta and
// the first frame of its pixel data (see Image.Pixels and Image.Plane). A
// grey image in a native transfer syntax is read in place: the Image then
// refers to data's pixel bytes, so data must not be modified while the Image
// is in use. It never panics: a panic inside the DICOM library becomes an
// ErrMalformed error. Pixel data in a transfer syntax it cannot decode gives
// an *UnsupportedTransferSyntaxError naming the UID and its name.
//
// A deflated data set is inflated within the default DecodeOptions; see
// DecodeWith.
func Decode(data []byte) (img *Image, err error) {
	return decodeWith(data, true, DecodeOptions{})
}

// DecodeWith is Decode with limits on what inflating a deflated data set
// may cost: past them it returns an *InflateLimitError (ErrInflateLimit)
// naming the limit. Top-level private elements are never kept in memory.
func DecodeWith(data []byte, o DecodeOptions) (*Image, error) {
	return decodeWith(data, true, o)
}

// decode is Decode; with lazy false it is the reference path (the library
// copies the Pixel Data value and the full float32 plane is built), which
// tests compare the lazy path with.
func decode(data []byte, lazy bool) (*Image, error) {
	return decodeWith(data, lazy, DecodeOptions{})
}

func decodeWith(data []byte, lazy bool, o DecodeOptions) (img *Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("%w: DICOM parser failed: %v", ErrMalformed, r)
		}
	}()
	ds, meta, inPlace, err := parse(data, false, lazy, o)
	if err != nil {
		return nil, err
	}
	out, voi, err := decodePixels(ds, meta, lazy, inPlace)
	if err != nil {
		return nil, err
	}
	return &Image{Meta: *meta, Width: meta.Columns, Height: meta.Rows, Pixels: out.pix, VOI: voi, stored: out.stored}, nil
}

// ReadHeaderFile reads a DICOM file's header. See ReadHeader.
func ReadHeaderFile(path string) (*Meta, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ReadHeader(data)
}

// ReadHeader reads the header of a DICOM Part 10 file without decoding the
// pixel data, whatever its transfer syntax. It is cheap and never panics.
func ReadHeader(data []byte) (m *Meta, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%w: DICOM parser failed: %v", ErrMalformed, r)
		}
	}()
	_, meta, _, err := parse(data, true, false, DecodeOptions{})
	return meta, err
}

// IsDICOM reports whether data starts like a DICOM Part 10 file (128-byte
// preamble, then "DICM").
func IsDICOM(data []byte) bool {
	return len(data) >= 132 && string(data[128:132]) == "DICM"
}

var (
	tagWindowWidth         = tag.Tag{Group: 0x0028, Element: 0x1051}
	tagRescaleIntercept    = tag.Tag{Group: 0x0028, Element: 0x1052}
	tagRescaleSlope        = tag.Tag{Group: 0x0028, Element: 0x1053}
	tagVOILUTFunction      = tag.Tag{Group: 0x0028, Element: 0x1056}
	tagLUTDescriptor       = tag.Tag{Group: 0x0028, Element: 0x3002}
	tagLUTData             = tag.Tag{Group: 0x0028, Element: 0x3006}
	tagFloatPixelData      = tag.Tag{Group: 0x7FE0, Element: 0x0008}
	tagDoubleFloatPixelDat = tag.Tag{Group: 0x7FE0, Element: 0x0009}
)

// parse reads the dataset. With headerOnly, Pixel Data is skipped and any
// transfer syntax is accepted; otherwise an undecodable transfer syntax is an
// error before the data set is read. With inPlace, a native (defined-length)
// top-level Pixel Data value is not copied by the library: it is skipped
// there and returned as pixels, a slice of data (or of the copy the checks
// made: inflated, or without private elements). A deflated data set is
// inflated within o's limits.
func parse(data []byte, headerOnly, inPlace bool, o DecodeOptions) (ds *dicom.Dataset, meta *Meta, pixels []byte, err error) {
	if !IsDICOM(data) {
		return nil, nil, nil, fmt.Errorf("%w: no \"DICM\" marker after the 128-byte preamble", ErrNotDICOM)
	}
	c, err := checkStructure(data, o, func(t tag.Tag) bool { return t == tag.SpecificCharacterSet || t == tag.InstitutionName })
	if err != nil {
		return nil, nil, nil, err
	}
	checkedTS, native := c.libTS, c.native
	data = c.file
	opts := []dicom.ParseOption{dicom.AllowUnknownSpecificCharacterSet()}
	switch {
	case headerOnly:
		opts = append(opts, dicom.SkipPixelData())
	case inPlace && native != nil:
		opts = append(opts, dicom.SkipPixelData())
		pixels = native
	default:
		opts = append(opts, dicom.SkipProcessingPixelDataValue())
	}
	p, err := dicom.NewParser(bytes.NewReader(data), int64(len(data)), nil, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: reading file meta information: %v", ErrMalformed, err)
	}
	md := p.GetMetadata()
	if len(md.Elements) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no file meta information", ErrNotDICOM)
	}
	ts := getString(md.Elements, tag.TransferSyntaxUID)
	if ts != checkedTS {
		return nil, nil, nil, fmt.Errorf("%w: file meta information is inconsistent (Transfer Syntax UID %q / %q)", ErrMalformed, ts, checkedTS)
	}
	ts = c.ts // the file's own, also when the library reads an inflated copy
	deflated := ts == TSDeflatedExplicitVRLittleEndian && c.libTS == ts
	if _, _, err := uid.ParseTransferSyntaxUID(ts); err != nil {
		// Unknown to the library: every non-native transfer syntax is explicit
		// VR little endian (PS3.5 A.4), which lets the header still be read.
		if !headerOnly {
			return nil, nil, nil, unsupportedTS(ts, "")
		}
		p.SetTransferSyntax(binary.LittleEndian, false)
	}
	if !headerOnly && !Decodable(ts) {
		return nil, nil, nil, unsupportedTS(ts, "")
	}
	elems := append([]*dicom.Element(nil), md.Elements...)
	for {
		el, err := p.Next()
		if err == nil {
			elems = append(elems, el)
			continue
		}
		if errors.Is(err, dicom.ErrorEndOfDICOM) {
			break
		}
		// A deflated stream has no byte limit: its clean end is an EOF where
		// the next element's tag would start.
		if deflated && errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
			strings.Contains(err.Error(), "reading element tag") {
			break
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, nil, fmt.Errorf("%w: truncated data set: %v", ErrMalformed, err)
		}
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ds = &dicom.Dataset{Elements: elems}
	meta, err = readMeta(ds.Elements, ts)
	if err != nil {
		return nil, nil, nil, err
	}
	meta.PresentationIntentType = strings.ToUpper(getString(ds.Elements, tag.PresentationIntentType))
	// Text the library would decode wrong (it splits on 0x5C before
	// decoding, and knows no G1 katakana): decoded here by dicomcs.
	txt := newText(c.text)
	if v, ok := txt.Values(tag.InstitutionName); ok && txt.CharacterSetErr == nil {
		meta.InstitutionName = ""
		if len(v) > 0 {
			meta.InstitutionName = v[0] // LO, VM 1: the first value, as getString reads
		}
	}
	return ds, meta, pixels, nil
}
