//go:build cgo

package codec

// JPEG-LS through CharLS (Debian libcharls-dev, 2.x C API). CharLS is C++
// behind a C API that catches every exception and returns an error code;
// it checks the source and destination sizes it is given. On top of that,
// the stream header is checked against the Frame before anything is
// decoded, so CharLS never sizes a buffer from the stream alone.

/*
#cgo pkg-config: charls
#include <stdlib.h>
#include <charls/charls.h>
*/
import "C"

import (
	"encoding/binary"
	"runtime"
	"unsafe"
)

const haveCharLS = true

func charlsErr(what string, rc C.charls_jpegls_errc) error {
	return corrupt("JPEG-LS %s: %s (CharLS error %d)", what, C.GoString(C.charls_get_error_message(rc)), int(rc))
}

// decodeJPEGLS decodes a JPEG-LS lossless or near-lossless frame.
func decodeJPEGLS(f *Frame) (*Pixels, error) {
	if len(f.Data) < 4 || f.Data[0] != 0xFF || f.Data[1] != 0xD8 {
		return nil, corrupt("no JPEG-LS SOI marker at the start of the frame")
	}
	dec := C.charls_jpegls_decoder_create()
	if dec == nil {
		return nil, corrupt("JPEG-LS: CharLS could not create a decoder")
	}
	defer C.charls_jpegls_decoder_destroy(dec)

	// CharLS keeps a pointer to the source between calls: pin it.
	var pin runtime.Pinner
	defer pin.Unpin()
	src := &f.Data[0]
	pin.Pin(src)
	if rc := C.charls_jpegls_decoder_set_source_buffer(dec, unsafe.Pointer(src), C.size_t(len(f.Data))); rc != 0 {
		return nil, charlsErr("source", rc)
	}
	if rc := C.charls_jpegls_decoder_read_header(dec); rc != 0 {
		return nil, charlsErr("header", rc)
	}
	var fi C.charls_frame_info
	if rc := C.charls_jpegls_decoder_get_frame_info(dec, &fi); rc != 0 {
		return nil, charlsErr("frame info", rc)
	}
	w, h, bits, nc := int(fi.width), int(fi.height), int(fi.bits_per_sample), int(fi.component_count)
	if w != f.Columns || h != f.Rows {
		return nil, corrupt("JPEG-LS frame is %d × %d, the data set says %d × %d", w, h, f.Columns, f.Rows)
	}
	if nc != f.SamplesPerPixel {
		return nil, corrupt("JPEG-LS frame has %d components, Samples per Pixel is %d", nc, f.SamplesPerPixel)
	}
	if bits < 2 || bits > 16 || bits > f.BitsAllocated {
		return nil, corrupt("JPEG-LS precision %d bits with Bits Allocated %d", bits, f.BitsAllocated)
	}
	var near C.int32_t
	if rc := C.charls_jpegls_decoder_get_near_lossless(dec, 0, &near); rc != 0 {
		return nil, charlsErr("NEAR parameter", rc)
	}
	var ilv C.charls_interleave_mode
	if rc := C.charls_jpegls_decoder_get_interleave_mode(dec, &ilv); rc != 0 {
		return nil, charlsErr("interleave mode", rc)
	}
	bps := 1 // CharLS writes 1 byte per sample up to 8 bits, 2 (native order) above
	if bits > 8 {
		bps = 2
	}
	size := w * h * nc * bps
	var need C.size_t
	if rc := C.charls_jpegls_decoder_get_destination_size(dec, 0, &need); rc != 0 {
		return nil, charlsErr("destination size", rc)
	}
	if int(need) != size {
		return nil, corrupt("JPEG-LS: CharLS needs %d bytes for %d × %d × %d samples of %d bits", int(need), w, h, nc, bits)
	}

	px := newPixels(f, bits)
	px.NearLossless = int(near)
	planar := nc > 1 && ilv == C.CHARLS_INTERLEAVE_MODE_NONE // CharLS writes RRR…GGG…BBB
	direct := !planar && bps == f.BitsAllocated/8 && (bps == 1 || littleEndianHost)
	buf := px.Data
	if !direct {
		buf = make([]byte, size)
	}
	if rc := C.charls_jpegls_decoder_decode_to_buffer(dec, unsafe.Pointer(&buf[0]), C.size_t(len(buf)), 0); rc != 0 {
		return nil, charlsErr("decoding", rc)
	}
	if direct {
		return px, nil
	}
	npix := w * h
	for i := 0; i < npix*nc; i++ {
		j := i // sample index in CharLS's buffer
		if planar {
			j = (i%nc)*npix + i/nc
		}
		var v uint32
		if bps == 1 {
			v = uint32(buf[j])
		} else {
			v = uint32(binary.NativeEndian.Uint16(buf[2*j:]))
		}
		px.put(i, v)
	}
	return px, nil
}

// littleEndianHost is true where native byte order is little-endian.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
