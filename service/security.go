package service

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
)

// security is what radgate serve and check take from the http section and the auth
// and tls sections of pacs, fhir and destinations: the intake's
// authentication and TLS, and authenticated HTTP clients for the servers
// radgate calls. Secrets are read once here and never logged.
type security struct {
	// wrap puts the intake's authentication in front of a handler
	// (/healthz and /readyz stay open).
	wrap func(http.Handler) http.Handler
	// auth owns the JWKS refresh of mode jwt; close stops it.
	auth *httpauth.Authenticator
	// tls is the intake's TLS configuration; nil serves plain HTTP.
	tls *tls.Config
	// pacs and fhir send the requests to the PACS and the FHIR server.
	pacs, fhir *http.Client
	// destinations holds a client per destination of an HTTP type.
	destinations map[string]*http.Client
}

// newSecurity checks the intake's exposure (again, after command-line
// overrides), reads the secrets and builds the middleware and clients.
func newSecurity(cfg config.Config, reg *radgate.Registry, logger *slog.Logger) (*security, error) {
	if err := cfg.CheckIntakeExposure(); err != nil {
		return nil, err
	}
	if err := cfg.CheckHL7Exposure(); err != nil {
		return nil, err
	}
	s := &security{destinations: map[string]*http.Client{}}
	var err error
	if s.auth, err = httpauth.New(cfg.HTTP.Auth, httpauth.Options{Logger: logger}); err != nil {
		return nil, err
	}
	s.wrap = s.auth.Middleware
	if s.tls, err = httpauth.ServerTLS(cfg.HTTP.TLS); err != nil {
		s.close()
		return nil, err
	}
	client := func(what string, auth config.ClientAuth, t config.ClientTLS, timeout time.Duration) (*http.Client, error) {
		rt, err := httpauth.Transport(auth, t, nil)
		if err != nil {
			s.close()
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
		if t, known := reg.Destination(d.Type); !ok || !known || !t.HTTP {
			continue
		}
		if s.destinations[name], err = client("destinations."+name+".auth", d.Auth, d.TLS, d.RequestTimeout()); err != nil {
			return nil, err
		}
	}
	log := logger.With("component", "serve")
	log.Info("intake security", "auth", cfg.HTTP.Auth.Mode, "tls", s.tls != nil, "client_certificates", cfg.HTTP.TLS.ClientAuth,
		"pacs_auth", methodOrNone(cfg.PACS.ClientAuth().Method()), "fhir_auth", methodOrNone(cfg.FHIR.ClientAuth().Method()))
	return s, nil
}

// close stops what newSecurity started (the JWKS refresh).
func (s *security) close() { _ = s.auth.Close() }

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
