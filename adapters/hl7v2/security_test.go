package hl7v2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// exchange sends m on conn and reads the answer; an error means the
// server closed the connection (or the TLS session failed) instead.
func exchange(conn net.Conn, m *Message) (Ack, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := WriteFrame(conn, m.Encode()); err != nil {
		return Ack{}, err
	}
	raw, err := NewFrameReader(conn, 0).ReadFrame()
	if err != nil {
		return Ack{}, err
	}
	a, err := Parse(raw)
	if err != nil {
		return Ack{}, err
	}
	return ReadACK(a)
}

// countingHandler answers AA and counts the messages it saw.
func countingHandler(n *atomic.Int32) Handler {
	return func(_ context.Context, msg *Message) *Message {
		n.Add(1)
		return NewACK(msg, AA)
	}
}

func testLogger(buf *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestServerTLSClientCertificates: MLLP over TLS with client certificates
// required. A client with a certificate of the configured CA is answered;
// one without a certificate, or with one of another CA, fails in the
// handshake and the handler never sees its message.
func TestServerTLSClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "Hospital CA"), newTestCA(t, "Other CA")
	var seen atomic.Int32
	var logs lockedBuffer
	s := startServer(t, ServerOptions{Handler: countingHandler(&seen), Logger: testLogger(&logs),
		TLS: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.issue(t, "radgate", x509.ExtKeyUsageServerAuth)},
			ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}})
	dial := func(certs ...tls.Certificate) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr().String(),
			&tls.Config{RootCAs: ca.pool, Certificates: certs, ServerName: "127.0.0.1"})
	}
	orm := mustParse(t, readFixture(t, "orm_o01.hl7"))

	conn, err := dial(ca.issue(t, "ris.hospital", x509.ExtKeyUsageClientAuth))
	require.NoError(t, err)
	a, err := exchange(conn, orm)
	require.NoError(t, err)
	require.Equal(t, AA, a.Code)
	require.NoError(t, conn.Close())
	require.Equal(t, int32(1), seen.Load())

	for name, certs := range map[string][]tls.Certificate{
		"no certificate":            nil,
		"certificate of another CA": {other.issue(t, "intruder", x509.ExtKeyUsageClientAuth)},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := dial(certs...)
			if err == nil { // TLS 1.3: the server's verdict comes with the first read
				_, err = exchange(conn, orm)
				_ = conn.Close()
			}
			require.Error(t, err)
			require.Equal(t, int32(1), seen.Load(), "the handler never saw it")
		})
	}
	require.Eventually(t, func() bool { return countOf(logs.String(), "MLLP TLS handshake failed") == 2 }, 5*time.Second, 20*time.Millisecond, logs.String())

	// Plain MLLP on a TLS listener: no answer.
	raw, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer raw.Close()
	_, err = exchange(raw, orm)
	require.Error(t, err)
	require.Equal(t, int32(1), seen.Load())
}

// TestServerAllowNetworks: a connection from outside allow_networks is
// closed before anything is read, and logged with its address.
func TestServerAllowNetworks(t *testing.T) {
	var seen atomic.Int32
	var logs lockedBuffer
	s := startServer(t, ServerOptions{Handler: countingHandler(&seen), Logger: testLogger(&logs),
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.2/32")}})
	orm := mustParse(t, readFixture(t, "orm_o01.hl7"))

	conn, err := net.Dial("tcp", s.Addr().String()) // from 127.0.0.1
	require.NoError(t, err)
	defer conn.Close()
	_, err = exchange(conn, orm)
	require.Error(t, err, "closed, not answered")
	require.Equal(t, int32(0), seen.Load())
	require.Eventually(t, func() bool {
		return countOf(logs.String(), "MLLP connection refused: its source is not in allow_networks") == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, logs.String(), "remote=127.0.0.1:")

	// From an allowed address (Linux routes all of 127/8 to lo).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	ok, err := d.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer ok.Close()
	a, err := exchange(ok, orm)
	require.NoError(t, err)
	require.Equal(t, AA, a.Code)
	require.Equal(t, int32(1), seen.Load())
}

// TestServerConnectionLimits: connections over max_connections, or over
// max_connections_per_source from one address, are closed at once with a
// log line naming the limit; once one closes, a new one is taken.
func TestServerConnectionLimits(t *testing.T) {
	orm := mustParse(t, readFixture(t, "orm_o01.hl7"))
	open := func(t *testing.T, addr string, from net.IP) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second}
		if from != nil {
			d.LocalAddr = &net.TCPAddr{IP: from}
		}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	lo1, lo2, lo3 := net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)

	t.Run("total", func(t *testing.T) {
		var seen atomic.Int32
		var logs lockedBuffer
		s := startServer(t, ServerOptions{Handler: countingHandler(&seen), Logger: testLogger(&logs),
			MaxConnections: 2, MaxConnectionsPerSource: -1})
		addr := s.Addr().String()
		a, b := open(t, addr, lo1), open(t, addr, lo2)
		for _, c := range []net.Conn{a, b} {
			_, err := exchange(c, orm)
			require.NoError(t, err)
		}
		over := open(t, addr, lo3)
		_, err := exchange(over, orm)
		require.Error(t, err, "the third connection is closed")
		require.Contains(t, logs.String(), "MLLP connection refused: max_connections reached")
		require.Contains(t, logs.String(), "limit=max_connections max=2")
		require.Equal(t, int32(2), seen.Load())

		require.NoError(t, a.Close())
		require.Eventually(t, func() bool {
			c := open(t, addr, lo3)
			_, err := exchange(c, orm)
			return err == nil
		}, 5*time.Second, 50*time.Millisecond, "a slot freed by a closed connection is taken again")
	})

	t.Run("per source", func(t *testing.T) {
		var seen atomic.Int32
		var logs lockedBuffer
		s := startServer(t, ServerOptions{Handler: countingHandler(&seen), Logger: testLogger(&logs),
			MaxConnections: 10, MaxConnectionsPerSource: 2})
		addr := s.Addr().String()
		for range 2 {
			_, err := exchange(open(t, addr, lo1), orm)
			require.NoError(t, err)
		}
		_, err := exchange(open(t, addr, lo1), orm)
		require.Error(t, err, "a third connection from 127.0.0.1 is closed")
		require.Contains(t, logs.String(), "MLLP connection refused: max_connections_per_source reached")
		require.Contains(t, logs.String(), "limit=max_connections_per_source max=2")
		_, err = exchange(open(t, addr, lo2), orm)
		require.NoError(t, err, "another source still gets in")
		require.Equal(t, int32(3), seen.Load())
	})
}

func countOf(s, sub string) int { return strings.Count(s, sub) }
