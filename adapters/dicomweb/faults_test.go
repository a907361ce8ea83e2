package dicomweb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// Faults a real Orthanc cannot be made to produce, from small servers on
// 127.0.0.1 (httptest binds the loopback address).

const (
	tStudy  = "1.2.826.0.1.3680043.8.498.1"
	tSeries = "1.2.826.0.1.3680043.8.498.1.1"
	tSOP    = "1.2.826.0.1.3680043.8.498.1.1.1"
	secret  = "s3cret-pw-9d1c"
)

// fakePart10 is a minimal DICOM Part 10 file: preamble, "DICM", a few bytes.
func fakePart10(n int) []byte {
	b := make([]byte, 132+n)
	copy(b[128:], "DICM")
	for i := 132; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// orthancMultipart lays out a WADO-RS answer exactly as Orthanc 1.10 does.
func orthancMultipart(boundary string, parts ...[]byte) []byte {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\nMIME-Version: 1.0\r\n\r\n", boundary, len(p))
		b.Write(p)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}

func multipartType(boundary string) string {
	return `multipart/related; type="application/dicom"; boundary=` + boundary
}

func testClient(t *testing.T, baseURL string, mod ...func(*Options)) *Client {
	t.Helper()
	opts := Options{BaseURL: baseURL + "/dicom-web", Username: "radgate", Password: secret, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	return c
}

// serve runs handler behind a test server and returns a client for it.
func serve(t *testing.T, handler http.HandlerFunc, mod ...func(*Options)) *Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return testClient(t, srv.URL, mod...)
}

// rawResponse writes head and body on the bare connection and closes it, so
// that the body can end before its Content-Length.
func rawResponse(t *testing.T, w http.ResponseWriter, head string, body []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString(head)
	_, _ = buf.Write(body)
	_ = buf.Flush()
}

func requireTransient(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err), "want transient, got %v", err)
	require.NotContains(t, err.Error(), secret)
}

func requirePermanent(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.False(t, radgate.IsTransient(err), "want permanent, got %v", err)
	require.NotContains(t, err.Error(), secret)
}

func TestRetrieveSendsAcceptAsStoredAndAuth(t *testing.T) {
	file := fakePart10(100)
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/dicom-web/studies/"+tStudy+"/series/"+tSeries+"/instances/"+tSOP, r.URL.Path)
		require.Equal(t, `multipart/related; type="application/dicom"; transfer-syntax=*`, r.Header.Get("Accept"))
		u, p, ok := r.BasicAuth()
		require.True(t, ok)
		require.Equal(t, "radgate", u)
		require.Equal(t, secret, p)
		w.Header().Set("Content-Type", multipartType("b0undary"))
		_, _ = w.Write(orthancMultipart("b0undary", file))
	})
	got, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
	require.NoError(t, err)
	require.Equal(t, file, got)
}

func TestRetrieveBearerToken(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "Bearer tok-123", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", multipartType("b"))
		_, _ = w.Write(orthancMultipart("b", fakePart10(1)))
	}, func(o *Options) { o.Username, o.Password, o.BearerToken = "", "", "tok-123" })
	_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
	require.NoError(t, err)
}

func TestRetrieveTruncatedMultipartIsTransient(t *testing.T) {
	const boundary = "833b6d3d-7c02-46db-80b5-11a2b2f2cb77"
	file := fakePart10(4000)
	full := orthancMultipart(boundary, file)
	dataStart := strings.Index(string(full), "\r\n\r\n") + 4
	cuts := map[string]int{
		"empty body":                  0,
		"inside the boundary line":    10,
		"inside the part headers":     dataStart - 20,
		"inside the part data":        dataStart + 2000,
		"after the data, no boundary": dataStart + len(file) + 2,
		"boundary without closing --": dataStart + len(file) + 2 + 2 + len(boundary),
	}
	for name, cut := range cuts {
		t.Run(name+"/complete HTTP body", func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", multipartType(boundary))
				_, _ = w.Write(full[:cut])
			})
			_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
			requireTransient(t, err)
			require.Contains(t, err.Error(), "/instances/"+tSOP)
		})
		t.Run(name+"/connection closed early", func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				rawResponse(t, w, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", multipartType(boundary), len(full)), full[:cut])
			})
			_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
			requireTransient(t, err)
		})
	}
}

