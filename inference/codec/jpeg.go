package codec

// A pure-Go decoder for the JPEG (ITU T.81 | ISO/IEC 10918-1) processes that
// DICOM uses: sequential DCT with Huffman coding at 8 and 12 bits (processes
// 1, 2 and 4: JPEG Baseline and JPEG Extended) and lossless with Huffman
// coding (process 14, predictors 1–7, point transform), with restart
// intervals and any number of scans. Go's image/jpeg reads 8-bit DCT only;
// nothing in Debian offers 12-bit or lossless JPEG through a C API short of
// GDCM's C++, and these two processes are small: a Huffman decoder, an
// integer IDCT (the IJG "islow" one, so 8- and 12-bit output is bit-exact
// with libjpeg and DCMTK) and the seven predictors.
//
// Progressive 8-bit streams (not allowed in DICOM's baseline and extended
// syntaxes but written by some devices) are handed to image/jpeg. Arithmetic
// coding and hierarchical processes are refused as unsupported.

import (
	"bytes"
	"image"
	"image/jpeg"
)

const (
	mSOF0  = 0xC0 // baseline DCT
	mSOF1  = 0xC1 // extended sequential DCT, Huffman
	mSOF2  = 0xC2 // progressive DCT, Huffman
	mSOF3  = 0xC3 // lossless, Huffman
	mDHT   = 0xC4
	mSOF5  = 0xC5
	mSOF15 = 0xCF
	mDAC   = 0xCC
	mRST0  = 0xD0
	mRST7  = 0xD7
	mSOI   = 0xD8
	mEOI   = 0xD9
	mSOS   = 0xDA
	mDQT   = 0xDB
	mDNL   = 0xDC
	mDRI   = 0xDD
	mAPP0  = 0xE0
	mAPP14 = 0xEE
)

type jpegComponent struct {
	id     byte
	h, v   int // sampling factors
	tq     int // quantisation table
	width  int // samples in this component: ceil(X × h / hmax)
	height int // ceil(Y × v / vmax)
	done   bool

	// DCT: decoded samples, padded to whole MCUs (stride = MCUs per line ×
	// h × 8).
	plane  []uint16
	stride int
	dcPred int32
	// Scan state.
	td, ta int // DC (or lossless) and AC Huffman tables
}

type jpegDecoder struct {
	f    *Frame
	data []byte
	pos  int

	sof        byte
	precision  int
	width      int
	height     int
	comps      []jpegComponent
	hmax, vmax int
	mcusX      int // MCUs per line in an interleaved scan
	mcusY      int

	huff     [2][4]huffTable // [class][id]; class 0 = DC / lossless, 1 = AC
	quant    [4][64]int32    // in zig-zag order
	quantSet [4]bool
	restart  int // restart interval in MCUs, 0 = none

	jfif           bool
	adobe          bool
	adobeTransform byte

	br  bitReader
	out *Pixels
}

// decodeJPEG decodes a JPEG Baseline, Extended or Lossless frame.
func decodeJPEG(f *Frame) (*Pixels, error) {
	d := &jpegDecoder{f: f, data: f.Data}
	return d.decode()
}

func (d *jpegDecoder) decode() (*Pixels, error) {
	if len(d.data) < 4 || d.data[0] != 0xFF || d.data[1] != mSOI {
		return nil, corrupt("no JPEG SOI marker at the start of the frame")
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			if d.out != nil && d.allDone() {
				return d.finish() // complete image without EOI: accept, as libjpeg does
			}
			return nil, err
		}
		switch {
		case m == mEOI:
			if d.out == nil {
				return nil, corrupt("EOI before any image data")
			}
			if !d.allDone() {
				return nil, corrupt("EOI before every component was decoded")
			}
			return d.finish()
		case m == mSOF0 || m == mSOF1 || m == mSOF2 || m == mSOF3:
			if d.sof != 0 {
				return nil, corrupt("more than one SOF marker")
			}
			if m == mSOF2 {
				return d.decodeProgressive()
			}
			if err := d.readSOF(m); err != nil {
				return nil, err
			}
		case m >= mSOF5 && m <= mSOF15 && m != mDHT && m != mDAC:
			return nil, unsupported("JPEG process of SOF marker 0x%02X (hierarchical or arithmetic coding)", m)
		case m == mDAC:
			return nil, unsupported("JPEG arithmetic coding")
		case m == mDHT:
			if err := d.readDHT(); err != nil {
				return nil, err
			}
		case m == mDQT:
			if err := d.readDQT(); err != nil {
				return nil, err
			}
		case m == mDRI:
			if err := d.readDRI(); err != nil {
				return nil, err
			}
		case m == mSOS:
			if d.sof == 0 {
				return nil, corrupt("SOS before SOF")
			}
			if err := d.readScan(); err != nil {
				return nil, err
			}
		case m == mDNL:
			return nil, unsupported("JPEG DNL marker (height defined after the first scan)")
		case m >= mRST0 && m <= mRST7:
			// A stray restart marker outside a scan: skip it, as libjpeg does.
		case m == mSOI:
			return nil, corrupt("second SOI marker")
		default:
			if err := d.readAppOrSkip(m); err != nil {
				return nil, err
			}
		}
	}
}

