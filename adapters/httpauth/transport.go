package httpauth

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/radgate/radgate/config"
)

// Token cache and assertion timing.
const (
	// tokenEarlyExpiry renews an OAuth2 access token this long before it
	// expires, so that no request carries a token about to lapse.
	tokenEarlyExpiry = 60 * time.Second
	// assertionLifetime is the exp of a client assertion (SMART Backend
	// Services: no more than five minutes).
	assertionLifetime = 4 * time.Minute
	tokenTimeout      = 30 * time.Second
)

// ClientAssertionType is the OAuth2 client_assertion_type of a
// private_key_jwt assertion (RFC 7523).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Transport returns a RoundTripper that authenticates every request as
// auth says (nothing, bearer, basic, or an OAuth2 client-credentials
// access token) over TLS configured by tlsCfg (verification on unless
// insecure_skip_verify). base is cloned when it is an *http.Transport; nil
// means a clone of http.DefaultTransport. Secrets are read now, from the
// environment or files; errors name where they were looked for, never their
// value. Credentials are not sent on a redirect to another host.
func Transport(auth config.ClientAuth, tlsCfg config.ClientTLS, base http.RoundTripper) (http.RoundTripper, error) {
	rt, err := tlsTransport(tlsCfg, base)
	if err != nil {
		return nil, err
	}
	switch auth.Method() {
	case "":
		return rt, nil
	case "bearer":
		tok, err := config.Secret(auth.BearerTokenEnv, auth.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("bearer token: %w", err)
		}
		if tok == "" || strings.ContainsAny(tok, "\r\n") {
			return nil, fmt.Errorf("bearer token from %s: empty or holds a line break", secretSource(auth.BearerTokenEnv, auth.BearerTokenFile))
		}
		value := "Bearer " + tok
		return &authTransport{base: rt, header: func(*http.Request) (string, error) { return value, nil }}, nil
	case "basic":
		pw, err := config.Secret(auth.PasswordEnv, auth.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		if strings.ContainsAny(auth.Username, ":\r\n") {
			return nil, errors.New("username: holds ':' or a line break")
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(auth.Username, pw)
		value := r.Header.Get("Authorization")
		return &authTransport{base: rt, header: func(*http.Request) (string, error) { return value, nil }}, nil
	case "oauth2":
		tc, err := newTokenClient(auth.OAuth2, rt)
		if err != nil {
			return nil, err
		}
		return &authTransport{base: rt, header: tc.header, unauthorized: tc.invalidate}, nil
	}
	return nil, fmt.Errorf("unknown auth method %q", auth.Method())
}

func secretSource(env, file string) string {
	if env != "" {
		return "environment variable " + env
	}
	return "file " + file
}

// tlsTransport clones base (or http.DefaultTransport) with tlsCfg applied.
func tlsTransport(tlsCfg config.ClientTLS, base http.RoundTripper) (http.RoundTripper, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		if tlsCfg != (config.ClientTLS{}) {
			return nil, errors.New("tls settings need an *http.Transport as the base transport")
		}
		return base, nil
	}
	tc, err := ClientTLSConfig(tlsCfg)
	if err != nil {
		return nil, err
	}
	t = t.Clone()
	t.TLSClientConfig = tc
	return t, nil
}

// authTransport sets the Authorization header on requests that carry none.
type authTransport struct {
	base   http.RoundTripper
	header func(*http.Request) (string, error)
	// unauthorized, when set, learns of a 401 answer to the value sent.
	unauthorized func(value string)
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" || crossHostRedirect(req) {
		return t.base.RoundTrip(req)
	}
	value, err := t.header(req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", value)
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && t.unauthorized != nil {
		t.unauthorized(value)
	}
	return resp, err
}

// crossHostRedirect reports whether req follows a redirect to another host.
func crossHostRedirect(req *http.Request) bool {
	return req.Response != nil && req.Response.Request != nil && req.Response.Request.URL.Host != req.URL.Host
}

// tokenClient gets and caches OAuth2 client-credentials access tokens.
type tokenClient struct {
	cfg    clientcredentials.Config
	ctx    context.Context // carries the token endpoint's HTTP client
	signer crypto.Signer   // private_key_jwt; nil for a client secret
	method jwt.SigningMethod
	keyID  string
	now    func() time.Time

	mu  sync.Mutex
	tok *oauth2.Token
}

func newTokenClient(o config.OAuth2, rt http.RoundTripper) (*tokenClient, error) {
	if o.TokenURL == "" || o.ClientID == "" {
		return nil, errors.New("oauth2: token_url and client_id must be set")
	}
	tc := &tokenClient{
		cfg: clientcredentials.Config{ClientID: o.ClientID, TokenURL: o.TokenURL, Scopes: o.Scopes,
			AuthStyle: oauth2.AuthStyleInHeader},
		ctx:   context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt, Timeout: tokenTimeout}),
		keyID: o.KeyID,
		now:   time.Now,
	}
	switch {
	case o.PrivateKeyFile != "":
		b, err := os.ReadFile(o.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2.private_key_file: %w", err)
		}
		signer, method, err := parseSigningKey(b)
		if err != nil {
			return nil, fmt.Errorf("oauth2.private_key_file %s: %w", o.PrivateKeyFile, err)
		}
		tc.signer, tc.method = signer, method
		// The assertion authenticates; client_id goes in the form.
		tc.cfg.AuthStyle = oauth2.AuthStyleInParams
	default:
		secret, err := config.Secret(o.ClientSecretEnv, o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2 client secret: %w", err)
		}
		if secret == "" {
			return nil, fmt.Errorf("oauth2 client secret from %s is empty", secretSource(o.ClientSecretEnv, o.ClientSecretFile))
		}
		tc.cfg.ClientSecret = secret
	}
	return tc, nil
}

