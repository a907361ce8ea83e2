package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/scoring"
)

// evalBatch is how many files `radgate eval` decodes at once and hands to
// each engine in one Score call; it bounds memory to that many images.
const evalBatch = 32

// maxListedFailures caps the failed files named on stderr.
const maxListedFailures = 20

type evalOptions struct {
	labels    string
	jsonOut   bool
	engines   []string
	plotsDir  string
	modelsDir string
	lib       string
	verdicts  verdictOptions
}

func init() { rootCmd.AddCommand(newEvalCmd()) }

// newEvalCmd builds the eval command; tests build a fresh one per run, so
// no flag value leaks from one run into the next.
func newEvalCmd() *cobra.Command {
	o := evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval --labels labels.csv [flags] DIR | eval --from-verdicts --facility F [flags]",
		Short: "Evaluate engines on a labelled set of DICOM files (AUC, sensitivity, calibration)",
		Long: `Score every file listed in a labels CSV with one or more engines and report
how well the probabilities separate and describe the labels.

The labels file has a header row with at least the columns "file" (a path
relative to DIR) and "label" (1 = positive, 0 = negative); other columns are
ignored. Files are decoded once, ` + strconv.Itoa(evalBatch) + ` at a time, and scored by each
engine in one batch.

For each engine: the AUC (Mann-Whitney, ties counted half) with its 95 %
confidence interval (DeLong's variance, AUC ± 1.96 SE, clipped to [0, 1]);
sensitivity and specificity at 0.5 and at the engine's tier cut-offs (a case
is called positive when its probability is ≥ the cut-off); the tier × label
table; the expected calibration error (10 equal-width probability bins).
With several engines (--engine repeated), the AUCs of each pair are compared
on the cases both scored with DeLong's test for correlated ROC curves: the
difference (first engine minus second), its 95 % interval, z and the
two-sided p-value.

--json prints one object per engine per line with the keys engine, n, auc,
auc_ci, sensitivity, specificity (at 0.5), at_cutoffs, ece, tiers; then, with
two engines or more, one object per pair with the key comparison.

--plots DIR writes roc.png (every engine's ROC curve) and, per engine,
reliability-<engine>.png.

A progress bar is drawn on stderr when stderr is a terminal.

Exit status: 0 when every listed file was scored by every engine; 1 when some
could not be (missing, undecodable: each is named on stderr, the figures
cover the rest); 2 on bad input (labels file, engine, ONNX Runtime) or when
no file could be scored.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.verdicts.from {
				return runEvalVerdicts(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if o.labels == "" {
				return &exitError{code: 2, err: fmt.Errorf(`required flag(s) "labels" not set (or --from-verdicts --facility F)`)}
			}
			if len(args) != 1 {
				return &exitError{code: 2, err: fmt.Errorf("eval --labels needs one DIR, the labelled set's directory")}
			}
			return runEval(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.labels, "labels", "", "labels CSV (header with file and label columns; label 1 = positive)")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object per engine (then the comparisons)")
	f.StringArrayVar(&o.engines, "engine", nil, "engine id (repeatable; default "+inference.DefaultEngineID+")")
	f.StringVar(&o.plotsDir, "plots", "", "directory for ROC and reliability PNGs")
	f.StringVar(&o.modelsDir, "models", "models", "models directory")
	f.StringVar(&o.lib, "onnxruntime-lib", "", "ONNX Runtime shared library (default: $RADGATE_ONNXRUNTIME_LIB, then the set-up script's path)")
	addVerdictFlags(cmd, &o)
	return cmd
}

func runEval(ctx context.Context, o evalOptions, dir string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cases, err := evaluation.ReadLabels(o.labels)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return &exitError{code: 2, err: fmt.Errorf("%s is not a directory", dir)}
	}
	ids := o.engines
	if len(ids) == 0 {
		ids = []string{inference.DefaultEngineID}
	}
	engines, warning, err := scoring.OpenEngines(o.modelsDir, ids, o.lib, evalBatch)
	if warning != nil {
		fmt.Fprintf(stderr, "radgate: warning: other engines in %s did not load:\n%v\n", o.modelsDir, warning)
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	for _, e := range engines {
		defer e.Close()
	}

	start := time.Now()
	files := make([]string, len(cases))
	for i, c := range cases {
		files[i] = c.File
	}
	bar := newProgress(stderr, len(cases)*len(engines))
	probs, failures, err := scoring.Labelled(ctx, engines, dir, files, evalBatch, bar.add)
	bar.finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	for _, p := range probs {
		if p.Outside > 0 {
			fmt.Fprintf(stderr, "radgate: warning: engine %s: %d of %d images are outside its intended use, scored anyway (serve would not); first: %s\n",
				p.Manifest.ID, p.Outside, len(cases), p.FirstOutside)
		}
	}

	scores := make([]evaluation.Scores, len(probs))
	for i, p := range probs {
		t := p.Manifest.Thresholds
		scores[i] = evaluation.Scores{Name: p.Manifest.ID, Prob: p.Prob, Scored: p.Scored,
			Options: evaluation.Options{TierMid: t.TierMid, TierHigh: t.TierHigh, Cutoffs: []float64{t.Mark}}}
	}
	sum, err := evaluation.Summarize(cases, scores)
	if err != nil {
		if len(failures) > 0 {
			reportFailures(stderr, failures, len(cases))
		}
		return &exitError{code: 2, err: err}
	}
	if o.jsonOut {
		err = sum.WriteJSON(stdout)
	} else {
		err = sum.WriteTable(stdout, dir)
	}
	if err != nil {
		return err
	}
	if o.plotsDir != "" {
		written, err := sum.WritePlots(o.plotsDir)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("writing plots: %w", err)}
		}
		fmt.Fprintf(stderr, "radgate: plots written: %s\n", strings.Join(written, ", "))
	}
	fmt.Fprintf(stderr, "radgate: %d file(s) × %d engine(s) in %.1f s\n", len(cases), len(engines), elapsed.Seconds())
	if len(failures) > 0 {
		n := reportFailures(stderr, failures, len(cases))
		return &exitError{code: 1, err: fmt.Errorf("%d of %d file(s) could not be scored; the figures cover the rest", n, len(cases))}
	}
	return nil
}

// reportFailures names the failed files on stderr (at most
// maxListedFailures) and returns how many distinct files failed.
func reportFailures(w io.Writer, failures []scoring.Failure, total int) int {
	files := map[string]bool{}
	for _, f := range failures {
		files[f.File] = true
	}
	fmt.Fprintf(w, "radgate: %d of %d file(s) could not be scored:\n", len(files), total)
	for i, f := range failures {
		if i == maxListedFailures {
			fmt.Fprintf(w, "  … and %d more\n", len(failures)-i)
			break
		}
		if f.Engine != "" {
			fmt.Fprintf(w, "  %s (engine %s): %v\n", f.File, f.Engine, f.Err)
		} else {
			fmt.Fprintf(w, "  %s: %v\n", f.File, f.Err)
		}
	}
	return len(files)
}
