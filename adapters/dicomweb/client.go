package dicomweb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate"
)

// Defaults filled in by New for zero Options fields.
const (
	// DefaultTimeout bounds one HTTP exchange, response body included.
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxInstanceBytes bounds one retrieved Part 10 file (512 MiB).
	DefaultMaxInstanceBytes int64 = 512 << 20
	// DefaultMaxInstancesPerStudy bounds the instances FindStudy lists.
	DefaultMaxInstancesPerStudy = 2000
)

// maxJSONBytes bounds a QIDO-RS or STOW-RS DICOM JSON answer.
const maxJSONBytes = 64 << 20

// Options configures a Client. Zero values take the documented defaults.
type Options struct {
	// BaseURL is the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
	// (Orthanc). It must be an absolute http or https URL without user
	// information, query or fragment: give credentials below.
	BaseURL string
	// Username and Password enable HTTP Basic authentication.
	Username string
	Password string
	// BearerToken, when set, is sent as "Authorization: Bearer …". It cannot
	// be combined with Username/Password.
	BearerToken string
	// HTTPClient sends the requests; nil means a client with its own
	// transport (a clone of http.DefaultTransport).
	HTTPClient *http.Client
	// Timeout bounds each HTTP exchange, reading the body included
	// (default DefaultTimeout). The caller's context still applies.
	Timeout time.Duration
	// MaxInstanceBytes bounds a retrieved instance (default
	// DefaultMaxInstanceBytes). A larger instance is a permanent error.
	MaxInstanceBytes int64
	// MaxInstancesPerStudy bounds how many instances FindStudy lists (default
	// DefaultMaxInstancesPerStudy). A larger study is a permanent error.
	MaxInstancesPerStudy int
}

// Client is a DICOMweb client. It is safe for concurrent use.
type Client struct {
	base         *url.URL
	auth         string // Authorization header value, or ""
	hc           *http.Client
	timeout      time.Duration
	maxInstance  int64
	maxInstances int
}

var _ radgate.StudySource = (*Client)(nil)