// nextMarker finds the next marker at or after d.pos, skipping fill bytes
// and, like libjpeg, stray bytes between segments.
func (d *jpegDecoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, corrupt("JPEG stream ends without EOI")
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

// segment returns the payload of the marker segment at d.pos and moves past it.
func (d *jpegDecoder) segment(name string) ([]byte, error) {
	if len(d.data)-d.pos < 2 {
		return nil, corrupt("%s segment truncated", name)
	}
	n := int(d.data[d.pos])<<8 | int(d.data[d.pos+1])
	if n < 2 || n > len(d.data)-d.pos {
		return nil, corrupt("%s segment length %d, %d bytes left", name, n, len(d.data)-d.pos)
	}
	p := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return p, nil
}

func (d *jpegDecoder) readAppOrSkip(m byte) error {
	p, err := d.segment("marker")
	if err != nil {
		return err
	}
	switch {
	case m == mAPP0 && len(p) >= 5 && string(p[:5]) == "JFIF\x00":
		d.jfif = true
	case m == mAPP14 && len(p) >= 12 && string(p[:5]) == "Adobe":
		d.adobe = true
		d.adobeTransform = p[11]
	}
	return nil
}

func (d *jpegDecoder) readSOF(m byte) error {
	p, err := d.segment("SOF")
	if err != nil {
		return err
	}
	if len(p) < 6 {
		return corrupt("SOF segment of %d bytes", len(p))
	}
	d.sof = m
	d.precision = int(p[0])
	d.height = int(p[1])<<8 | int(p[2])
	d.width = int(p[3])<<8 | int(p[4])
	nf := int(p[5])
	switch m {
	case mSOF0:
		if d.precision != 8 {
			return corrupt("baseline JPEG with %d-bit precision", d.precision)
		}
	case mSOF1:
		if d.precision != 8 && d.precision != 12 {
			return corrupt("extended JPEG with %d-bit precision (8 or 12 allowed)", d.precision)
		}
	case mSOF3:
		if d.precision < 2 || d.precision > 16 {
			return corrupt("lossless JPEG with %d-bit precision (2…16 allowed)", d.precision)
		}
	}
	if d.height == 0 {
		return unsupported("JPEG with height 0 (set by a DNL marker)")
	}
	if d.width != d.f.Columns || d.height != d.f.Rows {
		return corrupt("JPEG frame is %d × %d, the data set says %d × %d", d.width, d.height, d.f.Columns, d.f.Rows)
	}
	if nf != d.f.SamplesPerPixel {
		return corrupt("JPEG frame has %d components, Samples per Pixel is %d", nf, d.f.SamplesPerPixel)
	}
	if d.precision > d.f.BitsAllocated {
		return corrupt("JPEG precision %d bits does not fit Bits Allocated %d", d.precision, d.f.BitsAllocated)
	}
	if len(p) != 6+3*nf {
		return corrupt("SOF segment of %d bytes for %d components", len(p), nf)
	}
	d.comps = make([]jpegComponent, nf)
	d.hmax, d.vmax = 1, 1
	for i := range d.comps {
		c := &d.comps[i]
		c.id = p[6+3*i]
		c.h, c.v = int(p[7+3*i]>>4), int(p[7+3*i]&15)
		c.tq = int(p[8+3*i])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return corrupt("component %d sampling factors %d×%d", i, c.h, c.v)
		}
		if c.tq > 3 {
			return corrupt("component %d quantisation table %d", i, c.tq)
		}
		for j := 0; j < i; j++ {
			if d.comps[j].id == c.id {
				return corrupt("two components with identifier %d", c.id)
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.width = (d.width*c.h + d.hmax - 1) / d.hmax
		c.height = (d.height*c.v + d.vmax - 1) / d.vmax
	}
	if m == mSOF3 {
		if d.hmax != 1 || d.vmax != 1 {
			return unsupported("lossless JPEG with subsampled components")
		}
		d.mcusX, d.mcusY = d.width, d.height
	} else {
		d.mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
		d.mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	}
	d.out = newPixels(d.f, d.precision)
	if m != mSOF3 {
		// Planes are padded to whole MCUs: each has at most
		// (X + 32) × (Y + 32) samples, and X × Y × Nf is bounded by the
		// output size already checked against MaxBytes. A single
		// component needs none: its blocks go straight to the output.
		if nf == 1 {
			return nil
		}
		for i := range d.comps {
			c := &d.comps[i]
			c.stride = d.mcusX * c.h * 8
		}
		for i := range d.comps {
			c := &d.comps[i]
			c.plane = make([]uint16, c.stride*d.mcusY*c.v*8)
		}
	}
	return nil
}

func (d *jpegDecoder) readDHT() error {
	p, err := d.segment("DHT")
	if err != nil {
		return err
	}
	for len(p) > 0 {
		if len(p) < 17 {
			return corrupt("DHT segment truncated")
		}
		class, id := int(p[0]>>4), int(p[0]&15)
		if class > 1 || id > 3 {
			return corrupt("DHT table class %d identifier %d", class, id)
		}
		var counts [16]int
		n := 0
		for i := range counts {
			counts[i] = int(p[1+i])
			n += counts[i]
		}
		if n == 0 || n > 256 || len(p) < 17+n {
			return corrupt("DHT table with %d codes in %d bytes", n, len(p)-17)
		}
		if err := d.huff[class][id].build(counts, p[17:17+n]); err != nil {
			return err
		}
		p = p[17+n:]
	}
	return nil
}

// zigzag maps the zig-zag index of a coefficient to its natural (row-major)
// index.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

func (d *jpegDecoder) readDQT() error {
	p, err := d.segment("DQT")
	if err != nil {
		return err
	}
	for len(p) > 0 {
		pq, tq := int(p[0]>>4), int(p[0]&15)
		if pq > 1 || tq > 3 {
			return corrupt("DQT precision %d table %d", pq, tq)
		}
		p = p[1:]
		if len(p) < 64*(pq+1) {
			return corrupt("DQT table truncated")
		}
		for i := 0; i < 64; i++ {
			if pq == 0 {
				d.quant[tq][i] = int32(p[i])
			} else {
				d.quant[tq][i] = int32(p[2*i])<<8 | int32(p[2*i+1])
			}
		}
		d.quantSet[tq] = true
		p = p[64*(pq+1):]
	}
	return nil
}

func (d *jpegDecoder) readDRI() error {
	p, err := d.segment("DRI")
	if err != nil {
		return err
	}
	if len(p) != 2 {
		return corrupt("DRI segment of %d bytes", len(p))
	}
	d.restart = int(p[0])<<8 | int(p[1])
	return nil
}

func (d *jpegDecoder) allDone() bool {
	for i := range d.comps {
		if !d.comps[i].done {
			return false
		}
	}
	return len(d.comps) > 0
}

// readScan reads an SOS header and decodes its entropy-coded data.
func (d *jpegDecoder) readScan() error {
	p, err := d.segment("SOS")
	if err != nil {
		return err
	}
	if len(p) < 1 {
		return corrupt("empty SOS segment")
	}
	ns := int(p[0])
	if ns < 1 || ns > 4 || len(p) != 4+2*ns {
		return corrupt("SOS segment of %d bytes for %d components", len(p), ns)
	}
	scan := make([]*jpegComponent, ns)
	for i := 0; i < ns; i++ {
		id := p[1+2*i]
		var c *jpegComponent
		for j := range d.comps {
			if d.comps[j].id == id {
				c = &d.comps[j]
			}
		}
		if c == nil {
			return corrupt("scan names component %d, which the frame does not have", id)
		}
		for _, o := range scan[:i] {
			if o == c {
				return corrupt("scan names component %d twice", id)
			}
		}
		if c.done {
			return corrupt("component %d coded in two scans", id)
		}
		c.td, c.ta = int(p[2+2*i]>>4), int(p[2+2*i]&15)
		if c.td > 3 || c.ta > 3 {
			return corrupt("component %d Huffman tables %d/%d", id, c.td, c.ta)
		}
		scan[i] = c
	}
	ss, se := int(p[1+2*ns]), int(p[2+2*ns])
	ah, al := int(p[3+2*ns]>>4), int(p[3+2*ns]&15)
	d.br = bitReader{data: d.data, pos: d.pos}
	if d.sof == mSOF3 {
		err = d.decodeLosslessScan(scan, ss, al)
	} else {
		if ss != 0 || se != 63 || ah != 0 || al != 0 {
			return corrupt("sequential DCT scan with spectral selection %d…%d, approximation %d/%d", ss, se, ah, al)
		}
		err = d.decodeDCTScan(scan)
	}
	if err != nil {
		return err
	}
	for _, c := range scan {
		c.done = true
	}
	// Continue after the entropy-coded data, at the next marker.
	d.pos = d.br.markerPos()
	return nil
}

// finish converts the decoded planes into the output (DCT) and returns it.
func (d *jpegDecoder) finish() (*Pixels, error) {
	if d.sof != mSOF3 {
		d.dctOutput()
	}
	return d.out, nil
}

// decodeProgressive hands an 8-bit progressive stream to image/jpeg.
func (d *jpegDecoder) decodeProgressive() (*Pixels, error) {
	p, err := d.segment("SOF")
	if err != nil {
		return nil, err
	}
	if len(p) < 6 {
		return nil, corrupt("SOF segment of %d bytes", len(p))
	}
	if p[0] != 8 {
		return nil, unsupported("progressive JPEG with %d-bit precision", p[0])
	}
	h, w, nf := int(p[1])<<8|int(p[2]), int(p[3])<<8|int(p[4]), int(p[5])
	if w != d.f.Columns || h != d.f.Rows || nf != d.f.SamplesPerPixel {
		return nil, corrupt("JPEG frame is %d × %d with %d components, the data set says %d × %d with %d",
			w, h, nf, d.f.Columns, d.f.Rows, d.f.SamplesPerPixel)
	}
	img, err := jpeg.Decode(bytes.NewReader(d.data))
	if err != nil {
		return nil, corrupt("progressive JPEG: %v", err)
	}
	px := newPixels(d.f, 8)
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return nil, corrupt("progressive JPEG decoded to %d × %d", b.Dx(), b.Dy())
	}
	switch m := img.(type) {
	case *image.Gray:
		if nf != 1 {
			return nil, corrupt("progressive JPEG decoded to grey, %d components expected", nf)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				px.put(y*w+x, uint32(m.Pix[y*m.Stride+x]))
			}
		}
	case *image.YCbCr:
		if nf != 3 {
			return nil, corrupt("progressive JPEG decoded to colour, %d components expected", nf)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(x+b.Min.X, y+b.Min.Y), m.COffset(x+b.Min.X, y+b.Min.Y)
				r, g, bb := ycbcrToRGB(int32(m.Y[yi]), int32(m.Cb[ci]), int32(m.Cr[ci]), 8)
				i := 3 * (y*w + x)
				px.put(i, uint32(r))
				px.put(i+1, uint32(g))
				px.put(i+2, uint32(bb))
			}
		}
		px.PhotometricInterpretation = "RGB"
	case *image.RGBA: // three components that are not YCbCr (Adobe transform 0)
		if nf != 3 {
			return nil, corrupt("progressive JPEG decoded to colour, %d components expected", nf)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := m.Pix[y*m.Stride+4*x:]
				i := 3 * (y*w + x)
				px.put(i, uint32(p[0]))
				px.put(i+1, uint32(p[1]))
				px.put(i+2, uint32(p[2]))
			}
		}
	default:
		return nil, unsupported("progressive JPEG decoded to %T", img)
	}
	return px, nil
}
