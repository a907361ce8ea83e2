package codec

import (
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// llEncoder is a minimal lossless JPEG (process 14) encoder for tests: it
// writes what DCMTK does not — restart intervals, 16-bit samples with
// difference category 16, one scan per component — so the decoder's
// handling of them is checked against the standard, not only against
// DCMTK's streams.
type llEncoder struct {
	out  []byte
	acc  uint64
	nacc int
}

func (e *llEncoder) bits(v uint32, n int) {
	e.acc = e.acc<<uint(n) | uint64(v)&(1<<uint(n)-1)
	e.nacc += n
	for e.nacc >= 8 {
		b := byte(e.acc >> uint(e.nacc-8))
		e.out = append(e.out, b)
		if b == 0xFF {
			e.out = append(e.out, 0)
		}
		e.nacc -= 8
	}
}

func (e *llEncoder) flush() {
	if e.nacc > 0 {
		e.bits(1<<uint(8-e.nacc)-1, 8-e.nacc) // pad with 1 bits
	}
}

func (e *llEncoder) marker(m byte, payload ...byte) {
	e.out = append(e.out, 0xFF, m)
	if m != mSOI && m != mEOI && (m < mRST0 || m > mRST7) {
		n := len(payload) + 2
		e.out = append(e.out, byte(n>>8), byte(n))
		e.out = append(e.out, payload...)
	}
}

// encodeLossless encodes planes (one per component, w × h samples of
// precision p) with predictor pred and point transform pt, a restart
// interval of restartRows lines (0: none), in one interleaved scan or one
// scan per component. Every difference category is coded with 5 bits.
func encodeLossless(planes [][]uint16, w, h, p, pred, pt, restartRows int, interleaved bool) []byte {
	var e llEncoder
	nf := len(planes)
	e.marker(mSOI)
	sof := []byte{byte(p), byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nf)}
	for c := 0; c < nf; c++ {
		sof = append(sof, byte(c+1), 0x11, 0)
	}
	e.marker(mSOF3, sof...)
	dht := []byte{0x00}
	counts := make([]byte, 16)
	counts[4] = 17 // 17 codes of 5 bits: categories 0…16
	dht = append(dht, counts...)
	for s := 0; s <= 16; s++ {
		dht = append(dht, byte(s))
	}
	e.marker(mDHT, dht...)
	if restartRows > 0 {
		ri := restartRows * w
		e.marker(mDRI, byte(ri>>8), byte(ri))
	}
	scans := [][]int{}
	if interleaved {
		all := []int{}
		for c := 0; c < nf; c++ {
			all = append(all, c)
		}
		scans = append(scans, all)
	} else {
		for c := 0; c < nf; c++ {
			scans = append(scans, []int{c})
		}
	}
	for _, sc := range scans {
		sos := []byte{byte(len(sc))}
		for _, c := range sc {
			sos = append(sos, byte(c+1), 0x00)
		}
		sos = append(sos, byte(pred), 0, byte(pt))
		e.marker(mSOS, sos...)
		at := func(c, x, y int) int { return int(planes[c][y*w+x]) >> uint(pt) }
		rst := 0
		for y := 0; y < h; y++ {
			lineStart := y == 0
			if restartRows > 0 && y > 0 && y%restartRows == 0 {
				e.flush()
				e.marker(byte(mRST0 + rst))
				rst = (rst + 1) % 8
				lineStart = true
			}
			for x := 0; x < w; x++ {
				for _, c := range sc {
					var px int
					switch {
					case lineStart && x == 0:
						px = 1 << uint(p-pt-1)
					case lineStart:
						px = at(c, x-1, y)
					case x == 0:
						px = at(c, x, y-1)
					default:
						a, b, cc := at(c, x-1, y), at(c, x, y-1), at(c, x-1, y-1)
						px = [...]int{0, a, b, cc, a + b - cc, a + (b-cc)>>1, b + (a-cc)>>1, (a + b) / 2}[pred]
					}
					diff := (at(c, x, y) - px) & 0xFFFF
					if diff >= 32768 {
						diff -= 65536
					}
					if diff == -32768 {
						e.bits(16, 5)
						continue
					}
					mag := diff
					if mag < 0 {
						mag = -mag
					}
					ssss := bits.Len(uint(mag))
					e.bits(uint32(ssss), 5)
					if diff < 0 {
						diff += 1<<uint(ssss) - 1
					}
					e.bits(uint32(diff), ssss)
				}
			}
		}
		e.flush()
	}
	e.marker(mEOI)
	return e.out
}

