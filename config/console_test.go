package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsoleOIDC(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops tok operator\n"), 0o600))
	static := "http:\n  auth:\n    mode: static\n    tokens_file: " + tokens + "\n"
	good := "console:\n  oidc:\n    issuer: https://idp.example.org/realms/radiology\n    client_id: radgate-console\n" +
		"    client_secret_env: RADGATE_OIDC_SECRET\n    redirect_url: https://radgate.example.org/console/oidc/callback\n"

	cfg, err := Load("radgate.yaml", []byte(static+good))
	require.NoError(t, err)
	o := cfg.Console.OIDC
	assert.True(t, o.Enabled())
	assert.Equal(t, []string{"openid", "profile", "email"}, o.ScopeList(), "default scopes")
	assert.Equal(t, "roles", cfg.OIDCRolesClaim(), "http.auth's roles claim by default")
	cfg.HTTP.Auth.RolesClaim = "realm_access.roles"
	assert.Equal(t, "realm_access.roles", cfg.OIDCRolesClaim())
	cfg.Console.OIDC.RolesClaim = "groups"
	assert.Equal(t, "groups", cfg.OIDCRolesClaim())

	cfg, err = Load("radgate.yaml", []byte(static+good+"    scopes: [openid, radgate-roles]\n    roles_claim: groups\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"openid", "radgate-roles"}, cfg.Console.OIDC.ScopeList())

	cfg, err = Load("radgate.yaml", []byte(static+"console:\n  oidc:\n    issuer: http://127.0.0.1:5556/dex\n    client_id: c\n"+
		"    client_secret_env: S\n    redirect_url: http://localhost:8080/console/oidc/callback\n"))
	require.NoError(t, err, "http on a loopback host is allowed")
	assert.Equal(t, "http://127.0.0.1:5556/dex", cfg.Console.OIDC.Issuer)

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"only an issuer", static + "console:\n  oidc:\n    issuer: https://idp.example.org\n", []string{
			"console.oidc.client_id: must be set",
			"console.oidc.client_secret_env: must name the environment variable holding the client secret",
			"console.oidc.redirect_url: must be set",
		}},
		{"plain http to another host", static + strings.Replace(good, "https://idp", "http://idp", 1),
			[]string{`console.oidc.issuer: "http://idp.example.org/realms/radiology" must be https (http only for a loopback host)`}},
		{"not a URL", static + strings.Replace(good, "https://idp.example.org/realms/radiology", "idp.example.org", 1),
			[]string{`console.oidc.issuer: "idp.example.org" is not a URL with a scheme and a host`}},
		{"another callback path", static + strings.Replace(good, "/console/oidc/callback", "/callback", 1),
			[]string{`console.oidc.redirect_url: path is "/callback"; the console's callback is /console/oidc/callback`}},
		{"a query in the redirect", static + strings.Replace(good, "/console/oidc/callback", "/console/oidc/callback?x=1", 1),
			[]string{`console.oidc.redirect_url: "https://radgate.example.org/console/oidc/callback?x=1" must have no query or fragment`}},
		{"scopes without openid", static + good + "    scopes: [profile]\n",
			[]string{"console.oidc.scopes: must include openid"}},
		{"a client secret in the file", static + good + "    client_secret: s3cret\n",
			[]string{`unknown key "client_secret" in console.oidc`}},
		{"mode none", good,
			[]string{"console.oidc: needs http.auth.mode static or jwt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("radgate.yaml", []byte(tc.yaml))
			require.Error(t, err)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, len(tc.want), "%v", err)
			for i, w := range tc.want {
				assert.Contains(t, errs[i].Error(), w)
			}
			assert.NotContains(t, err.Error(), "s3cret", "a secret is never quoted back")
		})
	}
}
