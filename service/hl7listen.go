package service

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/config"
)

// mllpOptions builds the MLLP listener's options from the hl7v2 section
// (Handler left to the caller). It applies the loopback rule again (after
// command-line overrides): a listener beyond loopback needs client
// certificates, allow_networks or allow_any_source.
func mllpOptions(cfg config.Config, logger *slog.Logger) (hl7v2.ServerOptions, error) {
	h := cfg.HL7v2
	if err := cfg.CheckHL7Exposure(); err != nil {
		return hl7v2.ServerOptions{}, err
	}
	nets, err := h.AllowPrefixes()
	if err != nil {
		return hl7v2.ServerOptions{}, fmt.Errorf("hl7v2.allow_networks: %w", err)
	}
	// The HTTP intake's TLS helper, whose errors name http.tls: here they
	// are about hl7v2.tls.
	tc, err := httpauth.ServerTLS(h.TLS)
	if err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "http.tls"); ok {
			msg = "hl7v2.tls" + rest
		}
		return hl7v2.ServerOptions{}, fmt.Errorf("%s", msg)
	}
	if !config.IsLoopback(h.Listen) && h.AllowAnySource && len(nets) == 0 &&
		!(tc != nil && h.TLS.ClientAuth == config.ClientCertRequire) {
		logger.With("component", "serve").Warn("the MLLP listener is beyond loopback with neither client certificates nor allow_networks (hl7v2.allow_any_source): anyone who reaches it can submit orders",
			"hl7v2_listen", h.Listen)
	}
	return hl7v2.ServerOptions{
		Addr:                    h.Listen,
		ReadTimeout:             h.ReadTimeout.D(),
		IdleTimeout:             h.IdleTimeout.D(),
		MaxMessageSize:          h.MaxMessageBytes,
		TLS:                     tc,
		AllowNetworks:           nets,
		MaxConnections:          h.MaxConnections,
		MaxConnectionsPerSource: h.MaxConnectionsPerSource,
		Logger:                  logger,
	}, nil
}
