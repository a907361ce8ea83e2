package dicomweb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// StoreResult is what the PACS reported about a STOW-RS request.
type StoreResult struct {
	// Stored lists the instances the PACS holds now (Referenced SOP
	// Sequence), including ones it already had: Orthanc reports an instance
	// it already stores ("AlreadyStored", keeping the first copy) as stored.
	Stored []StoredInstance
	// Failed lists the instances the PACS refused (Failed SOP Sequence).
	Failed []FailedInstance
}

// StoredInstance is one item of the Referenced SOP Sequence.
type StoredInstance struct {
	SOPClassUID    string
	SOPInstanceUID string
	// RetrieveURL is the instance's WADO-RS URL, when the PACS gave one.
	RetrieveURL string
	// WarningReason is the DICOM warning code (0xB000 "coercion of data
	// elements", …), or 0.
	WarningReason int
}

// FailedInstance is one item of the Failed SOP Sequence.
type FailedInstance struct {
	SOPClassUID    string
	SOPInstanceUID string
	// FailureReason is the DICOM failure code (0x0110 "processing failure",
	// 0xA700 "out of resources", …), or 0 if the PACS gave none.
	FailureReason int
}

// Store sends DICOM Part 10 files to the PACS with STOW-RS,
//
//	POST /studies
//	Content-Type: multipart/related; type="application/dicom"; boundary=…
//
// one part per file, and returns what the PACS reported. The error is nil
// only when the PACS answered 200 and listed every file as stored; otherwise
// the StoreResult still holds what was reported and the error wraps
// ErrStoreIncomplete (Orthanc answers 400 and simply leaves out a file it
// cannot parse), an *HTTPError, or a transient failure.
func (c *Client) Store(ctx context.Context, files ...[]byte) (StoreResult, error) {
	if len(files) == 0 {
		return StoreResult{}, fmt.Errorf("dicomweb: storing instances: %w: no file given", ErrInvalidQuery)
	}
	for i, f := range files {
		if len(f) == 0 {
			return StoreResult{}, fmt.Errorf("dicomweb: storing instances: %w: file %d is empty", ErrInvalidQuery, i)
		}
	}
	boundary, err := newBoundary(files)
	if err != nil {
		return StoreResult{}, fmt.Errorf("dicomweb: storing instances: %w", err)
	}
	head := []byte("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n")
	sep := []byte("\r\n--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n")
	tail := []byte("\r\n--" + boundary + "--\r\n")
	length := int64(len(head) + len(tail) + (len(files)-1)*len(sep))
	for _, f := range files {
		length += int64(len(f))
	}
	body := func() io.ReadCloser {
		readers := make([]io.Reader, 0, 2*len(files)+1)
		for i, f := range files {
			if i == 0 {
				readers = append(readers, bytes.NewReader(head))
			} else {
				readers = append(readers, bytes.NewReader(sep))
			}
			readers = append(readers, bytes.NewReader(f))
		}
		readers = append(readers, bytes.NewReader(tail))
		return io.NopCloser(io.MultiReader(readers...))
	}

	r := &request{
		op:     "STOW-RS",
		method: http.MethodPost,
		url:    c.endpoint(nil, "studies"),
		header: http.Header{
			"Accept":       {"application/dicom+json"},
			"Content-Type": {mime.FormatMediaType("multipart/related", map[string]string{"type": "application/dicom", "boundary": boundary})},
		},
		body:   body,
		length: length,
	}

	var (
		res    StoreResult
		status int
	)
	// 400 and 409 carry a DICOM JSON body saying what was and was not
	// stored; read it, then report the status.
	err = c.do(ctx, r, []int{http.StatusBadRequest, http.StatusConflict}, func(resp *http.Response) error {
		status = resp.StatusCode
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBytes+1))
		if err != nil {
			return bodyReadError(r, "the STOW-RS answer", err)
		}
		if len(b) > maxJSONBytes {
			return fmt.Errorf("dicomweb: %s: %w: the answer exceeds %d bytes", r.where(), ErrMalformedResponse, maxJSONBytes)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if status >= 300 {
				return &HTTPError{Op: r.op, Method: r.method, Path: r.path(), StatusCode: status}
			}
			return fmt.Errorf("dicomweb: %s: %w: empty answer", r.where(), ErrMalformedResponse)
		}
		var d dataset
		if err := d.UnmarshalJSON(b); err != nil {
			if status >= 300 {
				return &HTTPError{Op: r.op, Method: r.method, Path: r.path(), StatusCode: status, Message: messageFrom(b)}
			}
			return fmt.Errorf("dicomweb: %s: %w: not a DICOM JSON object: %v", r.where(), ErrMalformedResponse, err)
		}
		res = parseStoreResult(d)
		return nil
	})
	if err != nil {
		return res, err
	}
	// 202: stored with warnings or failures; the sequences tell which.
	if status != http.StatusOK && status != http.StatusAccepted || len(res.Failed) > 0 || len(res.Stored) < len(files) {
		return res, fmt.Errorf("dicomweb: %s: PACS answered %d %s: %w: %d of %d stored, %d failed%s",
			r.where(), status, http.StatusText(status), ErrStoreIncomplete, len(res.Stored), len(files), len(res.Failed), failureCodes(res.Failed))
	}
	return res, nil
}

func parseStoreResult(d dataset) StoreResult {
	var res StoreResult
	for _, item := range d.seq(tagReferencedSOPSequence) {
		w, _ := item.integer(tagWarningReason)
		res.Stored = append(res.Stored, StoredInstance{
			SOPClassUID:    item.str(tagReferencedSOPClass),
			SOPInstanceUID: item.str(tagReferencedSOPInstance),
			RetrieveURL:    item.str(tagRetrieveURL),
			WarningReason:  w,
		})
	}
	for _, item := range d.seq(tagFailedSOPSequence) {
		f, _ := item.integer(tagFailureReason)
		res.Failed = append(res.Failed, FailedInstance{
			SOPClassUID:    item.str(tagReferencedSOPClass),
			SOPInstanceUID: item.str(tagReferencedSOPInstance),
			FailureReason:  f,
		})
	}
	return res
}

func failureCodes(failed []FailedInstance) string {
	if len(failed) == 0 {
		return ""
	}
	codes := make([]string, 0, len(failed))
	for _, f := range failed {
		codes = append(codes, fmt.Sprintf("0x%04X", f.FailureReason))
	}
	return " (failure reasons " + strings.Join(codes, ", ") + ")"
}

// newBoundary returns a random multipart boundary found in none of the files.
func newBoundary(files [][]byte) (string, error) {
	for range 8 {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		boundary := "radgate-" + hex.EncodeToString(b[:])
		clash := false
		for _, f := range files {
			if bytes.Contains(f, []byte(boundary)) {
				clash = true
				break
			}
		}
		if !clash {
			return boundary, nil
		}
	}
	return "", errors.New("could not find a multipart boundary absent from the files")
}
