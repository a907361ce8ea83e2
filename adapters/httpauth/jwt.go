package httpauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/radgate/radgate/config"
)

// DefaultRolesClaim is the JWT claim roles are read from when
// http.auth.roles_claim is empty.
const DefaultRolesClaim = "roles"

type jwtVerifier struct {
	parser     *jwt.Parser
	keys       *jwksCache
	now        func() time.Time
	leeway     time.Duration
	issuer     string
	audience   string
	rolesClaim string
}

func newJWTVerifier(cfg config.IntakeAuth, opts Options, log *slog.Logger) (*jwtVerifier, error) {
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("http.auth.algorithms: jwt needs at least one algorithm")
	}
	for _, a := range cfg.Algorithms {
		if strings.HasPrefix(a, "HS") || strings.EqualFold(a, "none") {
			return nil, fmt.Errorf("http.auth.algorithms: %q is not allowed (asymmetric algorithms only)", a)
		}
	}
	if cfg.Audience == "" && !cfg.AllowAnyAudience {
		return nil, errors.New("http.auth.audience: mode jwt needs the audience radgate's tokens carry (or allow_any_audience: true)")
	}
	v := &jwtVerifier{
		// Signature and algorithm only: the claims are checked by
		// checkClaims, which names the claim that failed.
		parser:     jwt.NewParser(jwt.WithValidMethods(cfg.Algorithms), jwt.WithoutClaimsValidation()),
		now:        opts.Now,
		leeway:     cfg.Leeway.D(),
		issuer:     cfg.Issuer,
		audience:   cfg.Audience,
		rolesClaim: cfg.RolesClaim,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.rolesClaim == "" {
		v.rolesClaim = DefaultRolesClaim
	}
	switch {
	case cfg.JWKSFile != "" && cfg.JWKSURL != "":
		return nil, errors.New("http.auth: set jwks_url or jwks_file, not both")
	case cfg.JWKSFile != "":
		b, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.jwks_file: %w", err)
		}
		keys, err := parseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("http.auth.jwks_file %s: %w", cfg.JWKSFile, err)
		}
		v.keys = newStaticJWKS(keys)
	case cfg.JWKSURL != "":
		v.keys = newJWKSCache(cfg.JWKSURL, opts, log)
	default:
		return nil, errors.New("http.auth: mode jwt needs jwks_url or jwks_file")
	}
	return v, nil
}

func (v *jwtVerifier) close() { v.keys.close() }

func (v *jwtVerifier) verify(ctx context.Context, token string) (Principal, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		keys, err := v.keys.lookup(ctx, kid, t.Method.Alg())
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
		return Principal{}, jwtReason(err)
	}
	if err := v.checkClaims(claims); err != nil {
		return Principal{}, err
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		sub = "(jwt without sub)"
	}
	return newPrincipal(sub, rolesOf(claims, v.rolesClaim)...), nil
}

// claimError lists every registered claim of a token that failed its
// check, each named.
type claimError struct {
	failures []string
	expired  bool
}

func (e *claimError) Error() string { return strings.Join(e.failures, "; ") }

// Is makes errors.Is(err, errExpired) true for an expired token.
func (e *claimError) Is(target error) bool { return target == errExpired && e.expired }

// checkClaims checks exp (required), nbf and iat (when present), iss and
// aud (when configured), naming each claim that fails.
func (v *jwtVerifier) checkClaims(c jwt.MapClaims) error {
	now := v.now()
	e := &claimError{}
	fail := func(format string, args ...any) { e.failures = append(e.failures, fmt.Sprintf(format, args...)) }

	switch exp, err := c.GetExpirationTime(); {
	case err != nil:
		fail("claim exp is not a NumericDate")
	case exp == nil:
		fail("a required claim (exp) is missing")
	case !now.Before(exp.Add(v.leeway)):
		fail("token expired (claim exp)")
		e.expired = true
	}
	switch nbf, err := c.GetNotBefore(); {
	case err != nil:
		fail("claim nbf is not a NumericDate")
	case nbf != nil && now.Before(nbf.Add(-v.leeway)):
		fail("token not valid yet (claim nbf)")
	}
	switch iat, err := c.GetIssuedAt(); {
	case err != nil:
		fail("claim iat is not a NumericDate")
	case iat != nil && now.Before(iat.Add(-v.leeway)):
		fail("token used before issued (claim iat)")
	}
	if v.issuer != "" {
		switch iss, err := c.GetIssuer(); {
		case err != nil:
			fail("claim iss is not a string")
		case iss == "":
			fail("a required claim (iss) is missing")
		case iss != v.issuer:
			fail("wrong issuer (claim iss)")
		}
	}
	if v.audience != "" {
		switch aud, err := audience(c); {
		case err != nil:
			fail("claim aud is not a string or an array of strings")
		case len(aud) == 0 || len(aud) == 1 && aud[0] == "":
			fail("a required claim (aud) is missing")
		case !slices.Contains(aud, v.audience):
			fail("wrong audience (claim aud)")
		}
	}
	if len(e.failures) > 0 {
		return e
	}
	return nil
}

// audience reads aud: a string or an array of strings (jwt/v5's
// GetAudience takes any other type for an absent claim).
func audience(c jwt.MapClaims) ([]string, error) {
	switch v := c["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("aud holds a non-string")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("aud is neither a string nor an array")
}

// rolesOf reads the roles radgate knows from the claim named name: an
// array of strings or a space-separated string. The claim is looked up by
// its whole name first, then, when the name has dots, as a path into
// nested objects (Keycloak's realm_access.roles). Names radgate does not
// know are ignored: the identity provider serves other applications too.
func rolesOf(c jwt.MapClaims, name string) []Role {
	v, ok := c[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = map[string]any(c)
		for _, part := range strings.Split(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[part]
		}
		v = cur
	}
	var names []string
	switch t := v.(type) {
	case string:
		names = strings.Fields(t)
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				names = append(names, s)
			}
		}
	}
	var out []Role
	for _, n := range names {
		if r, ok := ParseRole(n); ok {
			out = append(out, r)
		}
	}
	return out
}

// RolesOf reads the roles radgate knows from the claim named claim of a
// token's claims, exactly as the JWT mode does (http.auth.roles_claim): an
// array of strings or a space-separated string, a dotted name reaching
// into nested objects; unknown names are ignored. The console's OIDC
// sign-in reads an ID token's roles with it.
func RolesOf(claims map[string]any, claim string) []Role {
	return rolesOf(jwt.MapClaims(claims), claim)
}

var errExpired = errors.New("token expired")

// jwtReason words a jwt/v5 parsing or signature error for the client and
// the log without any part of the token. (Claims are checked by
// checkClaims.)
func jwtReason(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("bad signature or algorithm not allowed")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		var ke *keyError
		if errors.As(err, &ke) {
			return ke
		}
		return errors.New("no key to verify it")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("malformed token")
	}
	return errors.New("invalid token")
}
