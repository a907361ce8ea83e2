package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// Connect also reaches each peer: the PACS, every destination, an
	// external NATS server.
	Connect bool
	// Timeout bounds each probe (default 10 s).
	Timeout time.Duration
	// Registry holds the destination types; nil is radgate.DefaultRegistry.
	Registry *radgate.Registry
}

// Check builds every component Run would — secrets, engines and their ONNX
// sessions, routes, every destination through its registered type — without
// serving, and with o.Connect reaches each peer. It prints one line per step
// ("ok   …" or "FAIL …: why") to w and returns how many failed.
func Check(ctx context.Context, cfg config.Config, o CheckOptions, w io.Writer) int {
	reg := o.Registry
	if reg == nil {
		reg = radgate.DefaultRegistry()
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	failed := 0
	step := func(what string, err error) bool {
		if err != nil {
			failed++
			fmt.Fprintf(w, "FAIL %s: %v\n", what, err)
			return false
		}
		fmt.Fprintf(w, "ok   %s\n", what)
		return true
	}
	logger := slog.New(slog.DiscardHandler)

	var cfgErr error
	if errs := reg.CheckConfig(cfg); len(errs) > 0 {
		cfgErr = errs
	}
	if !step("destinations: types "+fmt.Sprint(reg.DestinationTypes()), cfgErr) {
		return failed
	}
	sec, err := newSecurity(cfg, reg, logger)
	if !step("security: intake exposure, secrets, TLS material", err) {
		return failed
	}
	defer sec.close()
	loader, err := newEngineLoader(cfg)
	what := "engines: models directory " + cfg.ModelsDir + " and ONNX Runtime"
	if cfg.Role == config.RoleEdge {
		what = "engines: models directory " + cfg.ModelsDir + " (manifests only: an edge scores nothing)"
	}
	if !step(what, err) {
		return failed
	}
	defer loader.Close()
	routes, err := loadRoutes(cfg, loader.IDs())
	what = "routes: built-in (engines: section, destination fhir)"
	if cfg.RoutesFile != "" {
		what = "routes: " + cfg.RoutesFile
	}
	if !step(what, err) {
		return failed
	}
	for _, id := range routes.Engines() {
		_, err := loader.load([]string{id})
		if loader.metadataOnly {
			step("engine "+id+": manifest (scored at the hub)", err)
			continue
		}
		step("engine "+id+": ONNX session", err)
	}

	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, HTTPClient: sec.pacs,
		Timeout: cfg.PACS.Timeout.D(), MaxInstanceBytes: cfg.PACS.MaxInstanceBytes})
	step("pacs: DICOMweb client for "+cfg.PACS.DICOMwebURL, err)

	// Sinks that keep state in JetStream (the HL7 v2 outbox) are built on a
	// throw-away embedded server here.
	dir, err := os.MkdirTemp("", "radgate-check-")
	if !step("scratch NATS for building the destinations", err) {
		return failed
	}
	defer os.RemoveAll(dir)
	emb, err := broker.StartEmbedded(filepath.Join(dir, "nats"), -1)
	if !step("scratch NATS for building the destinations", err) {
		return failed
	}
	defer emb.Shutdown()
	nc, err := broker.Connect(emb.ClientURL(), "", logger)
	if !step("scratch NATS connection", err) {
		return failed
	}
	defer nc.Close()
	topo, err := broker.EnsureTopologyWith(ctx, nc, brokerRetention(cfg.Retention))
	if !step("scratch JetStream topology", err) {
		return failed
	}
	dests, err := buildSinks(cfg, reg, sec, topo.JS, pacs, pdfReport(pacs), logger)
	if step(fmt.Sprintf("destinations: %d built", len(cfg.DestinationNames())), err) {
		defer dests.Close()
		for _, d := range routes.Destinations() {
			if _, ok := dests.sinks[d]; !ok {
				step("route destination "+d, errors.New("no sink"))
			}
		}
	}
	if !o.Connect {
		return failed
	}

	for _, p := range peerProbes(cfg, sec, reg, pacs, topo.JS, logger) {
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		step(p.what, p.probe(pctx))
		cancel()
	}
	if cfg.Role == config.RoleEdge {
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		checkEdgeLink(pctx, cfg, step)
		cancel()
	}
	if cfg.NATS.URL != "" {
		// The cluster's health: each radgate stream's and bucket's leader and
		// replicas (the connection probe above said whether NATS answers).
		if nc, err := broker.Connect(cfg.NATS.URL, cfg.NATS.CredentialsFile, logger); err == nil {
			defer nc.Close()
			pctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			checkCluster(pctx, nc, cfg.NATS.Replicas, step)
			if cfg.Role == config.RoleHub {
				checkHubSources(pctx, cfg, nc, step)
			}
		}
	}
	return failed
}

// checkCluster reports the JetStream radgate's state is on (check
// --connect with nats.url): the server and cluster connected to, whether
// the JetStream API answers (on a cluster: a meta leader is elected), and
// each radgate stream, bucket and object store with its leader and each
// replica current, behind (with its lag) or offline; one that is not as it
// should be — no leader, a replica not current, fewer copies than
// nats.replicas — is a failed step saying so.
func checkCluster(ctx context.Context, nc *nats.Conn, replicas int, step func(string, error) bool) {
	js, err := jetstream.New(nc)
	if err != nil {
		step("nats: JetStream", err)
		return
	}
	cluster := nc.ConnectedClusterName()
	if cluster == "" {
		cluster = "none: a single server"
	}
	hs, err := broker.ClusterHealth(ctx, js)
	if !step(fmt.Sprintf("nats: connected to server %s, cluster %s; the JetStream API answers (a meta leader is elected)",
		nc.ConnectedServerName(), cluster), err) {
		return
	}
	if len(hs) == 0 {
		step("nats: no radgate streams yet (radgate serve creates them at its first start)", nil)
		return
	}
	for _, h := range hs {
		err := h.Problem()
		if err == nil && !h.Unanswered && h.Replicas < replicas {
			err = fmt.Errorf("%d copies where nats.replicas is %d: radgate serve updates it at its next start", h.Replicas, replicas)
		}
		step(h.What()+": "+h.Summary(), err)
	}
	step(broker.CheckStateVersion(ctx, js))
}

