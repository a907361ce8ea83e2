package codec

// decodeDCTScan decodes one scan of a sequential DCT frame (baseline or
// extended, Huffman coding) into the components' planes.
func (d *jpegDecoder) decodeDCTScan(scan []*jpegComponent) error {
	for _, c := range scan {
		if !d.quantSet[c.tq] {
			return corrupt("component %d uses quantisation table %d, which is not defined", c.id, c.tq)
		}
		if !d.huff[0][c.td].set || !d.huff[1][c.ta].set {
			return corrupt("component %d uses Huffman tables DC %d / AC %d, not both defined", c.id, c.td, c.ta)
		}
		c.dcPred = 0
	}
	var (
		blk     [64]int32
		tmp     [64]uint16
		br      = &d.br
		mcus    int
		nextRST int
		mcusX   = d.mcusX
		mcusY   = d.mcusY
	)
	if len(scan) == 1 {
		// Non-interleaved: one block per MCU, only the blocks that hold
		// the component's samples.
		c := scan[0]
		mcusX, mcusY = (c.width+7)/8, (c.height+7)/8
	}
	maxDC := d.precision + 3 // largest DC difference category (11 at 8 bits, 15 at 12)
	for my := 0; my < mcusY; my++ {
		for mx := 0; mx < mcusX; mx++ {
			if d.restart > 0 && mcus > 0 && mcus%d.restart == 0 {
				if !br.restart(nextRST) {
					return corrupt("JPEG: restart marker RST%d missing after MCU %d", nextRST, mcus)
				}
				nextRST = (nextRST + 1) & 7
				for _, c := range scan {
					c.dcPred = 0
				}
			}
			mcus++
			for _, c := range scan {
				bh, bv := c.h, c.v
				if len(scan) == 1 {
					bh, bv = 1, 1
				}
				for by := 0; by < bv; by++ {
					for bx := 0; bx < bh; bx++ {
						if err := d.decodeBlock(c, &blk, maxDC); err != nil {
							return err
						}
						if c.plane == nil { // single component: straight to the output
							d.storeBlock(&blk, &tmp, (mx*bh+bx)*8, (my*bv+by)*8)
							continue
						}
						idctIslow(&blk, c.plane[((my*bv+by)*8)*c.stride+(mx*bh+bx)*8:], c.stride, d.precision)
					}
				}
			}
		}
		if br.truncated() {
			return corrupt("JPEG: entropy-coded data ends at MCU row %d of %d", my, mcusY)
		}
	}
	return nil
}

// storeBlock transforms a block of a single-component image and writes the
// part of it inside the image at x0, y0 into the output.
func (d *jpegDecoder) storeBlock(blk *[64]int32, tmp *[64]uint16, x0, y0 int) {
	idctIslow(blk, tmp[:], 8, d.precision)
	W := d.width
	w, h := min(8, W-x0), min(8, d.height-y0)
	out := d.out.Data
	for y := 0; y < h; y++ {
		src, i := tmp[y*8:y*8+w], (y0+y)*W+x0
		switch d.out.BitsAllocated {
		case 8:
			for x, v := range src {
				out[i+x] = byte(v)
			}
		case 16:
			o := out[2*i : 2*i+2*w]
			for x, v := range src {
				o[2*x] = byte(v)
				o[2*x+1] = byte(v >> 8)
			}
		default:
			for x, v := range src {
				d.out.put(i+x, uint32(v))
			}
		}
	}
}

