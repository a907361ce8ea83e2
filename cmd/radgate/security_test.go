package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// An intake beyond loopback without authentication is refused before
// anything starts, also when --listen put it there.
func TestServeRefusesAnExposedIntakeWithoutAuth(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "0.0.0.0:0"
	cfg.DataDir = t.TempDir()
	err := serve(context.Background(), cfg, "", slog.New(slog.DiscardHandler), nil)
	require.ErrorContains(t, err, `listen "0.0.0.0:0" is not a loopback address and the intake has no authentication: set http.auth.mode`)

	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensEnv: "RADGATE_TEST_SERVE_UNSET_TOKENS"}
	err = serve(context.Background(), cfg, "", slog.New(slog.DiscardHandler), nil)
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

// tlsPKI writes a test CA, a server certificate for 127.0.0.1 and a client
// certificate signed by the CA, as PEM files.
type tlsPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	clientCert                tls.Certificate
	pool                      *x509.CertPool
}

func newTLSPKI(t *testing.T) tlsPKI {
	t.Helper()
	dir := t.TempDir()
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "radgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ip bool) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return der, key
	}
	p := tlsPKI{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := leaf(2, "radgate intake", x509.ExtKeyUsageServerAuth, true)
	p.certFile = writePEM("server.pem", "CERTIFICATE", srvDER)
	kb, err := x509.MarshalPKCS8PrivateKey(srvKey)
	require.NoError(t, err)
	p.keyFile = writePEM("server-key.pem", "PRIVATE KEY", kb)
	cliDER, cliKey := leaf(3, "ehr-client", x509.ExtKeyUsageClientAuth, false)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return p
}

// TestServeIntakeOverMutualTLS: with http.tls set and client certificates
// required, radgate serve speaks only HTTPS, refuses a client without a
// certificate, and takes an order from one with a certificate of the
// configured CA through to a result.
func TestServeIntakeOverMutualTLS(t *testing.T) {
	pki := newTLSPKI(t)
	rg := startRadgate(t, func(c *config.Config) {
		c.HTTP.TLS = config.ServerTLS{CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCAFile: pki.caFile, ClientAuth: "require"}
	})
	addr := strings.TrimPrefix(rg.url, "http://")
	withCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pki.pool, Certificates: []tls.Certificate{pki.clientCert}}}}
	noCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}

	resp, err := withCert.Get("https://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = noCert.Get("https://" + addr + "/healthz")
	require.Error(t, err, "a client without a certificate is refused in the handshake")
	resp, err = http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP to a TLS port")
	}

	// An order over mutual TLS, scored and delivered.
	rg.env.RadgateURL = "https://" + addr
	rg.env.HTTP = withCert
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	b, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+4)
	require.NoError(t, err)
	cases := []*demo.Case{{File: "mtls.dcm", Data: b, Path: demo.ViaDirectPost}}
	require.NoError(t, rg.env.LoadImages(t.Context(), cases))
	require.NoError(t, rg.env.Order(t.Context(), cases))
	require.NoError(t, rg.env.Wait(t.Context(), cases, 2*time.Minute))
	require.Equal(t, radgate.StateDelivered, cases[0].Status.State, cases[0].Status.Reason)
}
