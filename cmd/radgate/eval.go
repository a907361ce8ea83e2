package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/inference"
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
}

func init() { rootCmd.AddCommand(newEvalCmd()) }

// newEvalCmd builds the eval command; tests build a fresh one per run, so
// no flag value leaks from one run into the next.
func newEvalCmd() *cobra.Command {
	o := evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval --labels labels.csv [flags] DIR",
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
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	_ = cmd.MarkFlagRequired("labels")
	return cmd
}

// labelledCase is one row of the labels file.
type labelledCase struct {
	file     string
	positive bool
}

// readLabels reads the labels CSV: a header naming "file" and "label"
// (in any position, other columns ignored), then one row per case.
func readLabels(path string) ([]labelledCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading labels: %w", err)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", path, err)
	}
	fileCol, labelCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "file":
			fileCol = i
		case "label":
			labelCol = i
		}
	}
	if fileCol < 0 || labelCol < 0 {
		return nil, fmt.Errorf("%s:1: the header must name the columns file and label (got %s)", path, strings.Join(header, ","))
	}
	var cases []labelledCase
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if max(fileCol, labelCol) >= len(rec) {
			return nil, fmt.Errorf("%s:%d: %d columns, the header has %d", path, line, len(rec), len(header))
		}
		file := strings.TrimSpace(rec[fileCol])
		if file == "" || !filepath.IsLocal(file) {
			return nil, fmt.Errorf("%s:%d: file %q must be a relative path inside the directory", path, line, file)
		}
		if first, dup := seen[file]; dup {
			return nil, fmt.Errorf("%s:%d: file %q listed twice (first on line %d)", path, line, file, first)
		}
		seen[file] = line
		var positive bool
		switch l := strings.TrimSpace(rec[labelCol]); l {
		case "1":
			positive = true
		case "0":
		default:
			return nil, fmt.Errorf("%s:%d: label %q: want 1 (positive) or 0 (negative)", path, line, l)
		}
		cases = append(cases, labelledCase{file: file, positive: positive})
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases listed", path)
	}
	return cases, nil
}

// evalFailure is a file that one engine (or every engine: engine "") could
// not score.
type evalFailure struct {
	file   string
	engine string
	err    error
}

// engineScores are one engine's probabilities per case.
type engineScores struct {
	m      *inference.Manifest
	prob   []float64
	scored []bool
	// outside counts the images outside the engine's accepts rules (scored
	// anyway); firstOutside says why for the first of them.
	outside      int
	firstOutside string
}

func runEval(ctx context.Context, o evalOptions, dir string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cases, err := readLabels(o.labels)
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
	for i, id := range ids {
		for _, prev := range ids[:i] {
			if id == prev {
				return &exitError{code: 2, err: fmt.Errorf("engine %q given twice", id)}
			}
		}
	}

	reg, regErr := inference.LoadEngines(o.modelsDir)
	var manifests []*inference.Manifest
	for _, id := range ids {
		m, err := reg.Get(id)
		if err != nil {
			if regErr != nil {
				err = fmt.Errorf("%w\n%v", err, regErr)
			}
			return &exitError{code: 2, err: err}
		}
		manifests = append(manifests, m)
	}
	if regErr != nil {
		fmt.Fprintf(stderr, "radgate: warning: other engines in %s did not load:\n%v\n", o.modelsDir, regErr)
	}
	lib, err := inference.FindLibrary(o.lib)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	engines := make([]*inference.Engine, len(manifests))
	for i, m := range manifests {
		eng, err := inference.NewEngine(m, inference.EngineOptions{Library: lib, MaxBatch: evalBatch})
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("engine %s: %w", m.ID, err)}
		}
		defer eng.Close()
		engines[i] = eng
	}

	start := time.Now()
	scores, failures, err := scoreCases(ctx, engines, cases, dir, newProgress(stderr, len(cases)*len(engines)))
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	for _, s := range scores {
		if s.outside > 0 {
			fmt.Fprintf(stderr, "radgate: warning: engine %s: %d of %d images are outside its intended use, scored anyway (serve would not); first: %s\n",
				s.m.ID, s.outside, len(cases), s.firstOutside)
		}
	}

	var reports []*evaluation.Report
	for _, s := range scores {
		p, l := s.collect(cases)
		if len(p) == 0 {
			reportFailures(stderr, failures, len(cases))
			return &exitError{code: 2, err: fmt.Errorf("engine %s scored none of the %d files", s.m.ID, len(cases))}
		}
		r, err := evaluation.Evaluate(p, l, evaluation.Options{
			TierMid:  s.m.Thresholds.TierMid,
			TierHigh: s.m.Thresholds.TierHigh,
			Cutoffs:  []float64{s.m.Thresholds.Mark},
		})
		if err != nil {
			if len(failures) > 0 {
				reportFailures(stderr, failures, len(cases))
			}
			return &exitError{code: 2, err: fmt.Errorf("engine %s on %d cases: %w", s.m.ID, len(p), err)}
		}
		reports = append(reports, r)
	}
	comparisons, err := compareEngines(scores, cases)
	if err != nil {
		return &exitError{code: 2, err: err}
	}

	if o.jsonOut {
		err = printEvalJSON(stdout, scores, reports, comparisons)
	} else {
		err = printEvalTable(stdout, dir, cases, scores, reports, comparisons)
	}
	if err != nil {
		return err
	}
	if o.plotsDir != "" {
		files, err := writeEvalPlots(o.plotsDir, scores, reports)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("writing plots: %w", err)}
		}
		fmt.Fprintf(stderr, "radgate: plots written: %s\n", strings.Join(files, ", "))
	}
	fmt.Fprintf(stderr, "radgate: %d file(s) × %d engine(s) in %.1f s\n", len(cases), len(engines), elapsed.Seconds())
	if len(failures) > 0 {
		n := reportFailures(stderr, failures, len(cases))
		return &exitError{code: 1, err: fmt.Errorf("%d of %d file(s) could not be scored; the figures cover the rest", n, len(cases))}
	}
	return nil
}

