package codec

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// packBits encodes b as PackBits: replicate runs of 3 or more, literals
// otherwise (each at most 128 bytes).
func packBits(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		run := 1
		for i+run < len(b) && b[i+run] == b[i] && run < 128 {
			run++
		}
		if run >= 3 {
			out = append(out, byte(int8(1-run)), b[i])
			i += run
			continue
		}
		j := i
		for j < len(b) && j-i < 128 {
			if j+2 < len(b) && b[j] == b[j+1] && b[j] == b[j+2] {
				break
			}
			j++
		}
		out = append(out, byte(j-i-1))
		out = append(out, b[i:j]...)
		i = j
	}
	return out
}

// encodeRLE builds a DICOM RLE frame from native little-endian words.
func encodeRLE(native []byte, npix, spp, ba int) []byte {
	bpa := ba / 8
	nseg := spp * bpa
	segs := make([][]byte, nseg)
	for s := 0; s < nseg; s++ {
		plane := make([]byte, npix)
		sample, byteIdx := s/bpa, s%bpa
		for p := 0; p < npix; p++ {
			plane[p] = native[(p*spp+sample)*bpa+bpa-1-byteIdx]
		}
		segs[s] = packBits(plane)
		if len(segs[s])%2 == 1 {
			segs[s] = append(segs[s], 0) // pad to even: a no-data literal header
		}
	}
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, uint32(nseg))
	off := 64
	for s := 0; s < nseg; s++ {
		binary.LittleEndian.PutUint32(hdr[4+4*s:], uint32(off))
		off += len(segs[s])
	}
	for _, s := range segs {
		hdr = append(hdr, s...)
	}
	return hdr
}

func TestRLERoundTrips(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name          string
		w, h, spp, ba int
	}{
		{"8-bit grey", 33, 17, 1, 8},
		{"16-bit grey", 33, 17, 1, 16},
		{"32-bit grey", 9, 7, 1, 32},
		{"8-bit RGB", 20, 10, 3, 8},
		{"16-bit RGB", 20, 10, 3, 16},
		{"one pixel", 1, 1, 1, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			native := make([]byte, tc.w*tc.h*tc.spp*tc.ba/8)
			for i := range native {
				if rnd.IntN(3) > 0 && i > 0 {
					native[i] = native[i-1] // runs
				} else {
					native[i] = byte(rnd.IntN(256))
				}
			}
			data := encodeRLE(native, tc.w*tc.h, tc.spp, tc.ba)
			px, err := Decode(Frame{TransferSyntaxUID: RLELossless, Data: data, Rows: tc.h, Columns: tc.w,
				SamplesPerPixel: tc.spp, BitsAllocated: tc.ba, BitsStored: tc.ba})
			require.NoError(t, err)
			require.Equal(t, native, px.Data)
		})
	}
}

func TestRLESegments(t *testing.T) {
	frame := func(segs ...[]byte) []byte {
		hdr := make([]byte, 64)
		binary.LittleEndian.PutUint32(hdr, uint32(len(segs)))
		off := 64
		for i, s := range segs {
			binary.LittleEndian.PutUint32(hdr[4+4*i:], uint32(off))
			off += len(s)
		}
		for _, s := range segs {
			hdr = append(hdr, s...)
		}
		return hdr
	}
	decode := func(data []byte, rows, cols int) (*Pixels, error) {
		return Decode(Frame{TransferSyntaxUID: RLELossless, Data: data, Rows: rows, Columns: cols,
			SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8})
	}
	t.Run("literal, replicate and no-op", func(t *testing.T) {
		px, err := decode(frame([]byte{0x80, 1, 'a', 'b', 0xFE, 'c', 0x80, 0x00, 'd'}), 2, 3)
		require.NoError(t, err)
		require.Equal(t, []byte("abcccd"), px.Data)
	})
	t.Run("run past the end by less than a row is cut", func(t *testing.T) {
		px, err := decode(frame([]byte{0xFC, 'x'}), 2, 2) // 5 × 'x' for 4 pixels
		require.NoError(t, err)
		require.Equal(t, []byte("xxxx"), px.Data)
	})
	t.Run("a whole extra row is a mismatch", func(t *testing.T) {
		_, err := decode(frame([]byte{0xFA, 'x'}), 2, 2) // 7 bytes for 4
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "Rows or Columns disagree")
	})
	t.Run("short segment", func(t *testing.T) {
		_, err := decode(frame([]byte{0x02, 'a', 'b', 'c'}), 2, 2)
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "RLE segment 1 decodes to 3 bytes, 2 × 2 needs 4")
	})
	t.Run("literal cut by the end of the segment", func(t *testing.T) {
		_, err := decode(frame([]byte{0x05, 'a', 'b'}), 2, 2)
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("replicate without its byte", func(t *testing.T) {
		_, err := decode(frame([]byte{0xFD}), 2, 2)
		require.ErrorIs(t, err, ErrCorrupt)
	})
	for _, tc := range []struct {
		name string
		edit func([]byte)
		msg  string
	}{
		{"no segments", func(b []byte) { b[0] = 0 }, "declares 0 segments"},
		{"16 segments", func(b []byte) { b[0] = 16 }, "declares 16 segments"},
		{"segment count for another image", func(b []byte) { b[0] = 2 }, "declares 2 segments, 1 samples per pixel of 8 bits need 1"},
		{"offset inside the header", func(b []byte) { b[4] = 10 }, "offset 10 outside"},
		{"offset past the end", func(b []byte) { b[5] = 0xFF }, "outside the frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := frame([]byte{0xFC, 'x'})
			tc.edit(data)
			_, err := decode(data, 2, 2)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	t.Run("offsets out of order", func(t *testing.T) {
		data := frame([]byte{0xFC, 'x'}, []byte{0xFC, 'y'})
		binary.LittleEndian.PutUint32(data[8:], 64)
		binary.LittleEndian.PutUint32(data[4:], 66)
		_, err := Decode(Frame{TransferSyntaxUID: RLELossless, Data: data, Rows: 2, Columns: 2,
			SamplesPerPixel: 1, BitsAllocated: 16, BitsStored: 16})
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "before segment 1")
	})
}
