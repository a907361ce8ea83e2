package inference

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The DICOM library allocates every value at its declared length before
// reading it, so one corrupt length (0xFFFFFFF0, say) costs gigabytes and
// minutes; and with no Transfer Syntax UID it guesses by parsing with each
// syntax in turn. checkStructure walks the file first, allocating only for a
// deflated data set (inflated within limits, see inflate.go) or to cut out
// large private elements, and rejects what would trip it: a file meta
// group without a Transfer Syntax UID, and any element, item or fragment
// whose length runs past the end of its container.

// maxNesting bounds sequence nesting.
const maxNesting = 32

// leanThreshold: top-level private elements of a native data set are cut
// out before the DICOM library reads it (which would copy their values)
// once they hold this many bytes together.
const leanThreshold = 64 << 10

// checked is what checkStructure found.
type checked struct {
	// ts is the file's Transfer Syntax UID.
	ts string
	// file is what the DICOM library is to parse: data, or a copy without
	// the top-level private elements (for a deflated file, also inflated,
	// its file meta then declaring libTS, Explicit VR Little Endian).
	file  []byte
	libTS string
	// native is the value of a top-level defined-length Pixel Data
	// element: a slice of file, or nil.
	native []byte
	// text holds the raw values of the top-level string elements the
	// caller asked for (slices of the data walked).
	text map[tag.Tag]rawText
}

// rawText is a string element's value field as stored, with its VR.
type rawText struct {
	vr  string
	raw []byte
}

