package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
)

// security is what radgate serve takes from the http section and the auth
// and tls sections of pacs, fhir and destinations: the intake's
// authentication and TLS, and authenticated HTTP clients for the servers
// radgate calls. Secrets are read once here and never logged.
type security struct {
	// wrap puts the intake's authentication in front of a handler
	// (/healthz and /readyz stay open).
	wrap func(http.Handler) http.Handler
	// tls is the intake's TLS configuration; nil serves plain HTTP.
	tls *tls.Config
	// pacs and fhir send the requests to the PACS and the FHIR server.
	pacs, fhir *http.Client
	// destinations holds a client per fhir or dicomweb destination.
	destinations map[string]*http.Client
}

// newSecurity checks the intake's exposure (again, after command-line
// overrides), reads the secrets and builds the middleware and clients.
func newSecurity(cfg config.Config, logger *slog.Logger) (*security, error) {
	if err := cfg.CheckIntakeExposure(); err != nil {
		return nil, err
	}
	if err := cfg.CheckHL7Exposure(); err != nil {
		return nil, err
	}
	s := &security{destinations: map[string]*http.Client{}}
	var err error
	if s.wrap, err = httpauth.Middleware(cfg.HTTP.Auth, httpauth.Options{Logger: logger}); err != nil {
		return nil, err
	}
	if s.tls, err = httpauth.ServerTLS(cfg.HTTP.TLS); err != nil {
		return nil, err
	}
	client := func(what string, auth config.ClientAuth, t config.ClientTLS, timeout time.Duration) (*http.Client, error) {
		rt, err := httpauth.Transport(auth, t, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &http.Client{Transport: rt, Timeout: timeout}, nil
	}
	// The DICOMweb client bounds each exchange itself (pacs.timeout).
	if s.pacs, err = client("pacs.auth", cfg.PACS.ClientAuth(), cfg.PACS.TLS, 0); err != nil {
		return nil, err
	}
	if s.fhir, err = client("fhir.auth", cfg.FHIR.ClientAuth(), cfg.FHIR.TLS, cfg.FHIR.Timeout.D()); err != nil {
		return nil, err
	}
	for _, name := range cfg.DestinationNames() {
		d, ok := cfg.Destinations[name]
		if !ok || d.Type == config.DestinationHL7v2 {
			continue
		}
		timeout := d.Timeout.D()
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		if s.destinations[name], err = client("destinations."+name+".auth", d.Auth, d.TLS, timeout); err != nil {
			return nil, err
		}
	}
	log := logger.With("component", "serve")
	log.Info("intake security", "auth", cfg.HTTP.Auth.Mode, "tls", s.tls != nil, "client_certificates", cfg.HTTP.TLS.ClientAuth,
		"pacs_auth", methodOrNone(cfg.PACS.ClientAuth().Method()), "fhir_auth", methodOrNone(cfg.FHIR.ClientAuth().Method()))
	return s, nil
}

// listener serves TLS on ln when the intake has a certificate.
func (s *security) listener(ln net.Listener) net.Listener {
	if s.tls == nil {
		return ln
	}
	return tls.NewListener(ln, s.tls)
}

func methodOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
