package evaluation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Scores are one scorer's probabilities on a labelled set.
type Scores struct {
	// Name names the scorer (the engine id) in the output.
	Name string
	// Prob[i] is case i's probability, valid where Scored[i]: a case the
	// scorer could not score is left out of its figures.
	Prob   []float64
	Scored []bool
	// Options are the scorer's tier cut-offs and extra cut-offs.
	Options Options
}

// PairComparison is DeLong's paired test of the scorers IndexA and IndexB
// of a Summary, on the cases both scored; the difference is A − B.
type PairComparison struct {
	IndexA, IndexB int
	Comparison
}

// Summary is everything `radgate eval` prints: per scorer the Report on
// the cases it scored, and for every two scorers their paired comparison.
type Summary struct {
	Cases       []Case
	Names       []string
	Reports     []*Report
	Comparisons []PairComparison
}

// Summarize evaluates each scorer on the cases it scored (Evaluate) and
// compares every pair of scorers, in the order given, on the cases both
// scored (CompareAUC). Errors name the scorer: one that scored no case, or
// too few of either label.
func Summarize(cases []Case, scores []Scores) (*Summary, error) {
	s := &Summary{Cases: cases}
	for _, sc := range scores {
		var p []float64
		var l []bool
		for i, c := range cases {
			if sc.Scored[i] {
				p, l = append(p, sc.Prob[i]), append(l, c.Positive)
			}
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("engine %s scored none of the %d files", sc.Name, len(cases))
		}
		r, err := Evaluate(p, l, sc.Options)
		if err != nil {
			return nil, fmt.Errorf("engine %s on %d cases: %w", sc.Name, len(p), err)
		}
		s.Names, s.Reports = append(s.Names, sc.Name), append(s.Reports, r)
	}
	for a := range scores {
		for b := a + 1; b < len(scores); b++ {
			var pa, pb []float64
			var l []bool
			for i, c := range cases {
				if scores[a].Scored[i] && scores[b].Scored[i] {
					pa, pb, l = append(pa, scores[a].Prob[i]), append(pb, scores[b].Prob[i]), append(l, c.Positive)
				}
			}
			c, err := CompareAUC(pa, pb, l)
			if err != nil {
				return nil, fmt.Errorf("comparing %s with %s on %d cases: %w", scores[a].Name, scores[b].Name, len(l), err)
			}
			s.Comparisons = append(s.Comparisons, PairComparison{IndexA: a, IndexB: b, Comparison: c})
		}
	}
	return s, nil
}

// scorerLine is one scorer's line of `radgate eval --json`: exactly these
// keys, in this order.
type scorerLine struct {
	Engine      string     `json:"engine"`
	N           int        `json:"n"`
	AUC         float64    `json:"auc"`
	AUCCI       [2]float64 `json:"auc_ci"`
	Sensitivity float64    `json:"sensitivity"`
	Specificity float64    `json:"specificity"`
	AtCutoffs   cutoffs    `json:"at_cutoffs"`
	ECE         float64    `json:"ece"`
	Tiers       TierTable  `json:"tiers"`
}

type sensSpec struct {
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
}

// cutoffs marshal as an object keyed by the cut-off ("0.3", "0.5", "0.65"),
// in ascending order.
type cutoffs []OperatingPoint

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

// WriteJSON writes `radgate eval --json`: one object per scorer per line
// (keys engine, n, auc, auc_ci, sensitivity and specificity at 0.5,
// at_cutoffs, ece, tiers), then one object per pair (key comparison).
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for i, r := range s.Reports {
		half, _ := r.At(0.5)
		if err := enc.Encode(scorerLine{
			Engine: s.Names[i], N: r.N, AUC: r.AUC.AUC, AUCCI: r.AUC.CI,
			Sensitivity: half.Sensitivity, Specificity: half.Specificity,
			AtCutoffs: cutoffs(r.Operating), ECE: r.ECE, Tiers: r.Tiers,
		}); err != nil {
			return err
		}
	}
	for _, c := range s.Comparisons {
		line := comparisonLine{Comparison: comparisonJSON{
			Engines:       [2]string{s.Names[c.IndexA], s.Names[c.IndexB]},
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

// WriteTable writes the scorers side by side, then the comparisons; title
// (the set's directory) heads the case counts.
func (s *Summary) WriteTable(w io.Writer, title string) error {
	pos := 0
	for _, c := range s.Cases {
		if c.Positive {
			pos++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d labelled case(s), %d positive, %d negative\n\n", title, len(s.Cases), pos, len(s.Cases)-pos)

	colW := 14
	for _, n := range s.Names {
		colW = max(colW, len(n)+2)
	}
	const labelW = 32
	row := func(label string, cell func(i int) string) {
		line := fmt.Sprintf("%-*s", labelW, label)
		for i := range s.Reports {
			line += fmt.Sprintf("%-*s", colW, cell(i))
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	reports := s.Reports
	row("", func(i int) string { return s.Names[i] })
	row("cases scored", func(i int) string { return strconv.Itoa(reports[i].N) })
	row("AUC", func(i int) string { return fmt.Sprintf("%.4f", reports[i].AUC.AUC) })
	row("  95% CI (DeLong)", func(i int) string {
		return fmt.Sprintf("%.4f-%.4f", reports[i].AUC.CI[0], reports[i].AUC.CI[1])
	})

	// Every cut-off any scorer has, ascending.
	var cuts []float64
	for _, r := range reports {
		for _, op := range r.Operating {
			if !slices.Contains(cuts, op.Cutoff) {
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

	if len(s.Comparisons) > 0 {
		b.WriteString("\nPaired comparison of AUCs (DeLong's test for correlated ROC curves):\n")
		for _, c := range s.Comparisons {
			z := fmt.Sprintf("%.2f", c.Z)
			fmt.Fprintf(&b, "  %s − %s, %d cases scored by both:\n    difference %+.4f (95%% CI %+.4f to %+.4f), z = %s, p = %s\n",
				s.Names[c.IndexA], s.Names[c.IndexB], c.N, c.Difference, c.CI[0], c.CI[1], z, formatP(c.P))
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

// WritePlots writes into dir (made when missing) roc.png, every scorer's
// ROC curve, and per scorer reliability-<name>.png; it returns the paths
// written.
func (s *Summary) WritePlots(dir string) ([]string, error) {
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
	var curves []Curve
	for i, r := range s.Reports {
		curves = append(curves, r.Curve(s.Names[i]))
	}
	r0 := s.Reports[0]
	title := fmt.Sprintf("ROC, %d cases (%d positive, %d negative)", r0.N, r0.Positives, r0.Negatives)
	if err := write("roc.png", func(w io.Writer) error { return PlotROC(w, title, curves) }); err != nil {
		return nil, err
	}
	for i, r := range s.Reports {
		title := fmt.Sprintf("%s: ECE %.3f", s.Names[i], r.ECE)
		if err := write("reliability-"+s.Names[i]+".png", func(w io.Writer) error {
			return PlotReliability(w, title, r.Calibration)
		}); err != nil {
			return nil, err
		}
	}
	return files, nil
}
