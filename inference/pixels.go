package inference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/inference/codec"
)

// pixelsOut receives a decoded frame: either the full float32 plane, or,
// when lazy allows it (grey, at most 16 bits allocated, so the pipeline is
// one lookup table), the stored words and the table (see storedPlane).
type pixelsOut struct {
	lazy   bool
	n      int
	pix    []float32
	stored *storedPlane
}

// plane allocates and returns the full plane.
func (o *pixelsOut) plane() []float32 {
	if o.pix == nil {
		o.pix = make([]float32, o.n)
	}
	return o.pix
}

// keep stores the words when lazy and the layout allows it, and reports
// whether it did.
func (o *pixelsOut) keep(m *Meta, pipe *grayPipeline, data []byte, stride, bpp int, bigEndian bool) bool {
	if !o.lazy || m.SamplesPerPixel != 1 || pipe.table == nil {
		return false
	}
	o.stored = newStoredPlane(data, stride, m.Columns, m.Rows, bpp, bigEndian, pipe.table)
	return o.stored != nil
}

// decodePixels decodes the first frame of the Pixel Data: into the 0..1
// plane, or with lazy into a storedPlane where it can. inPlace, when not
// nil, is the native Pixel Data value read in place from the file (the
// data set was parsed with the pixel data skipped).
func decodePixels(ds *dicom.Dataset, m *Meta, lazy bool, inPlace []byte) (*pixelsOut, string, error) {
	elems := ds.Elements
	pe := findElement(elems, tag.PixelData)
	if pe == nil {
		if findElement(elems, tagFloatPixelData) != nil || findElement(elems, tagDoubleFloatPixelDat) != nil {
			return nil, "", fmt.Errorf("%w: float pixel data", ErrUnsupportedImage)
		}
		return nil, "", fmt.Errorf("%w: the data set has no Pixel Data (7FE0,0010) (modality %q)", ErrNoPixelData, m.Modality)
	}
	if pe.Value == nil || pe.Value.ValueType() != dicom.PixelData {
		return nil, "", fmt.Errorf("%w: Pixel Data has an unexpected value type", ErrMalformed)
	}
	info, ok := pe.Value.GetValue().(dicom.PixelDataInfo)
	if !ok {
		return nil, "", fmt.Errorf("%w: Pixel Data has an unexpected value type", ErrMalformed)
	}
	if err := checkGeometry(m); err != nil {
		return nil, "", err
	}
	pipe, err := newGrayPipeline(elems, m)
	if err != nil {
		return nil, "", err
	}
	out := &pixelsOut{lazy: lazy, n: m.Rows * m.Columns}
	if info.IsEncapsulated {
		if err := decodeEncapsulated(info, m, pipe, out); err != nil {
			return nil, "", err
		}
		return out, pipe.voiName, nil
	}
	var raw []byte
	switch {
	case info.IntentionallySkipped && inPlace != nil:
		raw = inPlace
	case info.IntentionallyUnprocessed:
		raw = info.UnprocessedValueData
	default:
		return nil, "", fmt.Errorf("%w: native Pixel Data was not kept raw", ErrMalformed)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if m.TransferSyntaxUID == TSExplicitVRBigEndian {
		bo = binary.BigEndian
		if m.BitsAllocated == 8 && pe.RawValueRepresentation == "OW" {
			// 8-bit samples in OW big endian are byte-swapped in pairs.
			sw := make([]byte, len(raw))
			for i := 0; i+1 < len(raw); i += 2 {
				sw[i], sw[i+1] = raw[i+1], raw[i]
			}
			raw = sw
		}
	}
	if err := decodeNative(raw, bo, m, pipe, out); err != nil {
		return nil, "", err
	}
	return out, pipe.voiName, nil
}

func checkGeometry(m *Meta) error {
	if m.Rows <= 0 || m.Columns <= 0 {
		return fmt.Errorf("%w: Rows %d × Columns %d", ErrMalformed, m.Rows, m.Columns)
	}
	if m.Rows > MaxImageEdge || m.Columns > MaxImageEdge {
		return fmt.Errorf("%w: image of %d × %d pixels is larger than the %d × %d limit", ErrUnsupportedImage, m.Columns, m.Rows, MaxImageEdge, MaxImageEdge)
	}
	if m.Rows*m.Columns > MaxPixels {
		return fmt.Errorf("%w: %d × %d pixels exceeds the %d-pixel limit", ErrMalformed, m.Columns, m.Rows, MaxPixels)
	}
	if m.NumberOfFrames < 1 {
		return fmt.Errorf("%w: Number of Frames %d", ErrMalformed, m.NumberOfFrames)
	}
	switch m.SamplesPerPixel {
	case 1:
		switch m.PhotometricInterpretation {
		case "MONOCHROME1", "MONOCHROME2":
		case "":
			return fmt.Errorf("%w: no Photometric Interpretation", ErrMalformed)
		default:
			return fmt.Errorf("%w: photometric interpretation %s", ErrUnsupportedImage, m.PhotometricInterpretation)
		}
	case 3:
		switch m.PhotometricInterpretation {
		case "RGB", "YBR_FULL", "YBR_FULL_422":
		default:
			return fmt.Errorf("%w: photometric interpretation %s with 3 samples per pixel", ErrUnsupportedImage, m.PhotometricInterpretation)
		}
	default:
		return fmt.Errorf("%w: %d samples per pixel", ErrUnsupportedImage, m.SamplesPerPixel)
	}
	switch m.BitsAllocated {
	case 8, 16, 32:
	case 1:
		return fmt.Errorf("%w: 1-bit pixel data", ErrUnsupportedImage)
	default:
		return fmt.Errorf("%w: Bits Allocated %d", ErrMalformed, m.BitsAllocated)
	}
	if m.BitsStored < 1 || m.BitsStored > m.BitsAllocated {
		return fmt.Errorf("%w: Bits Stored %d with Bits Allocated %d", ErrMalformed, m.BitsStored, m.BitsAllocated)
	}
	if m.HighBit >= m.BitsAllocated || m.HighBit+1 < m.BitsStored {
		return fmt.Errorf("%w: High Bit %d with Bits Stored %d, Bits Allocated %d", ErrMalformed, m.HighBit, m.BitsStored, m.BitsAllocated)
	}
	if m.PixelRepresentation != 0 && m.PixelRepresentation != 1 {
		return fmt.Errorf("%w: Pixel Representation %d", ErrMalformed, m.PixelRepresentation)
	}
	return nil
}

// decodeNative maps the first frame of native pixel data.
func decodeNative(raw []byte, bo binary.ByteOrder, m *Meta, pipe *grayPipeline, po *pixelsOut) error {
	n := m.Rows * m.Columns
	bpp := m.BitsAllocated / 8
	frame := n * m.SamplesPerPixel * bpp
	if len(raw) < frame {
		return fmt.Errorf("%w: Pixel Data holds %d bytes, one %d×%d frame of %d-bit samples needs %d",
			ErrMalformed, len(raw), m.Columns, m.Rows, m.BitsAllocated, frame)
	}
	raw = raw[:frame]
	if po.keep(m, pipe, raw, m.Columns*bpp, bpp, bo == binary.BigEndian) {
		return nil
	}
	out := po.plane()
	word := func(i int) uint32 {
		switch bpp {
		case 1:
			return uint32(raw[i])
		case 2:
			return uint32(bo.Uint16(raw[2*i:]))
		default:
			return bo.Uint32(raw[4*i:])
		}
	}
	if m.SamplesPerPixel == 3 {
		return colourToGray(m, pipe, out, word)
	}
	if tab := pipe.table; tab != nil {
		switch bpp {
		case 1:
			for i, b := range raw {
				out[i] = tab[b]
			}
		case 2:
			if bo == binary.LittleEndian {
				for i := range out {
					out[i] = tab[uint16(raw[2*i])|uint16(raw[2*i+1])<<8]
				}
			} else {
				for i := range out {
					out[i] = tab[uint16(raw[2*i+1])|uint16(raw[2*i])<<8]
				}
			}
		}
		return nil
	}
	for i := range out {
		out[i] = pipe.value(word(i))
	}
	return nil
}

// colourToGray takes the luma of RGB/YBR pixels, scaled by the stored range.
// Colour images get no Modality LUT or VOI (PS3.3 applies those to grey only).
func colourToGray(m *Meta, pipe *grayPipeline, out []float32, word func(int) uint32) error {
	n := len(out)
	maxv := float64(uint64(1)<<uint(m.BitsStored) - 1)
	sample := func(p, c int) float64 {
		if m.PlanarConfiguration == 1 {
			return float64(word(c*n+p) & pipe.mask)
		}
		return float64(word(3*p+c) & pipe.mask)
	}
	for p := range out {
		var y float64
		if m.PhotometricInterpretation == "RGB" {
			y = 0.299*sample(p, 0) + 0.587*sample(p, 1) + 0.114*sample(p, 2)
		} else {
			y = sample(p, 0)
		}
		out[p] = float32(clamp01(y / maxv))
	}
	return nil
}

// decodeEncapsulated decodes the first frame of encapsulated pixel data.
// JPEG Baseline goes through libjpeg-turbo (image/jpeg in a build without
// cgo; both validated against the reference sets); every other compressed syntax through package codec, whose output
// has the layout of native little-endian Pixel Data and so takes the same
// path as an uncompressed file from there on.
func decodeEncapsulated(info dicom.PixelDataInfo, m *Meta, pipe *grayPipeline, po *pixelsOut) error {
	ts := m.TransferSyntaxUID
	data := firstFrameBytes(info, m.NumberOfFrames)
	if len(data) == 0 {
		return fmt.Errorf("%w: encapsulated Pixel Data has no fragments", ErrMalformed)
	}
	if ts != TSJPEGBaseline {
		if !codec.Supported(ts) {
			return unsupportedTS(ts, "")
		}
		px, err := codec.Decode(codec.Frame{TransferSyntaxUID: ts, Data: data, Rows: m.Rows, Columns: m.Columns,
			SamplesPerPixel: m.SamplesPerPixel, BitsAllocated: m.BitsAllocated, BitsStored: m.BitsStored,
			PixelRepresentation: m.PixelRepresentation, PhotometricInterpretation: m.PhotometricInterpretation})
		if err != nil {
			if errors.Is(err, codec.ErrUnsupported) {
				return unsupportedTS(ts, err.Error())
			}
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		native := *m
		native.BitsAllocated = px.BitsAllocated
		native.PlanarConfiguration = 0 // codecs return interleaved samples
		return decodeNative(px.Data, binary.LittleEndian, &native, pipe, po)
	}
	img, err := decodeJPEG8(data, m)
	if err != nil {
		if errors.Is(err, codec.ErrUnsupported) {
			detail := err.Error()
			if strings.Contains(detail, "precision") {
				detail = "12-bit JPEG (the JPEG Baseline decoder reads 8-bit only)"
			}
			return unsupportedTS(ts, detail)
		}
		return fmt.Errorf("%w: JPEG frame: %v", ErrMalformed, err)
	}
	b := img.Bounds()
	if b.Dx() != m.Columns || b.Dy() != m.Rows {
		return fmt.Errorf("%w: JPEG frame is %d×%d, header says %d×%d", ErrMalformed, b.Dx(), b.Dy(), m.Columns, m.Rows)
	}
	// The JPEG stream carries 8-bit samples: map them through an 8-bit table
	// (BitsStored above 8 cannot describe an 8-bit JPEG).
	if m.BitsStored > 8 {
		return unsupportedTS(ts, fmt.Sprintf("Bits Stored %d needs a 12-bit JPEG decoder", m.BitsStored))
	}
	tab := pipe.table
	switch g := img.(type) {
	case *image.Gray:
		if po.keep(m, pipe, g.Pix[g.PixOffset(b.Min.X, b.Min.Y):], g.Stride, 1, false) {
			return nil
		}
	case *image.YCbCr:
		if po.keep(m, pipe, g.Y[g.YOffset(b.Min.X, b.Min.Y):], g.YStride, 1, false) {
			return nil
		}
	}
	out := po.plane()
	var grayAt func(x, y int) uint8
	switch g := img.(type) {
	case *image.Gray:
		grayAt = func(x, y int) uint8 { return g.Pix[(y-b.Min.Y)*g.Stride+(x-b.Min.X)] }
	case *image.YCbCr:
		// YBR_FULL(_422): the luma plane is the grey value.
		grayAt = func(x, y int) uint8 { return g.Y[g.YOffset(x, y)] }
	default:
		grayAt = func(x, y int) uint8 { return color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y }
	}
	colour := m.SamplesPerPixel == 3
	w := m.Columns
	for y := 0; y < m.Rows; y++ {
		row := out[y*w : (y+1)*w]
		for x := range row {
			v := grayAt(b.Min.X+x, b.Min.Y+y)
			switch {
			case colour:
				row[x] = float32(v) / 255
			case tab != nil:
				row[x] = tab[v]
			default:
				row[x] = pipe.value(uint32(v))
			}
		}
	}
	return nil
}

// decodeJPEG8 decodes an 8-bit JPEG frame of m's size: with libjpeg-turbo
// to grey (its luminance for a colour stream, which is what the grey
// pipeline reads) when this build has it, else with image/jpeg. An error
// wraps codec.ErrUnsupported for a stream neither reads (12-bit).
func decodeJPEG8(data []byte, m *Meta) (image.Image, error) {
	if codec.TurboJPEG {
		pix, err := codec.DecodeJPEGGray(data, m.Columns, m.Rows)
		if err != nil {
			return nil, err
		}
		return &image.Gray{Pix: pix, Stride: m.Columns, Rect: image.Rect(0, 0, m.Columns, m.Rows)}, nil
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	var ue jpeg.UnsupportedError
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("%w: %v", codec.ErrUnsupported, ue)
	}
	return img, err
}

// firstFrameBytes assembles the first frame's JPEG stream. The library hands
// over one entry per fragment: a single-frame image is all of them; in a
// multi-frame image the first frame ends with the fragment that ends with
// the EOI marker.
func firstFrameBytes(info dicom.PixelDataInfo, frames int) []byte {
	var frags [][]byte
	for _, f := range info.Frames {
		if f != nil {
			frags = append(frags, f.EncapsulatedData.Data)
		}
	}
	if len(frags) == 0 {
		return nil
	}
	if frames <= 1 || len(frags) == frames {
		if frames <= 1 {
			return bytes.Join(frags, nil)
		}
		return frags[0]
	}
	var buf []byte
	for _, f := range frags {
		buf = append(buf, f...)
		t := bytes.TrimRight(f, "\x00")
		if len(t) >= 2 && t[len(t)-2] == 0xFF && t[len(t)-1] == 0xD9 {
			break
		}
	}
	return buf
}

// grayPipeline maps one stored pixel word to 0..1: Bits Stored handling,
// Modality LUT, VOI, MONOCHROME1 inversion. For Bits Allocated ≤ 16 it is
// tabulated over every possible word, so decoding is one table look-up per
// pixel.
//
// Bits Stored: the word is shifted right by High Bit + 1 − Bits Stored. Signed
// data (Pixel Representation 1) is masked to Bits Stored and sign-extended
// from its top bit. Unsigned data is masked only when the data set declares
// an overlay inside the pixel cells (60xx,0102 Overlay Bit Position with no
// separate 60xx,3000 Overlay Data), the one legitimate use of the unused
// bits. Otherwise a word above 2^BitsStored − 1 is an encoder's overflow of
// its declared range (seen in testdata/kermany224-val-dicom, where 12-bit
// files hold value×16+40 up to 4120): its value is kept, which is what the
// engines' reference pipeline (pydicom) did; masking would turn those white
// pixels black and moves the k224 engine by up to 0.049 on such files.
type grayPipeline struct {
	shift    uint
	mask     uint32
	maskHigh bool // clear bits above Bits Stored in unsigned data (embedded overlay)
	bits     int
	signed   bool
	slope    float64
	icept    float64
	modLUT   *lut
	voi      func(x float64) float64
	voiName  string
	invert   bool
	table    []float32
}

// lut is a DICOM lookup table (Modality or VOI LUT Sequence item).
type lut struct {
	first int   // first stored value mapped
	bits  int   // bits per entry
	data  []int // entries
}

func (l *lut) lookup(x float64) float64 {
	i := int(math.Floor(x)) - l.first
	if i < 0 {
		i = 0
	}
	if i >= len(l.data) {
		i = len(l.data) - 1
	}
	return float64(l.data[i])
}

func readLUT(item []*dicom.Element, signedInput bool, what string) (*lut, error) {
	desc := getInts(findElement(item, tagLUTDescriptor), false)
	if len(desc) != 3 {
		return nil, fmt.Errorf("%w: %s: LUT Descriptor has %d values, want 3", ErrMalformed, what, len(desc))
	}
	n, first, bits := desc[0], desc[1], desc[2]
	if n == 0 {
		n = 65536
	}
	if n < 0 {
		n += 65536
	}
	if signedInput && first > 32767 {
		first -= 65536
	}
	if bits < 1 || bits > 16 {
		return nil, fmt.Errorf("%w: %s: LUT Descriptor bits per entry %d", ErrMalformed, what, bits)
	}
	data := getInts(findElement(item, tagLUTData), false)
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: %s: no LUT Data", ErrMalformed, what)
	}
	if len(data) < n {
		return nil, fmt.Errorf("%w: %s: LUT Data has %d entries, descriptor says %d", ErrMalformed, what, len(data), n)
	}
	return &lut{first: first, bits: bits, data: data[:n]}, nil
}

func newGrayPipeline(elems []*dicom.Element, m *Meta) (*grayPipeline, error) {
	p := &grayPipeline{
		shift:  uint(m.HighBit + 1 - m.BitsStored),
		mask:   uint32(uint64(1)<<uint(m.BitsStored) - 1),
		bits:   m.BitsStored,
		signed: m.PixelRepresentation == 1,
		slope:  m.RescaleSlope,
		icept:  m.RescaleIntercept,
		invert: m.PhotometricInterpretation == "MONOCHROME1",
	}
	p.maskHigh = hasEmbeddedOverlay(elems) && m.BitsStored < m.BitsAllocated
	if p.slope == 0 {
		p.slope = 1 // an absent or zero slope would erase the image
	}
	// Range of the stored values, then of the Modality LUT's output.
	lo, hi := 0.0, float64(uint64(1)<<uint(m.BitsStored)-1)
	if p.signed {
		lo, hi = -float64(uint64(1)<<uint(m.BitsStored-1)), float64(uint64(1)<<uint(m.BitsStored-1)-1)
	}
	if item, ok := firstItem(elems, tag.ModalityLUTSequence); ok {
		l, err := readLUT(item, p.signed, "Modality LUT Sequence")
		if err != nil {
			return nil, err
		}
		p.modLUT = l
		lo, hi = 0, float64(uint64(1)<<uint(l.bits)-1)
	} else {
		lo, hi = lo*p.slope+p.icept, hi*p.slope+p.icept
		if lo > hi {
			lo, hi = hi, lo
		}
	}
	voiSet := false
	if m.HasWindow {
		c, w := m.WindowCenter, m.WindowWidth
		switch m.VOILUTFunction {
		case "", "LINEAR":
			if w >= 1 {
				p.voi = linearWindow(c, w)
				p.voiName = fmt.Sprintf("window %g/%g (LINEAR)", c, w)
				voiSet = true
			}
		case "LINEAR_EXACT":
			if w > 0 {
				p.voi = func(x float64) float64 { return clamp01((x-c)/w + 0.5) }
				p.voiName = fmt.Sprintf("window %g/%g (LINEAR_EXACT)", c, w)
				voiSet = true
			}
		case "SIGMOID":
			if w > 0 {
				p.voi = func(x float64) float64 { return 1 / (1 + math.Exp(-4*(x-c)/w)) }
				p.voiName = fmt.Sprintf("window %g/%g (SIGMOID)", c, w)
				voiSet = true
			}
		default:
			return nil, fmt.Errorf("%w: VOI LUT Function %q", ErrUnsupportedImage, m.VOILUTFunction)
		}
	}
	if !voiSet {
		if item, ok := firstItem(elems, tag.VOILUTSequence); ok {
			l, err := readLUT(item, p.signed || lo < 0, "VOI LUT Sequence")
			if err != nil {
				return nil, err
			}
			top := float64(uint64(1)<<uint(l.bits) - 1)
			p.voi = func(x float64) float64 { return clamp01(l.lookup(x) / top) }
			p.voiName = "VOI LUT Sequence"
			voiSet = true
		}
	}
	if !voiSet {
		span := hi - lo
		p.voi = func(x float64) float64 {
			if span <= 0 {
				return 0
			}
			return clamp01((x - lo) / span)
		}
		p.voiName = fmt.Sprintf("stored range %g..%g", lo, hi)
	}
	if m.BitsAllocated <= 16 {
		p.table = make([]float32, 1<<uint(m.BitsAllocated))
		for w := range p.table {
			p.table[w] = p.value(uint32(w))
		}
	}
	return p, nil
}

// hasEmbeddedOverlay reports an overlay plane stored in the unused bits of
// the pixel cells (retired in DICOM 2004 but still found in old files).
func hasEmbeddedOverlay(elems []*dicom.Element) bool {
	for _, e := range elems {
		g := e.Tag.Group
		if g < 0x6000 || g > 0x601E || g%2 != 0 || e.Tag.Element != 0x0102 {
			continue
		}
		pos, ok, err := getInt(elems, e.Tag)
		if err != nil || !ok || pos == 0 {
			continue
		}
		if findElement(elems, tag.Tag{Group: g, Element: 0x3000}) == nil {
			return true
		}
	}
	return false
}

// linearWindow is the PS3.3 C.11.2.1.2.1 linear function with output 0..1.
func linearWindow(c, w float64) func(float64) float64 {
	if w == 1 {
		return func(x float64) float64 {
			if x <= c-0.5 {
				return 0
			}
			return 1
		}
	}
	lo := c - 0.5 - (w-1)/2
	hi := c - 0.5 + (w-1)/2
	return func(x float64) float64 {
		switch {
		case x <= lo:
			return 0
		case x > hi:
			return 1
		}
		return (x-(c-0.5))/(w-1) + 0.5
	}
}

// value runs the pipeline on one stored word.
func (p *grayPipeline) value(word uint32) float32 {
	var v int64
	if p.signed || p.maskHigh {
		v = int64((word >> p.shift) & p.mask)
	} else {
		v = int64(word >> p.shift)
	}
	if p.signed && v&(int64(1)<<uint(p.bits-1)) != 0 {
		v -= int64(1) << uint(p.bits)
	}
	var x float64
	if p.modLUT != nil {
		x = p.modLUT.lookup(float64(v))
	} else {
		x = float64(v)*p.slope + p.icept
	}
	y := p.voi(x)
	if p.invert {
		y = 1 - y
	}
	return float32(y)
}

func clamp01(x float64) float64 {
	if x < 0 {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}