// decodeBlock reads one block's coefficients and dequantises them into blk
// (natural order).
func (d *jpegDecoder) decodeBlock(c *jpegComponent, blk *[64]int32, maxDC int) error {
	*blk = [64]int32{}
	br := &d.br
	q := &d.quant[c.tq]
	s, ok := br.decode(&d.huff[0][c.td])
	if !ok {
		return corrupt("JPEG: invalid DC Huffman code")
	}
	if int(s) > maxDC {
		return corrupt("JPEG: DC difference category %d", s)
	}
	c.dcPred += br.receiveExtend(int(s))
	blk[0] = c.dcPred * q[0]
	ac := &d.huff[1][c.ta]
	for k := 1; k < 64; {
		rs, ok := br.decode(ac)
		if !ok {
			return corrupt("JPEG: invalid AC Huffman code")
		}
		r, s := int(rs>>4), int(rs&15)
		if s == 0 {
			if r != 15 {
				break // end of block
			}
			k += 16
			continue
		}
		k += r
		if k > 63 {
			return corrupt("JPEG: AC coefficients run past the block")
		}
		blk[zigzag[k]] = br.receiveExtend(s) * q[k]
		k++
	}
	return nil
}

// The IJG "islow" inverse DCT (jidctint.c): 13-bit fixed-point constants,
// PASS1_BITS 2 at 8 bits and 1 at 12 bits. Using the same arithmetic as
// libjpeg makes the output identical to libjpeg's and DCMTK's.
const (
	constBits   = 13
	fix0298631  = 2446
	fix0390181  = 3196
	fix0541196  = 4433
	fix0765367  = 6270
	fix0899976  = 7373
	fix1175876  = 9633
	fix1501321  = 12299
	fix1847759  = 15137
	fix1961571  = 16069
	fix2053120  = 16819
	fix2562915  = 20995
	fix3072711  = 25172
	maxPrecDCT  = 12
	idctWorkLen = 64
)

