package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/service"
)

func init() {
	var configPath, modelsDir, listen, cpuProfile, memProfile string
	cmd := &cobra.Command{
		Use:   "serve [--config radgate.yaml]",
		Short: "Run the engine: FHIR (and HL7 v2) intake, PACS fetch, scoring, delivery",
		Long: `Run radgate: the HTTP intake of FHIR orders, the router that finds each
study in the PACS over DICOMweb, the ONNX inference stage and the delivery of
results to every destination, connected by NATS JetStream (embedded unless
nats.url is set). With hl7v2.listen set, an MLLP listener also takes HL7 v2
orders (ORM^O01, OMI^O23). Without --config, every setting has its default.
SIGINT/SIGTERM stop it gracefully: intake first, then in-flight work drains.
It exits 2 on a configuration that does not load, 1 when a part fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := service.LoadConfig(configPath, nil)
			if err != nil {
				return err
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
			service.ApplyRuntime(cfg.Runtime, logger)
			if cpuProfile != "" {
				stopProfile, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
			if memProfile != "" {
				defer writeHeapProfile(memProfile, logger)
			}
			return serve(ctx, cfg, configPath, logger, nil)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().StringVar(&modelsDir, "models", "", "models directory (overrides models_dir)")
	cmd.Flags().StringVar(&listen, "listen", "", "intake address (overrides listen)")
	// For radgate bench: a CPU profile from start-up to a clean stop.
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	// For radgate bench --day: what the heap holds once the day is done.
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write a heap profile to this file at a clean stop (go tool pprof)")
	_ = cmd.Flags().MarkHidden("memprofile")
	rootCmd.AddCommand(cmd)
}

// serve runs radgate until ctx is done; ready, when set, receives the
// intake's address once everything is up. configFile is the radgate.yaml
// cfg came from (its facilities are re-read on SIGHUP), "" for none.
func serve(ctx context.Context, cfg config.Config, configFile string, logger *slog.Logger, ready chan<- string) error {
	o := service.Options{Logger: logger, Ready: ready, ConfigFile: configFile}
	if serveOptions != nil {
		serveOptions(&o)
	}
	return service.Run(ctx, cfg, o)
}

// serveOptions, when set (by tests only), adjusts serve's options: the
// drift e2e injects governance's clock.
var serveOptions func(*service.Options)

// writeHeapProfile writes the heap profile (after a collection, so that it
// shows what is live) to path; a failure is logged, the stop goes on.
func writeHeapProfile(path string, logger *slog.Logger) {
	runtime.GC()
	f, err := os.Create(path)
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		logger.Warn("writing the heap profile failed", "file", path, "err", err)
	}
}

// startCPUProfile starts writing a CPU profile to path; the function it
// returns stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
