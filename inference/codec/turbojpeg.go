//go:build cgo

package codec

// 8-bit JPEG through libjpeg-turbo's TurboJPEG API (Debian
// libturbojpeg0-dev, 2.1): decoding a JPEG Baseline frame to grey, and
// encoding a picture (the heatmap preview). It is about four times faster
// than Go's image/jpeg on both (BENCHMARKS.md, issue 12). The header is read
// first and checked against the size the caller expects, so the library
// only ever writes into a buffer of that size; any warning (a truncated or
// corrupt stream, which libjpeg would fill in with grey) is an error.

/*
#cgo pkg-config: libturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// TurboJPEG reports whether DecodeJPEGGray and EncodeJPEG are available
// (they need cgo).
const TurboJPEG = true

// flags: the accurate integer DCT (libjpeg's islow, as DCMTK and our own
// decoder use), and stop at the first warning.
const tjFlags = C.TJFLAG_ACCURATEDCT | C.TJFLAG_STOPONWARNING

func tjError(h C.tjhandle) error {
	return errors.New(C.GoString(C.tjGetErrorStr2(h)))
}

// DecodeJPEGGray decodes an 8-bit DCT JPEG (baseline, extended or
// progressive) to grey, one byte a pixel, rows of width bytes. A colour
// stream gives its luminance. The stream must be width×height: anything
// else is ErrCorrupt before a pixel is decoded. A 12-bit stream is
// ErrUnsupported.
func DecodeJPEGGray(data []byte, width, height int) ([]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty JPEG stream", ErrCorrupt)
	}
	if width <= 0 || height <= 0 || width > 1<<16 || height > 1<<16 {
		return nil, fmt.Errorf("%w: %d×%d is not an image size", ErrCorrupt, width, height)
	}
	h := C.tjInitDecompress()
	if h == nil {
		return nil, errors.New("libjpeg-turbo: no decompressor")
	}
	defer C.tjDestroy(h)
	var w, ht, subsamp, colorspace C.int
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	if C.tjDecompressHeader3(h, src, C.ulong(len(data)), &w, &ht, &subsamp, &colorspace) != 0 {
		msg := C.GoString(C.tjGetErrorStr2(h))
		if containsPrecision(msg) {
			return nil, fmt.Errorf("%w: %s", ErrUnsupported, msg)
		}
		return nil, fmt.Errorf("%w: JPEG header: %s", ErrCorrupt, msg)
	}
	if int(w) != width || int(ht) != height {
		return nil, fmt.Errorf("%w: JPEG frame is %d×%d, header says %d×%d", ErrCorrupt, int(w), int(ht), width, height)
	}
	out := make([]byte, width*height)
	if C.tjDecompress2(h, src, C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&out[0])), C.int(width), C.int(width), C.int(height), C.TJPF_GRAY, tjFlags) != 0 {
		msg := C.GoString(C.tjGetErrorStr2(h))
		if containsPrecision(msg) {
			return nil, fmt.Errorf("%w: %s", ErrUnsupported, msg)
		}
		return nil, fmt.Errorf("%w: JPEG data: %s", ErrCorrupt, msg)
	}
	return out, nil
}

func containsPrecision(msg string) bool { return strings.Contains(msg, "precision") }

// EncodeJPEG encodes a picture as a baseline JPEG at quality (1–100): grey
// (one byte a pixel) or RGBA (four, alpha ignored; chroma 4:2:0), rows
// stride bytes apart.
func EncodeJPEG(pix []byte, width, height, stride int, grey bool, quality int) ([]byte, error) {
	bpp, format, samp := 4, C.TJPF_RGBA, C.TJSAMP_420
	if grey {
		bpp, format, samp = 1, C.TJPF_GRAY, C.TJSAMP_GRAY
	}
	if width <= 0 || height <= 0 || stride < width*bpp || len(pix) < (height-1)*stride+width*bpp {
		return nil, fmt.Errorf("encoding a JPEG: %d bytes are not a %d×%d picture of stride %d", len(pix), width, height, stride)
	}
	h := C.tjInitCompress()
	if h == nil {
		return nil, errors.New("libjpeg-turbo: no compressor")
	}
	defer C.tjDestroy(h)
	var buf *C.uchar
	var size C.ulong
	if C.tjCompress2(h, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(width), C.int(stride), C.int(height), C.int(format),
		&buf, &size, C.int(samp), C.int(quality), C.TJFLAG_ACCURATEDCT) != 0 {
		err := tjError(h)
		if buf != nil {
			C.tjFree(buf)
		}
		return nil, fmt.Errorf("encoding a JPEG: %w", err)
	}
	defer C.tjFree(buf)
	return C.GoBytes(unsafe.Pointer(buf), C.int(size)), nil
}