func TestLosslessJPEGStandardFeatures(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	plane := func(w, h, p int, smooth bool) []uint16 {
		out := make([]uint16, w*h)
		for i := range out {
			if smooth {
				x, y := i%w, i/w
				out[i] = uint16((x*37 + y*11 + rnd.IntN(16)) % (1 << uint(p)))
			} else {
				// Extremes next to each other: differences of ±32768
				// (category 16) at 16 bits.
				out[i] = []uint16{0, uint16(1<<uint(p) - 1), uint16(rnd.IntN(1 << uint(p)))}[rnd.IntN(3)]
			}
		}
		return out
	}
	tests := []struct {
		name                string
		w, h, p, nf         int
		pred, pt, restart   int
		interleaved, smooth bool
	}{
		{name: "16-bit extremes, predictor 1", w: 37, h: 23, p: 16, nf: 1, pred: 1},
		{name: "16-bit extremes, predictor 7, restart every 3 lines", w: 37, h: 23, p: 16, nf: 1, pred: 7, restart: 3},
		{name: "12-bit, predictor 4, point transform 3, restart every line", w: 40, h: 9, p: 12, nf: 1, pred: 4, pt: 3, restart: 1, smooth: true},
		{name: "2-bit, predictor 5", w: 17, h: 5, p: 2, nf: 1, pred: 5},
		{name: "RGB interleaved, predictor 6, restart every 2 lines", w: 21, h: 11, p: 8, nf: 3, pred: 6, restart: 2, interleaved: true, smooth: true},
		{name: "RGB one scan per component, predictor 2, restart every 4 lines", w: 21, h: 11, p: 8, nf: 3, pred: 2, restart: 4, smooth: true},
		{name: "one-pixel image", w: 1, h: 1, p: 16, nf: 1, pred: 1},
		{name: "one column, predictor 3", w: 1, h: 30, p: 10, nf: 1, pred: 3, smooth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			planes := make([][]uint16, tc.nf)
			for c := range planes {
				planes[c] = plane(tc.w, tc.h, tc.p, tc.smooth)
			}
			data := encodeLossless(planes, tc.w, tc.h, tc.p, tc.pred, tc.pt, tc.restart, tc.interleaved)
			ba := 16
			if tc.p <= 8 {
				ba = 8
			}
			px, err := Decode(Frame{TransferSyntaxUID: JPEGLossless, Data: data, Rows: tc.h, Columns: tc.w,
				SamplesPerPixel: tc.nf, BitsAllocated: ba, BitsStored: tc.p})
			require.NoError(t, err)
			require.Equal(t, tc.p, px.Precision)
			for i := 0; i < tc.w*tc.h; i++ {
				for c := 0; c < tc.nf; c++ {
					want := uint32(planes[c][i]>>uint(tc.pt)) << uint(tc.pt)
					require.Equal(t, want, px.Word(i*tc.nf+c), "sample %d of component %d", i, c)
				}
			}
			// Every truncation fails: never a silently incomplete image.
			for cut := len(data) - 3; cut > 0; cut -= 1 + cut/7 {
				f := Frame{TransferSyntaxUID: JPEGLossless, Data: data[:cut], Rows: tc.h, Columns: tc.w,
					SamplesPerPixel: tc.nf, BitsAllocated: ba, BitsStored: tc.p}
				_, err := Decode(f)
				require.ErrorIs(t, err, ErrCorrupt, "cut at %d of %d", cut, len(data))
			}
		})
	}

	t.Run("restart interval inside a line", func(t *testing.T) {
		data := encodeLossless([][]uint16{plane(8, 4, 8, true)}, 8, 4, 8, 1, 0, 1, false)
		// Patch the DRI segment (interval 8 MCUs = one line) to 5.
		for i := 0; i+5 < len(data); i++ {
			if data[i] == 0xFF && data[i+1] == mDRI {
				data[i+5] = 5
				break
			}
		}
		_, err := Decode(Frame{TransferSyntaxUID: JPEGLossless, Data: data, Rows: 4, Columns: 8,
			SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8})
		require.ErrorIs(t, err, ErrUnsupported)
	})
}

func TestJPEGUnsupportedProcesses(t *testing.T) {
	for _, tc := range []struct {
		name string
		sof  byte
		want error
	}{
		{"hierarchical", 0xC5, ErrUnsupported},
		{"arithmetic sequential", 0xC9, ErrUnsupported},
		{"arithmetic lossless", 0xCB, ErrUnsupported},
		{"12-bit progressive", mSOF2, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte{0xFF, mSOI, 0xFF, tc.sof, 0, 11, 12, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xFF, mEOI}
			_, err := Decode(Frame{TransferSyntaxUID: JPEGExtended, Data: data, Rows: 8, Columns: 8,
				SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 12})
			require.ErrorIs(t, err, tc.want)
		})
	}
}
