package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/governance"
)

// newMonitorCmd is `radgate monitor`: like `radgate engines state` it asks
// the running radgate serve over its HTTP intake (GET /engines/monitor),
// which authenticates the caller (any role may read).
func newMonitorCmd() *cobra.Command {
	var server, tokenEnv, out string
	var q governance.MonitorQuery
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "monitor --facility F --engine E [--days N] [--json] [--out DIR]",
		Short: "Live performance and drift of an engine at a facility: agreement, AUC, tiers, calibration, PSI against the reference, input mix, per day",
		Long: `monitor prints an engine's live figures at one facility over the last --days days, from
the results and radiologists' verdicts radgate serve recorded: agreement with the labels,
AUC (DeLong 95 % CI), sensitivity and specificity at each tier, calibration (ECE), the tier
mix, the score histogram and its PSI against the manifest's reference distribution, the
input mix (modality, manufacturer, age band) and a daily series. --out writes the plots
(score histogram vs reference, agreement over time, ROC, reliability) as PNG.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := governance.Client{URL: server, Token: os.Getenv(tokenEnv)}.Monitor(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(m); err != nil {
					return err
				}
			} else if err := governance.WriteMonitor(cmd.OutOrStdout(), m); err != nil {
				return err
			}
			if out == "" {
				return nil
			}
			paths, err := governance.WriteMonitorPlots(out, m)
			for _, p := range paths {
				fmt.Fprintln(cmd.ErrOrStderr(), "wrote", p)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "the running radgate serve's HTTP intake")
	cmd.Flags().StringVar(&tokenEnv, "token-env", "RADGATE_TOKEN", "environment variable holding the bearer token (viewer role or above)")
	cmd.Flags().StringVar(&q.Facility, "facility", "", "facility id (as radgate.yaml facilities names it) or name")
	cmd.Flags().StringVar(&q.Engine, "engine", "", "engine id")
	cmd.Flags().StringVar(&q.Version, "version", "", "model version (default: the one loaded now)")
	cmd.Flags().IntVar(&q.Days, "days", 7, "window: the last N calendar days (UTC)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the plots (PNG) into")
	_ = cmd.MarkFlagRequired("facility")
	_ = cmd.MarkFlagRequired("engine")
	return cmd
}

func init() { rootCmd.AddCommand(newMonitorCmd()) }
