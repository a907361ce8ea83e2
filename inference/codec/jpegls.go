package codec

// A pure-Go JPEG-LS decoder (ITU T.87 | ISO/IEC 14495-1): lossless and
// near-lossless, default and LSE-preset coding parameters, the three
// interleave modes, 2- to 16-bit samples. Its arithmetic follows the
// standard's Annex A code segments as CharLS implements them (the library
// behind DCMTK and most DICOM toolkits), so the output is identical.
//
// Why not CharLS itself (libcharls-dev)? Debian 12's CharLS 2.4.1 loops
// about 2^32 times (5–7 s of CPU per frame, whatever its size) on a
// truncated stream: when its bit reader runs dry mid-code it lets the bit
// count go negative instead of failing. That is a hang on the commonest
// real-world corruption. Here the end of the data is an error at once, every
// Golomb code is bounded by LIMIT, and every run by the line width.
//
// Not supported (refused as unsupported): mapping tables (palettes, LSE 2/3),
// oversize dimensions (LSE 4), restart intervals, point transform, the HP
// colour transforms, subsampled components.

import "math/bits"

const (
	mSOF55 = 0xF7 // JPEG-LS frame
	mLSE   = 0xF8 // JPEG-LS preset parameters
	mAPP8  = 0xE8
)

// jlsJ is the run-length order table J (T.87 A.2.1).
var jlsJ = [32]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15}

type jlsParams struct {
	maxval, t1, t2, t3, reset int
}

type jlsDecoder struct {
	f    *Frame
	data []byte
	pos  int

	precision, width, height, nf int
	ids                          []byte
	done                         []bool
	preset                       jlsParams // from an LSE segment; 0 = default
	out                          *Pixels
	near                         int
}

// decodeJPEGLS decodes a JPEG-LS lossless or near-lossless frame.
func decodeJPEGLS(f *Frame) (*Pixels, error) {
	d := &jlsDecoder{f: f, data: f.Data}
	if len(d.data) < 4 || d.data[0] != 0xFF || d.data[1] != mSOI {
		return nil, corrupt("no JPEG-LS SOI marker at the start of the frame")
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			if d.out != nil && d.allDone() {
				return d.out, nil
			}
			return nil, err
		}
		switch {
		case m == mEOI:
			if d.out == nil || !d.allDone() {
				return nil, corrupt("JPEG-LS: EOI before every component was decoded")
			}
			return d.out, nil
		case m == mSOF55:
			if d.out != nil {
				return nil, corrupt("JPEG-LS: more than one SOF marker")
			}
			if err := d.readSOF(); err != nil {
				return nil, err
			}
		case m == mLSE:
			if err := d.readLSE(); err != nil {
				return nil, err
			}
		case m == mSOS:
			if d.out == nil {
				return nil, corrupt("JPEG-LS: SOS before SOF")
			}
			if err := d.readScan(); err != nil {
				return nil, err
			}
		case m == mDRI:
			p, err := segment(d.data, &d.pos, "DRI")
			if err != nil {
				return nil, err
			}
			if len(p) >= 2 && (p[0] != 0 || p[1] != 0) {
				return nil, unsupported("JPEG-LS restart intervals")
			}
		case m >= 0xC0 && m <= 0xCF && m != mDHT:
			return nil, corrupt("JPEG-LS: SOF marker 0x%02X of another JPEG process", m)
		case m == mSOI:
			return nil, corrupt("JPEG-LS: second SOI marker")
		case m >= mRST0 && m <= mRST7:
		default:
			p, err := segment(d.data, &d.pos, "marker")
			if err != nil {
				return nil, err
			}
			// HP's colour transform marker: APP8 "mrfx", transform ≠ 0.
			if m == mAPP8 && len(p) >= 5 && string(p[:4]) == "mrfx" && p[4] != 0 {
				return nil, unsupported("JPEG-LS HP colour transform %d", p[4])
			}
		}
	}
}

