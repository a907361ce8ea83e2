package httpauth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The PACS peer (Orthanc) has basic authentication on: the transport's
// basic credentials get through, a wrong password and none do not.
func TestTransportBasicAgainstOrthanc(t *testing.T) {
	pacs := testenv.Orthanc(t)
	t.Setenv("RADGATE_TEST_ORTHANC_PW", pacs.Password)
	t.Setenv("RADGATE_TEST_ORTHANC_BAD_PW", pacs.Password+"-wrong")
	logs := &logBuffer{}
	accession := fmt.Sprintf("AUTH%d", time.Now().UnixNano()%1e10)

	find := func(auth config.ClientAuth) error {
		rt, err := httpauth.Transport(auth, config.ClientTLS{}, nil)
		require.NoError(t, err)
		c, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, HTTPClient: &http.Client{Transport: rt}, Timeout: 30 * time.Second})
		require.NoError(t, err)
		_, err = c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: accession})
		if err != nil {
			slog.New(slog.NewTextHandler(logs, nil)).Info("find", "err", err)
		}
		return err
	}
	err := find(config.ClientAuth{Username: pacs.Username, PasswordEnv: "RADGATE_TEST_ORTHANC_PW"})
	require.ErrorIs(t, err, radgate.ErrStudyNotFound, "authenticated: the query ran and found nothing")
	err = find(config.ClientAuth{Username: pacs.Username, PasswordEnv: "RADGATE_TEST_ORTHANC_BAD_PW"})
	require.Error(t, err)
	require.NotErrorIs(t, err, radgate.ErrStudyNotFound)
	require.Contains(t, err.Error(), "401")
	err = find(config.ClientAuth{})
	require.Contains(t, err.Error(), "401")
	require.NotContains(t, logs.String(), pacs.Password)
}

// authFHIR is a private FHIR test server in its opt-in token mode.
type authFHIR struct {
	base, tokenURL, origin string
}

