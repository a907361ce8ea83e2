package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/billing"
)

func init() {
	var configPath, month, facility string
	var csvOut, jsonOut bool
	cmd := &cobra.Command{
		Use:   "usage --month YYYY-MM [--facility F] [--csv|--json]",
		Short: "Analyses per facility and engine for a month (per-case billing)",
		Long: `Print how many analyses radgate ran in a month, per facility and engine:
the per-case part of the monthly bill. An analysis is a scored result, counted
once per order × engine × model version when it is scored (redeliveries and
replays are not counted again). Studies that no engine may score and orders
that failed are not counted. Counts live in the JetStream KV bucket
radgate_usage of the NATS server radgate serve uses (nats.url, or the
embedded server at nats.embedded_listen, with the credential serve keeps in
data_dir/nats), so radgate serve must be running when it is embedded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if month == "" {
				month = time.Now().UTC().Format("2006-01")
			}
			js, closeFn, err := connectJetStream(configPath, "radgate-usage")
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			u, err := billing.OpenUsageMeter(ctx, js)
			if err != nil {
				return err
			}
			rows, err := u.Month(ctx, month)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			rows = billing.OfFacility(rows, facility)
			format := billing.UsageTable
			switch {
			case csvOut:
				format = billing.UsageCSV
			case jsonOut:
				format = billing.UsageJSON
			}
			return billing.WriteUsage(cmd.OutOrStdout(), month, rows, format)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().StringVar(&month, "month", "", "month as YYYY-MM (default: the current month, UTC)")
	cmd.Flags().StringVar(&facility, "facility", "", "only this facility's rows")
	cmd.Flags().BoolVar(&csvOut, "csv", false, "CSV: month,facility,engine,analyses")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "one JSON object per facility × engine")
	cmd.MarkFlagsMutuallyExclusive("csv", "json")
	rootCmd.AddCommand(cmd)
}