// scoreCases decodes the listed files evalBatch at a time and scores each
// batch with every engine. A file that is missing or does not decode is a
// failure for all engines; one an engine cannot preprocess or run, a failure
// for that engine.
func scoreCases(ctx context.Context, engines []*inference.Engine, cases []labelledCase, dir string, bar *progress) ([]*engineScores, []evalFailure, error) {
	scores := make([]*engineScores, len(engines))
	for i, e := range engines {
		scores[i] = &engineScores{m: e.Manifest(), prob: make([]float64, len(cases)), scored: make([]bool, len(cases))}
	}
	var failures []evalFailure
	defer bar.finish()
	for start := 0; start < len(cases); start += evalBatch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		end := min(start+evalBatch, len(cases))
		var imgs []*inference.Image
		var idx []int
		for i := start; i < end; i++ {
			img, err := inference.DecodeFile(filepath.Join(dir, cases[i].file))
			if err != nil {
				failures = append(failures, evalFailure{file: cases[i].file, err: err})
				continue
			}
			imgs = append(imgs, img)
			idx = append(idx, i)
		}
		for k, eng := range engines {
			for _, img := range imgs {
				if err := eng.Accepts(img); err != nil {
					if scores[k].outside++; scores[k].outside == 1 {
						scores[k].firstOutside = err.Error()
					}
				}
			}
			if err := scoreEvalBatch(ctx, eng, imgs, idx, scores[k], cases, &failures); err != nil {
				return nil, nil, err
			}
			bar.add(end - start)
		}
	}
	return scores, failures, nil
}

// scoreEvalBatch scores imgs (the cases idx) with one engine into s. One image
// that cannot be preprocessed fails its whole batch, so then the images are
// scored one by one, to name the bad one and keep the rest. Only a cancelled
// ctx is returned as an error.
func scoreEvalBatch(ctx context.Context, eng *inference.Engine, imgs []*inference.Image, idx []int, s *engineScores, cases []labelledCase, failures *[]evalFailure) error {
	results, err := eng.Score(ctx, imgs)
	if err == nil {
		for j, r := range results {
			s.prob[idx[j]], s.scored[idx[j]] = r.Probability, true
		}
		return nil
	}
	for j, img := range imgs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := eng.Score(ctx, []*inference.Image{img})
		if err != nil {
			*failures = append(*failures, evalFailure{file: cases[idx[j]].file, engine: s.m.ID, err: err})
			continue
		}
		s.prob[idx[j]], s.scored[idx[j]] = r[0].Probability, true
	}
	return ctx.Err()
}

// collect returns the engine's probabilities and labels of the cases it scored.
func (s *engineScores) collect(cases []labelledCase) ([]float64, []bool) {
	var p []float64
	var l []bool
	for i, c := range cases {
		if s.scored[i] {
			p = append(p, s.prob[i])
			l = append(l, c.positive)
		}
	}
	return p, l
}

// engineComparison is the paired test of engines a and b (indexes).
type engineComparison struct {
	a, b int
	evaluation.Comparison
}

// compareEngines runs DeLong's paired test for every pair of engines, on the
// cases both scored.
func compareEngines(scores []*engineScores, cases []labelledCase) ([]engineComparison, error) {
	var out []engineComparison
	for a := range scores {
		for b := a + 1; b < len(scores); b++ {
			var pa, pb []float64
			var l []bool
			for i, c := range cases {
				if scores[a].scored[i] && scores[b].scored[i] {
					pa = append(pa, scores[a].prob[i])
					pb = append(pb, scores[b].prob[i])
					l = append(l, c.positive)
				}
			}
			c, err := evaluation.CompareAUC(pa, pb, l)
			if err != nil {
				return nil, fmt.Errorf("comparing %s with %s on %d cases: %w", scores[a].m.ID, scores[b].m.ID, len(l), err)
			}
			out = append(out, engineComparison{a: a, b: b, Comparison: c})
		}
	}
	return out, nil
}

