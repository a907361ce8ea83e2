package demo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/radgate/radgate/inference"
)

// Element is a value to set at the top level of a data set (or in the file
// meta information, group 0002).
type Element struct {
	Tag   uint32 // (group << 16) | element
	VR    string
	Value string
}

// SetElements returns the Part 10 file with the elements set: replaced
// where present, inserted in tag order where not. The file meta group
// length is recomputed; the group length elements (gggg,0000) of the data
// set's groups touched are left out (they are retired). offs holds where
// each element's value starts in the result. The data set must be little
// endian, implicit or explicit VR (not deflated).
func SetElements(file []byte, set []Element) (out []byte, offs map[uint32]int, err error) {
	if !inference.IsDICOM(file) {
		return nil, nil, errors.New("not a DICOM Part 10 file")
	}
	set = slices.Clone(set)
	slices.SortFunc(set, func(a, b Element) int { return int(int64(a.Tag) - int64(b.Tag)) })
	offs = map[uint32]int{}
	touched := map[uint16]bool{}
	for _, e := range set {
		touched[uint16(e.Tag>>16)] = true
	}
	le := binary.LittleEndian

	// The file meta information: always explicit VR little endian.
	var meta []byte
	p, ts := 132, ""
	next := 0 // the next element of set to write
	emit := func(dst []byte, e Element, implicit bool) []byte {
		v := []byte(e.Value)
		if len(v)%2 == 1 {
			v = append(v, map[bool]byte{true: 0, false: ' '}[e.VR == "UI"])
		}
		dst = le.AppendUint16(dst, uint16(e.Tag>>16))
		dst = le.AppendUint16(dst, uint16(e.Tag))
		if implicit {
			dst = le.AppendUint32(dst, uint32(len(v)))
		} else {
			dst = append(dst, e.VR...)
			dst = le.AppendUint16(dst, uint16(len(v)))
		}
		offs[e.Tag] = len(dst)
		return append(dst, v...)
	}
	for p+8 <= len(file) && le.Uint16(file[p:]) == 0x0002 {
		tag := uint32(le.Uint16(file[p:]))<<16 | uint32(le.Uint16(file[p+2:]))
		hdr, n := headerLen(file[p:], false)
		if hdr == 0 || p+hdr+n > len(file) {
			return nil, nil, fmt.Errorf("file meta element (%04X,%04X) runs past the end of the file", tag>>16, tag&0xFFFF)
		}
		for next < len(set) && set[next].Tag < tag && set[next].Tag>>16 == 0x0002 {
			meta = emit(meta, set[next], false)
			next++
		}
		switch {
		case tag == 0x00020000: // recomputed below
		case next < len(set) && set[next].Tag == tag:
			meta = emit(meta, set[next], false)
			next++
		default:
			if tag == 0x00020010 {
				ts = strings.TrimRight(string(file[p+hdr:p+hdr+n]), "\x00 ")
			}
			meta = append(meta, file[p:p+hdr+n]...)
		}
		p += hdr + n
	}
	for next < len(set) && set[next].Tag>>16 == 0x0002 {
		meta = emit(meta, set[next], false)
		next++
	}
	var implicit bool
	switch ts {
	case inference.TSImplicitVRLittleEndian:
		implicit = true
	case inference.TSExplicitVRBigEndian, inference.TSDeflatedExplicitVRLittleEndian, "":
		return nil, nil, fmt.Errorf("transfer syntax %q: the bench clones little endian, non-deflated files only", ts)
	}
	out = append(out, file[:132]...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = le.AppendUint32(out, uint32(len(meta)))
	for tag, off := range offs {
		offs[tag] = off + len(out)
	}
	out = append(out, meta...)

	// The data set, up to the last element to set; the rest is copied.
	for p < len(file) && next < len(set) {
		tag := uint32(le.Uint16(file[p:]))<<16 | uint32(le.Uint16(file[p+2:]))
		hdr, n := headerLen(file[p:], implicit)
		if hdr == 0 {
			return nil, nil, fmt.Errorf("element (%04X,%04X): truncated header", tag>>16, tag&0xFFFF)
		}
		end := p + hdr + n
		if n == undefinedLength {
			if end, err = skipUndefined(file, p+hdr, implicit, 0); err != nil {
				return nil, nil, fmt.Errorf("element (%04X,%04X): %w", tag>>16, tag&0xFFFF, err)
			}
		} else if end > len(file) {
			return nil, nil, fmt.Errorf("element (%04X,%04X) runs past the end of the file", tag>>16, tag&0xFFFF)
		}
		for next < len(set) && set[next].Tag < tag {
			out = emit(out, set[next], implicit)
			next++
		}
		switch {
		case tag&0xFFFF == 0 && touched[uint16(tag>>16)]:
		case next < len(set) && set[next].Tag == tag:
			out = emit(out, set[next], implicit)
			next++
		default:
			out = append(out, file[p:end]...)
		}
		p = end
	}
	for ; next < len(set); next++ {
		out = emit(out, set[next], implicit)
	}
	return append(out, file[p:]...), offs, nil
}

const undefinedLength = 0xFFFFFFFF

// headerLen is the length of the element header at b and its value length
// (undefinedLength for an undefined one); 0, 0 when b is too short.
func headerLen(b []byte, implicit bool) (hdr, n int) {
	le := binary.LittleEndian
	if len(b) < 8 {
		return 0, 0
	}
	if implicit || le.Uint16(b) == 0xFFFE {
		return 8, int(le.Uint32(b[4:]))
	}
	switch string(b[4:6]) {
	case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT", "UC", "UR", "SV", "UV":
		if len(b) < 12 {
			return 0, 0
		}
		return 12, int(le.Uint32(b[8:]))
	}
	return 8, int(le.Uint16(b[6:]))
}

// skipUndefined returns where the undefined-length value starting at p
// ends: after its Sequence Delimitation Item, past every item (each with a
// length, or walked up to its Item Delimitation Item).
func skipUndefined(b []byte, p int, implicit bool, depth int) (int, error) {
	if depth > 32 {
		return 0, errors.New("sequences nested too deep")
	}
	le := binary.LittleEndian
	for {
		if p+8 > len(b) {
			return 0, errors.New("undefined length without its delimiter")
		}
		g, e, n := le.Uint16(b[p:]), le.Uint16(b[p+2:]), int(le.Uint32(b[p+4:]))
		p += 8
		switch {
		case g == 0xFFFE && e == 0xE0DD:
			return p, nil
		case g == 0xFFFE && e == 0xE000 && n != undefinedLength:
			p += n
		case g == 0xFFFE && e == 0xE000:
			for { // the item's elements, up to its delimiter
				if p+8 > len(b) {
					return 0, errors.New("item without its delimiter")
				}
				if le.Uint16(b[p:]) == 0xFFFE && le.Uint16(b[p+2:]) == 0xE00D {
					p += 8
					break
				}
				hdr, n := headerLen(b[p:], implicit)
				if hdr == 0 {
					return 0, errors.New("truncated element in an item")
				}
				if n == undefinedLength {
					var err error
					if p, err = skipUndefined(b, p+hdr, implicit, depth+1); err != nil {
						return 0, err
					}
					continue
				}
				p += hdr + n
			}
		default:
			return 0, fmt.Errorf("(%04X,%04X) where an item was expected", g, e)
		}
		if p > len(b) {
			return 0, errors.New("an item runs past the end of the file")
		}
	}
}
