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
// nats.embedded_listen.
func connectNATS(cfg config.Config, logger *slog.Logger) (*natsConn, error) {
	url := cfg.NATS.URL
	c := &natsConn{logger: logger}
	if url == "" {
		host, port, err := cfg.NATS.EmbeddedAddr()
		if err != nil {
			return nil, fmt.Errorf("nats.embedded_listen: %w", err)
		}
		c.embedded, err = broker.StartEmbeddedLogged(filepath.Join(cfg.DataDir, "nats"), host, port, logger)
		if err != nil {
			return nil, fmt.Errorf("%w (set nats.embedded_listen to a free address, or nats.url)", err)
		}
		url = c.embedded.ClientURL()
		log := logger.With("component", "serve")
		log.Info("embedded NATS listening", "url", url)
		if !cfg.NATS.EmbeddedIsLoopback() {
			log.Warn("the embedded NATS server has no authentication and listens beyond loopback: anyone who reaches it can read and publish orders",
				"embedded_listen", cfg.NATS.EmbeddedListen)
		}
	}
	nc, err := broker.Connect(url, cfg.NATS.CredentialsFile, logger)
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