// New validates opts and returns a Client. It does no I/O. Every problem with
// opts is reported, not only the first.
func New(opts Options) (*Client, error) {
	var errs []error
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		errs = append(errs, err)
	}
	if opts.BearerToken != "" && (opts.Username != "" || opts.Password != "") {
		errs = append(errs, errors.New("dicomweb: give either a bearer token or a username and password, not both"))
	}
	if opts.Password != "" && opts.Username == "" {
		errs = append(errs, errors.New("dicomweb: a password is set but the username is empty"))
	}
	if strings.ContainsAny(opts.BearerToken, "\r\n") || strings.ContainsAny(opts.Username, "\r\n:") {
		errs = append(errs, errors.New("dicomweb: the username or bearer token holds a forbidden character (newline, or ':' in a username)"))
	}
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("dicomweb: timeout %s is negative", opts.Timeout))
	}
	if opts.MaxInstanceBytes < 0 {
		errs = append(errs, fmt.Errorf("dicomweb: max instance bytes %d is negative", opts.MaxInstanceBytes))
	}
	if opts.MaxInstancesPerStudy < 0 {
		errs = append(errs, fmt.Errorf("dicomweb: max instances per study %d is negative", opts.MaxInstancesPerStudy))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	c := &Client{
		base:         base,
		hc:           opts.HTTPClient,
		timeout:      opts.Timeout,
		maxInstance:  opts.MaxInstanceBytes,
		maxInstances: opts.MaxInstancesPerStudy,
	}
	switch {
	case opts.BearerToken != "":
		c.auth = "Bearer " + opts.BearerToken
	case opts.Username != "":
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(opts.Username, opts.Password)
		c.auth = req.Header.Get("Authorization")
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxInstance == 0 {
		c.maxInstance = DefaultMaxInstanceBytes
	}
	if c.maxInstances == 0 {
		c.maxInstances = DefaultMaxInstancesPerStudy
	}
	return c, nil
}

func parseBaseURL(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("dicomweb: base URL is empty (the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web)")
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: base URL does not parse: %w", err)
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	}
	if u.Host == "" {
		problems = append(problems, "it names no host")
	}
	if u.User != nil {
		problems = append(problems, "it holds user information: give the username and password as options")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		problems = append(problems, "it holds a query or fragment")
	}
	if len(problems) > 0 {
		// u.Redacted hides a password if one was given.
		return nil, fmt.Errorf("dicomweb: base URL %q: %s", u.Redacted(), strings.Join(problems, "; "))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// endpoint returns the URL of base + "/" + path segments (already validated
// UIDs or fixed words) with the given query.
func (c *Client) endpoint(query url.Values, segments ...string) *url.URL {
	u := *c.base
	u.Path = u.Path + "/" + strings.Join(segments, "/")
	if query != nil {
		u.RawQuery = query.Encode()
	}
	return &u
}

// request describes one HTTP exchange.
type request struct {
	op     string // "QIDO-RS", "WADO-RS", "STOW-RS"
	method string
	url    *url.URL
	header http.Header
	body   func() io.ReadCloser // nil for no body
	length int64
}

// path is the request's URL path and query, without the host.
func (r *request) path() string {
	p := r.url.EscapedPath()
	if r.url.RawQuery != "" {
		p += "?" + r.url.RawQuery
	}
	return p
}

// where names the request in errors: service, method, path and query. There
// are no credentials in the URL (New refuses them).
func (r *request) where() string {
	return r.op + " " + r.method + " " + r.path()
}

// do performs r under the client's timeout and hands a 2xx response (or any
// status listed in accept) to handle, which must read what it needs before
// returning. Transport failures and unwanted statuses become classified
// errors.
func (c *Client) do(ctx context.Context, r *request, accept []int, handle func(*http.Response) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var body io.ReadCloser
	if r.body != nil {
		body = r.body()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
	if err != nil {
		return fmt.Errorf("dicomweb: %s: building the request: %w", r.where(), err)
	}
	if r.body != nil {
		req.ContentLength = r.length
		req.GetBody = func() (io.ReadCloser, error) { return r.body(), nil }
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "radgate-dicomweb")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return classifyTransport(r, err)
	}
	// Not drained: a body left unread (too large, malformed, stalled) is
	// cheaper to drop with its connection than to wait for.
	defer func() { _ = resp.Body.Close() }()

	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	for _, s := range accept {
		if resp.StatusCode == s {
			ok = true
		}
	}
	if !ok {
		return statusError(r, resp)
	}
	return handle(resp)
}

// classifyTransport turns an error from sending a request or reading its body
// into a classified error. Everything is transient except certificate
// problems, which retrying cannot fix.
func classifyTransport(r *request, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the full URL; ours names the path
	}
	wrapped := fmt.Errorf("dicomweb: %s: %w", r.where(), err)
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return wrapped
	}
	return radgate.Transient(wrapped)
}

// bodyReadError classifies an error met while reading a response body: the
// connection dropped, the deadline passed, or the body ended early. All are
// transient.
func bodyReadError(r *request, what string, err error) error {
	return radgate.Transient(fmt.Errorf("dicomweb: %s: reading %s: %w", r.where(), what, err))
}

// statusError builds the classified error for an unwanted HTTP status.
func statusError(r *request, resp *http.Response) error {
	herr := &HTTPError{
		Op:         r.op,
		Method:     r.method,
		Path:       r.path(),
		StatusCode: resp.StatusCode,
		Message:    serverMessage(resp),
		RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
	}
	if transientStatus(resp.StatusCode) {
		return radgate.Transient(herr)
	}
	return herr
}

func transientStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// serverMessage extracts a short explanation from an error response: Orthanc
// answers JSON with "Message" and "Details". Other bodies are not quoted (they
// could echo request data).
func serverMessage(resp *http.Response) string {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if err != nil {
		return ""
	}
	return messageFrom(raw)
}

// messageFrom extracts Orthanc's "Message" and "Details" from a JSON body.
func messageFrom(raw []byte) string {
	var body struct {
		Message string `json:"Message"`
		Details string `json:"Details"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	msg := body.Message
	if d := body.Details; d != "" && len(d) <= 200 {
		if msg != "" {
			msg += ": "
		}
		msg += d
	}
	return sanitize(msg, 300)
}

// sanitize keeps printable ASCII and cuts s to n bytes.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
		if b.Len() >= n {
			break
		}
	}
	return b.String()
}

func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
