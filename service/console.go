package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
	"github.com/radgate/radgate/pipeline"
)

// withConsole serves the operator console at /console/ beside intake (the
// authenticated mux): the console authenticates by its own session
// cookie, signed in with the same authenticator.
func withConsole(ctx context.Context, cfg config.Config, sec *security, topo *broker.Topology, pipe *pipeline.Pipeline,
	logger *slog.Logger, intake http.Handler, parts consoleParts) (http.Handler, error) {
	o := console.Options{Auth: sec.auth, SessionTTL: cfg.Console.SessionTTL.D(), TLS: sec.tls != nil, Order: pipe, Logger: logger}
	// The order index comes with the pipeline's ListOrders (issue 15
	// slice B); until the pipeline has it the list page says so.
	if l, ok := any(pipe).(radgate.OrderLister); ok {
		o.Orders = l
	}
	if !sec.auth.Open() {
		kv, err := broker.EnsureConsoleSessions(ctx, topo.JS, o.SessionTTL)
		if err != nil {
			return nil, err
		}
		o.Sessions = kv
	}
	// Health page and live updates (issue 15 slice H): the peers as
	// `radgate check --connect` reaches them, at most every 10 s, 5 s
	// each; the stage queues, the last hour and the order changes from the
	// pipeline; open streams end when serve shuts the listener down.
	probes := append(peerProbes(cfg, sec, parts.reg, parts.pacs, topo.JS, logger), peerProbe{
		"nats: radgate's own connection (JetStream)", func(context.Context) error {
			if st := topo.JS.Conn().Status(); st != nats.CONNECTED {
				return fmt.Errorf("NATS connection %s", st)
			}
			return nil
		}})
	o.Peers = console.CachePeers(consolePeers(probes), 10*time.Second, 5*time.Second)
	o.Health, o.Changes, o.Done = pipe, pipe, parts.done
	c, err := console.New(o)
	if err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle("/console/", c)
	root.Handle("/", intake)
	return root, nil
}

// consoleParts are the components the console's pages read besides the
// pipeline.
type consoleParts struct {
	// Health (slice H): the destination types (for the peer probes), the
	// PACS client, and done, closed when serve shuts its listener down.
	reg  *radgate.Registry
	pacs *dicomweb.Client
	done <-chan struct{}
}
