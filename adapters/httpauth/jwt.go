package httpauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/radgate/radgate/config"
)

// JWKS cache timing.
const (
	// jwksMaxAge is how long a fetched JWKS is used before it is fetched
	// again (on the next request that needs it).
	jwksMaxAge = time.Hour
	// jwksMinRefresh is the least time between two fetches caused by
	// unknown key ids, so that tokens with made-up kids cannot make radgate
	// hammer the identity provider.
	jwksMinRefresh = 10 * time.Second
	jwksTimeout    = 10 * time.Second
	maxJWKSBytes   = 1 << 20
)

// keyError says why no key verifies a token (no secret in it).
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

type jwtVerifier struct {
	parser *jwt.Parser
	keys   *jwksCache
}

func newJWTVerifier(cfg config.IntakeAuth, opts Options) (*jwtVerifier, error) {
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("http.auth.algorithms: jwt needs at least one algorithm")
	}
	for _, a := range cfg.Algorithms {
		if strings.HasPrefix(a, "HS") || strings.EqualFold(a, "none") {
			return nil, fmt.Errorf("http.auth.algorithms: %q is not allowed (asymmetric algorithms only)", a)
		}
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway.D()),
	}
	if cfg.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		popts = append(popts, jwt.WithAudience(cfg.Audience))
	}
	if opts.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(opts.Now))
	}
	c := &jwksCache{url: cfg.JWKSURL, hc: opts.HTTPClient, now: opts.Now}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: jwksTimeout}
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch {
	case cfg.JWKSFile != "":
		b, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.jwks_file: %w", err)
		}
		keys, err := parseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("http.auth.jwks_file %s: %w", cfg.JWKSFile, err)
		}
		c.keys, c.static = keys, true
	case cfg.JWKSURL != "":
	default:
		return nil, errors.New("http.auth: mode jwt needs jwks_url or jwks_file")
	}
	return &jwtVerifier{parser: jwt.NewParser(popts...), keys: c}, nil
}

func (v *jwtVerifier) verify(ctx context.Context, token string) (string, error) {
	claims := jwt.RegisteredClaims{}
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		alg := t.Method.Alg()
		keys, err := v.keys.lookup(ctx, kid, alg)
		if err != nil {
			return nil, err
		}
		if len(keys) == 1 {
			return keys[0], nil
		}
		set := jwt.VerificationKeySet{}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	})
	if err != nil {
		return "", jwtReason(err)
	}
	return claims.Subject, nil
}

// jwk is one verification key of a JWKS.
type jwk struct {
	kid, alg string
	key      any
}

// jwksCache holds the keys of jwks_url (fetched when first needed, again
// after jwksMaxAge, and again for an unknown kid at most every
// jwksMinRefresh) or of jwks_file.
type jwksCache struct {
	url    string
	hc     *http.Client
	now    func() time.Time
	static bool

	mu        sync.Mutex
	keys      []jwk
	fetched   time.Time
	lastTried time.Time
}

// lookup returns the keys that may verify a token signed with alg and
// carrying kid (every key fitting alg when kid is empty).
func (c *jwksCache) lookup(ctx context.Context, kid, alg string) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.static && (c.fetched.IsZero() || c.now().Sub(c.fetched) > jwksMaxAge) {
		if err := c.refresh(ctx); err != nil && c.fetched.IsZero() {
			return nil, err
		}
	}
	found := c.match(kid, alg)
	if len(found) == 0 && kid != "" && !c.static && c.now().Sub(c.lastTried) >= jwksMinRefresh {
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
		found = c.match(kid, alg)
	}
	if len(found) == 0 {
		if kid != "" {
			return nil, &keyError{msg: fmt.Sprintf("no key with the token's kid for %s in the JWKS", alg)}
		}
		return nil, &keyError{msg: fmt.Sprintf("no key for %s in the JWKS", alg)}
	}
	return found, nil
}

func (c *jwksCache) match(kid, alg string) []any {
	var out []any
	for _, k := range c.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if k.alg != "" && k.alg != alg {
			continue
		}
		if !keyFits(k.key, alg) {
			continue
		}
		out = append(out, k.key)
	}
	return out
}

// keyFits reports whether a public key's type can verify alg.
func keyFits(key any, alg string) bool {
	switch key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// refresh fetches the JWKS; the caller holds c.mu.
func (c *jwksCache) refresh(ctx context.Context) error {
	c.lastTried = c.now()
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return &keyError{msg: fmt.Sprintf("fetching the JWKS: %v", err)}
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return &keyError{msg: fmt.Sprintf("fetching the JWKS: %v", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &keyError{msg: fmt.Sprintf("fetching the JWKS: HTTP %d", resp.StatusCode)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return &keyError{msg: fmt.Sprintf("fetching the JWKS: %v", err)}
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return &keyError{msg: fmt.Sprintf("the JWKS at %s: %v", c.url, err)}
	}
	c.keys, c.fetched = keys, c.now()
	return nil
}

// parseJWKS reads the public signature keys of a JWKS. Symmetric keys,
// encryption keys and key types jwkset does not know are left out.
func parseJWKS(b []byte) ([]jwk, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	var out []jwk
	for i, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		if m.KTY == jwkset.KtyOct {
			continue // never accept a shared secret from a key set
		}
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil // public parts only
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		out = append(out, jwk{kid: m.KID, alg: string(m.ALG), key: k.Key()})
	}
	if len(out) == 0 {
		return nil, errors.New("no usable signature key")
	}
	return out, nil
}
