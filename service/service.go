// Package service assembles radgate from its configuration: it reads the
// secrets, opens the engines, loads the routes, builds every source and
// destination through the registry, starts the pipeline and the intakes, and
// runs them as one group with an ordered start and stop. radgate serve and
// radgate check are thin commands over Run and Check.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/dimse"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/pipeline"
)

// ConfigError is a configuration that does not load or check out (radgate
// exits 2 on it, 1 on anything else).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Options tune Run.
type Options struct {
	// Logger receives every component's log; nil discards.
	Logger *slog.Logger
	// Registry holds the destination types; nil is radgate.DefaultRegistry.
	Registry *radgate.Registry
	// Ready, when set, receives the intake's address once everything is up.
	Ready chan<- string
	// StopTimeout bounds the graceful stop (default 30 s).
	StopTimeout time.Duration
	// Listener, when set, is the HTTP intake's socket instead of one bound
	// to cfg.Listen (socket activation, tests); Run closes it.
	Listener net.Listener
	// Now, when set, is governance's clock (tests replay days with it):
	// when results and labels are recorded, and the drift rules' days and
	// windows. Nil: time.Now.
	Now func() time.Time
	// DriftEvery is how often the drift rules are checked besides after
	// each label (DefaultDriftEvery when 0).
	DriftEvery time.Duration
	// ConfigFile is the radgate.yaml cfg was loaded from: on SIGHUP its
	// facilities are read again and put in service (facilitiesReloader).
	// Empty: the built-in defaults, nothing to re-read.
	ConfigFile string
}

// LoadConfig reads radgate.yaml (an empty path gives the defaults) and checks
// every destination against its registered type. Every finding is reported,
// each at file:line:col, in one *ConfigError.
func LoadConfig(path string, reg *radgate.Registry) (config.Config, error) {
	if reg == nil {
		reg = radgate.DefaultRegistry()
	}
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.LoadFile(path); err != nil {
			return cfg, &ConfigError{Err: err}
		}
	}
	if errs := reg.CheckConfig(cfg); len(errs) > 0 {
		return cfg, &ConfigError{Err: errs}
	}
	return cfg, nil
}

