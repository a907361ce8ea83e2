package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/pipeline"
)

func init() {
	var configPath, modelsDir, listen string
	cmd := &cobra.Command{
		Use:   "serve [--config radgate.yaml]",
		Short: "Run the engine: FHIR (and HL7 v2) intake, PACS fetch, scoring, delivery",
		Long: `Run radgate: the HTTP intake of FHIR orders, the router that finds each
study in the PACS over DICOMweb, the ONNX inference stage and the delivery of
results to the FHIR server, connected by NATS JetStream (embedded unless
nats.url is set). With hl7v2.listen set, an MLLP listener also takes HL7 v2
orders (ORM^O01, OMI^O23). Without --config, every setting has its default.
SIGINT/SIGTERM stop it gracefully: intake first, then in-flight work drains.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if configPath != "" {
				var err error
				if cfg, err = config.LoadFile(configPath); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			if modelsDir != "" {
				cfg.ModelsDir = modelsDir
			}
			if listen != "" {
				cfg.Listen = listen
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			return serve(ctx, cfg, logger, nil)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().StringVar(&modelsDir, "models", "", "models directory (overrides models_dir)")
	cmd.Flags().StringVar(&listen, "listen", "", "intake address (overrides listen)")
	rootCmd.AddCommand(cmd)
}

// serve runs until ctx is done. ready, when non-nil, receives the intake's
// address once everything is up (tests use it).
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, ready chan<- string) error {
	log := logger.With("component", "serve")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Security first (cmd/radgate/security.go): a missing secret or an
	// exposed intake without authentication stops start-up at once.
	sec, err := newSecurity(cfg, logger)
	if err != nil {
		return err
	}
	var subHeaders []string
	if cfg.FHIR.SubscriptionTokenEnv != "" {
		tok, err := config.Secret(cfg.FHIR.SubscriptionTokenEnv, "")
		if err != nil {
			return fmt.Errorf("fhir.subscription_token_env: %w", err)
		}
		subHeaders = append(subHeaders, "Authorization: Bearer "+tok)
	}

	// Engines and routes next: a bad model, a missing runtime or a broken
	// route file should stop start-up before anything listens.
	loader, err := newEngineLoader(cfg)
	if err != nil {
		return err
	}
	defer loader.Close()
	routes, err := loadRoutes(cfg, loader.IDs())
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	engines, err := loader.load(routes.Engines())
	if err != nil {
		return err
	}

	nc, shutdownNATS, err := connectNATS(cfg, logger)
	if err != nil {
		return err
	}
	defer shutdownNATS()
	topo, err := broker.EnsureTopologyWith(ctx, nc, brokerRetention(cfg.Retention))
	if err != nil {
		return err
	}

	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, HTTPClient: sec.pacs,
		Timeout: cfg.PACS.Timeout.D(), MaxInstanceBytes: cfg.PACS.MaxInstanceBytes})
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	sinks, sink, closeSinks, err := buildSinks(cfg, sec, topo.JS, pacs, logger)
	if err != nil {
		return err
	}
	defer closeSinks()
	// Publishing radgate's CodeSystems is best effort at start-up: a FHIR
	// server that is down now gets results (retried) once it is back.
	for name, s := range sinks {
		if fs, ok := s.(*fhirhttp.Sink); ok {
			if err := fs.EnsureCodeSystem(ctx); err != nil {
				log.Warn("could not publish radgate's CodeSystems yet", "destination", name, "err", err)
			}
		}
	}

	usage, err := billing.EnsureUsageMeterWith(ctx, topo.JS, limits(cfg.Retention.Usage))
	if err != nil {
		return err
	}
	stopStorage, err := startStorageMonitor(ctx, topo.JS, reg, logger)
	if err != nil {
		return err
	}
	defer stopStorage() // before NATS is drained
	pipe, err := pipeline.NewPipeline(pipeline.Options{
		Topology: topo, Usage: usage, Source: pacs, Engines: engines, Routes: routes,
		Sinks:  sinks,
		Logger: logger, Registerer: reg,
		StudyWaitWindow: cfg.Orders.StudyWaitWindow.D(), DeliveryWindow: cfg.Orders.DeliveryWindow.D(),
		RetryMin: cfg.Orders.RetryMin.D(), RetryMax: cfg.Orders.RetryMax.D(),
		InferenceWorkers: cfg.Inference.Workers, MaxInstancesPerStudy: cfg.Orders.MaxInstancesPerStudy,
	})
	if err != nil {
		return err
	}
	if err := pipe.Start(ctx); err != nil {
		return err
	}
	reloader := newRouteReloader(cfg, loader, sinks, pipe, routes.Digest(), logger.With("component", "routes"), reg)
	go reloader.watch(ctx)

	// The HL7 v2 (MLLP) order intake, when configured: after the pipeline,
	// which its handler hands orders to.
	var mllp *hl7v2.Server
	if cfg.HL7v2.Listen != "" {
		mllp, err = hl7v2.NewServer(hl7v2.ServerOptions{
			Addr: cfg.HL7v2.Listen,
			Handler: hl7v2.NewIntakeHandler(pipe, hl7v2.IntakeOptions{
				Order:  hl7v2.OrderOptions{AccessionSystem: cfg.HL7v2.AccessionSystem},
				Logger: logger,
			}),
			ReadTimeout:    cfg.HL7v2.ReadTimeout.D(),
			MaxMessageSize: cfg.HL7v2.MaxMessageBytes,
			Logger:         logger,
		})
		if err == nil {
			err = mllp.Start(ctx)
		}
		if err != nil {
			_ = pipe.Stop(context.Background())
			return fmt.Errorf("hl7v2 intake: %w", err)
		}
		log.Info("HL7 v2 intake listening (MLLP)", "hl7v2_listen", mllp.Addr().String(),
			"accession_system", cfg.HL7v2.AccessionSystem)
	}
	closeMLLP := func(ctx context.Context) {
		if mllp == nil {
			return
		}
		if err := mllp.Close(ctx); err != nil {
			log.Warn("HL7 v2 intake did not stop cleanly", "err", err)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/", fhirhttp.NewIntake(pipe, fhirhttp.IntakeOptions{MaxBodyBytes: cfg.Orders.MaxBodyBytes, Logger: logger}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if nc.Status() != nats.CONNECTED {
			http.Error(w, "NATS "+nc.Status().String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		closeMLLP(context.Background())
		_ = pipe.Stop(context.Background())
		return fmt.Errorf("intake listener: %w", err)
	}
	ln = sec.listener(ln)
	srv := &http.Server{Handler: sec.wrap(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	if cfg.FHIR.SubscriptionEndpoint != "" {
		for _, criteria := range []string{"ServiceRequest?status=active", "ImagingStudy?status=available"} {
			if _, err := sink.EnsureSubscription(ctx, criteria, cfg.FHIR.SubscriptionEndpoint, subHeaders...); err != nil {
				log.Warn("could not subscribe to the FHIR server", "criteria", criteria, "err", err)
			}
		}
	}
	names := make([]string, len(engines))
	for i, e := range engines {
		names[i] = e.Info().ID + "@" + e.Info().Version
	}
	log.Info("radgate serving", "listen", ln.Addr().String(), "engines", strings.Join(names, ","),
		"pacs", cfg.PACS.DICOMwebURL, "fhir", cfg.FHIR.BaseURL)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		log.Error("intake stopped", "err", err)
	}
	// Graceful stop: intake first (the HL7 v2 listener, then HTTP: each
	// lets a message or request in progress finish), then drain the stages,
	// all within one deadline.
	log.Info("stopping: intake closed, draining in-flight work")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeMLLP(sctx)
	_ = srv.Shutdown(sctx)
	if err := pipe.Stop(sctx); err != nil {
		log.Warn("drain incomplete; unacknowledged work will be redelivered", "err", err)
	}
	log.Info("stopped")
	return nil
}

// connectNATS connects to nats.url, or starts the embedded server on
// nats.embedded_listen.
func connectNATS(cfg config.Config, logger *slog.Logger) (*nats.Conn, func(), error) {
	url := cfg.NATS.URL
	var emb *broker.EmbeddedServer
	if url == "" {
		host, port, err := cfg.NATS.EmbeddedAddr()
		if err != nil {
			return nil, nil, fmt.Errorf("nats.embedded_listen: %w", err)
		}
		emb, err = broker.StartEmbeddedOn(filepath.Join(cfg.DataDir, "nats"), host, port)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (set nats.embedded_listen to a free address, or nats.url)", err)
		}
		url = emb.ClientURL()
		log := logger.With("component", "serve")
		log.Info("embedded NATS listening", "url", url)
		if !cfg.NATS.EmbeddedIsLoopback() {
			log.Warn("the embedded NATS server has no authentication and listens beyond loopback: anyone who reaches it can read and publish orders",
				"embedded_listen", cfg.NATS.EmbeddedListen)
		}
	}
	nc, err := broker.Connect(url, cfg.NATS.CredentialsFile, logger)
	if err != nil {
		if emb != nil {
			emb.Shutdown()
		}
		return nil, nil, err
	}
	return nc, func() {
		if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			logger.Warn("draining NATS connection", "err", err)
		}
		for nc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
		if emb != nil {
			emb.Shutdown()
		}
	}, nil
}