// reportFailures names the failed files on stderr (at most
// maxListedFailures) and returns how many distinct files failed.
func reportFailures(w io.Writer, failures []evalFailure, total int) int {
	files := map[string]bool{}
	for _, f := range failures {
		files[f.file] = true
	}
	fmt.Fprintf(w, "radgate: %d of %d file(s) could not be scored:\n", len(files), total)
	for i, f := range failures {
		if i == maxListedFailures {
			fmt.Fprintf(w, "  … and %d more\n", len(failures)-i)
			break
		}
		if f.engine != "" {
			fmt.Fprintf(w, "  %s (engine %s): %v\n", f.file, f.engine, f.err)
		} else {
			fmt.Fprintf(w, "  %s: %v\n", f.file, f.err)
		}
	}
	return len(files)
}

// evalLine is one engine's line of `radgate eval --json`: exactly these
// keys, in this order (DESIGN.md).
type evalLine struct {
	Engine      string               `json:"engine"`
	N           int                  `json:"n"`
	AUC         float64              `json:"auc"`
	AUCCI       [2]float64           `json:"auc_ci"`
	Sensitivity float64              `json:"sensitivity"`
	Specificity float64              `json:"specificity"`
	AtCutoffs   cutoffs              `json:"at_cutoffs"`
	ECE         float64              `json:"ece"`
	Tiers       evaluation.TierTable `json:"tiers"`
}

type sensSpec struct {
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
}

// cutoffs marshal as an object keyed by the cut-off ("0.3", "0.5", "0.65"),
// in ascending order.
type cutoffs []evaluation.OperatingPoint

