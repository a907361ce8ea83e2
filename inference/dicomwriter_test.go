package inference

import (
	"bytes"
	"encoding/binary"
	"sort"
	"strings"
)

// A minimal DICOM Part 10 writer for synthetic test files: explicit or
// implicit VR little endian, elements sorted by tag, sequences and
// encapsulated pixel data with defined-length items.

type tElem struct {
	group, elem uint16
	vr          string
	value       []byte
	items       [][]tElem // SQ
	fragments   [][]byte  // encapsulated Pixel Data
}

func (e tElem) tag() uint32 { return uint32(e.group)<<16 | uint32(e.elem) }

func tStr(g, e uint16, vr, s string) tElem {
	b := []byte(s)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	return tElem{group: g, elem: e, vr: vr, value: b}
}

func tUS(g, e uint16, vals ...uint16) tElem {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return tElem{group: g, elem: e, vr: "US", value: b}
}

func tSS(g, e uint16, vals ...int16) tElem {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return tElem{group: g, elem: e, vr: "SS", value: b}
}

func tBytes(g, e uint16, vr string, b []byte) tElem {
	if len(b)%2 == 1 {
		b = append(append([]byte(nil), b...), 0)
	}
	return tElem{group: g, elem: e, vr: vr, value: b}
}

func tSeq(g, e uint16, items ...[]tElem) tElem {
	return tElem{group: g, elem: e, vr: "SQ", items: items}
}

func tEncapsulated(fragments ...[]byte) tElem {
	return tElem{group: 0x7FE0, elem: 0x0010, vr: "OB", fragments: fragments}
}

func encodeElems(elems []tElem, implicit bool) []byte {
	sorted := append([]tElem(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].tag() < sorted[j].tag() })
	var buf bytes.Buffer
	for _, e := range sorted {
		encodeElem(&buf, e, implicit)
	}
	return buf.Bytes()
}

func encodeElem(buf *bytes.Buffer, e tElem, implicit bool) {
	le := binary.LittleEndian
	var value []byte
	undefined := false
	switch {
	case e.vr == "SQ":
		var sb bytes.Buffer
		for _, it := range e.items {
			body := encodeElems(it, implicit)
			sb.Write(le.AppendUint16(nil, 0xFFFE))
			sb.Write(le.AppendUint16(nil, 0xE000))
			sb.Write(le.AppendUint32(nil, uint32(len(body))))
			sb.Write(body)
		}
		value = sb.Bytes()
	case e.fragments != nil:
		undefined = true
		var sb bytes.Buffer
		item := func(b []byte) {
			sb.Write(le.AppendUint16(nil, 0xFFFE))
			sb.Write(le.AppendUint16(nil, 0xE000))
			sb.Write(le.AppendUint32(nil, uint32(len(b))))
			sb.Write(b)
		}
		item(nil) // empty basic offset table
		for _, f := range e.fragments {
			if len(f)%2 == 1 {
				f = append(append([]byte(nil), f...), 0)
			}
			item(f)
		}
		sb.Write(le.AppendUint16(nil, 0xFFFE))
		sb.Write(le.AppendUint16(nil, 0xE0DD))
		sb.Write(le.AppendUint32(nil, 0))
		value = sb.Bytes()
	default:
		value = e.value
	}
	buf.Write(le.AppendUint16(nil, e.group))
	buf.Write(le.AppendUint16(nil, e.elem))
	length := uint32(len(value))
	if undefined {
		length = 0xFFFFFFFF
	}
	switch {
	case implicit:
		buf.Write(le.AppendUint32(nil, length))
	case longVR(e.vr):
		buf.WriteString(e.vr)
		buf.Write([]byte{0, 0})
		buf.Write(le.AppendUint32(nil, length))
	default:
		buf.WriteString(e.vr)
		buf.Write(le.AppendUint16(nil, uint16(length)))
	}
	buf.Write(value)
}

// buildDICOM writes a Part 10 file: preamble, file meta (explicit VR LE)
// and the data set in transfer syntax ts (explicit or implicit VR LE, or a
// compressed syntax, which is explicit VR LE).
func buildDICOM(ts string, elems ...tElem) []byte {
	const sopClass = "1.2.840.10008.5.1.4.1.1.1.1" // DX for presentation
	sop := "1.2.826.0.1.3680043.8.498.1"
	for _, e := range elems {
		if e.group == 0x0008 && e.elem == 0x0018 {
			sop = strings.TrimRight(string(e.value), "\x00 ")
		}
	}
	meta := encodeElems([]tElem{
		tBytes(0x0002, 0x0001, "OB", []byte{0, 1}),
		tStr(0x0002, 0x0002, "UI", sopClass),
		tStr(0x0002, 0x0003, "UI", sop),
		tStr(0x0002, 0x0010, "UI", ts),
		tStr(0x0002, 0x0012, "UI", "1.2.826.0.1.3680043.8.498.2"),
	}, false)
	var buf bytes.Buffer
	buf.Write(make([]byte, 128))
	buf.WriteString("DICM")
	encodeElem(&buf, tElem{group: 0x0002, elem: 0x0000, vr: "UL", value: binary.LittleEndian.AppendUint32(nil, uint32(len(meta)))}, false)
	buf.Write(meta)
	buf.Write(encodeElems(elems, ts == TSImplicitVRLittleEndian))
	return buf.Bytes()
}

// imageAttrs returns the usual image attributes of a grey image.
func imageAttrs(rows, cols, bitsAlloc, bitsStored, pixelRep int, photometric string) []tElem {
	return []tElem{
		tStr(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.1.1"),
		tStr(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.8.498.1"),
		tStr(0x0008, 0x0060, "CS", "DX"),
		tStr(0x0018, 0x0015, "CS", "CHEST"),
		tUS(0x0028, 0x0002, 1),
		tStr(0x0028, 0x0004, "CS", photometric),
		tUS(0x0028, 0x0010, uint16(rows)),
		tUS(0x0028, 0x0011, uint16(cols)),
		tUS(0x0028, 0x0100, uint16(bitsAlloc)),
		tUS(0x0028, 0x0101, uint16(bitsStored)),
		tUS(0x0028, 0x0102, uint16(bitsStored-1)),
		tUS(0x0028, 0x0103, uint16(pixelRep)),
	}
}

// replaceAttr swaps the element with the same tag (or appends it).
func replaceAttr(elems []tElem, e tElem) []tElem {
	out := append([]tElem(nil), elems...)
	for i := range out {
		if out[i].tag() == e.tag() {
			out[i] = e
			return out
		}
	}
	return append(out, e)
}

func words16(vals ...uint16) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}
