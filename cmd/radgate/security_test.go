package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
)

// An intake beyond loopback without authentication is refused before
// anything starts, also when --listen put it there.
func TestServeRefusesAnExposedIntakeWithoutAuth(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "0.0.0.0:0"
	cfg.DataDir = t.TempDir()
	err := serve(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	require.ErrorContains(t, err, `listen "0.0.0.0:0" is not a loopback address and the intake has no authentication: set http.auth.mode`)

	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensEnv: "RADGATE_TEST_SERVE_UNSET_TOKENS"}
	err = serve(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	require.EqualError(t, err, "http.auth.tokens_env: environment variable RADGATE_TEST_SERVE_UNSET_TOKENS is not set")
}

// With static tokens configured, radgate serve answers an unauthenticated
// order 401 and an authenticated one 202; probes stay open, metrics do not;
// the token never reaches the log.
func TestServeIntakeRequiresToken(t *testing.T) {
	const token = "e2e-intake-token-4b7d0c"
	t.Setenv("RADGATE_E2E_INTAKE_TOKENS", "other-client-token,"+token)
	rg := startRadgate(t, func(c *config.Config) {
		c.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensEnv: "RADGATE_E2E_INTAKE_TOKENS"}
		c.Orders.StudyWaitWindow = config.Duration(time.Second) // the order names no study in the PACS
	})
	accession := fmt.Sprintf("AUTHE2E%d", time.Now().UnixNano()%1e9)
	body := `{"resourceType":"ServiceRequest","status":"active","intent":"order",` +
		`"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"ACSN"}]},` +
		`"system":"` + demo.AccessionSystem + `","value":"` + accession + `"}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"36643-5"}]},"subject":{"reference":"Patient/auth-e2e"}}`

	do := func(method, path, tok, body string) (int, string, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), method, rg.url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/fhir+json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	code, out, h := do("POST", "/fhir/ServiceRequest", "", body)
	require.Equal(t, http.StatusUnauthorized, code, out)
	require.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
	require.Contains(t, out, `"resourceType":"OperationOutcome"`)
	code, out, _ = do("POST", "/fhir/ServiceRequest", "wrong-"+token, body)
	require.Equal(t, http.StatusUnauthorized, code, out)
	require.NotContains(t, out, token)

	code, out, _ = do("POST", "/fhir/ServiceRequest", token, body)
	require.Equal(t, http.StatusAccepted, code, out)

	code, _, _ = do("GET", "/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	code, _, _ = do("GET", "/readyz", "", "")
	require.Equal(t, http.StatusOK, code)
	code, _, _ = do("GET", "/metrics", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = do("GET", "/metrics", token, "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, rg.logs.String(), token)
}
