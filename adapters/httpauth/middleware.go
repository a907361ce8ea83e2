// Package httpauth secures radgate's HTTP: the intake's bearer-token check
// (static tokens or JWTs verified against a JWKS) and TLS with optional
// client certificates, and the outbound transports that authenticate to the
// FHIR server and the PACS (bearer, basic, OAuth2 client credentials with a
// client secret or a SMART Backend Services private_key_jwt assertion).
//
// Secrets are read from the environment or files named in the config. No
// error, log line or response this package writes contains one: errors name
// the variable or file, never its content.
//
// JWTs are checked with github.com/golang-jwt/jwt/v5 (signature, allowed
// algorithms, exp/nbf/iat, iss, aud); the JWKS is parsed with
// github.com/MicahParks/jwkset. Both are small, focused and widely used;
// jwx would bring a whole JOSE framework for the same checks.
package httpauth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
)

// OpenPaths are the paths served without authentication (GET and HEAD
// only): liveness and readiness probes.
var OpenPaths = []string{"/healthz", "/readyz"}

// Options adds what the config does not carry.
type Options struct {
	// Logger; nil discards. Refusals are logged at info level with the
	// reason and the remote address, never the token.
	Logger *slog.Logger
	// HTTPClient fetches jwks_url; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Middleware returns the intake's authentication check for cfg. Mode none
// returns a middleware that lets everything through. A request without a
// valid bearer token gets 401 with a WWW-Authenticate challenge and an
// OperationOutcome; the token is never echoed or logged. It reads
// tokens_file, tokens_env and jwks_file now; jwks_url is fetched when the
// first token needs it.
func Middleware(cfg config.IntakeAuth, opts Options) (func(http.Handler) http.Handler, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "httpauth")
	var check func(r *http.Request, token string) (subject string, err error)
	switch cfg.Mode {
	case "", config.AuthNone:
		return func(h http.Handler) http.Handler { return h }, nil
	case config.AuthStatic:
		st, err := loadStaticTokens(cfg)
		if err != nil {
			return nil, err
		}
		check = func(_ *http.Request, token string) (string, error) { return st.check(token) }
	case config.AuthJWT:
		v, err := newJWTVerifier(cfg, opts)
		if err != nil {
			return nil, err
		}
		check = func(r *http.Request, token string) (string, error) { return v.verify(r.Context(), token) }
	default:
		return nil, fmt.Errorf("http.auth.mode: unknown mode %q (known: none, static, jwt)", cfg.Mode)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isOpen(r) {
				next.ServeHTTP(w, r)
				return
			}
			token, ok := bearerToken(r)
			if !ok {
				log.Info("request refused: no bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				refuse(w, "", "this endpoint needs Authorization: Bearer <token>", "login")
				return
			}
			subject, err := check(r, token)
			if err != nil {
				log.Info("request refused: invalid token", "method", r.Method, "path", r.URL.Path,
					"remote", r.RemoteAddr, "reason", err.Error())
				code := fhir.IssueCode("login")
				if errors.Is(err, errExpired) {
					code = "expired"
				}
				refuse(w, "invalid_token", "the bearer token was refused: "+err.Error(), code)
				return
			}
			log.Debug("request authenticated", "method", r.Method, "path", r.URL.Path, "subject", subject)
			next.ServeHTTP(w, r)
		})
	}, nil
}

func isOpen(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, p := range OpenPaths {
		if r.URL.Path == p {
			return true
		}
	}
	return false
}

// bearerToken reads "Authorization: Bearer <token>" (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// refuse writes 401 with an RFC 6750 challenge and an OperationOutcome.
// description must never contain the token.
func refuse(w http.ResponseWriter, errCode, description string, code fhir.IssueCode) {
	challenge := `Bearer realm="radgate"`
	if errCode != "" {
		challenge += fmt.Sprintf(`, error=%q, error_description=%q`, errCode, strings.ReplaceAll(description, `"`, "'"))
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(fhir.NewOutcome(fhir.SeverityError, code, description).JSON())
}

// staticTokens are the accepted tokens, kept as SHA-256 digests so that
// every comparison takes the same time whatever the token's length.
type staticTokens struct {
	digests [][32]byte
	names   []string
}

func loadStaticTokens(cfg config.IntakeAuth) (*staticTokens, error) {
	st := &staticTokens{}
	add := func(name, token string) {
		st.digests = append(st.digests, sha256.Sum256([]byte(token)))
		st.names = append(st.names, name)
	}
	if cfg.TokensFile != "" {
		f, err := os.Open(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		line := 0
		for sc.Scan() {
			line++
			s := strings.TrimSpace(sc.Text())
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			fields := strings.Fields(s)
			switch len(fields) {
			case 1:
				add(fmt.Sprintf("%s:%d", cfg.TokensFile, line), fields[0])
			case 2:
				add(fields[0], fields[1])
			default:
				// The line may hold a token: name the line, not its content.
				return nil, fmt.Errorf("http.auth.tokens_file %s:%d: expected \"token\" or \"name token\"", cfg.TokensFile, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file: %w", err)
		}
	}
	if cfg.TokensEnv != "" {
		v, ok := os.LookupEnv(cfg.TokensEnv)
		if !ok {
			return nil, fmt.Errorf("http.auth.tokens_env: environment variable %s is not set", cfg.TokensEnv)
		}
		for i, tok := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			add(fmt.Sprintf("%s#%d", cfg.TokensEnv, i+1), tok)
		}
	}
	if len(st.digests) == 0 {
		return nil, errors.New("http.auth: mode static but no token in tokens_file or tokens_env")
	}
	return st, nil
}

// check compares token with every accepted one in constant time.
func (st *staticTokens) check(token string) (string, error) {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range st.digests {
		if subtle.ConstantTimeCompare(d[:], st.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", errors.New("unknown token")
	}
	return st.names[found], nil
}

var errExpired = errors.New("token expired")

// jwtReason words a jwt/v5 validation error for the client and the log
// without any part of the token.
func jwtReason(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("token used before issued (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errors.New("wrong audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errors.New("wrong issuer")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("a required claim (exp) is missing")
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
