package dimse

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/radgate/radgate/dicomcs"
)

// Tag is a data element tag, group in the high 16 bits.
type Tag uint32

// Group and Element split a tag.
func (t Tag) Group() uint16   { return uint16(t >> 16) }
func (t Tag) Element() uint16 { return uint16(t) }

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Attributes of Query/Retrieve identifiers (PS3.4 C.6.2).
const (
	TagSpecificCharacterSet  Tag = 0x00080005
	TagSOPClassUID           Tag = 0x00080016
	TagSOPInstanceUID        Tag = 0x00080018
	TagStudyDate             Tag = 0x00080020
	TagAccessionNumber       Tag = 0x00080050
	TagQueryRetrieveLevel    Tag = 0x00080052
	TagRetrieveAETitle       Tag = 0x00080054
	TagModality              Tag = 0x00080060
	TagInstitutionName       Tag = 0x00080080
	TagPatientID             Tag = 0x00100020
	TagBodyPartExamined      Tag = 0x00180015
	TagViewPosition          Tag = 0x00185101
	TagStudyInstanceUID      Tag = 0x0020000D
	TagSeriesInstanceUID     Tag = 0x0020000E
	TagStudyID               Tag = 0x00200010
	TagSeriesNumber          Tag = 0x00200011
	TagInstanceNumber        Tag = 0x00200013
	TagNumberOfStudyInstance Tag = 0x00201208
)

// knownVR is the VR of the attributes read and written here, for Implicit
// VR Little Endian (where the VR is not on the wire). Others decode as UN.
var knownVR = map[Tag]string{
	TagSpecificCharacterSet:  "CS",
	TagSOPClassUID:           "UI",
	TagSOPInstanceUID:        "UI",
	TagStudyDate:             "DA",
	TagAccessionNumber:       "SH",
	TagQueryRetrieveLevel:    "CS",
	TagRetrieveAETitle:       "AE",
	TagModality:              "CS",
	TagInstitutionName:       "LO",
	TagPatientID:             "LO",
	TagBodyPartExamined:      "CS",
	TagViewPosition:          "CS",
	TagStudyInstanceUID:      "UI",
	TagSeriesInstanceUID:     "UI",
	TagStudyID:               "SH",
	TagSeriesNumber:          "IS",
	TagInstanceNumber:        "IS",
	TagNumberOfStudyInstance: "IS",
}

// Element is one data element: its tag, VR and value as encoded (text
// values in the data set's Specific Character Set, as received).
type Element struct {
	Tag   Tag
	VR    string
	Value []byte
}

// Dataset is a data set of the kind Query/Retrieve identifiers are: a list
// of elements in ascending tag order. Sequences are kept as elements of VR
// SQ whose Value is their encoded items (Explicit or Implicit VR, as read),
// written back with a defined length.
type Dataset struct {
	Elements []Element
}

// Get returns the element with tag t.
func (d *Dataset) Get(t Tag) (Element, bool) {
	i, ok := slices.BinarySearchFunc(d.Elements, t, func(e Element, t Tag) int { return cmpTag(e.Tag, t) })
	if !ok {
		return Element{}, false
	}
	return d.Elements[i], true
}

// String returns a text element's value with its padding (spaces, NULs)
// removed; "" when absent. Multiple values stay joined by backslashes.
func (d *Dataset) String(t Tag) string {
	e, ok := d.Get(t)
	if !ok {
		return ""
	}
	return strings.Trim(string(e.Value), " \x00")
}

// Text returns a text element's value decoded by the data set's Specific
// Character Set (dicomcs: ISO 2022 with JIS X 0208/0201, UTF-8, Latin-1…),
// padding removed; "" when absent. An unknown character set decodes its
// ASCII and marks every other byte U+FFFD.
func (d *Dataset) Text(t Tag) string {
	e, ok := d.Get(t)
	if !ok {
		return ""
	}
	cs, _ := dicomcs.Parse(d.String(TagSpecificCharacterSet)) // an unknown set still decodes its ASCII
	return strings.Trim(cs.DecodeString(e.Value, e.VR), " \x00")
}