func TestRetrieveMultipartVariants(t *testing.T) {
	file := fakePart10(300)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		limit       int64
		wantErr     error // nil: success
	}{
		{"closing boundary without CRLF", multipartType("B"), []byte(strings.TrimSuffix(string(orthancMultipart("B", file)), "\r\n")), 0, nil},
		{"quoted boundary, transfer-syntax on the part", `multipart/related; type="application/dicom"; boundary="a b"`,
			[]byte("--a b\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90\r\n\r\n" + string(file) + "\r\n--a b--\r\n"), 0, nil},
		{"a further part is dropped", multipartType("B"), orthancMultipart("B", file, fakePart10(10)), 0, nil},
		{"not multipart", "application/dicom", file, 0, ErrMalformedResponse},
		{"no boundary", `multipart/related; type="application/dicom"`, orthancMultipart("B", file), 0, ErrMalformedResponse},
		{"wrong multipart type", `multipart/related; type="application/octet-stream"; boundary=B`, orthancMultipart("B", file), 0, ErrMalformedResponse},
		{"part is not application/dicom", multipartType("B"), []byte("--B\r\nContent-Type: text/plain\r\n\r\n" + string(file) + "\r\n--B--\r\n"), 0, ErrMalformedResponse},
		{"part has no Content-Type", multipartType("B"), []byte("--B\r\n\r\n" + string(file) + "\r\n--B--\r\n"), 0, ErrMalformedResponse},
		{"part is not Part 10", multipartType("B"), orthancMultipart("B", []byte("hello, this is not DICOM")), 0, ErrMalformedResponse},
		{"part Content-Length disagrees", multipartType("B"), []byte(strings.Replace(string(orthancMultipart("B", file)), "Content-Length: 432", "Content-Length: 431", 1)), 0, ErrMalformedResponse},
		{"no part at all", multipartType("B"), []byte("--B--\r\n"), 0, ErrMalformedResponse},
		{"garbage after the boundary line", multipartType("B"), []byte("--B\r\nContent-Type: application/dicom\r\n\r\n" + string(file) + "\r\n--B\r\nnot a header line\r\n\r\nx\r\n--B--\r\n"), 0, ErrMalformedResponse},
		{"over the limit (declared)", multipartType("B"), orthancMultipart("B", file), 100, ErrInstanceTooLarge},
		{"over the limit (undeclared)", multipartType("B"), []byte("--B\r\nContent-Type: application/dicom\r\n\r\n" + string(file) + "\r\n--B--\r\n"), 100, ErrInstanceTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = w.Write(tc.body)
			}, func(o *Options) { o.MaxInstanceBytes = tc.limit })
			got, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, file, got)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			requirePermanent(t, err)
		})
	}
}

