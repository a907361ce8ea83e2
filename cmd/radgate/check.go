package main

import (
	"fmt"
	"time"

	"github.com/radgate/radgate/service"
	"github.com/spf13/cobra"
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
			cfg, err := service.LoadConfig(configPath, nil)
			if err != nil {
				return err
			}
			failed := service.Check(cmd.Context(), cfg, service.CheckOptions{Connect: connect, Timeout: timeout}, cmd.OutOrStdout())
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
