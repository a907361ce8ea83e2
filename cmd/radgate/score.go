package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/scoring"
)

// scoreBatch is how many files `radgate score` decodes and scores together
// (one ONNX Runtime run); it bounds memory to that many decoded images.
const scoreBatch = 16

type scoreOptions struct {
	jsonOut    bool
	engineID   string
	modelsDir  string
	heatmapDir string
	lib        string
}

func init() { rootCmd.AddCommand(newScoreCmd()) }

// newScoreCmd builds the score command; tests build a fresh one per run.
func newScoreCmd() *cobra.Command {
	o := scoreOptions{}
	cmd := &cobra.Command{
		Use:   "score [flags] FILE|DIR...",
		Short: "Score DICOM files with an engine (no config, no server needed)",
		Long: `Score DICOM files with one engine and print one result per file.

Directories are walked; in them, files that are not DICOM Part 10 (no "DICM"
marker) and hidden files are skipped. A file named on the command line is
always scored or reported as failed.

For each file: the SOP Instance UID, the probability, the confidence in
percent, the tier (Low/Mid/High, from the unrounded probability and the
engine's thresholds), whether the region of interest is marked, and — when
marked and --heatmaps DIR is given — a heatmap PNG written to DIR as
<SOP Instance UID>.png (without --heatmaps no heatmap is drawn: heatmap is
null). A file outside the engine's declared modalities or body parts is
still scored, with a warning.

--json prints one object per line with the keys file, engine,
sop_instance_uid, probability, confidence_percent, tier, marked, heatmap,
warning, error (null when absent; when error is set the score fields are
null).

The ONNX Runtime library is looked up from --onnxruntime-lib, then
$RADGATE_ONNXRUNTIME_LIB, then .tools/onnxruntime/lib/libonnxruntime.so.

Exit status: 0 when every file was scored, 1 when any file failed (after
scoring the rest), 2 when the engine could not be loaded.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScore(cmd.Context(), o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object per file")
	f.StringVar(&o.engineID, "engine", inference.DefaultEngineID, "engine id (a directory under --models)")
	f.StringVar(&o.modelsDir, "models", "models", "models directory")
	f.StringVar(&o.heatmapDir, "heatmaps", "", "write a heatmap PNG of each marked result into this directory (default: none)")
	f.StringVar(&o.lib, "onnxruntime-lib", "", "ONNX Runtime shared library (default: $RADGATE_ONNXRUNTIME_LIB, then the set-up script's path)")
	return cmd
}

func runScore(ctx context.Context, o scoreOptions, args []string, stdout, stderr io.Writer) error {
	inputs, skipped, err := scoring.Inputs(args)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "radgate: skipped %d non-DICOM or hidden file(s) in the directories given\n", skipped)
	}
	engines, warning, err := scoring.OpenEngines(o.modelsDir, []string{o.engineID}, o.lib, 0)
	if warning != nil {
		fmt.Fprintf(stderr, "radgate: warning: other engines in %s did not load:\n%v\n", o.modelsDir, warning)
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	eng := engines[0]
	defer eng.Close()

	out := &scoring.Printer{W: stdout, JSON: o.jsonOut}
	for start := 0; start < len(inputs); start += scoreBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := inputs[start:min(start+scoreBatch, len(inputs))]
		for _, line := range scoring.Files(ctx, eng, batch, o.heatmapDir) {
			if err := out.Print(line); err != nil {
				return err
			}
		}
	}
	if err := out.Summary(eng.Manifest()); err != nil {
		return err
	}
	if out.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d file(s) failed", out.Failed, out.Total)}
	}
	return nil
}
