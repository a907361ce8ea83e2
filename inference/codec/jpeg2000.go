//go:build cgo

package codec

// JPEG 2000 through OpenJPEG (Debian libopenjp2-7-dev, 2.5). Before any C
// call the codestream's SIZ and COD segments are parsed in Go (j2kHeader)
// and checked against the Frame, so OpenJPEG only ever sees a codestream of
// the expected size. The C shim below reads from a bounded memory stream,
// decodes in strict mode (a truncated codestream is an error, not a
// partial image), checks every component again after decoding, and writes
// the words into a buffer whose size it is told, never past it.

/*
#cgo pkg-config: libopenjp2
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>

typedef struct {
	const unsigned char *data;
	size_t len, pos;
} rg_mem;

static OPJ_SIZE_T rg_read(void *buf, OPJ_SIZE_T n, void *user) {
	rg_mem *m = (rg_mem *)user;
	if (m->pos >= m->len) return (OPJ_SIZE_T)-1;
	size_t left = m->len - m->pos;
	if (n > left) n = left;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return n;
}

static OPJ_OFF_T rg_skip(OPJ_OFF_T n, void *user) {
	rg_mem *m = (rg_mem *)user;
	if (n < 0) {
		if ((OPJ_UINT64)(-n) > m->pos) return (OPJ_OFF_T)-1;
	} else if ((OPJ_UINT64)n > m->len - m->pos) {
		return (OPJ_OFF_T)-1;
	}
	m->pos = (size_t)((OPJ_OFF_T)m->pos + n);
	return n;
}

static OPJ_BOOL rg_seek(OPJ_OFF_T n, void *user) {
	rg_mem *m = (rg_mem *)user;
	if (n < 0 || (OPJ_UINT64)n > m->len) return OPJ_FALSE;
	m->pos = (size_t)n;
	return OPJ_TRUE;
}

typedef struct {
	char msg[256];
} rg_err;

static void rg_on_error(const char *msg, void *user) {
	rg_err *e = (rg_err *)user;
	if (e->msg[0] == 0 && msg != NULL) {
		strncpy(e->msg, msg, sizeof e->msg - 1);
		e->msg[sizeof e->msg - 1] = 0;
	}
}

static void rg_quiet(const char *msg, void *user) { (void)msg; (void)user; }

// rg_j2k_decode decodes a J2K codestream of w × h pixels and nc components
// into dst: interleaved little-endian words of bpw bytes (1, 2 or 4),
// dst_len bytes. It returns 0 on success, or a negative code with err->msg
// set. prec and sgnd receive the first component's precision and signedness.
static int rg_j2k_decode(const unsigned char *src, size_t src_len,
                         OPJ_UINT32 w, OPJ_UINT32 h, OPJ_UINT32 nc, int bpw,
                         unsigned char *dst, size_t dst_len,
                         int *prec, int *sgnd, rg_err *err) {
	if ((size_t)w * h * nc * (size_t)bpw != dst_len) {
		snprintf(err->msg, sizeof err->msg, "output buffer size mismatch");
		return -1;
	}
	rg_mem mem = {src, src_len, 0};
	opj_stream_t *stream = NULL;
	opj_codec_t *codec = NULL;
	opj_image_t *image = NULL;
	int rc = -1;

	stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
	if (!stream) { snprintf(err->msg, sizeof err->msg, "cannot create stream"); goto done; }
	opj_stream_set_user_data(stream, &mem, NULL);
	opj_stream_set_user_data_length(stream, src_len);
	opj_stream_set_read_function(stream, rg_read);
	opj_stream_set_skip_function(stream, rg_skip);
	opj_stream_set_seek_function(stream, rg_seek);

	codec = opj_create_decompress(OPJ_CODEC_J2K);
	if (!codec) { snprintf(err->msg, sizeof err->msg, "cannot create codec"); goto done; }
	opj_set_error_handler(codec, rg_on_error, err);
	opj_set_warning_handler(codec, rg_quiet, NULL);
	opj_set_info_handler(codec, rg_quiet, NULL);
	opj_dparameters_t params;
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(codec, &params)) { rc = -2; goto done; }
	if (!opj_decoder_set_strict_mode(codec, OPJ_TRUE)) { rc = -2; goto done; }
	if (!opj_read_header(stream, codec, &image) || image == NULL) { rc = -3; goto done; }
	if (image->x1 - image->x0 != w || image->y1 - image->y0 != h || image->numcomps != nc) {
		snprintf(err->msg, sizeof err->msg, "header is %u x %u with %u components",
		         image->x1 - image->x0, image->y1 - image->y0, image->numcomps);
		rc = -4; goto done;
	}
	if (!opj_decode(codec, stream, image)) { rc = -5; goto done; }
	if (!opj_end_decompress(codec, stream)) { rc = -5; goto done; }
	if (image->numcomps != nc) {
		snprintf(err->msg, sizeof err->msg, "decoded %u components", image->numcomps);
		rc = -4; goto done;
	}
	for (OPJ_UINT32 c = 0; c < nc; c++) {
		opj_image_comp_t *comp = &image->comps[c];
		if (comp->data == NULL || comp->w != w || comp->h != h || comp->dx != 1 || comp->dy != 1 ||
		    comp->prec < 1 || comp->prec > (OPJ_UINT32)(8 * bpw)) {
			snprintf(err->msg, sizeof err->msg, "component %u decoded as %u x %u, %u bits%s",
			         c, comp->w, comp->h, comp->prec, comp->data == NULL ? ", no data" : "");
			rc = -4; goto done;
		}
	}
	*prec = (int)image->comps[0].prec;
	*sgnd = (int)image->comps[0].sgnd;
	size_t npix = (size_t)w * h;
	for (OPJ_UINT32 c = 0; c < nc; c++) {
		const OPJ_INT32 *s = image->comps[c].data;
		unsigned char *d = dst + (size_t)c * bpw;
		size_t step = (size_t)nc * bpw;
		for (size_t i = 0; i < npix; i++, d += step) {
			OPJ_UINT32 v = (OPJ_UINT32)s[i];
			switch (bpw) {
			case 1: d[0] = (unsigned char)v; break;
			case 2: d[0] = (unsigned char)v; d[1] = (unsigned char)(v >> 8); break;
			default: d[0] = (unsigned char)v; d[1] = (unsigned char)(v >> 8);
			         d[2] = (unsigned char)(v >> 16); d[3] = (unsigned char)(v >> 24);
			}
		}
	}
	rc = 0;
done:
	if (image) opj_image_destroy(image);
	if (codec) opj_destroy_codec(codec);
	if (stream) opj_stream_destroy(stream);
	return rc;
}
*/
import "C"

