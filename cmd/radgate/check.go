package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

func init() {
	var configPath string
	var connect bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [--config radgate.yaml] [--connect]",
		Short: "Build every component radgate serve would run; with --connect, reach each peer",
		Long: `Check loads the configuration and the route file, reads every secret, opens
an ONNX Runtime session for every engine the routes name and builds every
result destination, as radgate serve does at start-up, without serving. With
--connect it also reaches each peer: the PACS (a QIDO-RS search), each FHIR
server (GET metadata), each RIS (an MLLP connection, no message sent) and an
external NATS server. Each step prints "ok" or what is wrong; the exit status
is 1 when anything failed (2 for a configuration that does not load).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if configPath != "" {
				var err error
				if cfg, err = config.LoadFile(configPath); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			failed := runCheck(cmd.Context(), cfg, connect, timeout, cmd.OutOrStdout())
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("check: %d problem(s)", failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().BoolVar(&connect, "connect", false, "also reach the PACS, every destination and an external NATS")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "bound on each --connect probe")
	rootCmd.AddCommand(cmd)
}

// runCheck prints one line per step and returns how many failed.
func runCheck(ctx context.Context, cfg config.Config, connect bool, timeout time.Duration, w io.Writer) int {
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

	sec, err := newSecurity(cfg, logger)
	if !step("security: intake exposure, secrets, TLS material", err) {
		return failed
	}
	loader, err := newEngineLoader(cfg)
	if !step("engines: models directory "+cfg.ModelsDir+" and ONNX Runtime", err) {
		return failed
	}
	defer loader.Close()
	routes, err := loadRoutes(cfg, loader.IDs())
	what := "routes: built-in (engines: section, destination fhir)"
	if cfg.RoutesFile != "" {
		what = "routes: " + cfg.RoutesFile
	}
	if !step(what, err) {
		return failed
	}
	for _, id := range routes.Engines() {
		_, err := loader.load([]string{id})
		step("engine "+id+": ONNX session", err)
	}

	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: cfg.PACS.DICOMwebURL, HTTPClient: sec.pacs,
		Timeout: cfg.PACS.Timeout.D(), MaxInstanceBytes: cfg.PACS.MaxInstanceBytes})
	step("pacs: DICOMweb client for "+cfg.PACS.DICOMwebURL, err)

	// The HL7 v2 sink keeps its outbox in JetStream: a throw-away embedded
	// server stands in for the real one here.
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
	sinks, _, closeSinks, err := buildSinks(cfg, sec, topo.JS, pacs, logger)
	if step(fmt.Sprintf("destinations: %d built", len(cfg.DestinationNames())), err) {
		defer closeSinks()
		for _, d := range routes.Destinations() {
			if _, ok := sinks[d]; !ok {
				step("route destination "+d, errors.New("no sink"))
			}
		}
	}
	if !connect {
		return failed
	}

	probe := func(what string, f func(context.Context) error) {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		step(what, f(pctx))
	}
	if pacs != nil {
		probe("connect pacs "+cfg.PACS.DICOMwebURL+" (QIDO-RS)", func(ctx context.Context) error {
			_, err := pacs.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "2.25.1"})
			if errors.Is(err, radgate.ErrStudyNotFound) {
				return nil // reached, authenticated, and answered
			}
			return err
		})
	}
	for _, name := range cfg.DestinationNames() {
		if name == config.BuiltinDestination {
			probe("connect destination fhir "+cfg.FHIR.BaseURL+" (FHIR metadata)", func(ctx context.Context) error {
				c, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir, Logger: logger})
				if err != nil {
					return err
				}
				return c.Ping(ctx)
			})
			continue
		}
		d := cfg.Destinations[name]
		switch d.Type {
		case config.DestinationFHIR:
			probe("connect destination "+name+" "+d.URL+" (FHIR metadata)", func(ctx context.Context) error {
				c, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: d.URL, HTTPClient: sec.destinations[name], Logger: logger})
				if err != nil {
					return err
				}
				return c.Ping(ctx)
			})
		case config.DestinationDICOMweb:
			probe("connect destination "+name+" "+d.URL+" (QIDO-RS)", func(ctx context.Context) error {
				c, err := dicomweb.New(dicomweb.Options{BaseURL: d.URL, HTTPClient: sec.destinations[name]})
				if err != nil {
					return err
				}
				_, err = c.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "2.25.1"})
				if errors.Is(err, radgate.ErrStudyNotFound) {
					return nil
				}
				return err
			})
		case config.DestinationHL7v2:
			probe("connect destination "+name+" "+d.Address+" (MLLP connection)", func(ctx context.Context) error {
				c, err := hl7v2.NewClient(hl7v2.ClientOptions{Addr: d.Address, DialTimeout: timeout})
				if err != nil {
					return err
				}
				defer c.Close()
				return c.Connect(ctx)
			})
		}
	}
	if cfg.NATS.URL != "" {
		probe("connect nats "+cfg.NATS.URL, func(context.Context) error {
			c, err := broker.Connect(cfg.NATS.URL, cfg.NATS.CredentialsFile, logger)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	return failed
}
