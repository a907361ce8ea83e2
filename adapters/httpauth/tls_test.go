package httpauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// testPKI is a CA made for one test, with a server certificate for
// 127.0.0.1 and a client certificate, all written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	otherCert, otherKey                                  string // a client certificate from another CA
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
		require.NoError(t, err)
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return c, k, der
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, serial int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return der, kder
	}
	ca, caKey, caDER := newCA("radgate test CA")
	other, otherKey, _ := newCA("another CA")
	var p testPKI
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	c, k := leaf(ca, caKey, "radgate", 2, x509.ExtKeyUsageServerAuth)
	p.serverCert, p.serverKey = write("server.pem", "CERTIFICATE", c), write("server.key", "PRIVATE KEY", k)
	c, k = leaf(ca, caKey, "ehr", 3, x509.ExtKeyUsageClientAuth)
	p.clientCert, p.clientKey = write("client.pem", "CERTIFICATE", c), write("client.key", "PRIVATE KEY", k)
	c, k = leaf(other, otherKey, "intruder", 4, x509.ExtKeyUsageClientAuth)
	p.otherCert, p.otherKey = write("other.pem", "CERTIFICATE", c), write("other.key", "PRIVATE KEY", k)
	return p
}

// tlsServer serves protected over TLS configured by cfg.
func tlsServer(t *testing.T, cfg config.ServerTLS) *httptest.Server {
	t.Helper()
	tc, err := ServerTLS(cfg)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(protected)
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, rt http.RoundTripper, url string) (int, error) {
	t.Helper()
	resp, err := (&http.Client{Transport: rt, Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestServerTLSClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	srv := tlsServer(t, config.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey,
		ClientCAFile: pki.caFile, ClientAuth: config.ClientCertRequire})

	without, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile}, nil)
	require.NoError(t, err)
	_, err = get(t, without, srv.URL+"/orders/1")
	require.Error(t, err, "a client without a certificate is refused")

	intruder, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile, CertFile: pki.otherCert, KeyFile: pki.otherKey}, nil)
	require.NoError(t, err)
	_, err = get(t, intruder, srv.URL+"/orders/1")
	require.Error(t, err, "a certificate from another CA is refused")

	with, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, nil)
	require.NoError(t, err)
	code, err := get(t, with, srv.URL+"/orders/1")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
}

func TestServerTLSRequestMode(t *testing.T) {
	pki := newTestPKI(t)
	srv := tlsServer(t, config.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey,
		ClientCAFile: pki.caFile, ClientAuth: config.ClientCertRequest})
	without, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile}, nil)
	require.NoError(t, err)
	code, err := get(t, without, srv.URL)
	require.NoError(t, err, "request: no certificate is fine")
	require.Equal(t, http.StatusAccepted, code)
	with, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, nil)
	require.NoError(t, err)
	code, err = get(t, with, srv.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
	// (A Go client does not send a certificate the server's CA list does not
	// name, so a foreign certificate cannot be shown to be refused here;
	// require mode above refuses a client that sends none.)
}

func TestClientVerifiesServerByDefault(t *testing.T) {
	pki := newTestPKI(t)
	srv := tlsServer(t, config.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientAuth: config.ClientCertNone})

	plain, err := Transport(config.ClientAuth{}, config.ClientTLS{}, nil)
	require.NoError(t, err)
	_, err = get(t, plain, srv.URL)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "verification is on by default")

	trusted, err := Transport(config.ClientAuth{}, config.ClientTLS{CAFile: pki.caFile}, nil)
	require.NoError(t, err)
	code, err := get(t, trusted, srv.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)

	skip, err := Transport(config.ClientAuth{}, config.ClientTLS{InsecureSkipVerify: true}, nil)
	require.NoError(t, err)
	code, err = get(t, skip, srv.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
}

func TestServerTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	tc, err := ServerTLS(config.ServerTLS{ClientAuth: config.ClientCertNone})
	require.NoError(t, err)
	require.Nil(t, tc, "no certificate: plain HTTP")
	_, err = ServerTLS(config.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientAuth: config.ClientCertRequire})
	require.ErrorContains(t, err, "needs client_ca_file")
	_, err = ServerTLS(config.ServerTLS{CertFile: pki.serverCert, KeyFile: pki.clientKey})
	require.ErrorContains(t, err, "loading cert_file")
	_, err = ClientTLSConfig(config.ClientTLS{CAFile: pki.serverKey})
	require.ErrorContains(t, err, "no PEM certificate")
}
