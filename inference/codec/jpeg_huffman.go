package codec

// bitReader reads the entropy-coded data of a JPEG scan: bytes 0xFF 0x00
// stand for 0xFF, fill bytes 0xFF before a marker are skipped, and a marker
// ends the data. Past the end it supplies zero bits, as libjpeg does, but
// counts them: a scan that consumes any of them was truncated.
type bitReader struct {
	data   []byte
	pos    int    // next byte to read
	acc    uint64 // bits, most significant first, right-aligned
	n      int    // valid bits in acc
	fake   int    // zero bits appended after the data ended (the last ones in acc)
	marker bool   // pos is at a marker (0xFF, then a non-zero byte)
}

// fill tops acc up to at least 57 bits.
func (r *bitReader) fill() {
	for r.n <= 56 {
		var b byte
		if r.marker || r.pos >= len(r.data) {
			r.fake += 8
		} else if b = r.data[r.pos]; b != 0xFF {
			r.pos++
		} else {
			// 0xFF: stuffed zero, fill bytes, or a marker.
			p := r.pos + 1
			for p < len(r.data) && r.data[p] == 0xFF {
				p++
			}
			switch {
			case p >= len(r.data):
				r.pos = len(r.data)
				r.fake += 8
				b = 0
			case r.data[p] == 0x00:
				r.pos = p + 1
			default:
				r.pos = p - 1 // at the last 0xFF of the marker
				r.marker = true
				r.fake += 8
				b = 0
			}
		}
		r.acc = r.acc<<8 | uint64(b)
		r.n += 8
	}
}

// truncated reports whether bits past the end of the data were consumed.
func (r *bitReader) truncated() bool { return r.fake > r.n }

// bits reads k ≤ 16 bits.
func (r *bitReader) bits(k int) int32 {
	if r.n < k {
		r.fill()
	}
	r.n -= k
	return int32(r.acc>>uint(r.n)) & (1<<uint(k) - 1)
}

// receiveExtend reads s bits and extends them to a signed value
// (T.81 F.2.2.1, EXTEND).
func (r *bitReader) receiveExtend(s int) int32 {
	if s == 0 {
		return 0
	}
	v := r.bits(s)
	if v < 1<<uint(s-1) {
		v += -1<<uint(s) + 1
	}
	return v
}

// markerPos returns where the next marker starts, once the scan's bits are
// all read: the reader's position, moved past any bytes before a marker.
func (r *bitReader) markerPos() int {
	p := r.pos
	if r.marker {
		return p
	}
	for p < len(r.data) {
		if r.data[p] == 0xFF && p+1 < len(r.data) && r.data[p+1] != 0x00 && r.data[p+1] != 0xFF {
			return p
		}
		p++
	}
	return len(r.data)
}

// restart expects restart marker RSTn (n = want) at the reader's position
// and resets the reader past it.
func (r *bitReader) restart(want int) bool {
	if r.truncated() {
		return false
	}
	// Discard the rest of the current byte's bits and anything buffered:
	// the marker must follow the data that was consumed.
	p := r.pos
	if !r.marker {
		// Bytes already pulled into acc but not consumed are padding only
		// if the marker follows them directly.
		for p < len(r.data) && r.data[p] != 0xFF {
			p++
		}
	}
	for p < len(r.data) && r.data[p] == 0xFF {
		p++
	}
	if p >= len(r.data) || int(r.data[p]) != mRST0+want {
		return false
	}
	*r = bitReader{data: r.data, pos: p + 1}
	return true
}

// huffTable is a JPEG Huffman table: a 9-bit look-up for short codes, the
// canonical maxcode / valptr arrays (T.81 F.2.2.3) for the rest.
type huffTable struct {
	set     bool
	lookup  [1 << lookupBits]uint16 // (length << 8) | value; 0 = longer code
	maxcode [18]int32               // largest code of each length, -1 if none
	valptr  [17]int32               // index into vals of each length's first code
	mincode [17]int32
	vals    [256]byte
}

const lookupBits = 9

func (t *huffTable) build(counts [16]int, vals []byte) error {
	*t = huffTable{set: true}
	copy(t.vals[:], vals)
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		t.valptr[l] = k
		t.mincode[l] = code
		if n == 0 {
			t.maxcode[l] = -1
		} else {
			code += n
			t.maxcode[l] = code - 1
			if code > 1<<uint(l) {
				return corrupt("DHT table has more codes of length %d than fit", l)
			}
			if l <= lookupBits {
				for c := code - n; c < code; c++ {
					v := uint16(l)<<8 | uint16(vals[k+c-(code-n)])
					shift := uint(lookupBits - l)
					for j := int32(0); j < 1<<shift; j++ {
						t.lookup[c<<shift|j] = v
					}
				}
			}
			k += n
		}
		code <<= 1
	}
	t.maxcode[17] = 0x7FFFFFFF // sentinel
	return nil
}

// decode reads one Huffman-coded value; ok is false for a code not in the
// table.
func (r *bitReader) decode(t *huffTable) (byte, bool) {
	if r.n < 16 {
		r.fill()
	}
	if e := t.lookup[(r.acc>>uint(r.n-lookupBits))&(1<<lookupBits-1)]; e != 0 {
		r.n -= int(e >> 8)
		return byte(e), true
	}
	for l := lookupBits + 1; l <= 16; l++ {
		code := int32(r.acc>>uint(r.n-l)) & (1<<uint(l) - 1)
		if code <= t.maxcode[l] {
			r.n -= l
			return t.vals[t.valptr[l]+code-t.mincode[l]], true
		}
	}
	return 0, false
}
