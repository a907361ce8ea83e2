package codec

import (
	"bytes"
	"encoding/binary"
)

// j2kHeader is what Decode checks of a JPEG 2000 codestream before handing
// it to OpenJPEG: the SIZ segment (ISO/IEC 15444-1 A.5.1) and the multiple
// component transform flag of the main header's COD segment (A.6.1).
type j2kHeader struct {
	width, height int
	comps         int
	prec          int  // precision of the first component
	signed        bool // signedness of the first component
	tiles         int
	mct           bool
}

// j2kSignature starts a JP2 file (the JPEG 2000 signature box).
var j2kSignature = []byte{0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}

// j2kCodestream returns the J2K codestream of a frame: the frame itself, or
// the contents of the first contiguous codestream box of a JP2 file (which
// DICOM does not allow but some encoders write).
func j2kCodestream(b []byte) ([]byte, error) {
	if len(b) >= 4 && b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51 {
		return b, nil
	}
	if !bytes.HasPrefix(b, j2kSignature) {
		return nil, corrupt("JPEG 2000: neither a J2K codestream (SOC, SIZ) nor a JP2 file")
	}
	for p := 0; p+8 <= len(b); {
		n := uint64(binary.BigEndian.Uint32(b[p:]))
		typ := string(b[p+4 : p+8])
		hdr := uint64(8)
		switch n {
		case 0: // to the end of the file
			n = uint64(len(b) - p)
		case 1: // 64-bit length
			if p+16 > len(b) {
				return nil, corrupt("JPEG 2000: JP2 box %q truncated", typ)
			}
			n, hdr = binary.BigEndian.Uint64(b[p+8:]), 16
		}
		if n < hdr || n > uint64(len(b)-p) {
			return nil, corrupt("JPEG 2000: JP2 box %q of %d bytes, %d left", typ, n, len(b)-p)
		}
		if typ == "jp2c" {
			cs := b[p+int(hdr) : p+int(n)]
			if len(cs) < 4 || cs[0] != 0xFF || cs[1] != 0x4F || cs[2] != 0xFF || cs[3] != 0x51 {
				return nil, corrupt("JPEG 2000: JP2 codestream box does not start with SOC, SIZ")
			}
			return cs, nil
		}
		p += int(n)
	}
	return nil, corrupt("JPEG 2000: JP2 file without a codestream box")
}

// parseJ2KHeader reads the SIZ segment and the main header's COD segment.
func parseJ2KHeader(cs []byte) (*j2kHeader, error) {
	// SOC, SIZ marker, Lsiz, then the fixed part of SIZ.
	if len(cs) < 4+2+36 {
		return nil, corrupt("JPEG 2000: codestream of %d bytes has no complete SIZ segment", len(cs))
	}
	u16 := func(p int) int { return int(binary.BigEndian.Uint16(cs[p:])) }
	u32 := func(p int) uint64 { return uint64(binary.BigEndian.Uint32(cs[p:])) }
	lsiz := u16(4)
	xsiz, ysiz, xo, yo := u32(8), u32(12), u32(16), u32(20)
	xt, yt, xto, yto := u32(24), u32(28), u32(32), u32(36)
	csiz := u16(40)
	if csiz < 1 || csiz > 16384 || lsiz != 38+3*csiz || 4+lsiz > len(cs) {
		return nil, corrupt("JPEG 2000: SIZ segment of %d bytes for %d components (%d bytes left)", lsiz, csiz, len(cs)-4)
	}
	if xsiz <= xo || ysiz <= yo || xt == 0 || yt == 0 || xto > xo || yto > yo || xto+xt <= xo || yto+yt <= yo {
		return nil, corrupt("JPEG 2000: SIZ image area %d,%d–%d,%d with tiles %d × %d at %d,%d is invalid", xo, yo, xsiz, ysiz, xt, yt, xto, yto)
	}
	h := &j2kHeader{
		width:  int(xsiz - xo),
		height: int(ysiz - yo),
		comps:  csiz,
	}
	tx := (xsiz - xto + xt - 1) / xt
	ty := (ysiz - yto + yt - 1) / yt
	if tx*ty > 65535 {
		return nil, corrupt("JPEG 2000: %d × %d tiles (at most 65535 allowed)", tx, ty)
	}
	h.tiles = int(tx * ty)
	for c := 0; c < csiz; c++ {
		ssiz, xr, yr := cs[42+3*c], cs[43+3*c], cs[44+3*c]
		prec, signed := int(ssiz&0x7F)+1, ssiz&0x80 != 0
		if prec > 38 {
			return nil, corrupt("JPEG 2000: component %d precision %d bits", c, prec)
		}
		if xr != 1 || yr != 1 {
			return nil, unsupported("JPEG 2000 component %d subsampled %d × %d", c, xr, yr)
		}
		if c == 0 {
			h.prec, h.signed = prec, signed
		} else if prec != h.prec || signed != h.signed {
			return nil, unsupported("JPEG 2000 components of different precision or signedness")
		}
	}
	// Main header markers up to the first tile-part (SOT): find COD.
	for p := 4 + lsiz; p+4 <= len(cs); {
		if cs[p] != 0xFF {
			return nil, corrupt("JPEG 2000: main header byte %d is not a marker", p)
		}
		m := cs[p+1]
		if m == 0x90 || m == 0xD9 { // SOT or EOC
			break
		}
		n := u16(p + 2)
		if n < 2 || p+2+n > len(cs) {
			return nil, corrupt("JPEG 2000: marker 0xFF%02X segment of %d bytes, %d left", m, n, len(cs)-p-2)
		}
		if m == 0x52 && n >= 7 { // COD: Lcod, Scod, SGcod = progression, layers (2), MCT
			h.mct = cs[p+8] != 0
		}
		p += 2 + n
	}
	return h, nil
}

// check compares the header with the frame's attributes.
func (h *j2kHeader) check(f *Frame) error {
	if h.width != f.Columns || h.height != f.Rows {
		return corrupt("JPEG 2000 image is %d × %d, the data set says %d × %d", h.width, h.height, f.Columns, f.Rows)
	}
	if h.comps != f.SamplesPerPixel {
		return corrupt("JPEG 2000 image has %d components, Samples per Pixel is %d", h.comps, f.SamplesPerPixel)
	}
	if h.prec > f.BitsAllocated {
		return corrupt("JPEG 2000 precision %d bits does not fit Bits Allocated %d", h.prec, f.BitsAllocated)
	}
	return nil
}
