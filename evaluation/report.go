package evaluation

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// OperatingPoint is the confusion matrix at one cut-off: a case is called
// positive when its score is ≥ Cutoff.
type OperatingPoint struct {
	Cutoff         float64
	TP, FN, TN, FP int
	// Sensitivity is TP/(TP+FN), 0 when there are no positives.
	Sensitivity float64
	// Specificity is TN/(TN+FP), 0 when there are no negatives.
	Specificity float64
}

// At returns the operating point at cutoff. Inputs are assumed valid (same
// lengths).
func At(scores []float64, labels []bool, cutoff float64) OperatingPoint {
	op := OperatingPoint{Cutoff: cutoff}
	for i, s := range scores {
		switch called := s >= cutoff; {
		case labels[i] && called:
			op.TP++
		case labels[i]:
			op.FN++
		case called:
			op.FP++
		default:
			op.TN++
		}
	}
	op.Sensitivity = ratio(op.TP, op.TP+op.FN)
	op.Specificity = ratio(op.TN, op.TN+op.FP)
	return op
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// TierCounts counts the cases of one tier by label.
type TierCounts struct {
	Negative int `json:"negative"`
	Positive int `json:"positive"`
}

// TierTable is the tier × label table. Its JSON is {"Low": {"negative": n,
// "positive": n}, "Mid": …, "High": …}.
type TierTable struct {
	Low  TierCounts `json:"Low"`
	Mid  TierCounts `json:"Mid"`
	High TierCounts `json:"High"`
}

// Tiers counts the cases per tier (Low < mid ≤ Mid < high ≤ High) and label.
func Tiers(scores []float64, labels []bool, mid, high float64) TierTable {
	var t TierTable
	for i, s := range scores {
		c := &t.Low
		switch {
		case s >= high:
			c = &t.High
		case s >= mid:
			c = &t.Mid
		}
		if labels[i] {
			c.Positive++
		} else {
			c.Negative++
		}
	}
	return t
}

// Bin is one equal-width bin of a reliability diagram.
type Bin struct {
	// Low and High bound the bin: [Low, High), the last bin [Low, 1].
	Low, High float64
	// N counts the cases in the bin, Positives its positive ones.
	N, Positives int
	// MeanProbability is the mean score of the bin's cases (0 when empty).
	MeanProbability float64
	// ObservedRate is Positives/N (0 when empty).
	ObservedRate float64
}

// Calibration bins the scores into bins equal-width bins over [0, 1] (scores
// outside are counted in the first or last bin) and returns the bins and the
// expected calibration error Σ (N_bin/N)·|MeanProbability − ObservedRate|.
func Calibration(scores []float64, labels []bool, bins int) ([]Bin, float64) {
	if bins < 1 {
		bins = 1
	}
	out := make([]Bin, bins)
	sums := make([]float64, bins)
	for b := range out {
		out[b].Low = float64(b) / float64(bins)
		out[b].High = float64(b+1) / float64(bins)
	}
	for i, s := range scores {
		b := min(max(int(math.Floor(s*float64(bins))), 0), bins-1)
		out[b].N++
		sums[b] += s
		if labels[i] {
			out[b].Positives++
		}
	}
	var ece float64
	for b := range out {
		if out[b].N == 0 {
			continue
		}
		out[b].MeanProbability = sums[b] / float64(out[b].N)
		out[b].ObservedRate = float64(out[b].Positives) / float64(out[b].N)
		ece += float64(out[b].N) / float64(len(scores)) * math.Abs(out[b].MeanProbability-out[b].ObservedRate)
	}
	return out, ece
}

// ROCPoint is one vertex of the empirical ROC curve: the rates when cases
// scoring ≥ Threshold are called positive.
type ROCPoint struct {
	Threshold float64
	FPR, TPR  float64
}

// ROC returns the empirical ROC curve: (0, 0) at Threshold +Inf, then one
// point per distinct score from the highest down, ending at (1, 1). Tied
// scores move the curve diagonally, so the trapezoidal area under these
// points equals AUC.
func ROC(scores []float64, labels []bool) []ROCPoint {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	var pos, neg int
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	pts := []ROCPoint{{Threshold: math.Inf(1)}}
	var tp, fp int
	for i := 0; i < len(idx); {
		s := scores[idx[i]]
		for ; i < len(idx) && scores[idx[i]] == s; i++ {
			if labels[idx[i]] {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, ROCPoint{Threshold: s, FPR: ratio(fp, neg), TPR: ratio(tp, pos)})
	}
	return pts
}

// Options choose the cut-offs and bins of Evaluate. Zero fields take the
// value from DefaultOptions.
type Options struct {
	// TierMid and TierHigh are the tier cut-offs.
	TierMid, TierHigh float64
	// Cutoffs are extra operating points; 0.5, TierMid and TierHigh are
	// always reported.
	Cutoffs []float64
	// Bins is the number of calibration bins.
	Bins int
}

// DefaultOptions are the reference product's tiers (Low < 0.30 ≤ Mid < 0.65
// ≤ High) and 10 calibration bins.
var DefaultOptions = Options{TierMid: 0.30, TierHigh: 0.65, Bins: 10}

// Report is everything `radgate eval` shows for one scorer.
type Report struct {
	// N, Positives and Negatives count the cases.
	N, Positives, Negatives int
	// AUC is the AUC with its DeLong interval.
	AUC AUCEstimate
	// Operating holds the operating points, by ascending cut-off: 0.5, the
	// tier cut-offs and any extra ones, each once.
	Operating []OperatingPoint
	// ECE is the expected calibration error over Calibration.
	ECE float64
	// Calibration holds the reliability diagram's bins.
	Calibration []Bin
	// Tiers is the tier × label table.
	Tiers TierTable
	// TierMid and TierHigh are the cut-offs Tiers used.
	TierMid, TierHigh float64
	// ROC is the empirical ROC curve.
	ROC []ROCPoint
}

// At returns the operating point at cutoff, if the report has it.
func (r *Report) At(cutoff float64) (OperatingPoint, bool) {
	for _, op := range r.Operating {
		if op.Cutoff == cutoff {
			return op, true
		}
	}
	return OperatingPoint{}, false
}

// Evaluate computes the report of scores (probabilities in 0..1) against
// labels. It needs at least two positive and two negative cases.
func Evaluate(scores []float64, labels []bool, opts Options) (*Report, error) {
	if opts.TierMid == 0 {
		opts.TierMid = DefaultOptions.TierMid
	}
	if opts.TierHigh == 0 {
		opts.TierHigh = DefaultOptions.TierHigh
	}
	if opts.Bins == 0 {
		opts.Bins = DefaultOptions.Bins
	}
	if opts.TierMid > opts.TierHigh {
		return nil, fmt.Errorf("evaluation: tier cut-offs out of order (mid %g > high %g)", opts.TierMid, opts.TierHigh)
	}
	est, err := DeLong(scores, labels)
	if err != nil {
		return nil, err
	}
	r := &Report{
		N:         len(scores),
		Positives: est.Positives,
		Negatives: est.Negatives,
		AUC:       est,
		Tiers:     Tiers(scores, labels, opts.TierMid, opts.TierHigh),
		TierMid:   opts.TierMid,
		TierHigh:  opts.TierHigh,
		ROC:       ROC(scores, labels),
	}
	cuts := append([]float64{0.5, opts.TierMid, opts.TierHigh}, opts.Cutoffs...)
	slices.Sort(cuts)
	for _, c := range slices.Compact(cuts) {
		r.Operating = append(r.Operating, At(scores, labels, c))
	}
	r.Calibration, r.ECE = Calibration(scores, labels, opts.Bins)
	return r, nil
}
