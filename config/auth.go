package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// HTTP secures the HTTP intake (listen): TLS and who may call it.
type HTTP struct {
	TLS  ServerTLS  `yaml:"tls"`
	Auth IntakeAuth `yaml:"auth"`
	// Limits bound what one client may hand in (see config.go).
	Limits IntakeLimits `yaml:"limits"`
}

// Client certificate modes of ServerTLS.ClientAuth.
const (
	ClientCertNone    = "none"
	ClientCertRequest = "request"
	ClientCertRequire = "require"
)

// ServerTLS makes the intake serve HTTPS.
type ServerTLS struct {
	// CertFile and KeyFile are the PEM certificate (chain) and private key
	// of the intake. Both empty: plain HTTP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none (no client certificate asked for), request (a
	// certificate, when given, must verify against client_ca_file) or
	// require (every client must present one that verifies).
	ClientAuth string `yaml:"client_auth"`
}

// Enabled reports whether TLS is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Intake authentication modes of IntakeAuth.Mode.
const (
	AuthNone   = "none"
	AuthStatic = "static"
	AuthJWT    = "jwt"
)

// IntakeAuth says how callers of the intake authenticate: with
// "Authorization: Bearer <token>", the token being one of a static list or
// a JWT signed by a key of a JWKS. /healthz and /readyz stay open.
type IntakeAuth struct {
	// Mode is none, static or jwt. none is only allowed when listen is a
	// loopback address (or tls.client_auth is require), and gives every
	// caller every role.
	Mode string `yaml:"mode"`
	// TokensFile holds the static tokens, one a line: "name token
	// role,role" (roles viewer, operator, phi), or "token" or "name token"
	// (viewer only). The name is what the log shows; '#' starts a comment.
	TokensFile string `yaml:"tokens_file"`
	// TokensEnv names an environment variable holding static tokens
	// separated by commas or white space (viewer only).
	TokensEnv string `yaml:"tokens_env"`
	// JWKSURL is the identity provider's JWKS: fetched in the background at
	// start, every hour, sooner after a failure and for an unknown key id
	// (at most every 10 s); cached keys serve requests meanwhile.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSFile is a JWKS on disk, instead of jwks_url.
	JWKSFile string `yaml:"jwks_file"`
	// Issuer, when set, must equal the token's iss.
	Issuer string `yaml:"issuer"`
	// Audience must be among the token's aud. Mode jwt requires it unless
	// AllowAnyAudience is set.
	Audience string `yaml:"audience"`
	// AllowAnyAudience accepts tokens whatever their aud: any client of
	// the identity provider gets in. Only for a provider that issues
	// tokens to radgate's callers alone.
	AllowAnyAudience bool `yaml:"allow_any_audience"`
	// RolesClaim is the JWT claim holding the caller's roles (viewer,
	// operator, phi): an array of strings or a space-separated string;
	// a dotted name reaches into nested objects (realm_access.roles).
	// Other names in it are ignored.
	RolesClaim string `yaml:"roles_claim"`
	// Algorithms are the JWS algorithms accepted (never none or HMAC).
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway Duration `yaml:"leeway"`
}