// parseSigningKey reads a PEM private key: RSA signs RS384, EC P-384
// ES384 and EC P-256 ES256.
func parseSigningKey(b []byte) (crypto.Signer, jwt.SigningMethod, error) {
	if k, err := jwt.ParseRSAPrivateKeyFromPEM(b); err == nil {
		return k, jwt.SigningMethodRS384, nil
	}
	k, err := jwt.ParseECPrivateKeyFromPEM(b)
	if err != nil {
		return nil, nil, errors.New("not a PEM RSA or EC private key")
	}
	switch k.Curve {
	case elliptic.P384():
		return k, jwt.SigningMethodES384, nil
	case elliptic.P256():
		return k, jwt.SigningMethodES256, nil
	}
	return nil, nil, fmt.Errorf("EC curve %s is not supported (use P-384 or P-256)", k.Curve.Params().Name)
}

// header returns "Bearer <access token>", fetching a new token when none is
// cached or the cached one expires within tokenEarlyExpiry.
func (c *tokenClient) header(*http.Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && (c.tok.Expiry.IsZero() || c.now().Add(tokenEarlyExpiry).Before(c.tok.Expiry)) {
		return "Bearer " + c.tok.AccessToken, nil
	}
	cfg := c.cfg
	if c.signer != nil {
		a, err := c.assertion()
		if err != nil {
			return "", err
		}
		cfg.EndpointParams = url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
	}
	tok, err := cfg.Token(c.ctx)
	if err != nil {
		return "", tokenError(c.cfg.TokenURL, err)
	}
	if strings.ContainsAny(tok.AccessToken, "\r\n") || tok.AccessToken == "" {
		return "", fmt.Errorf("oauth2 token from %s: empty or malformed access token", c.cfg.TokenURL)
	}
	c.tok = tok
	return "Bearer " + tok.AccessToken, nil
}

// invalidate forgets the cached token when the server refused it, so that
// the next request gets a new one.
func (c *tokenClient) invalidate(value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && "Bearer "+c.tok.AccessToken == value {
		c.tok = nil
	}
}

// assertion signs a SMART Backend Services client assertion.
func (c *tokenClient) assertion() (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := c.now()
	claims := jwt.RegisteredClaims{
		Issuer: c.cfg.ClientID, Subject: c.cfg.ClientID, Audience: jwt.ClaimStrings{c.cfg.TokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)), IssuedAt: jwt.NewNumericDate(now),
		ID: hex.EncodeToString(jti),
	}
	t := jwt.NewWithClaims(c.method, claims)
	t.Header["kid"] = c.keyID
	s, err := t.SignedString(c.signer) // *rsa.PrivateKey or *ecdsa.PrivateKey
	if err != nil {
		return "", fmt.Errorf("oauth2: signing the client assertion: %w", err)
	}
	return s, nil
}

// tokenError words a token endpoint failure from its status and OAuth2
// error code, leaving out the response body.
func tokenError(tokenURL string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("oauth2 token from %s: HTTP %d", tokenURL, re.Response.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		return errors.New(msg)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("oauth2 token from %s: %w", tokenURL, ue.Err)
	}
	return fmt.Errorf("oauth2 token from %s: %v", tokenURL, err)
}
