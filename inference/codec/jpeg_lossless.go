package codec

// decodeLosslessScan decodes one scan of a lossless (process 14) JPEG
// frame: predictor pred (the scan's Ss, 1–7) and point transform pt (Al),
// T.81 Annex H. Every component has sampling factors 1×1 (readSOF refuses
// others), so a minimum coded unit is one sample of each scan component.
func (d *jpegDecoder) decodeLosslessScan(scan []*jpegComponent, pred, pt int) error {
	P := d.precision
	if pred < 1 || pred > 7 {
		return corrupt("lossless JPEG predictor %d (1…7 allowed)", pred)
	}
	if pt >= P {
		return corrupt("lossless JPEG point transform %d with precision %d", pt, P)
	}
	tabs := make([]*huffTable, len(scan))
	outIdx := make([]int, len(scan))
	for i, c := range scan {
		tabs[i] = &d.huff[0][c.td]
		if !tabs[i].set {
			return corrupt("scan uses Huffman table %d, which is not defined", c.td)
		}
		for k := range d.comps {
			if &d.comps[k] == c {
				outIdx[i] = k
			}
		}
	}
	W, H := d.width, d.height
	if len(scan) == 1 && d.f.SamplesPerPixel == 1 {
		return d.decodeLosslessGrey(tabs[0], pred, pt)
	}
	rowsPerInterval := 0
	if d.restart > 0 {
		if d.restart%W != 0 {
			return unsupported("lossless JPEG restart interval of %d samples, not a whole number of %d-sample lines", d.restart, W)
		}
		rowsPerInterval = d.restart / W
	}
	// Two lines per component: the previous one (Rb, Rc) and the current.
	bufs := make([]int32, 2*W*len(scan))
	initial := int32(1) << uint(P-pt-1)
	spp := d.f.SamplesPerPixel
	out := d.out
	br := &d.br
	nextRST := 0
	for y := 0; y < H; y++ {
		first := y == 0
		if rowsPerInterval > 0 && y > 0 && y%rowsPerInterval == 0 {
			if !br.restart(nextRST) {
				return corrupt("lossless JPEG: restart marker RST%d missing before line %d", nextRST, y)
			}
			nextRST = (nextRST + 1) & 7
			first = true
		}
		for x := 0; x < W; x++ {
			for i := range scan {
				s, ok := br.decode(tabs[i])
				if !ok {
					return corrupt("lossless JPEG: invalid Huffman code at line %d", y)
				}
				var diff int32
				switch {
				case s == 16:
					diff = 32768
				case s > 16:
					return corrupt("lossless JPEG: difference category %d at line %d", s, y)
				default:
					diff = br.receiveExtend(int(s))
				}
				buf := bufs[2*W*i : 2*W*(i+1)]
				cur, prev := buf[W*(y&1):W*(y&1)+W], buf[W*(1-y&1):W*(1-y&1)+W]
				var p int32
				switch {
				case first && x == 0:
					p = initial
				case first:
					p = cur[x-1]
				case x == 0:
					p = prev[0]
				default:
					ra, rb, rc := cur[x-1], prev[x], prev[x-1]
					switch pred {
					case 1:
						p = ra
					case 2:
						p = rb
					case 3:
						p = rc
					case 4:
						p = ra + rb - rc
					case 5:
						p = ra + (rb-rc)>>1
					case 6:
						p = rb + (ra-rc)>>1
					case 7:
						p = (ra + rb) >> 1
					}
				}
				v := (p + diff) & 0xFFFF
				cur[x] = v
				out.put((y*W+x)*spp+outIdx[i], uint32(v<<uint(pt))&0xFFFF)
			}
		}
		if br.truncated() {
			return corrupt("lossless JPEG: entropy-coded data ends at line %d of %d", y, H)
		}
	}
	return nil
}

// decodeLosslessGrey is decodeLosslessScan for the common case, a single
// component: one line of samples at a time, then the line into the output.
func (d *jpegDecoder) decodeLosslessGrey(tab *huffTable, pred, pt int) error {
	P, W, H := d.precision, d.width, d.height
	rowsPerInterval := 0
	if d.restart > 0 {
		if d.restart%W != 0 {
			return unsupported("lossless JPEG restart interval of %d samples, not a whole number of %d-sample lines", d.restart, W)
		}
		rowsPerInterval = d.restart / W
	}
	lines := make([]int32, 2*W)
	initial := int32(1) << uint(P-pt-1)
	out := d.out.Data
	br := &d.br
	nextRST := 0
	for y := 0; y < H; y++ {
		first := y == 0
		if rowsPerInterval > 0 && y > 0 && y%rowsPerInterval == 0 {
			if !br.restart(nextRST) {
				return corrupt("lossless JPEG: restart marker RST%d missing before line %d", nextRST, y)
			}
			nextRST = (nextRST + 1) & 7
			first = true
		}
		cur, prev := lines[:W], lines[W:]
		if y&1 == 1 {
			cur, prev = prev, cur
		}
		for x := 0; x < W; x++ {
			// Huffman-coded category, then its extra bits (T.81 H.1.2.2).
			if br.n < 32 {
				br.fill()
			}
			var s int
			if e := tab.lookup[(br.acc>>uint(br.n-lookupBits))&(1<<lookupBits-1)]; e != 0 {
				br.n -= int(e >> 8)
				s = int(e & 0xFF)
			} else {
				v, ok := br.decode(tab)
				if !ok {
					return corrupt("lossless JPEG: invalid Huffman code at line %d", y)
				}
				s = int(v)
			}
			var diff int32
			switch {
			case s == 0:
			case s < 16:
				br.n -= s
				diff = int32(br.acc>>uint(br.n)) & (1<<uint(s) - 1)
				if diff < 1<<uint(s-1) {
					diff += -1<<uint(s) + 1
				}
			case s == 16:
				diff = 32768
			default:
				return corrupt("lossless JPEG: difference category %d at line %d", s, y)
			}
			var p int32
			switch {
			case x == 0 && first:
				p = initial
			case x == 0:
				p = prev[0]
			case first || pred == 1:
				p = cur[x-1]
			default:
				ra, rb, rc := cur[x-1], prev[x], prev[x-1]
				switch pred {
				case 2:
					p = rb
				case 3:
					p = rc
				case 4:
					p = ra + rb - rc
				case 5:
					p = ra + (rb-rc)>>1
				case 6:
					p = rb + (ra-rc)>>1
				case 7:
					p = (ra + rb) >> 1
				}
			}
			cur[x] = (p + diff) & 0xFFFF
		}
		if br.truncated() {
			return corrupt("lossless JPEG: entropy-coded data ends at line %d of %d", y, H)
		}
		switch row := y * W; d.f.BitsAllocated {
		case 8:
			for x, v := range cur {
				out[row+x] = byte(v << uint(pt))
			}
		case 16:
			o := out[2*row : 2*row+2*W]
			for x, v := range cur {
				v <<= uint(pt)
				o[2*x] = byte(v)
				o[2*x+1] = byte(v >> 8)
			}
		default:
			for x, v := range cur {
				d.out.put(row+x, uint32(v<<uint(pt))&0xFFFF)
			}
		}
	}
	return nil
}