import (
	"strings"
	"unsafe"
)

const haveOpenJPEG = true

// decodeJPEG2000 decodes a JPEG 2000 frame (a J2K codestream, or a JP2 file
// whose contiguous codestream box is decoded).
func decodeJPEG2000(f *Frame) (*Pixels, error) {
	cs, err := j2kCodestream(f.Data)
	if err != nil {
		return nil, err
	}
	hdr, err := parseJ2KHeader(cs)
	if err != nil {
		return nil, err
	}
	if err := hdr.check(f); err != nil {
		return nil, err
	}
	px := newPixels(f, hdr.prec)
	var prec, sgnd C.int
	var e C.rg_err
	rc := C.rg_j2k_decode((*C.uchar)(unsafe.Pointer(&cs[0])), C.size_t(len(cs)),
		C.OPJ_UINT32(f.Columns), C.OPJ_UINT32(f.Rows), C.OPJ_UINT32(f.SamplesPerPixel), C.int(f.BitsAllocated/8),
		(*C.uchar)(unsafe.Pointer(&px.Data[0])), C.size_t(len(px.Data)), &prec, &sgnd, &e)
	if rc != 0 {
		msg := strings.TrimSpace(C.GoString(&e.msg[0]))
		if msg == "" {
			msg = "OpenJPEG could not decode the codestream"
		}
		return nil, corrupt("JPEG 2000: %s", msg)
	}
	px.Precision = int(prec)
	if f.SamplesPerPixel == 3 && hdr.mct {
		px.PhotometricInterpretation = "RGB"
	}
	return px, nil
}
