// Package dicomweb is radgate's DICOMweb (DICOM PS3.18) client. It finds
// studies with QIDO-RS, retrieves instances with WADO-RS exactly as stored,
// and stores instances with STOW-RS. *Client implements radgate.StudySource.
//
// The client holds no logger: it returns errors that say what was being done
// and name the request path, never credentials or patient data.
//
// Error classification, as the router expects it:
//   - a study or instance that is absent wraps radgate.ErrStudyNotFound
//     (ErrInstanceNotFound for an instance);
//   - HTTP 408, 429 and 5xx, timeouts, refused or reset connections and a
//     response body cut short are wrapped with radgate.Transient. A 500 that
//     repeats on every try is not necessarily transient (Orthanc answers 500
//     when it cannot transcode, say); the router's retry window bounds it;
//   - the caller's context ending is transient too (errors.Is still finds
//     context.Canceled), so that a shutdown never dead-letters an order;
//   - 401 and 403 are permanent (errors.Is(err, ErrUnauthorized)), as are
//     other 4xx answers, TLS certificate failures and malformed responses.
package dicomweb