// Set puts a text element (a matching key, or a return key when value is
// ""), padded to even length as its VR wants. The VR is the known one for
// t, else vr.
func (d *Dataset) Set(t Tag, vr, value string) {
	if k, ok := knownVR[t]; ok {
		vr = k
	}
	b := []byte(value)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	e := Element{Tag: t, VR: vr, Value: b}
	i, ok := slices.BinarySearchFunc(d.Elements, t, func(e Element, t Tag) int { return cmpTag(e.Tag, t) })
	if ok {
		d.Elements[i] = e
		return
	}
	d.Elements = slices.Insert(d.Elements, i, e)
}

func cmpTag(a, b Tag) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NewIdentifier returns a Query/Retrieve identifier at level (STUDY,
// SERIES, IMAGE) with the given keys (tag → value; "" asks for the
// attribute back).
func NewIdentifier(level string, keys map[Tag]string) *Dataset {
	d := &Dataset{}
	d.Set(TagQueryRetrieveLevel, "CS", level)
	for t, v := range keys {
		d.Set(t, "", v)
	}
	return d
}

// Encode returns the data set in Explicit (explicit true) or Implicit VR
// Little Endian. Elements are written in ascending order.
func (d *Dataset) Encode(explicit bool) []byte {
	els := slices.Clone(d.Elements)
	slices.SortStableFunc(els, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) })
	var b []byte
	for _, e := range els {
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Group())
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Element())
		vr := e.VR
		if len(vr) != 2 {
			vr = "UN"
		}
		switch {
		case !explicit:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Value)))
		case longVRs[vr]:
			b = append(b, vr...)
			b = append(b, 0, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Value)))
		default:
			b = append(b, vr...)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Value)))
		}
		b = append(b, e.Value...)
	}
	return b
}

// maxSequenceDepth bounds nested sequences in a decoded data set.
const maxSequenceDepth = 16

// DecodeDataset parses a data set in Explicit (explicit true) or Implicit
// VR Little Endian: every element inside the buffer, tags ascending,
// sequences (defined or undefined length) kept whole as SQ elements. A C-FIND
// response's identifier is a few hundred bytes; this is not a reader of
// images (no pixel data fragments).
func DecodeDataset(b []byte, explicit bool) (*Dataset, error) {
	d := &Dataset{}
	prev := Tag(0)
	for off := 0; off < len(b); {
		e, n, err := decodeElement(b[off:], explicit, 0)
		if err != nil {
			return nil, fmt.Errorf("dimse: data set byte %d: %w", off, err)
		}
		if len(d.Elements) > 0 && e.Tag <= prev {
			return nil, fmt.Errorf("dimse: data set element %s out of order or repeated", e.Tag)
		}
		if e.Tag.Group() == 0xFFFE {
			return nil, fmt.Errorf("dimse: data set element %s not allowed in a data set", e.Tag)
		}
		prev = e.Tag
		d.Elements = append(d.Elements, e)
		off += n
	}
	return d, nil
}