// JWTAlgorithms are the algorithms intake.auth.algorithms may name.
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ClientAuth is how radgate authenticates to a server it calls (FHIR
// server, PACS, destination): at most one of a bearer token, HTTP basic
// (username and password) or OAuth2 client credentials. Secrets come from
// the environment or files, never from this file.
type ClientAuth struct {
	// BearerTokenEnv or BearerTokenFile hold a static bearer token.
	BearerTokenEnv  string `yaml:"bearer_token_env"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Username with PasswordEnv or PasswordFile: HTTP basic authentication.
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// OAuth2 client credentials grant; tokens are cached until shortly
	// before they expire.
	OAuth2 OAuth2 `yaml:"oauth2"`
}

// OAuth2 is the client credentials grant, with a client secret or, as SMART
// Backend Services asks, a private_key_jwt client assertion.
type OAuth2 struct {
	// TokenURL is the authorization server's token endpoint.
	TokenURL string `yaml:"token_url"`
	// ClientID is radgate's registered client id.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv or ClientSecretFile: client_secret authentication
	// (HTTP basic to the token endpoint).
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// PrivateKeyFile (PEM, RSA or EC P-384/P-256) and KeyID (the kid of its
	// public key in the JWKS registered with the server): a signed client
	// assertion (RS384 for RSA, ES384 for P-384, ES256 for P-256).
	PrivateKeyFile string `yaml:"private_key_file"`
	KeyID          string `yaml:"key_id"`
	// Scopes asked for, e.g. system/DiagnosticReport.write.
	Scopes []string `yaml:"scopes"`
}

// Enabled reports whether any OAuth2 key is set.
func (o OAuth2) Enabled() bool {
	return o.TokenURL != "" || o.ClientID != "" || o.ClientSecretEnv != "" || o.ClientSecretFile != "" ||
		o.PrivateKeyFile != "" || o.KeyID != "" || len(o.Scopes) > 0
}

// Method names the configured method: "", "bearer", "basic" or "oauth2".
// Validation makes sure at most one is set.
func (a ClientAuth) Method() string {
	switch {
	case a.OAuth2.Enabled():
		return "oauth2"
	case a.BearerTokenEnv != "" || a.BearerTokenFile != "":
		return "bearer"
	case a.Username != "" || a.PasswordEnv != "" || a.PasswordFile != "":
		return "basic"
	}
	return ""
}

// ClientTLS is how radgate verifies a server it calls and, optionally, the
// client certificate it presents. Verification is always on unless
// insecure_skip_verify is set.
type ClientTLS struct {
	// CAFile is a PEM bundle of CAs trusted besides the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and key (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns certificate verification off. Never in
	// production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// ClientAuth returns the PACS's client authentication: the auth section, or the
// older username/password_env/password_file keys.
func (p PACS) ClientAuth() ClientAuth {
	if p.Username != "" || p.PasswordEnv != "" || p.PasswordFile != "" {
		return ClientAuth{Username: p.Username, PasswordEnv: p.PasswordEnv, PasswordFile: p.PasswordFile}
	}
	return p.Auth
}

// ClientAuth returns the FHIR server's client authentication: the auth
// section, or the older bearer_token_env key.
func (f FHIR) ClientAuth() ClientAuth {
	if f.BearerTokenEnv != "" {
		return ClientAuth{BearerTokenEnv: f.BearerTokenEnv}
	}
	return f.Auth
}

// IsLoopback reports whether a listen address names only loopback
// interfaces (127.0.0.0/8, ::1, localhost).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckIntakeExposure refuses an intake reachable beyond loopback with no
// authentication. radgate serve calls it after command-line overrides too.
func (c Config) CheckIntakeExposure() error {
	a := c.HTTP.Auth
	if (a.Mode == "" || a.Mode == AuthNone) && !IsLoopback(c.Listen) &&
		!(c.HTTP.TLS.Enabled() && c.HTTP.TLS.ClientAuth == ClientCertRequire) {
		return fmt.Errorf("listen %q is not a loopback address and the intake has no authentication: set http.auth.mode to static or jwt (or http.tls.client_auth to require)", c.Listen)
	}
	return nil
}

// validateSecurity adds the findings about http, the auth and tls sections
// of fhir, pacs and destinations.
func validateSecurity(c *Config, bad func(path, msg string), badAt func(at []string, path, msg string)) {
	fileExists := func(path, file string) {
		if file == "" {
			return
		}
		if st, err := os.Stat(file); err != nil {
			bad(path, fmt.Sprintf("cannot read %q: %v", file, unwrapPathError(err)))
		} else if st.IsDir() {
			bad(path, fmt.Sprintf("%q is a folder, not a file", file))
		}
	}
	checkURL := func(path, raw string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad(path, fmt.Sprintf("%q is not a URL with scheme http or https and a host", raw))
		}
	}

	// The intake.
	t := c.HTTP.TLS
	fileExists("http.tls.cert_file", t.CertFile)
	fileExists("http.tls.key_file", t.KeyFile)
	fileExists("http.tls.client_ca_file", t.ClientCAFile)
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("http.tls", "cert_file and key_file go together: set both or neither")
	}
	switch t.ClientAuth {
	case ClientCertNone:
		if t.ClientCAFile != "" {
			bad("http.tls.client_auth", "client_ca_file is set but client_auth is none: use request or require")
		}
	case ClientCertRequest, ClientCertRequire:
		if !t.Enabled() {
			bad("http.tls.client_auth", fmt.Sprintf("%s needs TLS: set cert_file and key_file", t.ClientAuth))
		}
		if t.ClientCAFile == "" {
			bad("http.tls.client_auth", fmt.Sprintf("%s needs client_ca_file (the CAs that sign client certificates)", t.ClientAuth))
		}
	default:
		bad("http.tls.client_auth", fmt.Sprintf("unknown mode %q (known: none, request, require)", t.ClientAuth))
	}

	a := c.HTTP.Auth
	fileExists("http.auth.tokens_file", a.TokensFile)
	fileExists("http.auth.jwks_file", a.JWKSFile)
	checkURL("http.auth.jwks_url", a.JWKSURL)
	for _, alg := range a.Algorithms {
		if !contains(JWTAlgorithms, alg) {
			bad("http.auth.algorithms", fmt.Sprintf("unknown or unsafe algorithm %q (known: %s)", alg, strings.Join(JWTAlgorithms, ", ")))
		}
	}
	if a.Leeway < 0 {
		bad("http.auth.leeway", "must not be negative")
	}
	staticSet := a.TokensFile != "" || a.TokensEnv != ""
	jwtSet := a.JWKSURL != "" || a.JWKSFile != "" || a.Issuer != "" || a.Audience != "" || a.AllowAnyAudience
	switch a.Mode {
	case AuthNone:
		if staticSet || jwtSet {
			bad("http.auth.mode", "is none but tokens or a JWKS are configured: set mode to static or jwt")
		}
	case AuthStatic:
		if !staticSet {
			bad("http.auth.mode", "static needs tokens_file or tokens_env")
		}
		if jwtSet {
			bad("http.auth.mode", "static does not use jwks_url, jwks_file, issuer, audience or allow_any_audience")
		}
	case AuthJWT:
		if (a.JWKSURL == "") == (a.JWKSFile == "") {
			bad("http.auth.mode", "jwt needs exactly one of jwks_url or jwks_file")
		}
		if staticSet {
			bad("http.auth.mode", "jwt does not use tokens_file or tokens_env")
		}
		if len(a.Algorithms) == 0 {
			bad("http.auth.algorithms", "jwt needs at least one algorithm")
		}
		switch {
		case a.Audience == "" && !a.AllowAnyAudience:
			badAt([]string{"http.auth.mode"}, "http.auth.audience",
				"mode jwt needs the audience (aud) the identity provider puts in tokens for radgate; "+
					"without it any client of the provider gets in (set allow_any_audience: true to accept that)")
		case a.Audience != "" && a.AllowAnyAudience:
			badAt([]string{"http.auth.allow_any_audience"}, "http.auth.allow_any_audience", "is true but audience is set: choose one")
		}
		if strings.TrimSpace(a.RolesClaim) == "" {
			bad("http.auth.roles_claim", "must not be empty (default roles)")
		}
	default:
		bad("http.auth.mode", fmt.Sprintf("unknown mode %q (known: none, static, jwt)", a.Mode))
	}
	if err := c.CheckIntakeExposure(); err != nil && c.Listen != "" {
		badAt([]string{"http.auth.mode", "listen"}, "http.auth.mode", err.Error())
	}

	// Outbound.
	if c.PACS.Username != "" || c.PACS.PasswordEnv != "" || c.PACS.PasswordFile != "" {
		if c.PACS.Auth.Method() != "" {
			bad("pacs.auth", "set pacs.username/password_env/password_file or pacs.auth, not both")
		}
		if c.PACS.Username == "" {
			bad("pacs.username", "a password is configured but the username is empty")
		}
		fileExists("pacs.password_file", c.PACS.PasswordFile)
	}
	if c.FHIR.BearerTokenEnv != "" && c.FHIR.Auth.Method() != "" {
		bad("fhir.auth", "set fhir.bearer_token_env or fhir.auth, not both")
	}
	validateClient("pacs", c.PACS.Auth, c.PACS.TLS, bad, fileExists, checkURL)
	validateClient("fhir", c.FHIR.Auth, c.FHIR.TLS, bad, fileExists, checkURL)
	for _, name := range sortedKeys(c.Destinations) {
		d := c.Destinations[name]
		path := "destinations." + name
		if d.Type == DestinationHL7v2 {
			if d.Auth.Method() != "" || d.TLS != (ClientTLS{}) {
				bad(path, "auth and tls apply to fhir and dicomweb destinations only (MLLP has neither)")
			}
			continue
		}
		validateClient(path, d.Auth, d.TLS, bad, fileExists, checkURL)
	}
}

func validateClient(prefix string, a ClientAuth, t ClientTLS, bad func(path, msg string),
	fileExists func(path, file string), checkURL func(path, raw string)) {
	p := prefix + ".auth"
	var methods []string
	if a.BearerTokenEnv != "" || a.BearerTokenFile != "" {
		methods = append(methods, "bearer_token_env/bearer_token_file")
	}
	if a.Username != "" || a.PasswordEnv != "" || a.PasswordFile != "" {
		methods = append(methods, "username/password")
	}
	if a.OAuth2.Enabled() {
		methods = append(methods, "oauth2")
	}
	if len(methods) > 1 {
		bad(p, fmt.Sprintf("choose one method, not %s", strings.Join(methods, " and ")))
	}
	if a.BearerTokenEnv != "" && a.BearerTokenFile != "" {
		bad(p+".bearer_token_env", "set bearer_token_env or bearer_token_file, not both")
	}
	fileExists(p+".bearer_token_file", a.BearerTokenFile)
	if a.PasswordEnv != "" && a.PasswordFile != "" {
		bad(p+".password_env", "set password_env or password_file, not both")
	}
	if (a.PasswordEnv != "" || a.PasswordFile != "") && a.Username == "" {
		bad(p+".username", "a password is configured but the username is empty")
	}
	if a.Username != "" && a.PasswordEnv == "" && a.PasswordFile == "" {
		bad(p+".username", "set password_env or password_file with the username")
	}
	fileExists(p+".password_file", a.PasswordFile)
	if o := a.OAuth2; o.Enabled() {
		op := p + ".oauth2"
		if o.TokenURL == "" {
			bad(op, "token_url must be set")
		}
		checkURL(op+".token_url", o.TokenURL)
		if o.ClientID == "" {
			bad(op, "client_id must be set")
		}
		secret := o.ClientSecretEnv != "" || o.ClientSecretFile != ""
		switch {
		case secret && o.PrivateKeyFile != "":
			bad(op, "use a client secret or private_key_file, not both")
		case !secret && o.PrivateKeyFile == "":
			bad(op, "set client_secret_env, client_secret_file or private_key_file (with key_id)")
		}
		if o.ClientSecretEnv != "" && o.ClientSecretFile != "" {
			bad(op+".client_secret_env", "set client_secret_env or client_secret_file, not both")
		}
		fileExists(op+".client_secret_file", o.ClientSecretFile)
		fileExists(op+".private_key_file", o.PrivateKeyFile)
		if o.PrivateKeyFile != "" && o.KeyID == "" {
			bad(op+".key_id", "private_key_file needs key_id (the kid of its public key in the registered JWKS)")
		}
		if o.KeyID != "" && o.PrivateKeyFile == "" {
			bad(op+".key_id", "key_id is only used with private_key_file")
		}
	}
	tp := prefix + ".tls"
	fileExists(tp+".ca_file", t.CAFile)
	fileExists(tp+".cert_file", t.CertFile)
	fileExists(tp+".key_file", t.KeyFile)
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(tp, "cert_file and key_file go together: set both or neither")
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
