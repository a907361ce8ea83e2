package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// FileMeta is what a C-STORE needs of a Part 10 file's meta information.
type FileMeta struct {
	SOPClassUID, SOPInstanceUID, TransferSyntaxUID string
}

// ErrNotPart10 is returned by SplitPart10 for bytes that are not a DICOM
// file with readable file meta information.
var ErrNotPart10 = errors.New("dimse: not a DICOM Part 10 file")

// SplitPart10 reads the file meta information of a Part 10 file (PS3.10:
// preamble, "DICM", group 0002 in Explicit VR Little Endian) and returns
// it with the data set that follows, as it is in the file (a slice of
// file) — what a C-STORE sends.
func SplitPart10(file []byte) (FileMeta, []byte, error) {
	if len(file) < 132 || string(file[128:132]) != "DICM" {
		return FileMeta{}, nil, fmt.Errorf("%w: no \"DICM\" after the 128-byte preamble", ErrNotPart10)
	}
	var m FileMeta
	b := file[132:]
	for len(b) >= 4 && binary.LittleEndian.Uint16(b) == 0x0002 {
		el, err := readExplicit(b, 0)
		if err != nil {
			return FileMeta{}, nil, fmt.Errorf("%w: file meta information: %w", ErrNotPart10, err)
		}
		v := strings.TrimRight(string(el.value), "\x00 ")
		switch el.tag & 0xFFFF {
		case 0x0002:
			m.SOPClassUID = v
		case 0x0003:
			m.SOPInstanceUID = v
		case 0x0010:
			m.TransferSyntaxUID = v
		}
		b = b[el.size:]
	}
	if m.SOPClassUID == "" || m.SOPInstanceUID == "" || m.TransferSyntaxUID == "" {
		return FileMeta{}, nil, fmt.Errorf("%w: the file meta information lacks the SOP class, SOP instance or transfer syntax UID", ErrNotPart10)
	}
	return m, b, nil
}

// explicitElement is one element of an Explicit VR Little Endian data set
// as read by readExplicit: tag (group<<16 | element), VR ("" for items and
// delimiters), value (nil for an undefined length) and how many bytes the
// element takes — all of it, up to its delimiter, for an undefined length.
type explicitElement struct {
	tag       uint32
	vr        string
	value     []byte
	undefined bool
	size      int
}

const undefinedLength = 0xFFFFFFFF

// Item and delimitation tags (PS3.5 7.5).
const (
	tagItem              = 0xFFFEE000
	tagItemDelimitation  = 0xFFFEE00D
	tagSequenceDelimiter = 0xFFFEE0DD
)

// longVRs are the VRs whose explicit length is 32 bits after two reserved
// bytes (PS3.5 Table 7.1-1).
var longVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

