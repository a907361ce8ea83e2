package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/radgate/radgate"
)

// acceptAsStored asks for the instance in the transfer syntax it is stored
// in. Without transfer-syntax=* a server transcodes to Explicit VR Little
// Endian, which Orthanc cannot do for JPEG 2000 (HTTP 500).
const acceptAsStored = `multipart/related; type="application/dicom"; transfer-syntax=*`

// RetrieveInstance fetches one instance with WADO-RS,
//
//	GET /studies/{study}/series/{series}/instances/{instance}
//	Accept: multipart/related; type="application/dicom"; transfer-syntax=*
//
// and returns the DICOM Part 10 file exactly as the archive stores it (no
// transcoding). 404 wraps ErrInstanceNotFound (and so
// radgate.ErrStudyNotFound); a body cut short (no closing boundary) is
// transient; an instance over Options.MaxInstanceBytes is
// ErrInstanceTooLarge.
func (c *Client) RetrieveInstance(ctx context.Context, studyUID, seriesUID, sopInstanceUID string) ([]byte, error) {
	for _, id := range []struct{ what, uid string }{
		{"Study Instance UID", studyUID}, {"Series Instance UID", seriesUID}, {"SOP Instance UID", sopInstanceUID},
	} {
		if err := checkUID(id.what, id.uid); err != nil {
			return nil, fmt.Errorf("dicomweb: retrieving an instance: %w: %w", ErrInvalidQuery, err)
		}
	}
	r := &request{
		op:     "WADO-RS",
		method: http.MethodGet,
		url:    c.endpoint(nil, "studies", studyUID, "series", seriesUID, "instances", sopInstanceUID),
		header: http.Header{"Accept": {acceptAsStored}},
	}
	var file []byte
	err := c.do(ctx, r, nil, func(resp *http.Response) error {
		var err error
		file, err = readFirstPart(resp.Header.Get("Content-Type"), resp.Body, c.maxInstance)
		var te *radgate.TransientError
		switch {
		case errors.As(err, &te):
			return radgate.Transient(fmt.Errorf("dicomweb: %s: %w", r.where(), te.Err))
		case err != nil:
			return fmt.Errorf("dicomweb: %s: %w", r.where(), err)
		}
		return nil
	})
	if err != nil {
		var herr *HTTPError
		if asHTTPStatus(err, &herr, http.StatusNotFound) {
			return nil, fmt.Errorf("%w: %w", err, ErrInstanceNotFound)
		}
		return nil, err
	}
	return file, nil
}

// truncationError is a multipart body that ended, or failed to arrive,
// before its closing boundary.
type truncationError struct{ err error }

func (e *truncationError) Error() string {
	return "the multipart body was cut short before its closing boundary: " + e.err.Error()
}
func (e *truncationError) Unwrap() error { return e.err }

// trackingReader remembers how the underlying body ended and its last bytes,
// so that a parse error can be told apart from a truncated transfer.
type trackingReader struct {
	r       io.Reader
	readErr error // first error other than io.EOF
	eof     bool
	tail    []byte // the last tailSize bytes read
}

const tailSize = 256

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.tail = append(t.tail, p[:n]...)
		if len(t.tail) > tailSize {
			t.tail = append(t.tail[:0], t.tail[len(t.tail)-tailSize:]...)
		}
	}
	switch {
	case err == io.EOF:
		t.eof = true
	case err != nil && t.readErr == nil:
		t.readErr = err
	}
	return n, err
}

// endsWithClose reports whether the body ended with the closing delimiter
// ("--" boundary "--", maybe followed by white space).
func (t *trackingReader) endsWithClose(boundary string) bool {
	return bytes.HasSuffix(bytes.TrimRight(t.tail, " \t\r\n"), []byte("--"+boundary+"--"))
}

// bodyBufs are the buffers readFirstPart reads a body through: 256 kB,
// twice a 1024² JPEG Baseline radiograph; a larger body takes more reads.
var bodyBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 256<<10) }}

