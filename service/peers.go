package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/dimse"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
)

// peerProbe reaches one peer: `radgate check --connect` runs each once, the
// console's Health page every few seconds at most.
type peerProbe struct {
	what  string
	probe func(context.Context) error
}

// peerProbes are the peers cfg names: the PACS (DIMSE C-ECHO and C-FIND
// when configured, else QIDO-RS through pacs), every destination whose type
// can be probed, and an external NATS server.
func peerProbes(cfg config.Config, sec *security, reg *radgate.Registry, pacs *dicomweb.Client, js jetstream.JetStream,
	logger *slog.Logger) []peerProbe {
	var out []peerProbe
	if p, ok := cfg.PACSDIMSE(); ok {
		out = append(out, peerProbe{"connect pacs " + p.CalledAE + "@" + p.Addr() + " (DIMSE C-ECHO, Study Root C-FIND accepted)", func(ctx context.Context) error {
			d, err := pacsDialer(p)
			if err != nil {
				return err
			}
			return dimse.ProbePACS(ctx, d, p.Addr())
		}})
	} else if pacs != nil {
		out = append(out, peerProbe{"connect pacs " + cfg.PACS.DICOMwebURL + " (QIDO-RS)", func(ctx context.Context) error {
			return dicomweb.Probe(ctx, pacs)
		}})
	}
	for _, name := range cfg.DestinationNames() {
		dc := destinationContext(cfg, name, sec, js, nil, logger)
		t, ok := reg.Destination(dc.Config.Type)
		if !ok || t.Probe == nil {
			continue
		}
		where := dc.Config.URL
		if where == "" {
			where = dc.Config.Address
		}
		if where == "" && dc.Config.Host != "" {
			where = fmt.Sprintf("%s@%s:%d", dc.Config.CalledAE, dc.Config.Host, dc.Config.Port)
		}
		out = append(out, peerProbe{fmt.Sprintf("connect destination %s %s (%s)", name, where, t.ProbeDoes), func(ctx context.Context) error {
			if err := withTLS(t, &dc); err != nil {
				return err
			}
			return t.Probe(ctx, dc)
		}})
	}
	if cfg.NATS.URL != "" {
		out = append(out, peerProbe{"connect nats " + cfg.NATS.URL, func(context.Context) error {
			c, err := broker.Connect(cfg.NATS.URL, cfg.NATS.CredentialsFile, logger)
			if err == nil {
				c.Close()
			}
			return err
		}})
	}
	return out
}

// consolePeers runs probes at once, each within the context's deadline,
// for the console's Health page.
func consolePeers(probes []peerProbe) func(context.Context) []console.PeerCheck {
	return func(ctx context.Context) []console.PeerCheck {
		out := make([]console.PeerCheck, len(probes))
		var wg sync.WaitGroup
		for i, p := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				err := p.probe(ctx)
				out[i] = console.PeerCheck{What: p.what, Took: time.Since(start).Round(time.Millisecond)}
				if err != nil {
					out[i].Err = err.Error()
				}
			}()
		}
		wg.Wait()
		return out
	}
}