func (d *jlsDecoder) allDone() bool {
	for _, ok := range d.done {
		if !ok {
			return false
		}
	}
	return len(d.done) > 0
}

// nextMarker finds the next marker at or after d.pos.
func (d *jlsDecoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, corrupt("JPEG-LS stream ends without EOI")
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

// segment returns the payload of the marker segment at *pos and moves past it.
func segment(data []byte, pos *int, name string) ([]byte, error) {
	if len(data)-*pos < 2 {
		return nil, corrupt("%s segment truncated", name)
	}
	n := int(data[*pos])<<8 | int(data[*pos+1])
	if n < 2 || n > len(data)-*pos {
		return nil, corrupt("%s segment length %d, %d bytes left", name, n, len(data)-*pos)
	}
	p := data[*pos+2 : *pos+n]
	*pos += n
	return p, nil
}

func (d *jlsDecoder) readSOF() error {
	p, err := segment(d.data, &d.pos, "JPEG-LS SOF")
	if err != nil {
		return err
	}
	if len(p) < 6 {
		return corrupt("JPEG-LS SOF segment of %d bytes", len(p))
	}
	d.precision = int(p[0])
	d.height = int(p[1])<<8 | int(p[2])
	d.width = int(p[3])<<8 | int(p[4])
	d.nf = int(p[5])
	if d.precision < 2 || d.precision > 16 {
		return corrupt("JPEG-LS precision %d bits (2…16 allowed)", d.precision)
	}
	if d.width == 0 || d.height == 0 {
		return unsupported("JPEG-LS dimensions set by an LSE segment")
	}
	if d.width != d.f.Columns || d.height != d.f.Rows {
		return corrupt("JPEG-LS frame is %d × %d, the data set says %d × %d", d.width, d.height, d.f.Columns, d.f.Rows)
	}
	if d.nf != d.f.SamplesPerPixel {
		return corrupt("JPEG-LS frame has %d components, Samples per Pixel is %d", d.nf, d.f.SamplesPerPixel)
	}
	if d.precision > d.f.BitsAllocated {
		return corrupt("JPEG-LS precision %d bits does not fit Bits Allocated %d", d.precision, d.f.BitsAllocated)
	}
	if len(p) != 6+3*d.nf {
		return corrupt("JPEG-LS SOF segment of %d bytes for %d components", len(p), d.nf)
	}
	d.ids = make([]byte, d.nf)
	d.done = make([]bool, d.nf)
	for i := range d.ids {
		d.ids[i] = p[6+3*i]
		if p[7+3*i] != 0x11 {
			return unsupported("JPEG-LS subsampled component (sampling factors 0x%02X)", p[7+3*i])
		}
		for j := 0; j < i; j++ {
			if d.ids[j] == d.ids[i] {
				return corrupt("JPEG-LS: two components with identifier %d", d.ids[i])
			}
		}
	}
	d.out = newPixels(d.f, d.precision)
	return nil
}

func (d *jlsDecoder) readLSE() error {
	p, err := segment(d.data, &d.pos, "JPEG-LS LSE")
	if err != nil {
		return err
	}
	if len(p) < 1 {
		return corrupt("empty JPEG-LS LSE segment")
	}
	switch p[0] {
	case 1:
		if len(p) != 11 {
			return corrupt("JPEG-LS preset parameters segment of %d bytes", len(p))
		}
		u16 := func(i int) int { return int(p[i])<<8 | int(p[i+1]) }
		d.preset = jlsParams{maxval: u16(1), t1: u16(3), t2: u16(5), t3: u16(7), reset: u16(9)}
		return nil
	case 2, 3:
		return unsupported("JPEG-LS mapping tables")
	case 4:
		return unsupported("JPEG-LS oversize image dimensions")
	}
	return corrupt("JPEG-LS LSE segment of type %d", p[0])
}

// params returns the coding parameters for a scan: the LSE preset where it
// gives one, the defaults of T.87 C.2.4.1.1 otherwise.
func (d *jlsDecoder) params(near int) (jlsParams, error) {
	p := d.preset
	full := 1<<uint(d.precision) - 1
	if p.maxval == 0 {
		p.maxval = full
	}
	if p.maxval < 1 || p.maxval > full {
		return p, corrupt("JPEG-LS MAXVAL %d with %d-bit samples", p.maxval, d.precision)
	}
	if near > min(255, p.maxval/2) {
		return p, corrupt("JPEG-LS NEAR %d with MAXVAL %d", near, p.maxval)
	}
	clamp := func(i, j int) int {
		if i > p.maxval || i < j {
			return j
		}
		return i
	}
	var t1, t2, t3 int
	if p.maxval >= 128 {
		factor := (min(p.maxval, 4095) + 128) / 256
		t1 = clamp(factor*(3-2)+2+3*near, near+1)
		t2 = clamp(factor*(7-3)+3+5*near, t1)
		t3 = clamp(factor*(21-4)+4+7*near, t2)
	} else {
		factor := 256 / (p.maxval + 1)
		t1 = clamp(max(2, 3/factor+3*near), near+1)
		t2 = clamp(max(3, 7/factor+5*near), t1)
		t3 = clamp(max(4, 21/factor+7*near), t2)
	}
	if p.t1 == 0 {
		p.t1 = t1
	}
	if p.t2 == 0 {
		p.t2 = t2
	}
	if p.t3 == 0 {
		p.t3 = t3
	}
	if p.reset == 0 {
		p.reset = 64
	}
	if p.t1 < near+1 || p.t2 < p.t1 || p.t3 < p.t2 || p.t3 > p.maxval || p.reset < 3 || p.reset > max(255, p.maxval) {
		return p, corrupt("JPEG-LS preset parameters T1 %d, T2 %d, T3 %d, RESET %d with MAXVAL %d, NEAR %d",
			p.t1, p.t2, p.t3, p.reset, p.maxval, near)
	}
	return p, nil
}

func (d *jlsDecoder) readScan() error {
	p, err := segment(d.data, &d.pos, "JPEG-LS SOS")
	if err != nil {
		return err
	}
	if len(p) < 1 {
		return corrupt("empty JPEG-LS SOS segment")
	}
	ns := int(p[0])
	if ns < 1 || ns > d.nf || len(p) != 4+2*ns {
		return corrupt("JPEG-LS SOS segment of %d bytes for %d components", len(p), ns)
	}
	comps := make([]int, ns) // frame component indices
	for i := 0; i < ns; i++ {
		k := -1
		for j, id := range d.ids {
			if id == p[1+2*i] {
				k = j
			}
		}
		if k < 0 {
			return corrupt("JPEG-LS scan names component %d, which the frame does not have", p[1+2*i])
		}
		if d.done[k] {
			return corrupt("JPEG-LS component %d coded twice", p[1+2*i])
		}
		for _, o := range comps[:i] {
			if o == k {
				return corrupt("JPEG-LS scan names component %d twice", p[1+2*i])
			}
		}
		if p[2+2*i] != 0 {
			return unsupported("JPEG-LS mapping tables")
		}
		comps[i] = k
	}
	near, ilv, al := int(p[1+2*ns]), int(p[2+2*ns]), int(p[3+2*ns]&15)
	if al != 0 {
		return unsupported("JPEG-LS point transform %d", al)
	}
	switch {
	case ilv > 2:
		return corrupt("JPEG-LS interleave mode %d", ilv)
	case ilv == 0 && ns != 1:
		return corrupt("JPEG-LS non-interleaved scan with %d components", ns)
	case ilv == 2 && ns != 3 && ns != 1:
		return unsupported("JPEG-LS sample-interleaved scan with %d components", ns)
	}
	prm, err := d.params(near)
	if err != nil {
		return err
	}
	d.near = max(d.near, near)
	d.out.NearLossless = d.near
	s := newJLSScan(d, prm, near, comps)
	s.br = jlsBitReader{data: d.data, pos: d.pos}
	if ilv == 2 && ns == 3 {
		err = s.decodeSampleInterleaved()
	} else {
		err = s.decodeLines()
	}
	if err != nil {
		return err
	}
	for _, k := range comps {
		d.done[k] = true
	}
	d.pos = s.br.markerPos()
	return nil
}

// jlsContext is a regular-mode context (T.87 A.2.2): A, B, C, N.
type jlsContext struct {
	a, b, c, n int32
}

// jlsRunContext is a run-interruption context: A, N, Nn and its type.
type jlsRunContext struct {
	a, n, nn int32
	riType   int32
}

type jlsScan struct {
	d      *jlsDecoder
	comps  []int
	near   int32
	maxval int32
	t1     int32
	t2     int32
	t3     int32
	reset  int32
	rng    int32 // RANGE
	qbpp   int
	limit  int
	step   int32 // 2·NEAR + 1

	qtab   []int8 // quantize for gradients −MAXVAL…MAXVAL, at index gradient + MAXVAL
	ctx    [365]jlsContext
	runCtx [2]jlsRunContext
	br     jlsBitReader
}

func newJLSScan(d *jlsDecoder, p jlsParams, near int, comps []int) *jlsScan {
	s := &jlsScan{d: d, comps: comps, near: int32(near), maxval: int32(p.maxval),
		t1: int32(p.t1), t2: int32(p.t2), t3: int32(p.t3), reset: int32(p.reset)}
	s.step = 2*s.near + 1
	s.rng = (s.maxval+2*s.near)/s.step + 1
	s.qbpp = ceilLog2(int(s.rng))
	bpp := max(2, ceilLog2(p.maxval+1))
	s.limit = 2 * (bpp + max(8, bpp))
	a := max(2, (s.rng+32)/64)
	for i := range s.ctx {
		s.ctx[i] = jlsContext{a: a, n: 1}
	}
	s.qtab = make([]int8, 2*s.maxval+1)
	for i := range s.qtab {
		s.qtab[i] = int8(s.quantize(int32(i) - s.maxval))
	}
	s.runCtx[0] = jlsRunContext{a: a, n: 1, riType: 0}
	s.runCtx[1] = jlsRunContext{a: a, n: 1, riType: 1}
	return s
}

// ceilLog2 returns the smallest x with 2^x ≥ n.
func ceilLog2(n int) int {
	x := 0
	for 1<<uint(x) < n {
		x++
	}
	return x
}

func (s *jlsScan) quantize(di int32) int32 {
	switch {
	case di <= -s.t3:
		return -4
	case di <= -s.t2:
		return -3
	case di <= -s.t1:
		return -2
	case di < -s.near:
		return -1
	case di <= s.near:
		return 0
	case di < s.t1:
		return 1
	case di < s.t2:
		return 2
	case di < s.t3:
		return 3
	}
	return 4
}

// context returns the context number (T.87 A.3.4) of the gradients: its
// sign says whether the context's sign is negative.
// Samples lie in 0…MAXVAL, so every gradient is in the table.
func (s *jlsScan) context(ra, rb, rc, rd int32) int32 {
	q := s.qtab
	m := s.maxval
	return (int32(q[rd-rb+m])*9+int32(q[rb-rc+m]))*9 + int32(q[rc-ra+m])
}

func medPredict(ra, rb, rc int32) int32 {
	switch {
	case rc >= max(ra, rb):
		return min(ra, rb)
	case rc <= min(ra, rb):
		return max(ra, rb)
	}
	return ra + rb - rc
}

func (s *jlsScan) clampPred(v int32) int32 {
	return min(max(v, 0), s.maxval)
}

// reconstruct adds the dequantised error to the prediction, modulo RANGE.
func (s *jlsScan) reconstruct(pred, errval int32) int32 {
	v := pred + errval*s.step
	if v < -s.near {
		v += s.rng * s.step
	} else if v > s.maxval+s.near {
		v -= s.rng * s.step
	}
	return s.clampPred(v)
}

// decodeValue reads a limited-length Golomb code (T.87 A.5.3).
func (s *jlsScan) decodeValue(k, limit int) (int32, error) {
	q, ok := s.br.unary(limit - s.qbpp - 1)
	if !ok {
		return 0, corrupt("JPEG-LS: Golomb code longer than LIMIT")
	}
	if q == limit-s.qbpp-1 {
		return s.br.bits(s.qbpp) + 1, nil
	}
	if k == 0 {
		return int32(q), nil
	}
	return int32(q)<<uint(k) + s.br.bits(k), nil
}

// regular decodes one sample in regular mode (T.87 A.4–A.6).
func (s *jlsScan) regular(qs, ra, rb, rc int32) (int32, error) {
	sign := int32(1)
	if qs < 0 {
		sign, qs = -1, -qs
	}
	c := &s.ctx[qs]
	pred := s.clampPred(medPredict(ra, rb, rc) + sign*c.c)
	k := 0
	for c.n<<uint(k) < c.a {
		k++
		if k > 24 {
			return 0, corrupt("JPEG-LS: context state out of range")
		}
	}
	m, err := s.decodeValue(k, s.limit)
	if err != nil {
		return 0, err
	}
	errval := (m >> 1) ^ -(m & 1) // unmap: even m → m/2, odd → −(m+1)/2
	if k == 0 && s.near == 0 && 2*c.b+c.n-1 < 0 {
		errval = ^errval
	}
	if errval > 65535 || errval < -65535 {
		return 0, corrupt("JPEG-LS: error value %d out of range", errval)
	}
	// Context update (A.12) and bias correction (A.13).
	c.b += errval * s.step
	c.a += abs32(errval)
	if c.n == s.reset {
		c.a >>= 1
		c.b >>= 1
		c.n >>= 1
	}
	c.n++
	if c.b <= -c.n {
		c.b += c.n
		if c.c > -128 {
			c.c--
		}
		if c.b <= -c.n {
			c.b = -c.n + 1
		}
	} else if c.b > 0 {
		c.b -= c.n
		if c.c < 127 {
			c.c++
		}
		if c.b > 0 {
			c.b = 0
		}
	}
	return s.reconstruct(pred, sign*errval), nil
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// runLength decodes the length of a run of up to n samples (A.7.1.2),
// updating RUNindex.
func (s *jlsScan) runLength(n int, runIndex *int) (int, error) {
	i := 0
	for s.br.bit() {
		cnt := min(1<<uint(jlsJ[*runIndex]), n-i)
		i += cnt
		if cnt == 1<<uint(jlsJ[*runIndex]) {
			*runIndex = min(31, *runIndex+1)
		}
		if i == n {
			return i, nil
		}
		if s.br.truncated() {
			return 0, corrupt("JPEG-LS: data ends inside a run")
		}
	}
	if j := jlsJ[*runIndex]; j > 0 {
		i += int(s.br.bits(j))
	}
	if i > n {
		return 0, corrupt("JPEG-LS: run of %d samples past the end of a %d-sample line", i, n)
	}
	return i, nil
}

// interruption decodes the error of a run-interruption sample (A.7.2).
func (s *jlsScan) interruption(rc *jlsRunContext, runIndex int) (int32, error) {
	temp := rc.a + (rc.n>>1)*rc.riType
	k := 0
	for nt := rc.n; nt < temp; nt <<= 1 {
		k++
		if k > 24 {
			return 0, corrupt("JPEG-LS: run context state out of range")
		}
	}
	m, err := s.decodeValue(k, s.limit-jlsJ[runIndex]-1)
	if err != nil {
		return 0, err
	}
	t := m + rc.riType
	mapped := t&1 == 1
	abs := (t + t&1) / 2
	errval := abs
	if (k != 0 || 2*rc.nn >= rc.n) == mapped {
		errval = -abs
	}
	if errval > 65535 || errval < -65535 {
		return 0, corrupt("JPEG-LS: error value %d out of range", errval)
	}
	if errval < 0 {
		rc.nn++
	}
	rc.a += (m + 1 - rc.riType) >> 1
	if rc.n == s.reset {
		rc.a >>= 1
		rc.n >>= 1
		rc.nn >>= 1
	}
	rc.n++
	return errval, nil
}

func sign32(v int32) int32 {
	if v < 0 {
		return -1
	}
	return 1
}

// decodeLines decodes a non-interleaved scan (one component) or a
// line-interleaved one: per line, a line of each component in turn, each
// with its own RUNindex and line buffers, all sharing the contexts.
func (s *jlsScan) decodeLines() error {
	W, H := s.d.width, s.d.height
	nc := len(s.comps)
	// Per component two lines of W+2 samples: index 0 and W+1 are the
	// edges (T.87 A.2.1).
	lines := make([]int32, 2*nc*(W+2))
	runIndex := make([]int, nc)
	out := s.d.out
	spp := s.d.nf
	for y := 0; y < H; y++ {
		for ci, k := range s.comps {
			buf := lines[2*ci*(W+2) : 2*(ci+1)*(W+2)]
			prev, cur := buf[:W+2], buf[W+2:]
			if y&1 == 1 {
				prev, cur = cur, prev
			}
			prev[W+1] = prev[W]
			cur[0] = prev[1]
			if err := s.decodeLine(prev, cur, W, &runIndex[ci]); err != nil {
				return err
			}
			for x := 0; x < W; x++ {
				out.put((y*W+x)*spp+k, uint32(cur[x+1]))
			}
		}
		if s.br.truncated() {
			return corrupt("JPEG-LS: data ends at line %d of %d", y, H)
		}
	}
	return nil
}

// decodeLine decodes one line of one component into cur[1:W+1].
func (s *jlsScan) decodeLine(prev, cur []int32, W int, runIndex *int) error {
	for x := 1; x <= W; {
		ra, rb, rc, rd := cur[x-1], prev[x], prev[x-1], prev[x+1]
		qs := s.context(ra, rb, rc, rd)
		if qs != 0 {
			v, err := s.regular(qs, ra, rb, rc)
			if err != nil {
				return err
			}
			cur[x] = v
			x++
			continue
		}
		// Run mode.
		n, err := s.runLength(W-x+1, runIndex)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			cur[x+i] = ra
		}
		x += n
		if x > W {
			break
		}
		rb = prev[x]
		var v int32
		if abs32(ra-rb) <= s.near {
			e, err := s.interruption(&s.runCtx[1], *runIndex)
			if err != nil {
				return err
			}
			v = s.reconstruct(ra, e)
		} else {
			e, err := s.interruption(&s.runCtx[0], *runIndex)
			if err != nil {
				return err
			}
			v = s.reconstruct(rb, e*sign32(rb-ra))
		}
		cur[x] = v
		*runIndex = max(0, *runIndex-1)
		x++
	}
	return nil
}

// decodeSampleInterleaved decodes a scan of three sample-interleaved
// components: a pixel is in run mode only when all three are, and a run
// interruption codes each component with run context 0 (as CharLS does).
func (s *jlsScan) decodeSampleInterleaved() error {
	W, H := s.d.width, s.d.height
	const nc = 3
	lines := make([]int32, 2*nc*(W+2)) // pixel-interleaved, edges at 0 and W+1
	out := s.d.out
	spp := s.d.nf
	runIndex := 0
	for y := 0; y < H; y++ {
		prev, cur := lines[:nc*(W+2)], lines[nc*(W+2):]
		if y&1 == 1 {
			prev, cur = cur, prev
		}
		for c := 0; c < nc; c++ {
			prev[nc*(W+1)+c] = prev[nc*W+c]
			cur[c] = prev[nc+c]
		}
		for x := 1; x <= W; {
			var qs [nc]int32
			zero := true
			for c := 0; c < nc; c++ {
				qs[c] = s.context(cur[nc*(x-1)+c], prev[nc*x+c], prev[nc*(x-1)+c], prev[nc*(x+1)+c])
				zero = zero && qs[c] == 0
			}
			if !zero {
				for c := 0; c < nc; c++ {
					v, err := s.regular(qs[c], cur[nc*(x-1)+c], prev[nc*x+c], prev[nc*(x-1)+c])
					if err != nil {
						return err
					}
					cur[nc*x+c] = v
				}
				x++
				continue
			}
			n, err := s.runLength(W-x+1, &runIndex)
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				copy(cur[nc*(x+i):nc*(x+i)+nc], cur[nc*(x-1):nc*x])
			}
			x += n
			if x > W {
				break
			}
			for c := 0; c < nc; c++ {
				ra, rb := cur[nc*(x-1)+c], prev[nc*x+c]
				e, err := s.interruption(&s.runCtx[0], runIndex)
				if err != nil {
					return err
				}
				cur[nc*x+c] = s.reconstruct(rb, e*sign32(rb-ra))
			}
			runIndex = max(0, runIndex-1)
			x++
		}
		for x := 0; x < W; x++ {
			for c, k := range s.comps {
				out.put((y*W+x)*spp+k, uint32(cur[nc*(x+1)+c]))
			}
		}
		if s.br.truncated() {
			return corrupt("JPEG-LS: data ends at line %d of %d", y, H)
		}
	}
	return nil
}