// idctIslow transforms the dequantised coefficients in blk and stores the
// 8×8 samples, level-shifted and clamped to the precision, at dst with the
// given stride.
func idctIslow(blk *[64]int32, dst []uint16, stride, precision int) {
	pass1 := 2
	if precision > 8 {
		pass1 = 1
	}
	var ws [idctWorkLen]int64
	// Pass 1: columns.
	for col := 0; col < 8; col++ {
		in := func(r int) int64 { return int64(blk[r*8+col]) }
		if in(1) == 0 && in(2) == 0 && in(3) == 0 && in(4) == 0 && in(5) == 0 && in(6) == 0 && in(7) == 0 {
			dc := in(0) << uint(pass1)
			for r := 0; r < 8; r++ {
				ws[r*8+col] = dc
			}
			continue
		}
		z2, z3 := in(2), in(6)
		z1 := (z2 + z3) * fix0541196
		tmp2 := z1 - z3*fix1847759
		tmp3 := z1 + z2*fix0765367
		z2, z3 = in(0), in(4)
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

		t0, t1, t2, t3 := in(7), in(5), in(3), in(1)
		o0, o1, o2, o3 := odd(t0, t1, t2, t3)
		sh := uint(constBits - pass1)
		ws[0*8+col] = descale(tmp10+o3, sh)
		ws[7*8+col] = descale(tmp10-o3, sh)
		ws[1*8+col] = descale(tmp11+o2, sh)
		ws[6*8+col] = descale(tmp11-o2, sh)
		ws[2*8+col] = descale(tmp12+o1, sh)
		ws[5*8+col] = descale(tmp12-o1, sh)
		ws[3*8+col] = descale(tmp13+o0, sh)
		ws[4*8+col] = descale(tmp13-o0, sh)
	}
	// Pass 2: rows.
	center := int64(1) << uint(precision-1)
	maxv := int64(1)<<uint(precision) - 1
	clamp := func(v int64) uint16 {
		v += center
		if v < 0 {
			return 0
		}
		if v > maxv {
			return uint16(maxv)
		}
		return uint16(v)
	}
	sh := uint(constBits + pass1 + 3)
	for row := 0; row < 8; row++ {
		w := ws[row*8 : row*8+8]
		out := dst[row*stride : row*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := clamp(descale(w[0], uint(pass1+3)))
			for i := range out {
				out[i] = v
			}
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0541196
		tmp2 := z1 - z3*fix1847759
		tmp3 := z1 + z2*fix0765367
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		o0, o1, o2, o3 := odd(w[7], w[5], w[3], w[1])
		out[0] = clamp(descale(tmp10+o3, sh))
		out[7] = clamp(descale(tmp10-o3, sh))
		out[1] = clamp(descale(tmp11+o2, sh))
		out[6] = clamp(descale(tmp11-o2, sh))
		out[2] = clamp(descale(tmp12+o1, sh))
		out[5] = clamp(descale(tmp12-o1, sh))
		out[3] = clamp(descale(tmp13+o0, sh))
		out[4] = clamp(descale(tmp13-o0, sh))
	}
}

// odd is the odd part of the islow IDCT for inputs 7, 5, 3, 1.
func odd(tmp0, tmp1, tmp2, tmp3 int64) (int64, int64, int64, int64) {
	z1 := tmp0 + tmp3
	z2 := tmp1 + tmp2
	z3 := tmp0 + tmp2
	z4 := tmp1 + tmp3
	z5 := (z3 + z4) * fix1175876
	tmp0 *= fix0298631
	tmp1 *= fix2053120
	tmp2 *= fix3072711
	tmp3 *= fix1501321
	z1 *= -fix0899976
	z2 *= -fix2562915
	z3 = z3*-fix1961571 + z5
	z4 = z4*-fix0390181 + z5
	tmp0 += z1 + z3
	tmp1 += z2 + z4
	tmp2 += z2 + z3
	tmp3 += z1 + z4
	return tmp0, tmp1, tmp2, tmp3
}

func descale(x int64, n uint) int64 { return (x + 1<<(n-1)) >> n }

// dctOutput upsamples the component planes into the output and converts
// YCbCr to RGB where the stream is YCbCr. Upsampling is libjpeg's: the
// triangle ("fancy") filter for components at half the horizontal
// resolution (h2v1) or at half in both directions (h2v2), replication for
// every other ratio, so that output matches libjpeg and DCMTK.
func (d *jpegDecoder) dctOutput() {
	W, H, nf := d.width, d.height, len(d.comps)
	out := d.out
	if nf == 1 {
		return // written block by block (storeBlock)
	}
	// Full-resolution planes: the component's own where it is not
	// subsampled, an upsampled copy otherwise.
	planes := make([][]uint16, nf)
	strides := make([]int, nf)
	for k := range d.comps {
		c := &d.comps[k]
		planes[k], strides[k] = c.plane, c.stride
		if c.h != d.hmax || c.v != d.vmax {
			planes[k], strides[k] = d.upsample(c), W
		}
	}
	convert := nf == 3 && d.isYCbCr()
	if convert {
		out.PhotometricInterpretation = "RGB"
	}
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			i := (y*W + x) * nf
			if convert {
				r, g, b := ycbcrToRGB(int32(planes[0][y*strides[0]+x]), int32(planes[1][y*strides[1]+x]),
					int32(planes[2][y*strides[2]+x]), d.precision)
				out.put(i, uint32(r))
				out.put(i+1, uint32(g))
				out.put(i+2, uint32(b))
				continue
			}
			for k := 0; k < nf; k++ {
				out.put(i+k, uint32(planes[k][y*strides[k]+x]))
			}
		}
	}
}

// upsample returns component c at full resolution, W × H samples.
func (d *jpegDecoder) upsample(c *jpegComponent) []uint16 {
	W, H := d.width, d.height
	up := make([]uint16, W*H)
	fancyH := c.h*2 == d.hmax && c.width > 2
	switch {
	case fancyH && c.v == d.vmax: // h2v1 (4:2:2)
		row := make([]int32, 2*c.width)
		for y := 0; y < H; y++ {
			h2v1Fancy(row, c.plane[y*c.stride:y*c.stride+c.width])
			for x := 0; x < W; x++ {
				up[y*W+x] = uint16(row[x])
			}
		}
	case fancyH && c.v*2 == d.vmax: // h2v2 (4:2:0)
		row := make([]int32, 2*c.width)
		for y := 0; y < H; y++ {
			// The nearer input row, and the other one: above it for even
			// output rows, below for odd, repeating the edge rows.
			near, far := min(y/2, c.height-1), y/2-1
			if y%2 == 1 {
				far = y/2 + 1
			}
			far = min(max(far, 0), c.height-1)
			h2v2Fancy(row, c.plane[near*c.stride:near*c.stride+c.width], c.plane[far*c.stride:far*c.stride+c.width])
			for x := 0; x < W; x++ {
				up[y*W+x] = uint16(row[x])
			}
		}
	default: // replication
		for y := 0; y < H; y++ {
			sy := y * c.v / d.vmax
			for x := 0; x < W; x++ {
				up[y*W+x] = c.plane[sy*c.stride+x*c.h/d.hmax]
			}
		}
	}
	return up
}

