package httpauth

import (
	"crypto"
	"crypto/elliptic"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
)

// Each claim check names the claim that failed, in the 401's
// OperationOutcome, its WWW-Authenticate challenge and the log line; a
// token failing several checks names each.
func TestJWTClaimRefusalsNameTheClaim(t *testing.T) {
	p := newIDP(t)
	key := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"k": key})
	logs := &testenv.LogBuffer{}
	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Issuer: "https://idp.example.org",
		Audience: "radgate", Algorithms: []string{"ES256"}, Leeway: config.Duration(5 * time.Second)}, Options{Logger: debugLogger(logs)})
	require.NoError(t, err)
	h := mw(protected)
	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "https://idp.example.org", "aud": "radgate", "sub": "s",
			"exp": now.Add(time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix()}
	}
	for _, tc := range []struct {
		name   string
		mod    func(jwt.MapClaims)
		reason string
		code   fhir.IssueCode
	}{
		{"exp missing", func(c jwt.MapClaims) { delete(c, "exp") }, "a required claim (exp) is missing", "login"},
		{"exp not a number", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, "claim exp is not a NumericDate", "login"},
		{"exp past (beyond leeway)", func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }, "token expired (claim exp)", "expired"},
		{"nbf future (beyond leeway)", func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }, "token not valid yet (claim nbf)", "login"},
		{"nbf not a number", func(c jwt.MapClaims) { c["nbf"] = true }, "claim nbf is not a NumericDate", "login"},
		{"iat future", func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }, "token used before issued (claim iat)", "login"},
		{"iss missing", func(c jwt.MapClaims) { delete(c, "iss") }, "a required claim (iss) is missing", "login"},
		{"iss wrong", func(c jwt.MapClaims) { c["iss"] = "https://other.example.org" }, "wrong issuer (claim iss)", "login"},
		{"iss not a string", func(c jwt.MapClaims) { c["iss"] = 7 }, "claim iss is not a string", "login"},
		{"aud missing", func(c jwt.MapClaims) { delete(c, "aud") }, "a required claim (aud) is missing", "login"},
		{"aud empty", func(c jwt.MapClaims) { c["aud"] = []string{} }, "a required claim (aud) is missing", "login"},
		{"aud wrong", func(c jwt.MapClaims) { c["aud"] = []string{"billing", "lab"} }, "wrong audience (claim aud)", "login"},
		{"aud not strings", func(c jwt.MapClaims) { c["aud"] = 3 }, "claim aud is not a string or an array of strings", "login"},
		{"aud and iss missing", func(c jwt.MapClaims) { delete(c, "aud"); delete(c, "iss") },
			"a required claim (iss) is missing; a required claim (aud) is missing", "login"},
		{"expired and wrong audience", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix(); c["aud"] = "x" },
			"token expired (claim exp); wrong audience (claim aud)", "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(c)
			tok := sign(t, jwt.SigningMethodES256, key, "k", c)
			rec := call(t, h, "POST", "/fhir", tok)
			requireRefused(t, rec, tok, "invalid_token")
			oo, err := fhir.ParseOperationOutcome(rec.Body.Bytes())
			require.NoError(t, err)
			require.Equal(t, "the bearer token was refused: "+tc.reason, oo.Issues[0].Diagnostics)
			require.Equal(t, tc.code, oo.Issues[0].Code)
			require.Contains(t, rec.Header().Get("WWW-Authenticate"), tc.reason)
			require.Contains(t, logs.String(), `reason="`+tc.reason+`"`)
			if !strings.Contains(tc.name, "exp") {
				require.NotContains(t, rec.Body.String(), "(exp)", "no claim but the failing one is named")
			}
		})
	}
	rec := call(t, h, "POST", "/fhir", sign(t, jwt.SigningMethodES256, key, "k", good()))
	require.Equal(t, http.StatusAccepted, rec.Code, "the untouched claims pass")
}

// Without an audience (allow_any_audience), aud is not checked; the
// verifier refuses a config with neither.
func TestJWTAudienceRequired(t *testing.T) {
	p := newIDP(t)
	key := ecKey(t, elliptic.P256())
	p.publish(t, map[string]crypto.Signer{"k": key})
	_, err := New(config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Algorithms: []string{"ES256"}}, Options{})
	require.EqualError(t, err, "http.auth.audience: mode jwt needs the audience radgate's tokens carry (or allow_any_audience: true)")

	mw, err := newAuth(t, config.IntakeAuth{Mode: config.AuthJWT, JWKSURL: p.srv.URL, Algorithms: []string{"ES256"}, AllowAnyAudience: true}, Options{})
	require.NoError(t, err)
	tok := sign(t, jwt.SigningMethodES256, key, "k", jwt.MapClaims{"aud": "some-other-app", "exp": time.Now().Add(time.Minute).Unix()})
	require.Equal(t, http.StatusAccepted, call(t, mw(protected), "POST", "/fhir", tok).Code)
}