func (c cutoffs) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, op := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(cutoffKey(op.Cutoff))
		v, err := json.Marshal(sensSpec{op.Sensitivity, op.Specificity})
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func cutoffKey(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// comparisonLine is the line of a paired comparison.
type comparisonLine struct {
	Comparison comparisonJSON `json:"comparison"`
}

type comparisonJSON struct {
	// Engines are A and B; the difference is AUC(A) − AUC(B).
	Engines       [2]string  `json:"engines"`
	N             int        `json:"n"`
	Method        string     `json:"method"`
	AUC           [2]float64 `json:"auc"`
	AUCDifference float64    `json:"auc_difference"`
	CI            [2]float64 `json:"ci"`
	// Z is null when the difference's standard error is 0.
	Z      *float64 `json:"z"`
	PValue float64  `json:"p_value"`
}

func printEvalJSON(w io.Writer, scores []*engineScores, reports []*evaluation.Report, comps []engineComparison) error {
	enc := json.NewEncoder(w)
	for i, r := range reports {
		half, _ := r.At(0.5)
		if err := enc.Encode(evalLine{
			Engine:      scores[i].m.ID,
			N:           r.N,
			AUC:         r.AUC.AUC,
			AUCCI:       r.AUC.CI,
			Sensitivity: half.Sensitivity,
			Specificity: half.Specificity,
			AtCutoffs:   cutoffs(r.Operating),
			ECE:         r.ECE,
			Tiers:       r.Tiers,
		}); err != nil {
			return err
		}
	}
	for _, c := range comps {
		line := comparisonLine{Comparison: comparisonJSON{
			Engines:       [2]string{scores[c.a].m.ID, scores[c.b].m.ID},
			N:             c.N,
			Method:        "DeLong",
			AUC:           [2]float64{c.A.AUC, c.B.AUC},
			AUCDifference: c.Difference,
			CI:            c.CI,
			PValue:        c.P,
		}}
		if z := c.Z; !math.IsInf(z, 0) {
			line.Comparison.Z = &z
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// printEvalTable prints the engines side by side, then the comparisons.
func printEvalTable(w io.Writer, dir string, cases []labelledCase, scores []*engineScores, reports []*evaluation.Report, comps []engineComparison) error {
	pos := 0
	for _, c := range cases {
		if c.positive {
			pos++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d labelled case(s), %d positive, %d negative\n\n", dir, len(cases), pos, len(cases)-pos)

	colW := 14
	for _, s := range scores {
		colW = max(colW, len(s.m.ID)+2)
	}
	const labelW = 32
	row := func(label string, cell func(i int) string) {
		line := fmt.Sprintf("%-*s", labelW, label)
		for i := range reports {
			line += fmt.Sprintf("%-*s", colW, cell(i))
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row("", func(i int) string { return scores[i].m.ID })
	row("cases scored", func(i int) string { return strconv.Itoa(reports[i].N) })
	row("AUC", func(i int) string { return fmt.Sprintf("%.4f", reports[i].AUC.AUC) })
	row("  95% CI (DeLong)", func(i int) string {
		return fmt.Sprintf("%.4f-%.4f", reports[i].AUC.CI[0], reports[i].AUC.CI[1])
	})

	// Every cut-off any engine has, ascending.
	var cuts []float64
	for _, r := range reports {
		for _, op := range r.Operating {
			found := false
			for _, c := range cuts {
				found = found || c == op.Cutoff
			}
			if !found {
				cuts = append(cuts, op.Cutoff)
			}
		}
	}
	slices.Sort(cuts)
	for _, c := range cuts {
		k := cutoffKey(c)
		row("sensitivity at ≥ "+k, func(i int) string {
			op, ok := reports[i].At(c)
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.3f (%d/%d)", op.Sensitivity, op.TP, op.TP+op.FN)
		})
		row("specificity at ≥ "+k, func(i int) string {
			op, ok := reports[i].At(c)
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.3f (%d/%d)", op.Specificity, op.TN, op.TN+op.FP)
		})
	}
	row(fmt.Sprintf("ECE (%d bins)", len(reports[0].Calibration)), func(i int) string { return fmt.Sprintf("%.4f", reports[i].ECE) })
	row("tiers, negative: Low/Mid/High", func(i int) string {
		t := reports[i].Tiers
		return fmt.Sprintf("%d / %d / %d", t.Low.Negative, t.Mid.Negative, t.High.Negative)
	})
	row("tiers, positive: Low/Mid/High", func(i int) string {
		t := reports[i].Tiers
		return fmt.Sprintf("%d / %d / %d", t.Low.Positive, t.Mid.Positive, t.High.Positive)
	})
	row("  tier cut-offs", func(i int) string {
		return fmt.Sprintf("%s, %s", cutoffKey(reports[i].TierMid), cutoffKey(reports[i].TierHigh))
	})

	if len(comps) > 0 {
		b.WriteString("\nPaired comparison of AUCs (DeLong's test for correlated ROC curves):\n")
		for _, c := range comps {
			z := fmt.Sprintf("%.2f", c.Z)
			fmt.Fprintf(&b, "  %s − %s, %d cases scored by both:\n    difference %+.4f (95%% CI %+.4f to %+.4f), z = %s, p = %s\n",
				scores[c.a].m.ID, scores[c.b].m.ID, c.N, c.Difference, c.CI[0], c.CI[1], z, formatP(c.P))
		}
	}
	b.WriteString("\nA case counts as positive at a cut-off when its probability is ≥ the cut-off.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func formatP(p float64) string {
	if p < 0.0001 {
		return "< 0.0001"
	}
	return fmt.Sprintf("%.4f", p)
}

// writeEvalPlots writes roc.png and reliability-<engine>.png into dir.
func writeEvalPlots(dir string, scores []*engineScores, reports []*evaluation.Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	write := func(name string, plot func(io.Writer) error) error {
		var b bytes.Buffer
		if err := plot(&b); err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
		files = append(files, p)
		return nil
	}
	var curves []evaluation.Curve
	for i, r := range reports {
		curves = append(curves, r.Curve(scores[i].m.ID))
	}
	r0 := reports[0]
	title := fmt.Sprintf("ROC, %d cases (%d positive, %d negative)", r0.N, r0.Positives, r0.Negatives)
	if err := write("roc.png", func(w io.Writer) error { return evaluation.PlotROC(w, title, curves) }); err != nil {
		return nil, err
	}
	for i, r := range reports {
		id := scores[i].m.ID
		title := fmt.Sprintf("%s: ECE %.3f", id, r.ECE)
		if err := write("reliability-"+id+".png", func(w io.Writer) error {
			return evaluation.PlotReliability(w, title, r.Calibration)
		}); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// progress draws a bar on stderr when it is a terminal; otherwise it is a
// no-op.
type progress struct {
	w           io.Writer
	total, done int
	start       time.Time
}

func newProgress(stderr io.Writer, total int) *progress {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	p := &progress{w: f, total: total, start: time.Now()}
	p.draw()
	return p
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.done = min(p.done+n, p.total)
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	frac := float64(p.done) / float64(max(p.total, 1))
	fill := int(frac * width)
	eta := ""
	if el := time.Since(p.start); p.done > 0 && p.done < p.total {
		rest := time.Duration(float64(el) / frac * (1 - frac)).Round(time.Second)
		eta = " ETA " + rest.String()
	}
	fmt.Fprintf(p.w, "\r\x1b[Kscoring [%s%s] %d/%d%s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.done, p.total, eta)
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
}
