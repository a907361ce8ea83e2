package service

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// natsConn is radgate's NATS connection and, on embedded defaults, the
// server it runs.
type natsConn struct {
	nc       *nats.Conn
	embedded *broker.EmbeddedServer
	logger   *slog.Logger
}

// connectNATS connects to nats.url, or starts the embedded server on
// nats.embedded_listen, admitting only the credential kept in data_dir
// (generated on the first start).
func connectNATS(cfg config.Config, logger *slog.Logger) (*natsConn, error) {
	url, credsFile := cfg.NATS.URL, cfg.NATS.CredentialsFile
	c := &natsConn{logger: logger}
	var auth []nats.Option
	if url == "" {
		host, port, err := cfg.NATS.EmbeddedAddr()
		if err != nil {
			return nil, fmt.Errorf("nats.embedded_listen: %w", err)
		}
		cred, err := broker.LoadOrCreateCredential(broker.CredentialPath(cfg.DataDir))
		if err != nil {
			return nil, err
		}
		eo := broker.EmbeddedOptions{
			StoreDir: filepath.Join(cfg.DataDir, "nats"), Host: host, Port: port,
			Credential: cred, Logger: logger,
		}
		if cfg.Role == config.RoleEdge {
			// A site: the embedded server is a leaf node of the hub, in the
			// edge's own JetStream domain, linked with the site's NKey user.
			site, err := broker.LoadCredential(cfg.Edge.CredentialFile)
			if err != nil {
				return nil, fmt.Errorf("edge.credential_file: %w", err)
			}
			eo.Domain = edgeDomain(cfg)
			eo.ServerName = "radgate-" + eo.Domain
			eo.Leaf = &broker.LeafRemote{URLs: cfg.Edge.HubURLs, Credential: site}
		}
		c.embedded, err = broker.StartEmbeddedWith(eo)
		if err != nil {
			return nil, fmt.Errorf("%w (set nats.embedded_listen to a free address, or nats.url)", err)
		}
		// radgate's own connection goes in process (no loopback socket: an
		// image pushed to the Storage SCP is stored with fewer copies and
		// system calls); tools beside serve connect to url.
		url, credsFile, auth = c.embedded.ClientURL(), "", []nats.Option{cred.Option(), c.embedded.InProcess()}
		log := logger.With("component", "serve")
		log.Info("embedded NATS listening", "url", url, "credential", cred.Path())
		if !cfg.NATS.EmbeddedIsLoopback() {
			log.Warn("the embedded NATS server listens beyond loopback without TLS: clients must present its generated credential, but orders cross the network unencrypted",
				"embedded_listen", cfg.NATS.EmbeddedListen, "credential", cred.Path())
		}
	}
	nc, err := broker.Connect(url, credsFile, logger, auth...)
	if err != nil {
		if c.embedded != nil {
			c.embedded.Shutdown()
		}
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// close drains the connection, then stops the embedded server.
func (c *natsConn) close() {
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.logger.Warn("draining NATS connection", "err", err)
	}
	for c.nc.IsDraining() {
		time.Sleep(10 * time.Millisecond)
	}
	if c.embedded != nil {
		c.embedded.Shutdown()
	}
}

// edgeDomain is the JetStream domain of an edge: edge.domain, else
// broker.EdgeDomain of its facility (what the hub's sources read).
func edgeDomain(cfg config.Config) string {
	if cfg.Edge.Domain != "" {
		return cfg.Edge.Domain
	}
	return broker.EdgeDomain(cfg.Edge.Facility)
}
