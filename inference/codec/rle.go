package codec

import "encoding/binary"

// decodeRLE decodes a DICOM RLE Lossless frame (PS3.5 Annex G).
//
// The frame starts with a 64-byte header: the number of segments (1…15) and
// fifteen segment offsets from the start of the frame, unused ones zero.
// There is one segment per byte of each sample: for every sample of the
// pixel in turn, its bytes from the most to the least significant (a 16-bit
// RGB image has six: R high, R low, G high, …). Each segment is a PackBits
// stream that decodes to Rows × Columns bytes.
//
// A segment that decodes to fewer than Rows × Columns bytes is an error. One
// that decodes to a few more is cut at that size, as other decoders do
// (some encoders end a segment with a run that overshoots); but an excess
// of min(Rows, Columns) bytes or more is what a wrong Rows or Columns gives
// (one byte per row, or a whole row, too many), so it is an error too. The
// output is always interleaved (Planar Configuration 0), whatever the data
// set says.
func decodeRLE(f *Frame) (*Pixels, error) {
	data := f.Data
	bpa := f.BitsAllocated / 8
	want := f.SamplesPerPixel * bpa
	if len(data) < 64 {
		return nil, corrupt("RLE header needs 64 bytes, the frame has %d", len(data))
	}
	nseg := binary.LittleEndian.Uint32(data)
	if nseg == 0 || nseg > 15 {
		return nil, corrupt("RLE header declares %d segments (1…15 allowed)", nseg)
	}
	if int(nseg) != want {
		return nil, corrupt("RLE header declares %d segments, %d samples per pixel of %d bits need %d",
			nseg, f.SamplesPerPixel, f.BitsAllocated, want)
	}
	var offs [16]int
	for i := 0; i < int(nseg); i++ {
		o := binary.LittleEndian.Uint32(data[4+4*i:])
		if o < 64 || uint64(o) > uint64(len(data)) {
			return nil, corrupt("RLE segment %d offset %d outside the frame's %d bytes", i+1, o, len(data))
		}
		if i > 0 && int(o) < offs[i-1] {
			return nil, corrupt("RLE segment %d offset %d before segment %d's %d", i+1, o, i, offs[i-1])
		}
		offs[i] = int(o)
	}
	offs[nseg] = len(data)

	px := newPixels(f, f.BitsStored)
	npix := f.Rows * f.Columns
	excess := min(f.Rows, f.Columns)  // decoded bytes past npix that make an error
	stride := f.SamplesPerPixel * bpa // output bytes from one pixel to the next
	for s := 0; s < int(nseg); s++ {
		sample, byteIdx := s/bpa, s%bpa
		// Little-endian output: the most significant byte (segment byte 0)
		// is the last of the word.
		start := sample*bpa + (bpa - 1 - byteIdx)
		n := unpackBits(data[offs[s]:offs[s+1]], px.Data[start:], stride, npix, excess)
		if n < npix {
			return nil, corrupt("RLE segment %d decodes to %d bytes, %d × %d needs %d", s+1, n, f.Rows, f.Columns, npix)
		}
		if n >= npix+excess {
			return nil, corrupt("RLE segment %d decodes to more than %d bytes, %d × %d needs %d: Rows or Columns disagree with the stream",
				s+1, n-1, f.Rows, f.Columns, npix)
		}
	}
	return px, nil
}

// unpackBits decodes a PackBits segment into dst[0], dst[stride], …, at most
// n bytes, and returns how many bytes the segment decodes to: the ones it
// wrote and, past n, the ones it only counted (it stops counting at n+extra).
func unpackBits(src, dst []byte, stride, n, extra int) int {
	o := 0
	for i := 0; i < len(src) && o < n+extra; {
		h := int(int8(src[i]))
		i++
		switch {
		case h >= 0: // literal run of h+1 bytes
			lit := src[i:min(i+h+1, len(src))]
			i += h + 1
			w := max(0, min(len(lit), n-o)) // what fits; the rest is only counted
			for j, b := range lit[:w] {
				dst[(o+j)*stride] = b
			}
			o += len(lit)
		case h == -128: // no operation
		default: // replicate the next byte 1-h times
			if i >= len(src) {
				return o
			}
			b := src[i]
			i++
			k := 1 - h
			w := max(0, min(k, n-o))
			if stride == 1 {
				for j := o; j < o+w; j++ {
					dst[j] = b
				}
			} else {
				for j := o; j < o+w; j++ {
					dst[j*stride] = b
				}
			}
			o += k
		}
	}
	return o
}