// checkStructure validates the file meta information and the lengths of
// every element of the data set, inflating a deflated one within o's
// limits, and keeps the raw values of the top-level string elements keep
// accepts (none when nil). See checked.
func checkStructure(data []byte, o DecodeOptions, keep func(tag.Tag) bool) (checked, error) {
	ts, start, err := readFileMeta(data)
	if err != nil {
		return checked{}, err
	}
	c := checked{ts: ts, file: data, libTS: ts}
	ds := data[start:]
	var bo binary.ByteOrder = binary.LittleEndian
	implicit := false
	switch ts {
	case TSImplicitVRLittleEndian:
		implicit = true
	case TSExplicitVRBigEndian:
		bo = binary.BigEndian
	case TSDeflatedExplicitVRLittleEndian:
		if ds, err = inflateDataSet(ds, o); err != nil {
			return checked{}, err
		}
		c.libTS = TSExplicitVRLittleEndian
		c.file = append(rewriteFileMeta(data, start, c.libTS), ds...)
		ds = c.file[len(c.file)-len(ds):]
	}
	var private []span
	w := walker{bo: bo, implicit: implicit, native: &c.native, private: &private}
	if keep != nil {
		c.text = map[tag.Tag]rawText{}
		w.keep, w.text = keep, c.text
	}
	if _, err := w.elements(ds, 0, false); err != nil {
		return checked{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	total := 0
	for _, sp := range private {
		total += sp.end - sp.start
	}
	if total >= leanThreshold {
		lean := make([]byte, 0, start+len(ds)-total)
		lean = append(lean, c.file[:len(c.file)-len(ds)]...)
		p := 0
		for _, sp := range private {
			lean = append(lean, ds[p:sp.start]...)
			p = sp.end
		}
		lean = append(lean, ds[p:]...)
		ds = lean[len(lean)-(len(ds)-total):]
		c.file, c.native = lean, nil
		w := walker{bo: bo, implicit: implicit, native: &c.native}
		if _, err := w.elements(ds, 0, false); err != nil {
			return checked{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return c, nil
}

// rewriteFileMeta returns the preamble and file meta information of data
// (which ends at start) with the Transfer Syntax UID set to ts and the
// group length recomputed.
func rewriteFileMeta(data []byte, start int, ts string) []byte {
	le := binary.LittleEndian
	var elems []byte
	for p := 132; p < start; {
		elem := le.Uint16(data[p+2:])
		vr := string(data[p+4 : p+6])
		var vl, hdr int
		if longVR(vr) {
			vl, hdr = int(le.Uint32(data[p+8:])), 12
		} else {
			vl, hdr = int(le.Uint16(data[p+6:])), 8
		}
		switch elem {
		case 0x0000: // recomputed below
		case 0x0010:
			v := []byte(ts)
			if len(v)%2 == 1 {
				v = append(v, 0)
			}
			elems = append(elems, 0x02, 0x00, 0x10, 0x00, 'U', 'I')
			elems = le.AppendUint16(elems, uint16(len(v)))
			elems = append(elems, v...)
		default:
			elems = append(elems, data[p:p+hdr+vl]...)
		}
		p += hdr + vl
	}
	out := make([]byte, 0, 132+12+len(elems))
	out = append(out, data[:132]...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = le.AppendUint32(out, uint32(len(elems)))
	return append(out, elems...)
}

// readFileMeta reads group 0002 (always explicit VR little endian) and
// returns the Transfer Syntax UID and where the data set starts.
func readFileMeta(data []byte) (ts string, start int, err error) {
	le := binary.LittleEndian
	p := 132
	for p+8 <= len(data) && le.Uint16(data[p:]) == 0x0002 {
		elem := le.Uint16(data[p+2:])
		vr := string(data[p+4 : p+6])
		var vl, hdr int
		if longVR(vr) {
			if p+12 > len(data) {
				return "", 0, fmt.Errorf("%w: truncated file meta information", ErrMalformed)
			}
			vl, hdr = int(le.Uint32(data[p+8:])), 12
		} else {
			vl, hdr = int(le.Uint16(data[p+6:])), 8
		}
		if vl < 0 || p+hdr+vl > len(data) || vl == 0xFFFFFFFF {
			return "", 0, fmt.Errorf("%w: file meta element (0002,%04X) length %d runs past the end of the file", ErrMalformed, elem, vl)
		}
		if elem == 0x0010 {
			ts = strings.TrimRight(strings.TrimSpace(string(data[p+hdr:p+hdr+vl])), "\x00 ")
		}
		p += hdr + vl
	}
	if p == 132 {
		return "", 0, fmt.Errorf("%w: no file meta information (group 0002) after the preamble", ErrNotDICOM)
	}
	if ts == "" {
		return "", 0, fmt.Errorf("%w: file meta information has no Transfer Syntax UID (0002,0010)", ErrMalformed)
	}
	return ts, p, nil
}

// stringVR reports the VRs whose values are character strings.
func stringVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT", "UC", "UR", "SV", "UV":
		return true
	}
	return false
}

type walker struct {
	bo       binary.ByteOrder
	implicit bool
	native   *[]byte // set to the first top-level defined-length Pixel Data value
	private  *[]span // when set, gets the top-level private elements
	// keep selects the top-level string elements whose values go to text.
	keep func(tag.Tag) bool
	text map[tag.Tag]rawText
}

// span is a byte range [start, end) of a data set.
type span struct{ start, end int }

const undefinedLength = 0xFFFFFFFF

// elements walks the elements in b. With untilDelim, it stops after an Item
// Delimitation Item and returns the bytes consumed.
func (w walker) elements(b []byte, depth int, untilDelim bool) (int, error) {
	if depth > maxNesting {
		return 0, fmt.Errorf("sequences nested deeper than %d", maxNesting)
	}
	p := 0
	for p < len(b) {
		if len(b)-p < 8 {
			return 0, fmt.Errorf("truncated element header at byte %d", p)
		}
		g, e := w.bo.Uint16(b[p:]), w.bo.Uint16(b[p+2:])
		from := p
		record := g%2 == 1 && depth == 0 && !untilDelim && w.private != nil
		t := tag.Tag{Group: g, Element: e}
		if g == 0xFFFE {
			if e == 0xE00D && untilDelim && w.bo.Uint32(b[p+4:]) == 0 {
				return p + 8, nil
			}
			return 0, fmt.Errorf("unexpected delimiter %s at byte %d", t, p)
		}
		var vr string
		var vl uint32
		hdr := 8
		if w.implicit {
			vl = w.bo.Uint32(b[p+4:])
			vr = "UN"
			if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
				vr = info.VRs[0]
			}
		} else {
			vr = string(b[p+4 : p+6])
			if longVR(vr) {
				if len(b)-p < 12 {
					return 0, fmt.Errorf("truncated element header %s", t)
				}
				vl, hdr = w.bo.Uint32(b[p+8:]), 12
			} else {
				vl = uint32(w.bo.Uint16(b[p+6:]))
			}
		}
		p += hdr
		rest := b[p:]
		if vl == undefinedLength {
			var n int
			var err error
			switch {
			case t == tag.PixelData:
				n, err = w.fragments(rest, t)
			case vr == "SQ" || vr == "UN" || tag.GetVRKind(t, vr) == tag.VRSequence:
				n, err = w.items(rest, depth+1, t)
			default:
				return 0, fmt.Errorf("element %s (VR %s) has an undefined length", t, vr)
			}
			if err != nil {
				return 0, err
			}
			p += n
			if record {
				*w.private = append(*w.private, span{from, p})
			}
			continue
		}
		if uint64(vl) > uint64(len(rest)) {
			return 0, fmt.Errorf("element %s length %d runs past the end of the data (%d bytes left)", t, vl, len(rest))
		}
		if depth == 0 && !untilDelim && t == tag.PixelData && w.native != nil && *w.native == nil {
			*w.native = rest[:vl:vl]
		}
		if depth == 0 && !untilDelim && w.keep != nil && stringVR(vr) && w.keep(t) {
			w.text[t] = rawText{vr, rest[:vl:vl]}
		}
		if vr == "SQ" || (w.implicit && tag.GetVRKind(t, vr) == tag.VRSequence) {
			if _, err := w.items(rest[:vl], depth+1, t); err != nil {
				return 0, err
			}
		}
		p += int(vl)
		if record {
			*w.private = append(*w.private, span{from, p})
		}
	}
	if untilDelim {
		return 0, fmt.Errorf("item without its delimitation item")
	}
	return p, nil
}

// items walks sequence items; with a defined-length sequence b is exactly
// its value, otherwise it stops after the Sequence Delimitation Item.
func (w walker) items(b []byte, depth int, seq tag.Tag) (int, error) {
	p := 0
	for p < len(b) {
		if len(b)-p < 8 {
			return 0, fmt.Errorf("sequence %s: truncated item header", seq)
		}
		g, e, vl := w.bo.Uint16(b[p:]), w.bo.Uint16(b[p+2:]), w.bo.Uint32(b[p+4:])
		p += 8
		switch {
		case g == 0xFFFE && e == 0xE0DD && vl == 0:
			return p, nil
		case g != 0xFFFE || e != 0xE000:
			return 0, fmt.Errorf("sequence %s: expected an item, found (%04X,%04X)", seq, g, e)
		}
		if vl == undefinedLength {
			n, err := w.elements(b[p:], depth, true)
			if err != nil {
				return 0, fmt.Errorf("sequence %s: %w", seq, err)
			}
			p += n
			continue
		}
		if uint64(vl) > uint64(len(b)-p) {
			return 0, fmt.Errorf("sequence %s: item length %d runs past the end of the data (%d bytes left)", seq, vl, len(b)-p)
		}
		if _, err := w.elements(b[p:p+int(vl)], depth, false); err != nil {
			return 0, fmt.Errorf("sequence %s: %w", seq, err)
		}
		p += int(vl)
	}
	return p, nil
}

// fragments walks encapsulated Pixel Data up to its Sequence Delimitation Item.
func (w walker) fragments(b []byte, t tag.Tag) (int, error) {
	p := 0
	for {
		if len(b)-p < 8 {
			return 0, fmt.Errorf("encapsulated %s: truncated before its sequence delimiter", t)
		}
		g, e, vl := w.bo.Uint16(b[p:]), w.bo.Uint16(b[p+2:]), w.bo.Uint32(b[p+4:])
		p += 8
		switch {
		case g == 0xFFFE && e == 0xE0DD && vl == 0:
			return p, nil
		case g != 0xFFFE || e != 0xE000:
			return 0, fmt.Errorf("encapsulated %s: expected a fragment item, found (%04X,%04X)", t, g, e)
		case vl == undefinedLength || uint64(vl) > uint64(len(b)-p):
			return 0, fmt.Errorf("encapsulated %s: fragment length %d runs past the end of the data", t, vl)
		}
		p += int(vl)
	}
}