func startAuthFHIR(t *testing.T, env ...string) authFHIR {
	t.Helper()
	testenv.FHIR(t) // skips or fails when the peers are not set up
	js := os.Getenv("RADGATE_TEST_FHIR_SERVER_JS")
	if js == "" {
		js = filepath.Join(testenv.RepoRoot(), "testenv", "fhir-server", "server.js")
	}
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	cmd := exec.Command("node", js, "--host", "127.0.0.1", "--port", "0", "--port-file", portFile)
	cmd.Env = append(os.Environ(), append([]string{"RADGATE_FHIR_REQUIRE_TOKEN=1"}, env...)...)
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("FHIR server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(90 * time.Second) // loading the R4 definitions is slow on a loaded machine
	for {
		if b, err := os.ReadFile(portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			port, err := strconv.Atoi(string(bytes.TrimSpace(b)))
			require.NoError(t, err)
			origin := "http://127.0.0.1:" + strconv.Itoa(port)
			return authFHIR{base: origin + "/fhir/R4", tokenURL: origin + "/auth/token", origin: origin}
		}
		require.True(t, time.Now().Before(deadline), "private FHIR server not ready:\n%s", logs.String())
		time.Sleep(100 * time.Millisecond)
	}
}

func (s authFHIR) stats(t *testing.T) (issued, refused int) {
	t.Helper()
	resp, err := http.Get(s.origin + "/auth/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct{ TokensIssued, Refused int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.TokensIssued, st.Refused
}

func writePEM(t *testing.T, dir, name string, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return p
}

// TestTransportAgainstFHIRServerWithTokens runs the FHIR client through
// every outbound method against the real FHIR test server requiring
// tokens, with a logger capturing everything, and checks that no secret
// appears in logs or errors.
func TestTransportAgainstFHIRServerWithTokens(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	unregistered, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	var set jwkset.JWKSMarshal
	for kid, k := range map[string]crypto.Signer{"radgate-rsa": rsaKey, "radgate-ec": ecKey} {
		j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		require.NoError(t, err)
		set.Keys = append(set.Keys, j.Marshal())
	}
	jwksFile := filepath.Join(dir, "client-jwks.json")
	b, err := json.Marshal(set)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(jwksFile, b, 0o600))

	const (
		clientSecret = "cs-7Hq2-never-logged"
		staticToken  = "st-91xZ-never-logged"
	)
	srv := startAuthFHIR(t, "RADGATE_FHIR_CLIENT_ID=radgate-test", "RADGATE_FHIR_CLIENT_SECRET="+clientSecret,
		"RADGATE_FHIR_STATIC_TOKEN="+staticToken, "RADGATE_FHIR_CLIENT_JWKS_FILE="+jwksFile)
	t.Setenv("RADGATE_TEST_FHIR_SECRET", clientSecret)
	t.Setenv("RADGATE_TEST_FHIR_WRONG_SECRET", "wrong-"+clientSecret)
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(staticToken+"\n"), 0o600))

	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errTexts []string
	client := func(auth config.ClientAuth) *fhirhttp.Client {
		rt, err := httpauth.Transport(auth, config.ClientTLS{}, nil)
		require.NoError(t, err)
		c, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: srv.base, Logger: logger,
			HTTPClient: &http.Client{Transport: rt, Timeout: 30 * time.Second}})
		require.NoError(t, err)
		return c
	}
	search := func(c *fhirhttp.Client) error {
		_, err := c.Search(t.Context(), "Patient", url.Values{"identifier": {"urn:radgate:test|auth"}})
		if err != nil {
			errTexts = append(errTexts, err.Error())
			logger.Warn("search failed", "err", err)
		}
		return err
	}

	t.Run("no credentials: 401 from the server", func(t *testing.T) {
		err := search(client(config.ClientAuth{}))
		var oe *fhir.OutcomeError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, http.StatusUnauthorized, oe.Status)
	})
	t.Run("bearer token from a file", func(t *testing.T) {
		require.NoError(t, search(client(config.ClientAuth{BearerTokenFile: tokenFile})))
	})
	t.Run("client secret: one token serves many requests", func(t *testing.T) {
		before, _ := srv.stats(t)
		c := client(config.ClientAuth{OAuth2: config.OAuth2{TokenURL: srv.tokenURL, ClientID: "radgate-test",
			ClientSecretEnv: "RADGATE_TEST_FHIR_SECRET", Scopes: []string{"system/*.read"}}})
		for range 3 {
			require.NoError(t, search(c))
		}
		after, _ := srv.stats(t)
		require.Equal(t, before+1, after, "the access token is cached")
	})
	t.Run("wrong client secret: the token endpoint's refusal, without the secret", func(t *testing.T) {
		err := search(client(config.ClientAuth{OAuth2: config.OAuth2{TokenURL: srv.tokenURL, ClientID: "radgate-test",
			ClientSecretEnv: "RADGATE_TEST_FHIR_WRONG_SECRET"}}))
		require.ErrorContains(t, err, "oauth2 token from "+srv.tokenURL+": HTTP 401 invalid_client")
	})
	for _, tc := range []struct {
		name, kid string
		key       crypto.Signer
		ok        bool
	}{
		{"SMART private_key_jwt RS384", "radgate-rsa", rsaKey, true},
		{"SMART private_key_jwt ES384", "radgate-ec", ecKey, true},
		{"private_key_jwt with an unregistered key", "radgate-ec", unregistered, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := writePEM(t, dir, tc.kid+strconv.FormatBool(tc.ok)+".pem", tc.key)
			c := client(config.ClientAuth{OAuth2: config.OAuth2{TokenURL: srv.tokenURL, ClientID: "radgate-test",
				PrivateKeyFile: keyFile, KeyID: tc.kid, Scopes: []string{"system/DiagnosticReport.write"}}})
			err := search(c)
			if tc.ok {
				require.NoError(t, err)
				require.NoError(t, search(c), "a second request reuses the token")
				return
			}
			require.ErrorContains(t, err, "HTTP 401 invalid_client: client assertion signature does not verify")
		})
	}

	all := logs.String() + strings.Join(errTexts, "\n")
	require.NotEmpty(t, all)
	for _, secret := range []string{clientSecret, staticToken} {
		require.NotContains(t, all, secret)
	}
	require.NotContains(t, all, "Bearer ")
	require.NotContains(t, all, "client_assertion=")
}

// A redirect to another host does not carry the credentials along.
func TestTransportDropsCredentialsOnCrossHostRedirect(t *testing.T) {
	seen := make(chan string, 2)
	t.Setenv("RADGATE_TEST_REDIRECT_TOKEN", "redirect-secret")
	rt, err := httpauth.Transport(config.ClientAuth{BearerTokenEnv: "RADGATE_TEST_REDIRECT_TOKEN"}, config.ClientTLS{}, nil)
	require.NoError(t, err)
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- "target:" + r.Header.Get("Authorization")
	}))
	defer target.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- "origin:" + r.Header.Get("Authorization")
		// Same listener, another host name: another origin for the client.
		http.Redirect(w, r, strings.Replace(target.URL, "127.0.0.1", "localhost", 1)+"/x", http.StatusFound)
	}))
	defer origin.Close()
	resp, err := (&http.Client{Transport: rt}).Get(origin.URL + "/start")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, "origin:Bearer redirect-secret", <-seen)
	require.Equal(t, "target:", <-seen)
}