// Run runs radgate until ctx is done or a long-running part fails: the
// intakes (HTTP, and MLLP when hl7v2.listen is set), the route reloader, the
// pipeline's stages and NATS. Start-up is ordered so that nothing listens
// before what it hands work to is running; the stop runs the other way —
// intakes first (each lets a request in progress finish), then the stages
// drain, then NATS — within one deadline. A part that fails on its own (the
// intake listener, the embedded NATS server) stops the rest and Run returns
// its error; a stop asked for by ctx returns nil.
func Run(ctx context.Context, cfg config.Config, o Options) error {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = radgate.DefaultRegistry()
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if errs := reg.CheckConfig(cfg); len(errs) > 0 {
		return &ConfigError{Err: errs}
	}
	log := logger.With("component", "serve")
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), fhirhttp.SentBytes)

	// Security first: a missing secret or an exposed intake without
	// authentication stops start-up at once.
	sec, err := newSecurity(cfg, reg, logger)
	if err != nil {
		return err
	}
	defer sec.close()
	var subHeaders []string
	if cfg.FHIR.SubscriptionTokenEnv != "" {
		tok, err := config.Secret(cfg.FHIR.SubscriptionTokenEnv, "")
		if err != nil {
			return fmt.Errorf("fhir.subscription_token_env: %w", err)
		}
		subHeaders = append(subHeaders, "Authorization: Bearer "+tok)
	}

	// Engines and routes next: a bad model, a missing runtime or a broken
	// route file stops start-up before anything listens.
	loader, err := newEngineLoader(cfg)
	if err != nil {
		return err
	}
	defer loader.Close()
	routes, routesSource, err := loadRoutesSource(cfg, loader.IDs())
	if err != nil {
		return &ConfigError{Err: err}
	}
	engines, err := loader.load(routes.Engines())
	if err != nil {
		return err
	}

	nb, err := connectNATS(cfg, logger)
	if err != nil {
		return err
	}
	defer nb.close()
	topo, err := broker.EnsureTopologyOn(ctx, nb.nc, brokerRetention(cfg.Retention),
		broker.Cluster{Replicas: cfg.NATS.Replicas, PublishRetry: cfg.NATS.PublishRetry.D(), Logger: logger,
			Edge: cfg.Role == config.RoleEdge})
	if err != nil {
		return err
	}
	var edgeSourcePending bool
	if cfg.Role == config.RoleEdge {
		// The site's results come back from the hub by its RADGATE_RESULTS
		// sourcing the hub's, filtered on the facility — declared once the
		// link is up (declareEdgeSource).
		if edgeSourcePending, err = declareEdgeSource(ctx, topo.JS, nb.embedded, cfg.Edge.Facility, edgeLinkGrace, log); err != nil {
			return err
		}
		log.Info("edge: a leaf node of the hub", "facility", cfg.Edge.Facility, "domain", edgeDomain(cfg),
			"hub_urls", strings.Join(cfg.Edge.HubURLs, ","))
	}
	if ids := cfg.EdgeFacilities(); cfg.Role == config.RoleHub && len(ids) > 0 {
		// The hub's RADGATE_JOBS sources the edge of every facility listed
		// (but those marked edge: false), besides those other hub
		// processes or radgate sites sources declared.
		ch, err := broker.DeclareHubSources(ctx, topo.JS, ids, false)
		if err != nil {
			return fmt.Errorf("declaring the hub's sources of the edges' jobs: %w", err)
		}
		log.Info("hub: RADGATE_JOBS sources the edges' jobs", "facilities", len(ch.Facilities),
			"added", strings.Join(ch.Added, ","))
	}
	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, HTTPClient: sec.pacs,
		Timeout: cfg.PACS.Timeout.D(), MaxInstanceBytes: cfg.PACS.MaxInstanceBytes})
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	// Studies pushed to radgate's Storage SCP are kept in its image store
	// and found there before the PACS is asked.
	// A DIMSE-only PACS (pacs.dimse) replaces the DICOMweb one: what it
	// sends is kept in the same image store.
	var source radgate.StudySource = pacs
	var images *dimse.Archive
	dimsePACS, hasDIMSEPACS := cfg.PACSDIMSE()
	var stage func(context.Context, pipeline.Job) error
	if cfg.DIMSE.Listen != "" || hasDIMSEPACS || cfg.Role == config.RoleEdge {
		if images, err = dimse.EnsureArchive(ctx, topo.JS, dimse.ArchiveLimits{
			MaxAge: cfg.Retention.Images.MaxAge.D(), MaxBytes: int64(cfg.Retention.Images.MaxBytes)}); err != nil {
			return err
		}
		var from radgate.StudySource = pacs
		if hasDIMSEPACS {
			if from, err = newDIMSEPACS(cfg, dimsePACS, images, logger); err != nil {
				return err
			}
			log.Info("PACS over DIMSE", "pacs_dimse", dimsePACS.Addr(), "called_ae", dimsePACS.CalledAE,
				"calling_ae", dimsePACS.CallingAE, "retrieve", dimsePACS.Retrieve)
		}
		source = images.WithPACS(from)
		if cfg.Role == config.RoleEdge {
			// An edge stages each job's images in its image store, where
			// the hub's inference reads them through the edge's domain.
			stage = stageImages(images, from)
		}
	}
	var fromEdges func(context.Context, string) (radgate.StudySource, error)
	if cfg.Role == config.RoleHub {
		fromEdges = newEdgeImages(nb.nc).source
	}
	dests, err := buildSinks(cfg, reg, sec, topo.JS, source, pdfReport(source), logger)
	if err != nil {
		return err
	}
	defer dests.Close()
	// Start-up work of the destinations (radgate's CodeSystems on each FHIR
	// server) is best effort: a peer that is down now gets results, retried,
	// once it is back.
	for name, s := range dests.sinks {
		if p, ok := s.(radgate.Preparer); ok {
			if err := p.Prepare(ctx); err != nil {
				log.Warn("destination not prepared yet; deliveries will retry", "destination", name, "err", err)
			}
		}
	}

	usage, err := billing.EnsureUsageMeterWith(ctx, topo.JS, limits(cfg.Retention.Usage))
	if err != nil {
		return err
	}
	storage, err := storageMonitor(topo.JS, metrics, logger)
	if err != nil {
		return err
	}
	facilities := radgate.NewFacilities(cfg.Facilities)
	// Engine governance (issue 14): modes per facility × route, results
	// recorded for measurement, labels, evaluations. gov.Labels() is the
	// radgate.VerdictRecorder the verdict intakes are given.
	var pipe *pipeline.Pipeline
	gov, err := newGovernance(cfg, topo, sec, &pipe, loader.reg, o.Now, logger)
	if err != nil {
		return err
	}
	drift, err := newDriftWatcher(gov, o.DriftEvery, metrics, logger)
	if err != nil {
		return err
	}
	verdicts := pokingRecorder{VerdictRecorder: gov.Labels(), w: drift}
	pipe, err = pipeline.NewPipeline(pipeline.Options{
		Topology: topo, Usage: usage, Facilities: facilities, Source: source, Engines: engines, Routes: routes,
		Governance: gov,
		PatientAge: patientAges(cfg, sec, logger),
		Sinks:      dests.sinks,
		Logger:     logger, Registerer: metrics,
		StudyWaitWindow: cfg.Orders.StudyWaitWindow.D(), WaitFor: waitFor(&cfg, facilities),
		StableAfter: stableAfter(cfg.Orders.StableAfter.D()), PollMin: cfg.Orders.PollMin.D(), PollMax: cfg.Orders.PollMax.D(),
		PollRate: cfg.Orders.PollRate, WatchAfter: cfg.Orders.WatchAfter.D(), AckWait: cfg.Orders.AckWait.D(),
		DeliveryWindow: cfg.Orders.DeliveryWindow.D(),
		RetryMin:       cfg.Orders.RetryMin.D(), RetryMax: cfg.Orders.RetryMax.D(),
		InferenceWorkers: cfg.Inference.Workers, MaxInstancesPerStudy: cfg.Orders.MaxInstancesPerStudy, FairWindow: cfg.Orders.FairWindow, MaxStudyBytes: cfg.Orders.MaxStudyBytes,
		Role: pipelineRole(cfg.Role), EdgeImages: fromEdges, StageImages: stage, Facility: edgeFacility(cfg),
	})
	if err != nil {
		return err
	}

	var g run.Group
	// The stop signal: ctx. Its interrupt is a no-op; when another actor
	// fails, stopping ctx's wait is what ends this one.
	{
		stop := make(chan struct{})
		g.Add(func() error {
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		}, func(error) { close(stop) })
	}
	// One deadline for the whole graceful stop, started by the first
	// interrupt (the interrupts run in the order the actors were added:
	// intakes, reloader, stages, NATS).
	var (
		stopCtx    context.Context
		stopCancel context.CancelFunc = func() {}
	)
	defer func() { stopCancel() }()
	stopping := func() context.Context {
		if stopCtx == nil {
			stopCtx, stopCancel = context.WithTimeout(context.Background(), o.StopTimeout)
			log.Info("stopping: intake closed, draining in-flight work")
		}
		return stopCtx
	}

	// The intake's socket is bound now, so that a taken port stops start-up
	// before anything runs; it is served only once the stages and the other
	// intake are up.
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("intake listener: %w", err)
		}
	}
	ln = sec.listener(ln)
	defer ln.Close() // after a failed start-up; Serve closes it otherwise

	// The pipeline's stages start before any intake, which hands them work.
	if err := pipe.Start(ctx); err != nil {
		return err
	}
	stagesDone := make(chan struct{})
	stopStages := func() {
		select {
		case <-stagesDone:
			return
		default:
		}
		if err := pipe.Stop(stopping()); err != nil {
			log.Warn("drain incomplete; unacknowledged work will be redelivered", "err", err)
		}
		close(stagesDone)
	}

	// An edge answers check --connect's question about its leaf link.
	if cfg.Role == config.RoleEdge {
		sub, err := nb.embedded.ServeLinkStatus(nb.nc)
		if err != nil {
			stopStages()
			return fmt.Errorf("edge link status: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}

	// The HL7 v2 (MLLP) order intake, when configured (never on a hub:
	// config refuses it).
	if cfg.HL7v2.Listen != "" {
		// The ORM/OMI's MSH and PID, kept per order: the ORU's PID-5 source.
		received := hl7v2.NewReceived(topo.JS)
		var mllp *hl7v2.Server
		opts, err := mllpOptions(cfg, logger)
		if err == nil {
			opts.Handler = hl7v2.NewIntakeHandler(pipe, hl7v2.IntakeOptions{
				Order:        hl7v2.OrderOptions{AccessionSystem: cfg.HL7v2.AccessionSystem},
				Received:     received,
				Verdicts:     verdicts,
				VerdictCodes: verdictCodes(cfg),
				Logger:       logger,
			})
			mllp, err = hl7v2.NewServer(opts)
		}
		if err == nil {
			err = mllp.Start(ctx)
		}
		if err != nil {
			stopStages()
			return fmt.Errorf("hl7v2 intake: %w", err)
		}
		log.Info("HL7 v2 intake listening (MLLP)", "hl7v2_listen", mllp.Addr().String(),
			"accession_system", cfg.HL7v2.AccessionSystem)
		closed := make(chan struct{})
		g.Add(func() error { <-closed; return nil }, func(error) {
			if err := mllp.Close(stopping()); err != nil {
				log.Warn("HL7 v2 intake did not stop cleanly", "err", err)
			}
			close(closed)
		})
	}

	// The DICOM Storage SCP, when configured.
	if cfg.DIMSE.Listen != "" {
		scp, dln, err := storageSCP(cfg, images, pipe, facilities, logger)
		if err != nil {
			stopStages()
			return fmt.Errorf("dimse: %w", err)
		}
		log.Info("DICOM Storage SCP listening", "dimse_listen", dln.Addr().String(), "ae_title", cfg.DIMSE.AETitle, "tls", cfg.DIMSE.TLS.Enabled(), "client_auth", cfg.DIMSE.TLS.ClientAuth)
		sctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		g.Add(func() error {
			defer close(served)
			return scp.Serve(sctx, dln)
		}, func(error) {
			cancel() // aborts the associations still open: their instances are not acknowledged, so senders resend
			select {
			case <-served:
			case <-stopping().Done():
			}
		})
	}

	// The HTTP intake.
	mux := http.NewServeMux()
	iopts := intakeOptions(cfg, logger)
	iopts.Verdicts, iopts.VerdictCodes = verdicts, verdictCodes(cfg)
	if cfg.Role != config.RoleHub {
		// The order intakes run at the edges; a hub serves only its health,
		// metrics, engines and console.
		mux.Handle("/", fhirhttp.NewIntake(pipe, iopts))
	}
	mux.Handle("/engines/state", engineStateHandler(gov, logger))
	mux.Handle("GET /engines/monitor", engineMonitorHandler(gov, logger))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s := nb.nc.Status(); s != nats.CONNECTED {
			http.Error(w, "NATS "+s.String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: metrics}))
	// The route reloader (SIGHUP, file changes; its status on the console).
	reloader := newRouteReloader(cfg, loader, dests.sinks, pipe, routes.Digest(), routesSource, logger.With("component", "routes"), metrics)
	consoleDone := make(chan struct{})
	handler, err := withConsole(ctx, cfg, sec, topo, pipe, logger, sec.wrap(mux),
		consoleParts{routes: reloader, gov: gov, usage: usage, engines: loader.reg, reg: reg, pacs: pacs, done: consoleDone})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn)}
	srv.RegisterOnShutdown(func() { close(consoleDone) }) // the console's event streams end; Shutdown waits for idle connections
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("the HTTP intake stopped", "err", err)
			return fmt.Errorf("HTTP intake: %w", err)
		}
		return nil
	}, func(error) { _ = srv.Shutdown(stopping()) })

	// The route reloader (SIGHUP, file changes) and the facilities'
	// (SIGHUP), listening before serve says it is ready.
	reloader.listen()
	facReloader := newFacilitiesReloader(o.ConfigFile, cfg, reg, facilities, topo.JS, logger.With("component", "facilities"), metrics)
	facReloader.listen()
	{
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { facReloader.watch(rctx); return nil }, func(error) { cancel() })
	}
	{
		rctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { reloader.watch(rctx); return nil }, func(error) { cancel() })
	}

	// An edge started with its link down declares its results source when
	// the link comes up.
	if edgeSourcePending {
		sctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			awaitLinkThenDeclare(sctx, topo.JS, nb.embedded, cfg.Edge.Facility, log)
			<-sctx.Done() // an actor that returns stops the group
			return nil
		}, func(error) { cancel() })
	}

	// The storage monitor (radgate_storage_used_ratio): stopped before NATS.
	{
		mctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { storage.Run(mctx); return nil }, func(error) { cancel() })
	}

	// The drift rules' checks (hourly and after each label).
	{
		dctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { drift.run(dctx); return nil }, func(error) { cancel() })
	}

	// The stages: drained after the intakes closed.
	g.Add(func() error { <-stagesDone; return nil }, func(error) { stopStages() })

	// The embedded NATS server, when radgate runs it: stopped last; one
	// that dies on its own stops radgate.
	if nb.embedded != nil {
		done := make(chan struct{})
		g.Add(func() error {
			select {
			case <-nb.embedded.Done():
				return errors.New("the embedded NATS server stopped")
			case <-done:
				return nil
			}
		}, func(error) { close(done) })
	}

	if cfg.FHIR.SubscriptionEndpoint != "" && cfg.Role != config.RoleHub {
		if s, ok := dests.sinks[config.BuiltinDestination].(*fhirhttp.Sink); ok {
			ensure := s.EnsureSubscriptions
			if cfg.FHIR.SubscribeVerdicts {
				ensure = s.EnsureVerdictSubscriptions
			}
			if _, err := ensure(ctx, cfg.FHIR.SubscriptionEndpoint, subHeaders...); err != nil {
				log.Warn("could not subscribe to the FHIR server", "err", err)
			}
		}
	}
	names := make([]string, len(engines))
	for i, e := range engines {
		names[i] = e.Info().ID + "@" + e.Info().Version
	}
	log.Info("radgate serving", "listen", ln.Addr().String(), "engines", strings.Join(names, ","),
		"pacs", cfg.PACS.DICOMwebURL, "fhir", cfg.FHIR.BaseURL)
	if o.Ready != nil {
		o.Ready <- ln.Addr().String()
	}
	err = g.Run()
	if err != nil {
		log.Error("stopped on a failure", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// intakeOptions are the FHIR intake's limits from cfg. Behind
// authentication a client is its principal, else its address.
func intakeOptions(cfg config.Config, logger *slog.Logger) fhirhttp.IntakeOptions {
	l := cfg.HTTP.Limits
	opts := fhirhttp.IntakeOptions{
		MaxBodyBytes:     cfg.Orders.MaxBodyBytes,
		MaxBundleEntries: l.MaxBundleEntries,
		Rate:             fhirhttp.RateLimit{OrdersPerSecond: l.OrdersPerSecond, Burst: l.OrderBurst, MaxClients: l.MaxClients},
		LimitKeys: fhirhttp.LimitKeys{MaxBodyBytes: "orders.max_body_bytes", MaxBundleEntries: "http.limits.max_bundle_entries",
			OrdersPerSecond: "http.limits.orders_per_second", Burst: "http.limits.order_burst"},
		Logger: logger,
	}
	if cfg.HTTP.Auth.Mode != "" && cfg.HTTP.Auth.Mode != config.AuthNone {
		opts.ClientKey = clientKey
	}
	return opts
}

// clientKey names an authenticated caller for the rate limit: its principal
// (the tokens file's name, or the JWT's subject as the authenticator names
// it), else a digest of its bearer token.
func clientKey(r *http.Request) string {
	if p, ok := httpauth.PrincipalFrom(r.Context()); ok && p.Name != "" {
		return "principal:" + p.Name
	}
	return fhirhttp.BearerClientKey(r)
}

// newDIMSEPACS is the study source over the DIMSE-only PACS of pacs.dimse:
// C-MOVE to radgate's own SCP (dimse.ae_title) or C-GET, into images.
func newDIMSEPACS(cfg config.Config, p config.PACSDIMSE, images *dimse.Archive, logger *slog.Logger) (*dimse.PACS, error) {
	d, err := pacsDialer(p)
	if err != nil {
		return nil, err
	}
	return &dimse.PACS{
		Dialer: d, Addr: p.Addr(), Retrieve: p.Retrieve, MoveDestination: cfg.DIMSE.AETitle, Archive: images,
		MaxInstanceBytes: int64(cfg.DIMSE.MaxInstanceBytes), Logger: logger.With("component", "dimse-pacs"),
	}, nil
}

// pacsDialer calls the DIMSE-only PACS of pacs.dimse (DICOM TLS with its
// tls key).
func pacsDialer(p config.PACSDIMSE) (dimse.Dialer, error) {
	d := dimse.Dialer{CallingAE: p.CallingAE, CalledAE: p.CalledAE, Timeout: p.Timeout.D(), MaxPDULength: uint32(p.MaxPDULength)}
	if p.TLS != nil {
		tc, err := httpauth.ClientTLSConfig(*p.TLS)
		if err != nil {
			return d, fmt.Errorf("pacs.dimse.%w", err)
		}
		d.TLS = tc
	}
	return d, nil
}

// storageSCP builds radgate's Storage SCP from the dimse section and binds
// its listener.
func storageSCP(cfg config.Config, images *dimse.Archive, orders radgate.Intake, facilities *radgate.Facilities, logger *slog.Logger) (*dimse.Server, net.Listener, error) {
	d := cfg.DIMSE
	dlog := logger.With("component", "dimse")
	in := &dimse.Intake{Archive: images, Orders: orders, Facilities: facilities, AccessionSystem: cfg.EffectiveAccessionSystem(),
		MaxInstanceBytes: int64(d.MaxInstanceBytes), MinFreeBytes: int64(d.MinFreeBytes), Logger: dlog}
	if p, ok := cfg.PACSDIMSE(); ok {
		// The DIMSE-only PACS calls to C-STORE what radgate C-MOVEs.
		in.PACSAETitles = []string{p.CalledAE}
	}
	srv := &dimse.Server{AETitle: d.AETitle, MaxPDULength: uint32(d.MaxPDULength),
		MaxAssociations: d.MaxAssociations, MaxPerCaller: d.MaxAssociationsPerCaller, MaxInstanceBytes: int64(d.MaxInstanceBytes),
		ARTIM: d.ARTIM.D(), Idle: d.IdleTimeout.D(), Accept: in.Accept, Store: in, Logger: dlog}
	tc, err := httpauth.ServerTLS(d.TLS)
	if err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "http.tls"); ok {
			msg = "dimse.tls" + rest
		}
		return nil, nil, errors.New(msg)
	}
	srv.TLS = tc
	ln, err := net.Listen("tcp", d.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listener: %w", err)
	}
	return srv, ln, nil
}

// pipelineRole is the pipeline's stages for serve's role.
func pipelineRole(role string) pipeline.Role {
	switch role {
	case config.RoleHub:
		return pipeline.RoleHub
	case config.RoleEdge:
		return pipeline.RoleEdge
	}
	return pipeline.RoleAll
}

// edgeFacility is an edge's facility id ("" in the other roles).
func edgeFacility(cfg config.Config) string {
	if cfg.Role == config.RoleEdge {
		return cfg.Edge.Facility
	}
	return ""
}
