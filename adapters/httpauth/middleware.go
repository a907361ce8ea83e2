// Package httpauth secures radgate's HTTP: the intake's bearer-token check
// (static tokens or JWTs verified against a JWKS), the roles of the caller
// it authenticated (Principal, RequireRole), TLS with optional client
// certificates, and the outbound transports that authenticate to the FHIR
// server and the PACS (bearer, basic, OAuth2 client credentials with a
// client secret or a SMART Backend Services private_key_jwt assertion).
//
// Secrets are read from the environment or files named in the config. No
// error, log line or response this package writes contains one: errors name
// the variable or file, never its content.
//
// JWT signatures are checked with github.com/golang-jwt/jwt/v5; the claims
// (exp, nbf, iat, iss, aud) by this package, so that a refusal names the
// claim that failed. The JWKS is parsed with github.com/MicahParks/jwkset.
// Its fetching and caching are ours: keyfunc/v3 with jwkset's HTTP storage
// (v3.9.2 / v0.11.4) fetches in its constructor, cannot wait for its
// refresh goroutine to end, fetches for an unknown kid in the request
// (waiting on a rate limiter, up to a minute by default), retries a failed
// refresh only after the full interval and reads the response unbounded.
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
	// HTTPClient fetches jwks_url; nil means a plain client (each fetch is
	// bounded by JWKSTimeout).
	HTTPClient *http.Client
	// JWKSRefresh is how often jwks_url is fetched again in the
	// background; zero means DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// JWKSTimeout bounds one fetch of jwks_url; zero means
	// DefaultJWKSTimeout.
	JWKSTimeout time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Authenticator is the intake's authentication check. It owns the
// goroutine that keeps jwks_url fresh: Close stops it.
type Authenticator struct {
	log   *slog.Logger
	check func(r *http.Request, token string) (Principal, error)
	jwt   *jwtVerifier
}

// New returns the intake's authentication for cfg. It reads tokens_file,
// tokens_env and jwks_file now; with jwks_url it starts fetching the JWKS
// in the background (see jwksCache) and the caller must Close it.
func New(cfg config.IntakeAuth, opts Options) (*Authenticator, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{log: log.With("component", "httpauth")}
	switch cfg.Mode {
	case "", config.AuthNone:
	case config.AuthStatic:
		st, err := loadStaticTokens(cfg)
		if err != nil {
			return nil, err
		}
		a.check = func(_ *http.Request, token string) (Principal, error) { return st.check(token) }
	case config.AuthJWT:
		v, err := newJWTVerifier(cfg, opts, a.log)
		if err != nil {
			return nil, err
		}
		a.jwt = v
		a.check = func(r *http.Request, token string) (Principal, error) { return v.verify(r.Context(), token) }
	default:
		return nil, fmt.Errorf("http.auth.mode: unknown mode %q (known: none, static, jwt)", cfg.Mode)
	}
	return a, nil
}

// Close stops fetching jwks_url and waits until the goroutine doing it has
// returned. It is idempotent and returns nil.
func (a *Authenticator) Close() error {
	if a != nil && a.jwt != nil {
		a.jwt.close()
	}
	return nil
}

// Middleware puts the check in front of next. A request without a valid
// bearer token gets 401 with a WWW-Authenticate challenge and an
// OperationOutcome naming why (for a JWT, every claim that failed); the
// token is never echoed or logged. A request that passes carries its
// Principal in its context (PrincipalFrom). Mode none lets everything
// through with every role (it is only allowed on loopback or behind
// required client certificates).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	if a.check == nil {
		everyone := allRoles("unauthenticated (http.auth.mode none)")
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), everyone)))
		})
	}
	log := a.log
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
		p, err := a.check(r, token)
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
		log.Debug("request authenticated", "method", r.Method, "path", r.URL.Path, "subject", p.Name, "roles", p.RoleList())
		next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), p)))
	})
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
	digests    [][32]byte
	principals []Principal
}

// loadStaticTokens reads tokens_file and tokens_env. A line of the file is
// "token", "name token" or "name token role,role"; the first two forms and
// every token of tokens_env are viewers. Errors name the file and line,
// never a token.
func loadStaticTokens(cfg config.IntakeAuth) (*staticTokens, error) {
	st := &staticTokens{}
	add := func(token string, p Principal) {
		st.digests = append(st.digests, sha256.Sum256([]byte(token)))
		st.principals = append(st.principals, p)
	}
	if cfg.TokensFile != "" {
		f, err := os.Open(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		line := 0
		var errs []error
		for sc.Scan() {
			line++
			s := strings.TrimSpace(sc.Text())
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			fields := strings.Fields(s)
			switch len(fields) {
			case 1:
				add(fields[0], newPrincipal(fmt.Sprintf("%s:%d", cfg.TokensFile, line)))
			case 2:
				add(fields[1], newPrincipal(fields[0]))
			case 3:
				roles, err := parseRoleList(fields[2])
				if err != nil {
					errs = append(errs, fmt.Errorf("http.auth.tokens_file %s:%d: %w", cfg.TokensFile, line, err))
					continue
				}
				add(fields[1], newPrincipal(fields[0], roles...))
			default:
				// The line may hold a token: name the line, not its content.
				errs = append(errs, fmt.Errorf("http.auth.tokens_file %s:%d: expected \"token\", \"name token\" or \"name token role,role\" (%d fields)",
					cfg.TokensFile, line, len(fields)))
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("http.auth.tokens_file: %w", err)
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	if cfg.TokensEnv != "" {
		v, ok := os.LookupEnv(cfg.TokensEnv)
		if !ok {
			return nil, fmt.Errorf("http.auth.tokens_env: environment variable %s is not set", cfg.TokensEnv)
		}
		for i, tok := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			add(tok, newPrincipal(fmt.Sprintf("%s#%d", cfg.TokensEnv, i+1)))
		}
	}
	if len(st.digests) == 0 {
		return nil, errors.New("http.auth: mode static but no token in tokens_file or tokens_env")
	}
	return st, nil
}

// parseRoleList reads the roles field of a tokens file line. An unknown
// name is not quoted back: a line with one field too many may hold a
// second token there.
func parseRoleList(field string) ([]Role, error) {
	var roles []Role
	for i, name := range strings.Split(field, ",") {
		r, ok := ParseRole(name)
		if !ok {
			return nil, fmt.Errorf("role %d of the third field is not a known role (known: %s; roles are separated by commas, no spaces)",
				i+1, roleNames(Roles))
		}
		roles = append(roles, r)
	}
	return roles, nil
}

// check compares token with every accepted one in constant time.
func (st *staticTokens) check(token string) (Principal, error) {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range st.digests {
		if subtle.ConstantTimeCompare(d[:], st.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, errors.New("unknown token")
	}
	return st.principals[found], nil
}

// Verify checks a token exactly as Middleware checks a bearer token, for
// callers that take the token another way (the console's sign-in form).
// With mode none there is nothing to check against: it fails, and Open
// says so.
func (a *Authenticator) Verify(r *http.Request, token string) (Principal, error) {
	if a.check == nil {
		return Principal{}, errors.New("http.auth.mode is none: there are no tokens to check")
	}
	return a.check(r, token)
}

// Open reports whether the authenticator checks nothing (http.auth.mode
// none).
func (a *Authenticator) Open() bool { return a.check == nil }

// NewPrincipal returns a principal holding roles (viewer always).
func NewPrincipal(name string, roles ...Role) Principal { return newPrincipal(name, roles...) }