// checkEdgeLink reports an edge's leaf link to the hub as the running
// radgate serve sees it (check --connect, role edge): connected, to which
// hub node, the round trip and the bytes each way; a link that is down
// (or a serve that does not answer) is a failed step.
func checkEdgeLink(ctx context.Context, cfg config.Config, step func(string, error) bool) {
	what := "edge " + cfg.Edge.Facility + ": leaf link to the hub"
	addr, err := broker.ResolveAddress(cfg)
	if err != nil {
		step(what, err)
		return
	}
	js, closeConn, err := addr.ConnectJetStream("radgate check")
	if err != nil {
		step(what, err)
		return
	}
	defer closeConn()
	links, err := broker.RequestLinkStatus(ctx, js.Conn())
	if err != nil {
		step(what, err)
	}
	for _, l := range links {
		step(fmt.Sprintf("%s: connected to %s at %s, RTT %s, %d B in / %d B out (%d / %d messages)",
			what, l.Name, l.Addr, l.RTT, l.InBytes, l.OutBytes, l.InMsgs, l.OutMsgs), nil)
	}
	checkEdgeSource(ctx, cfg, js, step)
}

// checkEdgeSource reports an edge's source of the hub's results (check
// --connect, role edge), from its RADGATE_RESULTS' stream info: heard from
// within broker.LinkSourceSilentAfter (its 1 s heartbeat makes that the
// norm), with its lag; never heard from, silent or with an error, a failed
// step saying why it may be.
func checkEdgeSource(ctx context.Context, cfg config.Config, js jetstream.JetStream, step func(string, error) bool) {
	what := "edge " + cfg.Edge.Facility + ": results source from the hub"
	info, err := linkStreamInfo(ctx, js, broker.StreamResults)
	if err != nil {
		step(what, err)
		return
	}
	srcs := broker.LinkSources(info)
	if len(srcs) == 0 {
		step(what, errors.New("not declared: the running edge declares it once its link to the hub is up (see the leaf link line)"))
		return
	}
	for _, s := range srcs {
		if err := s.Problem(); err != nil {
			step(what, fmt.Errorf("%w: if the leaf link line FAILs, the link is down and the results wait at the hub; "+
				"if the link is up, the source was set up while it was down and nats-server sets it up again within about 40 s of the link's return", err))
			continue
		}
		step(what+": "+s.Summary(), nil)
	}
}

// hubSourcesListed bounds how many unhealthy edge sources checkHubSources
// lists one by one.
const hubSourcesListed = 20

// checkHubSources reports the hub's sources of the edges' jobs (check
// --connect, role hub), from RADGATE_JOBS' stream info: one line for the
// healthy ones (how many, their largest lag), one failed step for each
// that is not (never heard from, silent, an error; at most
// hubSourcesListed, then how many more), and one for each facility with
// an edge that is not sourced.
func checkHubSources(ctx context.Context, cfg config.Config, nc *nats.Conn, step func(string, error) bool) {
	js, err := jetstream.New(nc)
	if err != nil {
		step("hub: edge sources", err)
		return
	}
	info, err := linkStreamInfo(ctx, js, broker.StreamJobs)
	if err != nil {
		step("hub: edge sources", err)
		return
	}
	srcs := broker.LinkSources(info)
	names := map[string]string{} // facility subject token → id
	for _, id := range cfg.EdgeFacilities() {
		names[broker.Token(id)] = id
	}
	sourced := map[string]bool{}
	for _, s := range srcs {
		sourced[s.Facility] = true
	}
	var missing []string
	for _, id := range cfg.EdgeFacilities() {
		if !sourced[broker.Token(id)] {
			missing = append(missing, id)
		}
	}
	h := broker.SumLinkSources(srcs)
	switch {
	case h.Total == 0 && len(missing) == 0:
		step("hub: no edge sources (no facility with an edge)", nil)
	case h.OK > 0:
		step(fmt.Sprintf("hub: %d of %d edge sources active (heard from within %s), max lag %d",
			h.OK, h.Total, broker.LinkSourceSilentAfter, h.MaxLag), nil)
	}
	listed := 0
	for _, s := range h.Unhealthy {
		if listed == hubSourcesListed {
			step("hub: edge sources", fmt.Errorf("%d more not active (only the first %d are listed)",
				len(h.Unhealthy)-listed, hubSourcesListed))
			break
		}
		listed++
		name := names[s.Facility]
		if name == "" {
			name = s.Facility
		}
		step("hub: source of edge "+name+"'s jobs", fmt.Errorf("%w: the edge's link is down (radgate check --connect at the edge shows it), "+
			"or the source was set up while it was down and nats-server sets it up again within about 40 s of the link's return", s.Problem()))
	}
	for i, id := range missing {
		if i == hubSourcesListed {
			step("hub: edge sources", fmt.Errorf("%d more facilities with an edge not sourced", len(missing)-i))
			break
		}
		step("hub: source of edge "+id+"'s jobs", errors.New("not declared: a hub radgate serve declares it at its next start or SIGHUP (or radgate sites sources)"))
	}
}

func linkStreamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return s.Info(ctx)
}