// readExplicit reads the element at the start of b. An element of
// undefined length (a sequence or an item) is read to its delimiter; its
// value is then what lies between. depth counts the undefined-length
// elements it lies in (at most maxNesting).
func readExplicit(b []byte, depth int) (explicitElement, error) {
	if len(b) < 8 {
		return explicitElement{}, fmt.Errorf("element header cut short (%d bytes left)", len(b))
	}
	e := explicitElement{tag: uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:]))}
	var length uint32
	head := 8
	if e.tag>>16 == 0xFFFE {
		length = binary.LittleEndian.Uint32(b[4:])
	} else {
		e.vr = string(b[4:6])
		if e.vr[0] < 'A' || e.vr[0] > 'Z' || e.vr[1] < 'A' || e.vr[1] > 'Z' {
			return explicitElement{}, fmt.Errorf("element (%04X,%04X): %q is not a VR (is the data set Explicit VR?)", e.tag>>16, e.tag&0xFFFF, e.vr)
		}
		if longVRs[e.vr] {
			if len(b) < 12 {
				return explicitElement{}, fmt.Errorf("element (%04X,%04X): header cut short", e.tag>>16, e.tag&0xFFFF)
			}
			length, head = binary.LittleEndian.Uint32(b[8:]), 12
		} else {
			length = uint32(binary.LittleEndian.Uint16(b[6:]))
		}
	}
	if length != undefinedLength {
		if uint64(length) > uint64(len(b)-head) {
			return explicitElement{}, fmt.Errorf("element (%04X,%04X): length %d beyond the %d bytes left", e.tag>>16, e.tag&0xFFFF, length, len(b)-head)
		}
		e.value, e.size = b[head:head+int(length)], head+int(length)
		return e, nil
	}
	// Undefined length: a sequence (its items up to the sequence
	// delimiter) or an item (its elements up to the item delimiter).
	var end uint32
	switch {
	case e.vr == "SQ":
		end = tagSequenceDelimiter
	case e.tag == tagItem:
		end = tagItemDelimitation
	default:
		return explicitElement{}, fmt.Errorf("element (%04X,%04X) %s of undefined length (encapsulated pixel data?) cannot be re-encoded", e.tag>>16, e.tag&0xFFFF, e.vr)
	}
	if depth >= maxNesting {
		return explicitElement{}, fmt.Errorf("element (%04X,%04X): undefined lengths nested deeper than %d", e.tag>>16, e.tag&0xFFFF, maxNesting)
	}
	rest := b[head:]
	for off := 0; ; {
		c, err := readExplicit(rest[off:], depth+1)
		if err != nil {
			return explicitElement{}, fmt.Errorf("inside (%04X,%04X): %w", e.tag>>16, e.tag&0xFFFF, err)
		}
		if c.tag == end {
			e.value, e.undefined, e.size = rest[:off], true, head+off+c.size
			return e, nil
		}
		off += c.size
	}
}

// ExplicitToImplicit re-encodes a data set from Explicit VR Little Endian
// to Implicit VR Little Endian (PS3.5 7.1.3, A.1): the same elements and
// values, without VRs, every length 32 bits; sequences and items, nested
// to any depth, are written with defined lengths. Data sets holding an
// element of undefined length other than a sequence or an item
// (encapsulated pixel data) have no Implicit VR encoding and are refused.
func ExplicitToImplicit(ds []byte) ([]byte, error) {
	out, err := appendImplicit(make([]byte, 0, len(ds)+len(ds)/16), ds, 0)
	if err != nil {
		return nil, fmt.Errorf("dimse: re-encoding as Implicit VR Little Endian: %w", err)
	}
	return out, nil
}

// maxNesting bounds the nesting of sequences and items in a data set
// re-encoded (derived objects nest a few levels).
const maxNesting = 32

func appendImplicit(out, ds []byte, depth int) ([]byte, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("sequences nested deeper than %d", maxNesting)
	}
	for len(ds) > 0 {
		e, err := readExplicit(ds, depth)
		if err != nil {
			return nil, err
		}
		ds = ds[e.size:]
		switch {
		case e.tag>>16 == 0xFFFE:
			return nil, fmt.Errorf("item or delimiter (%04X,%04X) outside a sequence", e.tag>>16, e.tag&0xFFFF)
		case e.vr == "SQ":
			var items []byte
			for v := e.value; len(v) > 0; {
				it, err := readExplicit(v, depth)
				if err != nil {
					return nil, err
				}
				if it.tag != tagItem {
					return nil, fmt.Errorf("(%04X,%04X) in sequence (%04X,%04X) where an item was expected", it.tag>>16, it.tag&0xFFFF, e.tag>>16, e.tag&0xFFFF)
				}
				v = v[it.size:]
				body, err := appendImplicit(nil, it.value, depth+1)
				if err != nil {
					return nil, err
				}
				items = appendImplicitHeader(items, tagItem, len(body))
				items = append(items, body...)
			}
			out = appendImplicitHeader(out, e.tag, len(items))
			out = append(out, items...)
		default:
			out = appendImplicitHeader(out, e.tag, len(e.value))
			out = append(out, e.value...)
		}
	}
	return out, nil
}

func appendImplicitHeader(b []byte, tag uint32, n int) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}
