package httpauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/radgate/radgate/config"
)

// ServerTLS returns the intake's TLS configuration, or nil when cfg has no
// certificate (plain HTTP). TLS 1.2 is the minimum. ClientAuth request
// verifies a client certificate when one is given; require refuses the
// handshake of a client without a certificate that verifies against
// client_ca_file.
func ServerTLS(cfg config.ServerTLS) (*tls.Config, error) {
	if !cfg.Enabled() {
		if cfg.ClientAuth == config.ClientCertRequest || cfg.ClientAuth == config.ClientCertRequire {
			return nil, fmt.Errorf("http.tls.client_auth %s needs cert_file and key_file", cfg.ClientAuth)
		}
		return nil, nil
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("http.tls: cert_file and key_file go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls: loading cert_file %s and key_file %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	switch cfg.ClientAuth {
	case "", config.ClientCertNone:
		tc.ClientAuth = tls.NoClientCert
	case config.ClientCertRequest, config.ClientCertRequire:
		if cfg.ClientCAFile == "" {
			return nil, fmt.Errorf("http.tls.client_auth %s needs client_ca_file", cfg.ClientAuth)
		}
		pool, err := loadPool(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("http.tls.client_ca_file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.ClientAuth == config.ClientCertRequire {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return nil, fmt.Errorf("http.tls.client_auth: unknown mode %q (known: none, request, require)", cfg.ClientAuth)
	}
	return tc, nil
}

// ClientTLSConfig returns the TLS configuration for calling a server:
// the system's roots plus ca_file, a client certificate when configured,
// verification on unless insecure_skip_verify.
func ClientTLSConfig(cfg config.ClientTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, documented as never for production
	if cfg.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together: set both or neither")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: loading cert_file %s and key_file %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}
