package httpauth

import (
	"crypto"
	"crypto/elliptic"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// principalOf runs one request through h and returns the principal the
// protected handler saw.
func principalOf(t *testing.T, mw func(http.Handler) http.Handler, token string) (Principal, int) {
	t.Helper()
	var got Principal
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		require.True(t, ok)
		got = p
		w.WriteHeader(http.StatusAccepted)
	}))
	return got, call(t, h, "GET", "/orders/x", token).Code
}

func TestJWTRolesClaim(t *testing.T) {
	p := newIDP(t)
	key := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"k": key})
	exp := time.Now().Add(time.Minute).Unix()
	tok := func(c jwt.MapClaims) string {
		c["aud"], c["exp"], c["sub"] = "radgate", exp, "client-7"
		return sign(t, jwt.SigningMethodES256, key, "k", c)
	}
	for _, tc := range []struct {
		name, claim string
		claims      jwt.MapClaims
		want        []Role
	}{
		{"array (default claim)", "", jwt.MapClaims{"roles": []string{"phi", "operator", "billing"}}, []Role{RoleOperator, RolePHI}},
		{"space-separated string", "", jwt.MapClaims{"roles": "viewer phi"}, []Role{RoleViewer, RolePHI}},
		{"no roles claim", "", jwt.MapClaims{"scope": "phi"}, nil},
		{"wrong type", "", jwt.MapClaims{"roles": 5}, nil},
		{"case matters", "", jwt.MapClaims{"roles": []string{"PHI", "Operator"}}, nil},
		{"other claim", "groups", jwt.MapClaims{"roles": "phi", "groups": []string{"operator"}}, []Role{RoleOperator}},
		{"nested (Keycloak)", "realm_access.roles", jwt.MapClaims{"realm_access": map[string]any{"roles": []string{"phi", "offline_access"}}}, []Role{RolePHI}},
		{"a name with dots (Auth0)", "https://radgate.example.org/roles", jwt.MapClaims{"https://radgate.example.org/roles": []string{"operator"}}, []Role{RoleOperator}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Audience: "radgate", Algorithms: []string{"ES256"}, RolesClaim: tc.claim}
			mw, err := newAuth(t, cfg, Options{})
			require.NoError(t, err)
			got, code := principalOf(t, mw, tok(tc.claims))
			require.Equal(t, http.StatusAccepted, code)
			require.Equal(t, "client-7", got.Name)
			require.Equal(t, tc.want, got.Roles)
			require.True(t, got.Has(RoleViewer), "every authenticated caller is a viewer")
		})
	}
}

func TestPrincipalAndModeNone(t *testing.T) {
	p := newPrincipal("x", RolePHI, RoleViewer, RolePHI)
	require.Equal(t, []Role{RoleViewer, RolePHI}, p.Roles)
	require.True(t, p.Has(RolePHI))
	require.False(t, p.Has(RoleOperator))
	require.Equal(t, "viewer, phi", p.RoleList())
	require.Equal(t, "viewer", Principal{Name: "y"}.RoleList())

	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthNone}, Options{})
	require.NoError(t, err)
	got, code := principalOf(t, mw, "")
	require.Equal(t, http.StatusAccepted, code)
	for _, r := range Roles {
		require.True(t, got.Has(r), r)
	}

	// Outside the middleware nothing is granted.
	rec := call(t, RequireRole(RoleViewer)(protected), "GET", "/x", "")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), "GET /x needs the role viewer; the request carries no authenticated caller")
}