// decodeElement reads one element at the start of b and returns it and the
// bytes it took.
func decodeElement(b []byte, explicit bool, depth int) (Element, int, error) {
	if len(b) < 8 {
		return Element{}, 0, fmt.Errorf("element header cut (%d bytes left)", len(b))
	}
	t := Tag(uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:])))
	var vr string
	var length uint32
	hdr := 8
	if explicit && t.Group() != 0xFFFE {
		vr = string(b[4:6])
		if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
			return Element{}, 0, fmt.Errorf("element %s has VR bytes %q", t, b[4:6])
		}
		if longVRs[vr] {
			if len(b) < 12 {
				return Element{}, 0, fmt.Errorf("element %s header cut", t)
			}
			length, hdr = binary.LittleEndian.Uint32(b[8:]), 12
		} else {
			length = uint32(binary.LittleEndian.Uint16(b[6:]))
		}
	} else {
		length = binary.LittleEndian.Uint32(b[4:])
		vr = knownVR[t]
		if vr == "" {
			vr = "UN"
			if length == undefinedLength {
				vr = "SQ"
			}
		}
	}
	rest := b[hdr:]
	if length == undefinedLength {
		if vr != "SQ" && vr != "UN" {
			return Element{}, 0, fmt.Errorf("element %s of VR %s has an undefined length", t, vr)
		}
		n, err := skipItems(rest, explicit, depth+1)
		if err != nil {
			return Element{}, 0, fmt.Errorf("sequence %s: %w", t, err)
		}
		// The value keeps the items, not the sequence delimiter: Encode
		// writes it with a defined length.
		return Element{Tag: t, VR: "SQ", Value: rest[: n-8 : n-8]}, hdr + n, nil
	}
	if uint64(length) > uint64(len(rest)) {
		return Element{}, 0, fmt.Errorf("element %s length %d beyond the %d bytes left", t, length, len(rest))
	}
	if vr == "SQ" {
		if _, err := skipItemsIn(rest[:length], explicit, depth+1); err != nil {
			return Element{}, 0, fmt.Errorf("sequence %s: %w", t, err)
		}
	}
	return Element{Tag: t, VR: vr, Value: rest[:length:length]}, hdr + int(length), nil
}

// The item and delimitation tags (tagItem, tagItemDelimitation,
// tagSequenceDelimiter) and undefinedLength are dataset.go's.

// skipItems reads the items of an undefined-length sequence up to and
// including its delimiter and returns the bytes they take.
func skipItems(b []byte, explicit bool, depth int) (int, error) {
	if depth > maxSequenceDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d", maxSequenceDepth)
	}
	for off := 0; ; {
		if len(b)-off < 8 {
			return 0, fmt.Errorf("sequence not delimited")
		}
		t := Tag(uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:])))
		length := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		switch t {
		case tagSequenceDelimiter:
			return off, nil
		case tagItem:
			n, err := skipItem(b[off:], length, explicit, depth)
			if err != nil {
				return 0, err
			}
			off += n
		default:
			return 0, fmt.Errorf("element %s where an item was expected", t)
		}
	}
}

// skipItemsIn checks the items of a defined-length sequence value.
func skipItemsIn(b []byte, explicit bool, depth int) (int, error) {
	if depth > maxSequenceDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d", maxSequenceDepth)
	}
	off := 0
	for off < len(b) {
		if len(b)-off < 8 {
			return 0, fmt.Errorf("item header cut")
		}
		t := Tag(uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:])))
		length := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		if t != tagItem {
			return 0, fmt.Errorf("element %s where an item was expected", t)
		}
		n, err := skipItem(b[off:], length, explicit, depth)
		if err != nil {
			return 0, err
		}
		off += n
	}
	return off, nil
}

// skipItem reads one item's content (length bytes, or up to its item
// delimiter when undefined) and returns the bytes it takes.
func skipItem(b []byte, length uint32, explicit bool, depth int) (int, error) {
	if length != undefinedLength {
		if uint64(length) > uint64(len(b)) {
			return 0, fmt.Errorf("item length %d beyond the %d bytes left", length, len(b))
		}
		for off := 0; off < int(length); {
			_, n, err := decodeElement(b[off:length], explicit, depth)
			if err != nil {
				return 0, err
			}
			off += n
		}
		return int(length), nil
	}
	for off := 0; ; {
		if len(b)-off >= 8 && Tag(uint32(binary.LittleEndian.Uint16(b[off:]))<<16|uint32(binary.LittleEndian.Uint16(b[off+2:]))) == tagItemDelimitation {
			return off + 8, nil
		}
		if off >= len(b) {
			return 0, fmt.Errorf("item not delimited")
		}
		_, n, err := decodeElement(b[off:], explicit, depth)
		if err != nil {
			return 0, err
		}
		off += n
	}
}