// jlsBitReader reads JPEG-LS entropy-coded data: after a 0xFF byte the next
// byte's top bit is a stuffed 0 and carries no data; 0xFF followed by a byte
// with its top bit set is a marker, which ends the data. Past the end it
// supplies zero bits and counts them, as bitReader does.
type jlsBitReader struct {
	data   []byte
	pos    int
	acc    uint64
	n      int
	fake   int
	marker bool
	lastFF bool
}

func (r *jlsBitReader) fill() {
	for r.n <= 56 {
		if r.marker || r.pos >= len(r.data) {
			r.acc <<= 8
			r.n += 8
			r.fake += 8
			continue
		}
		b := r.data[r.pos]
		if b == 0xFF && (r.pos+1 == len(r.data) || r.data[r.pos+1]&0x80 != 0) {
			r.marker = true // 0xFF that starts a marker (or ends the data)
			continue
		}
		if r.lastFF { // the top bit after 0xFF is a stuffed 0
			r.acc = r.acc<<7 | uint64(b&0x7F)
			r.n += 7
		} else {
			r.acc = r.acc<<8 | uint64(b)
			r.n += 8
		}
		r.lastFF = b == 0xFF
		r.pos++
	}
}

func (r *jlsBitReader) truncated() bool { return r.fake > r.n }

func (r *jlsBitReader) bits(k int) int32 {
	if k == 0 {
		return 0
	}
	if r.n < k {
		r.fill()
	}
	r.n -= k
	return int32(r.acc>>uint(r.n)) & (1<<uint(k) - 1)
}

func (r *jlsBitReader) bit() bool { return r.bits(1) == 1 }

// unary counts 0 bits up to a 1 (which it consumes); ok is false if more
// than max zeros follow (no valid code has that many).
func (r *jlsBitReader) unary(max int) (int, bool) {
	q := 0
	for {
		if r.n == 0 {
			r.fill()
		}
		lz := bits.LeadingZeros64(r.acc << uint(64-r.n)) // among the r.n unread bits
		if lz < r.n {
			q += lz
			r.n -= lz + 1
			return q, q <= max
		}
		q += r.n
		r.n = 0
		if q > max {
			return q, false
		}
	}
}

// markerPos returns where the next marker starts after the scan's data.
func (r *jlsBitReader) markerPos() int {
	p := r.pos
	if r.marker {
		return p
	}
	for p+1 < len(r.data) {
		if r.data[p] == 0xFF && r.data[p+1]&0x80 != 0 {
			return p
		}
		p++
	}
	return len(r.data)
}