func TestHTTPStatusClassification(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		transient  bool
		is         error
	}{
		{http.StatusServiceUnavailable, "7", true, nil},
		{http.StatusTooManyRequests, "2", true, nil},
		{http.StatusInternalServerError, "", true, nil},
		{http.StatusBadGateway, "", true, nil},
		{http.StatusGatewayTimeout, "", true, nil},
		{http.StatusRequestTimeout, "", true, nil},
		{http.StatusUnauthorized, "", false, ErrUnauthorized},
		{http.StatusForbidden, "", false, ErrUnauthorized},
		{http.StatusNotAcceptable, "", false, nil},
		{http.StatusBadRequest, "", false, nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				// Orthanc's error body.
				_, _ = fmt.Fprintf(w, `{"HttpStatus": %d, "Message": "Something went wrong", "Details": "Cannot transcode image"}`, tc.status)
			})
			check := func(err error) {
				t.Helper()
				var herr *HTTPError
				require.ErrorAs(t, err, &herr)
				require.Equal(t, tc.status, herr.StatusCode)
				require.Contains(t, err.Error(), "Cannot transcode image")
				if tc.retryAfter != "" {
					require.Equal(t, tc.retryAfter+"s", herr.RetryAfter.String())
				}
				if tc.is != nil {
					require.ErrorIs(t, err, tc.is)
				} else {
					require.NotErrorIs(t, err, ErrUnauthorized)
				}
				if tc.transient {
					requireTransient(t, err)
				} else {
					requirePermanent(t, err)
				}
			}
			_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
			check(err)
			require.Contains(t, err.Error(), "WADO-RS GET /dicom-web/studies/"+tStudy)
			_, err = c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: "RGS0042"})
			check(err)
			require.Contains(t, err.Error(), "QIDO-RS GET /dicom-web/studies?AccessionNumber=RGS0042")
			_, err = c.Store(t.Context(), fakePart10(10))
			check(err)
			require.Contains(t, err.Error(), "STOW-RS POST /dicom-web/studies")
		})
	}
}

func TestRetrieveNotFound(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})
	_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
	require.ErrorIs(t, err, ErrInstanceNotFound)
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	requirePermanent(t, err)
}

func TestTimeoutsAndRefusedConnections(t *testing.T) {
	t.Run("server never answers", func(t *testing.T) {
		release := make(chan struct{})
		c := serve(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, func(o *Options) { o.Timeout = 200 * time.Millisecond })
		defer close(release)
		start := time.Now()
		_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
		requireTransient(t, err)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 3*time.Second)
		_, err = c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: "RGS0001"})
		requireTransient(t, err)
		require.Contains(t, err.Error(), "AccessionNumber=RGS0001")
	})
	t.Run("body stalls", func(t *testing.T) {
		release := make(chan struct{})
		full := orthancMultipart("B", fakePart10(5000))
		c := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", multipartType("B"))
			w.Header().Set("Content-Length", fmt.Sprint(len(full)))
			_, _ = w.Write(full[:1000])
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, func(o *Options) { o.Timeout = 300 * time.Millisecond })
		defer close(release)
		_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
		requireTransient(t, err)
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c := testClient(t, "http://"+addr)
		_, err = c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
		requireTransient(t, err)
		require.Contains(t, err.Error(), "connection refused")
		_, err = c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		requireTransient(t, err)
		_, err = c.Store(t.Context(), fakePart10(1))
		requireTransient(t, err)
	})
	t.Run("caller cancels", func(t *testing.T) {
		// Shutting down must not dead-letter the order: the error is
		// transient and still says context.Canceled.
		c := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := c.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: tStudy})
		requireTransient(t, err)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestQIDOTruncatedOrMalformedJSON(t *testing.T) {
	body := `[{"0020000D": {"vr": "UI", "Value": ["` + tStudy + `"]}}]`
	t.Run("cut short", func(t *testing.T) {
		c := serve(t, func(w http.ResponseWriter, r *http.Request) {
			rawResponse(t, w, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nContent-Length: %d\r\n\r\n", len(body)), []byte(body[:20]))
		})
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		requireTransient(t, err)
	})
	t.Run("not JSON", func(t *testing.T) {
		c := serve(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>proxy error page</html>"))
		})
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, ErrMalformedResponse)
		requirePermanent(t, err)
	})
}

// An instance over the limit is refused at once, without waiting for the
// rest of the body.
func TestRetrieveTooLargeDoesNotWaitForTheBody(t *testing.T) {
	release := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", multipartType("B"))
		_, _ = fmt.Fprintf(w, "--B\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\n\r\n", 10<<20)
		_, _ = w.Write(fakePart10(100))
		_ = http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, func(o *Options) { o.MaxInstanceBytes = 1 << 20 })
	defer close(release)
	start := time.Now()
	_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, tSOP)
	require.ErrorIs(t, err, ErrInstanceTooLarge)
	requirePermanent(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
}
