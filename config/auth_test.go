package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func loadErrors(t *testing.T, yaml string) []string {
	t.Helper()
	_, err := Load("radgate.yaml", []byte(yaml))
	if err == nil {
		return nil
	}
	var errs Errors
	require.ErrorAs(t, err, &errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	return got
}

func TestSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("x\n"), 0o600))
		return p
	}
	tokens, jwks, cert, key, ca, pw := file("tokens"), file("jwks.json"), file("cert.pem"), file("key.pem"), file("ca.pem"), file("pw")

	t.Run("defaults: no auth on loopback, TLS off", func(t *testing.T) {
		d := Default()
		require.Equal(t, AuthNone, d.HTTP.Auth.Mode)
		require.Equal(t, ClientCertNone, d.HTTP.TLS.ClientAuth)
		require.False(t, d.HTTP.TLS.Enabled())
		require.NoError(t, d.CheckIntakeExposure())
	})

	t.Run("a valid secured configuration", func(t *testing.T) {
		cfg, err := Load("radgate.yaml", []byte(`
listen: 0.0.0.0:8443
http:
  tls: {cert_file: `+cert+`, key_file: `+key+`, client_ca_file: `+ca+`, client_auth: request}
  auth: {mode: static, tokens_file: `+tokens+`}
pacs:
  auth: {username: radgate, password_file: `+pw+`}
  tls: {ca_file: `+ca+`}
fhir:
  auth:
    oauth2: {token_url: "https://ehr.example.org/token", client_id: radgate, private_key_file: `+key+`, key_id: k1, scopes: [system/DiagnosticReport.write]}
destinations:
  archive: {type: dicomweb, url: "https://pacs2.example.org/dicom-web", auth: {bearer_token_env: PACS2_TOKEN}}
`))
		require.NoError(t, err)
		require.Equal(t, "oauth2", cfg.FHIR.ClientAuth().Method())
		require.Equal(t, "basic", cfg.PACS.ClientAuth().Method())
		require.Equal(t, "bearer", cfg.Destinations["archive"].Auth.Method())
		require.Equal(t, []string{"system/DiagnosticReport.write"}, cfg.FHIR.Auth.OAuth2.Scopes)
	})

	t.Run("older keys map onto ClientAuth", func(t *testing.T) {
		cfg, err := Load("radgate.yaml", []byte("pacs:\n  username: u\n  password_env: PW\nfhir:\n  bearer_token_env: TOK\n"))
		require.NoError(t, err)
		require.Equal(t, ClientAuth{Username: "u", PasswordEnv: "PW"}, cfg.PACS.ClientAuth())
		require.Equal(t, ClientAuth{BearerTokenEnv: "TOK"}, cfg.FHIR.ClientAuth())
	})

	t.Run("jwt mode", func(t *testing.T) {
		cfg, err := Load("radgate.yaml", []byte("listen: 10.0.0.5:8080\nhttp:\n  auth:\n    mode: jwt\n    jwks_file: "+jwks+"\n    audience: radgate\n"))
		require.NoError(t, err)
		require.Equal(t, []string{"RS256", "RS384", "ES256", "ES384"}, cfg.HTTP.Auth.Algorithms)
		require.Equal(t, "roles", cfg.HTTP.Auth.RolesClaim, "default")
		require.False(t, cfg.HTTP.Auth.AllowAnyAudience)
	})

	t.Run("jwt mode opting out of the audience", func(t *testing.T) {
		cfg, err := Load("radgate.yaml", []byte("http:\n  auth:\n    mode: jwt\n    jwks_file: "+jwks+"\n    allow_any_audience: true\n    roles_claim: realm_access.roles\n"))
		require.NoError(t, err)
		require.True(t, cfg.HTTP.Auth.AllowAnyAudience)
		require.Equal(t, "realm_access.roles", cfg.HTTP.Auth.RolesClaim)
	})

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "non-loopback listen without auth is refused, naming the key",
			yaml: "listen: 0.0.0.0:8080\n",
			want: []string{`radgate.yaml:1:9: http.auth.mode: listen "0.0.0.0:8080" is not a loopback address and the intake has no authentication: set http.auth.mode to static or jwt (or http.tls.client_auth to require)`},
		},
		{
			name: "positioned at http.auth.mode when it is written",
			yaml: "listen: 0.0.0.0:8080\nhttp:\n  auth:\n    mode: none\n",
			want: []string{`radgate.yaml:4:11: http.auth.mode: listen "0.0.0.0:8080" is not a loopback address and the intake has no authentication: set http.auth.mode to static or jwt (or http.tls.client_auth to require)`},
		},
		{
			name: "unknown mode, static without tokens file, missing files",
			yaml: "http:\n  auth:\n    mode: statik\n  tls:\n    cert_file: /nonexistent/cert.pem\n    client_auth: sometimes\n",
			want: []string{
				`radgate.yaml:3:11: http.auth.mode: unknown mode "statik" (known: none, static, jwt)`,
				`radgate.yaml:5:5: http.tls: cert_file and key_file go together: set both or neither`,
				`radgate.yaml:5:16: http.tls.cert_file: cannot read "/nonexistent/cert.pem": no such file or directory`,
				`radgate.yaml:6:18: http.tls.client_auth: unknown mode "sometimes" (known: none, request, require)`,
			},
		},
		{
			name: "jwt without a JWKS, HMAC algorithm",
			yaml: "http:\n  auth:\n    mode: jwt\n    algorithms: [HS256]\n",
			want: []string{
				`radgate.yaml:3:11: http.auth.mode: jwt needs exactly one of jwks_url or jwks_file`,
				`radgate.yaml:3:11: http.auth.audience: mode jwt needs the audience (aud) the identity provider puts in tokens for radgate; ` +
					`without it any client of the provider gets in (set allow_any_audience: true to accept that)`,
				`radgate.yaml:4:17: http.auth.algorithms: unknown or unsafe algorithm "HS256" (known: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
			},
		},
		{
			name: "jwt without an audience names the key, at mode",
			yaml: "http:\n  auth:\n    mode: jwt\n    jwks_file: " + jwks + "\n    issuer: https://idp.example.org\n",
			want: []string{`radgate.yaml:3:11: http.auth.audience: mode jwt needs the audience (aud) the identity provider puts in tokens for radgate; ` +
				`without it any client of the provider gets in (set allow_any_audience: true to accept that)`},
		},
		{
			name: "audience and allow_any_audience together; empty roles_claim",
			yaml: "http:\n  auth:\n    mode: jwt\n    jwks_file: " + jwks + "\n    audience: radgate\n    allow_any_audience: true\n    roles_claim: ''\n",
			want: []string{
				`radgate.yaml:6:25: http.auth.allow_any_audience: is true but audience is set: choose one`,
				`radgate.yaml:7:18: http.auth.roles_claim: must not be empty (default roles)`,
			},
		},
		{
			name: "allow_any_audience with static tokens",
			yaml: "http:\n  auth:\n    mode: static\n    tokens_file: " + tokens + "\n    allow_any_audience: true\n",
			want: []string{`radgate.yaml:3:11: http.auth.mode: static does not use jwks_url, jwks_file, issuer, audience or allow_any_audience`},
		},
		{
			name: "two outbound methods, oauth2 without a secret or key",
			yaml: "fhir:\n  auth:\n    bearer_token_env: T\n    oauth2:\n      token_url: ftp://x\n      client_id: c\n",
			want: []string{
				`radgate.yaml:3:5: fhir.auth: choose one method, not bearer_token_env/bearer_token_file and oauth2`,
				`radgate.yaml:5:7: fhir.auth.oauth2: set client_secret_env, client_secret_file or private_key_file (with key_id)`,
				`radgate.yaml:5:18: fhir.auth.oauth2.token_url: "ftp://x" is not a URL with scheme http or https and a host`,
			},
		},
		{
			name: "older and newer PACS keys together",
			yaml: "pacs:\n  username: a\n  password_env: P\n  auth:\n    bearer_token_env: T\n",
			want: []string{`radgate.yaml:5:5: pacs.auth: set pacs.username/password_env/password_file or pacs.auth, not both`},
		},
		{
			name: "private key without key_id, client cert without key",
			yaml: "fhir:\n  auth:\n    oauth2: {token_url: 'https://a/t', client_id: c, private_key_file: " + key + "}\n  tls:\n    cert_file: " + cert + "\n",
			want: []string{
				`radgate.yaml:3:13: fhir.auth.oauth2.key_id: private_key_file needs key_id (the kid of its public key in the registered JWKS)`,
				`radgate.yaml:5:5: fhir.tls: cert_file and key_file go together: set both or neither`,
			},
		},
		{
			name: "auth on an hl7v2 destination",
			yaml: "destinations:\n  ris:\n    type: hl7v2\n    address: 127.0.0.1:2576\n    auth: {bearer_token_env: T}\n",
			want: []string{`radgate.yaml:3:5: destinations.ris: auth and tls apply to fhir and dicomweb destinations only (MLLP has neither)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, loadErrors(t, tc.yaml))
		})
	}
}