// readFirstPart reads a WADO-RS multipart/related body and returns its first
// part, which must be application/dicom, a DICOM Part 10 file, and at most
// limit bytes. Further parts are read (within the same limit) and dropped,
// so that the closing boundary is seen: without it the body is truncated.
//
// A returned error is wrapped with radgate.Transient when the body was cut
// short or could not be read; otherwise it wraps ErrMalformedResponse or
// ErrInstanceTooLarge.
func readFirstPart(contentType string, body io.Reader, limit int64) ([]byte, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w: Content-Type %q does not parse: %v", ErrMalformedResponse, sanitize(contentType, 120), err)
	}
	if mediaType != "multipart/related" {
		return nil, fmt.Errorf("%w: Content-Type is %q, want multipart/related", ErrMalformedResponse, mediaType)
	}
	if t, ok := params["type"]; ok && !strings.EqualFold(strings.Trim(t, `"`), "application/dicom") {
		return nil, fmt.Errorf("%w: multipart type is %q, want application/dicom", ErrMalformedResponse, sanitize(t, 60))
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > 200 {
		return nil, fmt.Errorf("%w: Content-Type has no usable boundary", ErrMalformedResponse)
	}

	// The body through one large buffer: multipart reads 4 kB at a time,
	// and each of those would otherwise be a read from the connection.
	// Below the tracking reader, so it still sees the body as multipart
	// consumes it (its end and its last bytes, at the same points).
	br := bodyBufs.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); bodyBufs.Put(br) }()
	tr := &trackingReader{r: br}
	mr := multipart.NewReader(tr, boundary)
	// fail classifies a multipart error: the transfer failed or stopped
	// before the closing boundary (transient), or the body is malformed.
	fail := func(what string, err error) error {
		if tr.readErr != nil {
			return radgate.Transient(fmt.Errorf("reading %s: %w", what, tr.readErr))
		}
		if tr.eof && !tr.endsWithClose(boundary) {
			return radgate.Transient(fmt.Errorf("reading %s: %w", what, &truncationError{err: err}))
		}
		return fmt.Errorf("%w: reading %s: %v", ErrMalformedResponse, what, err)
	}

	part, err := mr.NextPart()
	if err == io.EOF {
		return nil, fail("the first part", errors.New("the response holds no part"))
	}
	if err != nil {
		return nil, fail("the first part", err)
	}
	if err := checkPartType(part.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	declared := int64(-1)
	if cl := strings.TrimSpace(part.Header.Get("Content-Length")); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: the part's Content-Length %q is not a size", ErrMalformedResponse, sanitize(cl, 30))
		}
		if n > limit {
			return nil, fmt.Errorf("%w: the part declares %d bytes, limit %d", ErrInstanceTooLarge, n, limit)
		}
		declared = n
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(declared, 64<<10)+1))
	if _, err := buf.ReadFrom(io.LimitReader(part, limit+1)); err != nil {
		return nil, fail("the first part", err)
	}
	file := buf.Bytes()
	if int64(len(file)) > limit {
		return nil, fmt.Errorf("%w: the instance exceeds %d bytes", ErrInstanceTooLarge, limit)
	}

	// Read to the closing boundary, dropping any further part.
	budget := limit - int64(len(file))
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fail("the closing boundary", err)
		}
		n, err := io.Copy(io.Discard, io.LimitReader(p, budget+1))
		if err != nil {
			return nil, fail("a further part", err)
		}
		if budget -= n; budget < 0 {
			return nil, fmt.Errorf("%w: the response exceeds %d bytes", ErrInstanceTooLarge, limit)
		}
	}

	if declared >= 0 && declared != int64(len(file)) {
		return nil, fmt.Errorf("%w: the part declares %d bytes but holds %d", ErrMalformedResponse, declared, len(file))
	}
	if len(file) < 132 || string(file[128:132]) != "DICM" {
		return nil, fmt.Errorf("%w: the part is not a DICOM Part 10 file (no DICM prefix at byte 128)", ErrMalformedResponse)
	}
	return file, nil
}

// checkPartType requires a part's Content-Type to be application/dicom
// (parameters such as transfer-syntax allowed).
func checkPartType(ct string) error {
	if ct == "" {
		return fmt.Errorf("%w: the part has no Content-Type", ErrMalformedResponse)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("%w: the part's Content-Type %q does not parse", ErrMalformedResponse, sanitize(ct, 120))
	}
	if mt != "application/dicom" {
		return fmt.Errorf("%w: the part's Content-Type is %q, want application/dicom", ErrMalformedResponse, mt)
	}
	return nil
}
