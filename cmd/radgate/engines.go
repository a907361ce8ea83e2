package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/inference"
)

// engineEntry is one line of `radgate engines --json`.
type engineEntry struct {
	ID          string                  `json:"id"`
	Name        string                  `json:"name"`
	Version     string                  `json:"version"`
	Modalities  []string                `json:"modalities"`
	BodyParts   []string                `json:"body_parts"`
	Finding     inference.Coding        `json:"finding"`
	Thresholds  inference.Thresholds    `json:"thresholds"`
	Preprocess  inference.Preprocessing `json:"preprocessing"`
	Validation  *inference.SplitMetrics `json:"validation,omitempty"`
	Test        *inference.SplitMetrics `json:"test,omitempty"`
	IntendedUse string                  `json:"intended_use"`
	Default     bool                    `json:"default"`
}

func init() {
	var modelsDir string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "engines",
		Short: "List the engines in the models directory with their manifest metadata and measured metrics",
		Long: `List every engine radgate finds in the models directory (one folder per
engine with model.onnx and model.yaml): id, version, what it is declared for
(modalities × body parts, the finding), its thresholds and preprocessing, and
the metrics measured on labelled cases before use. No ONNX session is opened.
A manifest that does not load is reported with file:line:col and the exit
status is 1.

radgate engines state | activate | suspend | shadow ask the running radgate
serve (--server) for each engine's mode on a route at a facility: a route
with acceptance minimums keeps its engines in shadow until activate finds
the facility's labelled cases meet them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listEngines(modelsDir, jsonOut, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&modelsDir, "models", "models", "models directory")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "one JSON object per engine per line")
	cmd.AddCommand(engineStateCmds()...)
	rootCmd.AddCommand(cmd)
}

func listEngines(modelsDir string, jsonOut bool, out io.Writer) error {
	reg, loadErr := inference.LoadEngines(modelsDir)
	if reg == nil {
		return &exitError{code: 2, err: loadErr}
	}
	var entries []engineEntry
	for _, m := range reg.Manifests() {
		entries = append(entries, engineEntry{ID: m.ID, Name: m.Name, Version: m.Version, Modalities: m.Modalities,
			BodyParts: m.BodyParts, Finding: m.Finding, Thresholds: m.Thresholds, Preprocess: m.Preprocessing,
			Validation: m.Metrics.Validation, Test: m.Metrics.Test, IntendedUse: m.IntendedUse,
			Default: m.ID == inference.DefaultEngineID})
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENGINE\tVERSION\tFOR\tFINDING\tTIERS (Mid/High)\tMARK\tVALIDATION AUC\tTEST AUC")
		for _, e := range entries {
			id := e.ID
			if e.Default {
				id += " (default)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s × %s\t%s %s\t%.2f/%.2f\t%.2f\t%s\t%s\n", id, e.Version,
				strings.Join(e.Modalities, ","), strings.Join(e.BodyParts, ","), e.Finding.Code, e.Finding.Display,
				e.Thresholds.TierMid, e.Thresholds.TierHigh, e.Thresholds.Mark, auc(e.Validation), auc(e.Test))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if loadErr != nil {
		return &exitError{code: 1, err: loadErr}
	}
	return nil
}

func auc(s *inference.SplitMetrics) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f (n=%d, %s)", s.AUC, s.N, s.Dataset)
}
