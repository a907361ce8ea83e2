package dimse

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "radgate-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLS: Dialer and Server over DICOM TLS; the handler sees TLS, and a
// plain-TCP client gets nothing.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	st := &memStore{}
	addr, _ := startServer(t, &Server{AETitle: "RADGATE", Store: st, ARTIM: time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	ctx := context.Background()
	d := &Dialer{CallingAE: "SECURE", CalledAE: "RADGATE", TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	a, err := d.Dial(ctx, addr, StoreContexts(StorageSOPClasses[:1], ExplicitVRLittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Echo(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := a.Store(ctx, StorageSOPClasses[0], "1.2.3", ExplicitVRLittleEndian, bytes.NewReader([]byte("data"))); err != nil || s != StatusSuccess {
		t.Fatal(s, err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := st.get("1.2.3"); !ok || !got.rq.Association.TLS {
		t.Errorf("stored %v, TLS %v", ok, got.rq.Association.TLS)
	}
	plain := &Dialer{CallingAE: "PLAIN", CalledAE: "RADGATE", Timeout: 2 * time.Second}
	if _, err := plain.Dial(ctx, addr, StoreContexts(nil)); err == nil {
		t.Error("plain TCP association accepted by a TLS server")
	}
}
