package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Console configures the operator console under /console/ on the HTTP
// listener (package console).
type Console struct {
	// SessionTTL is how long a console session lasts after sign-in: the
	// cookie's Max-Age and the TTL of the radgate_console_sessions bucket.
	SessionTTL Duration `yaml:"session_ttl"`
	// OIDC, when set, adds "Sign in with <issuer>" to the sign-in page: an
	// OpenID Connect authorization-code flow (PKCE S256) with the identity
	// provider, opening the same session as a pasted token.
	OIDC ConsoleOIDC `yaml:"oidc"`
}

// ConsoleOIDC is the console's OpenID Connect client (a confidential web
// client registered with the identity provider).
type ConsoleOIDC struct {
	// Issuer is the provider's issuer URL; its discovery document is
	// Issuer + /.well-known/openid-configuration and must name it exactly.
	Issuer string `yaml:"issuer"`
	// ClientID is the console's client id at the provider; ID tokens must
	// carry it as their audience.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable holding the client
	// secret (never in this file).
	ClientSecretEnv string `yaml:"client_secret_env"`
	// RedirectURL is where the provider sends the browser back:
	// https://<radgate host>/console/oidc/callback, registered with the
	// provider exactly.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for; DefaultOIDCScopes when empty. openid must be among
	// them; add the scope that makes the provider put the roles claim in
	// the ID token when it needs one.
	Scopes []string `yaml:"scopes"`
	// RolesClaim is the ID token claim holding the roles (viewer,
	// operator, phi); http.auth.roles_claim when empty.
	RolesClaim string `yaml:"roles_claim"`
}

// DefaultOIDCScopes are the scopes the console asks for when
// console.oidc.scopes is empty.
var DefaultOIDCScopes = []string{"openid", "profile", "email"}

// OIDCCallbackPath is the path of console.oidc.redirect_url.
const OIDCCallbackPath = "/console/oidc/callback"

// Enabled reports whether any console.oidc key is set.
func (o ConsoleOIDC) Enabled() bool {
	return o.Issuer != "" || o.ClientID != "" || o.ClientSecretEnv != "" || o.RedirectURL != "" ||
		len(o.Scopes) > 0 || o.RolesClaim != ""
}

// ScopeList returns the scopes to ask for (DefaultOIDCScopes when none
// are configured).
func (o ConsoleOIDC) ScopeList() []string {
	if len(o.Scopes) == 0 {
		return slices.Clone(DefaultOIDCScopes)
	}
	return slices.Clone(o.Scopes)
}

// OIDCRolesClaim is the claim the console reads roles from:
// console.oidc.roles_claim, else http.auth.roles_claim, else "roles".
func (c Config) OIDCRolesClaim() string {
	for _, s := range []string{c.Console.OIDC.RolesClaim, c.HTTP.Auth.RolesClaim} {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return "roles"
}

// DefaultConsole is the console's default configuration.
func DefaultConsole() Console { return Console{SessionTTL: Duration(8 * time.Hour)} }

func validateConsole(c *Config, bad func(path, msg string)) {
	if c.Console.SessionTTL.D() < time.Minute {
		bad("console.session_ttl", "must be at least 1m (a session lasts this long after sign-in)")
	}
	o := c.Console.OIDC
	if !o.Enabled() {
		return
	}
	if m := c.HTTP.Auth.Mode; m == "" || m == AuthNone {
		bad("console.oidc", "needs http.auth.mode static or jwt: with mode none the console has no sign-in")
	}
	const p = "console.oidc."
	if o.Issuer == "" {
		bad(p+"issuer", "must be set (the identity provider's issuer URL)")
	} else if msg := webURL(o.Issuer); msg != "" {
		bad(p+"issuer", msg)
	}
	if o.ClientID == "" {
		bad(p+"client_id", "must be set (the console's client id at the identity provider)")
	}
	if o.ClientSecretEnv == "" {
		bad(p+"client_secret_env", "must name the environment variable holding the client secret (never put the secret in this file)")
	}
	if o.RedirectURL == "" {
		bad(p+"redirect_url", "must be set (https://<radgate host>"+OIDCCallbackPath+", registered with the identity provider)")
	} else if msg := webURL(o.RedirectURL); msg != "" {
		bad(p+"redirect_url", msg)
	} else if u, _ := url.Parse(o.RedirectURL); u.Path != OIDCCallbackPath {
		bad(p+"redirect_url", fmt.Sprintf("path is %q; the console's callback is %s", u.Path, OIDCCallbackPath))
	}
	if len(o.Scopes) > 0 && !slices.Contains(o.Scopes, "openid") {
		bad(p+"scopes", "must include openid (without it the provider issues no ID token)")
	}
	for _, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"") {
			bad(p+"scopes", fmt.Sprintf("%q is not a scope (one scope a list item, no spaces)", s))
		}
	}
	if o.RolesClaim != "" && strings.TrimSpace(o.RolesClaim) == "" {
		bad(p+"roles_claim", "must not be blank (empty: http.auth.roles_claim)")
	}
}

// webURL says what is wrong with an OIDC issuer or redirect URL: it must
// be https with a host (http only for a loopback host, for tests and a
// provider on the same machine), with no query, fragment or credentials.
func webURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("%q is not a URL with a scheme and a host", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Sprintf("%q must be https (http only for a loopback host)", raw)
		}
	default:
		return fmt.Sprintf("%q must be https (http only for a loopback host)", raw)
	}
	if u.User != nil {
		return fmt.Sprintf("%s must not hold credentials", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q must have no query or fragment", raw)
	}
	return ""
}
