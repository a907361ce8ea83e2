package dicomweb

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/radgate/radgate"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInstanceNotFound: WADO-RS answered 404 for an instance (it was
	// deleted, or never stored). It wraps radgate.ErrStudyNotFound, so the
	// router treats it as "not (yet) in the archive".
	ErrInstanceNotFound = fmt.Errorf("instance not found in the archive: %w", radgate.ErrStudyNotFound)
	// ErrUnauthorized: the PACS answered 401 or 403. Permanent: fix the
	// credentials or the PACS's permissions.
	ErrUnauthorized = errors.New("the PACS refused the request: check the DICOMweb username and password or bearer token, and the user's permissions")
	// ErrAmbiguousAccession: a search by accession number matched several
	// studies. FindStudy does not guess which one an order means (scoring
	// another patient's study is worse than failing); the order should carry
	// the Study Instance UID. Permanent.
	ErrAmbiguousAccession = errors.New("the accession number matches several studies")
	// ErrTooManyInstances: the study holds more instances than
	// Options.MaxInstancesPerStudy. Permanent.
	ErrTooManyInstances = errors.New("the study holds more instances than the configured limit")
	// ErrInstanceTooLarge: an instance exceeds Options.MaxInstanceBytes.
	// Permanent.
	ErrInstanceTooLarge = errors.New("the instance is larger than the configured limit")
	// ErrMalformedResponse: the PACS answered something this client cannot
	// read (not DICOM JSON, not multipart/related, a part that is not a
	// DICOM Part 10 file). Permanent; a body cut short is transient instead.
	ErrMalformedResponse = errors.New("malformed DICOMweb response")
	// ErrInvalidQuery: the query or a UID cannot be sent (empty, or a UID
	// that is not digits and dots). Permanent.
	ErrInvalidQuery = errors.New("invalid DICOMweb query")
	// ErrStoreIncomplete: STOW-RS stored fewer instances than it was given.
	// Store still returns what the PACS reported.
	ErrStoreIncomplete = errors.New("the PACS did not store every instance")
)

// HTTPError is a DICOMweb request the PACS answered with an unwanted HTTP
// status. Statuses 408, 429 and 5xx arrive wrapped in radgate.Transient.
type HTTPError struct {
	// Op is the DICOMweb service: "QIDO-RS", "WADO-RS" or "STOW-RS".
	Op     string
	Method string
	// Path is the request's URL path and query (no host, no credentials).
	Path       string
	StatusCode int
	// Message is the server's short explanation when it gave one (Orthanc's
	// JSON "Message" and "Details").
	Message string
	// RetryAfter is the server's Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("dicomweb: %s %s %s: PACS answered %d %s", e.Op, e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		s += " (" + ErrUnauthorized.Error() + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Public is the error for an order's answer: the service and the status,
// without the request path (it carries the accession number or UIDs) or
// the PACS's own message (radgate.PublicError).
func (e *HTTPError) Public() string {
	s := fmt.Sprintf("the PACS answered %d %s to %s", e.StatusCode, http.StatusText(e.StatusCode), e.Op)
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		s += " (" + ErrUnauthorized.Error() + ")"
	}
	return s
}

var _ radgate.PublicError = (*HTTPError)(nil)

// Is makes errors.Is(err, ErrUnauthorized) true for 401 and 403.
func (e *HTTPError) Is(target error) bool {
	return target == ErrUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}