// h2v1Fancy doubles a line of n = len(in) ≥ 3 samples with libjpeg's
// triangle filter (jdsample.c h2v1_fancy_upsample): each output sample is
// 3/4 of the nearer input sample and 1/4 of the further one.
func h2v1Fancy(out []int32, in []uint16) {
	n := len(in)
	out[0] = int32(in[0])
	out[1] = (int32(in[0])*3 + int32(in[1]) + 2) >> 2
	for i := 1; i < n-1; i++ {
		v := int32(in[i]) * 3
		out[2*i] = (v + int32(in[i-1]) + 1) >> 2
		out[2*i+1] = (v + int32(in[i+1]) + 2) >> 2
	}
	out[2*n-2] = (int32(in[n-1])*3 + int32(in[n-2]) + 1) >> 2
	out[2*n-1] = int32(in[n-1])
}

// h2v2Fancy makes one output line from the nearer and the further input
// line (jdsample.c h2v2_fancy_upsample): column sums 3·near + far, then the
// same triangle filter across, with libjpeg's rounding biases 8 and 7.
func h2v2Fancy(out []int32, near, far []uint16) {
	n := len(near)
	col := func(i int) int32 { return int32(near[i])*3 + int32(far[i]) }
	this, next := col(0), col(1)
	out[0] = (this*4 + 8) >> 4
	out[1] = (this*3 + next + 7) >> 4
	last := this
	this = next
	for i := 1; i < n-1; i++ {
		next = col(i + 1)
		out[2*i] = (this*3 + last + 8) >> 4
		out[2*i+1] = (this*3 + next + 7) >> 4
		last, this = this, next
	}
	out[2*n-2] = (this*3 + last + 8) >> 4
	out[2*n-1] = (this*4 + 7) >> 4
}

// isYCbCr decides, as libjpeg does, whether three components are YCbCr: a
// JFIF marker says so; an Adobe marker says so unless its transform is 0;
// component identifiers 'R','G','B' say RGB. Without either marker, a data
// set that declares RGB is taken at its word (DICOM encoders that keep RGB
// write no marker); anything else is YCbCr.
func (d *jpegDecoder) isYCbCr() bool {
	switch {
	case d.jfif:
		return true
	case d.adobe:
		return d.adobeTransform != 0
	case d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B':
		return false
	case d.f.PhotometricInterpretation == "RGB":
		return false
	}
	return true
}

// ycbcrToRGB is libjpeg's YCbCr → RGB conversion (jdcolor.c, 16-bit fixed
// point) at the given precision.
func ycbcrToRGB(y, cb, cr int32, precision int) (int32, int32, int32) {
	const scale = 16
	const half = 1 << (scale - 1)
	center := int64(1) << uint(precision-1)
	maxv := int32(1)<<uint(precision) - 1
	fix := func(f float64) int64 { return int64(f*(1<<scale) + 0.5) }
	cbv, crv := int64(cb)-center, int64(cr)-center
	r := int32(y) + int32((fix(1.40200)*crv+half)>>scale)
	g := int32(y) + int32((-fix(0.34414)*cbv+half-fix(0.71414)*crv)>>scale)
	b := int32(y) + int32((fix(1.77200)*cbv+half)>>scale)
	clamp := func(v int32) int32 { return min(max(v, 0), maxv) }
	return clamp(r), clamp(g), clamp(b)
}
