package evaluation

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Z95 is the standard normal quantile for a two-sided 95 % interval.
const Z95 = 1.959963984540054

var (
	// ErrLength is returned when scores and labels differ in length.
	ErrLength = errors.New("evaluation: scores and labels differ in length")
	// ErrNaN is returned when a score is NaN.
	ErrNaN = errors.New("evaluation: a score is NaN")
	// ErrOneClass is returned when the positive or the negative class is
	// empty: the AUC is undefined.
	ErrOneClass = errors.New("evaluation: needs both positive and negative cases")
	// ErrTooFew is returned when a class has fewer than two cases: DeLong's
	// variance is undefined.
	ErrTooFew = errors.New("evaluation: DeLong's variance needs at least two positive and two negative cases")
)

// AUCEstimate is an AUC with its DeLong standard error and 95 % interval.
type AUCEstimate struct {
	AUC float64
	// SE is the square root of DeLong's variance.
	SE float64
	// CI is AUC ± Z95·SE, clipped to [0, 1].
	CI [2]float64
	// Positives and Negatives are the class sizes.
	Positives, Negatives int
}

// check validates the inputs shared by every function here.
func check(scores []float64, labels []bool) (pos, neg int, err error) {
	if len(scores) != len(labels) {
		return 0, 0, fmt.Errorf("%w (%d scores, %d labels)", ErrLength, len(scores), len(labels))
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return 0, 0, fmt.Errorf("%w (case %d)", ErrNaN, i)
		}
		if labels[i] {
			pos++
		} else {
			neg++
		}
	}
	return pos, neg, nil
}

// split returns the positive and the negative scores, each sorted ascending.
func split(scores []float64, labels []bool) (pos, neg []float64) {
	for i, s := range scores {
		if labels[i] {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	slices.Sort(pos)
	slices.Sort(neg)
	return pos, neg
}

// placements returns DeLong's placement values in the order of scores'
// positives (V10: the fraction of negatives below each positive, ties one
// half) and negatives (V01: the fraction of positives above each negative),
// and the AUC (the mean of either). O(N log N).
func placements(scores []float64, labels []bool) (v10, v01 []float64, auc float64) {
	pos, neg := split(scores, labels)
	m, n := float64(len(pos)), float64(len(neg))
	for i, s := range scores {
		if labels[i] {
			lo := sort.SearchFloat64s(neg, s)
			hi := lo + countFrom(neg, lo, s)
			v10 = append(v10, (float64(lo)+0.5*float64(hi-lo))/n)
		} else {
			lo := sort.SearchFloat64s(pos, s)
			hi := lo + countFrom(pos, lo, s)
			v01 = append(v01, (float64(len(pos)-hi)+0.5*float64(hi-lo))/m)
		}
	}
	var sum float64
	for _, v := range v10 {
		sum += v
	}
	return v10, v01, sum / m
}

// countFrom counts the values equal to s from index lo of sorted xs.
func countFrom(xs []float64, lo int, s float64) int {
	k := 0
	for lo+k < len(xs) && xs[lo+k] == s {
		k++
	}
	return k
}

// AUC is the area under the ROC curve of scores against labels (true =
// positive): the Mann–Whitney statistic with ties counted one half.
func AUC(scores []float64, labels []bool) (float64, error) {
	pos, neg, err := check(scores, labels)
	if err != nil {
		return 0, err
	}
	if pos == 0 || neg == 0 {
		return 0, ErrOneClass
	}
	_, _, auc := placements(scores, labels)
	return auc, nil
}

// DeLong returns the AUC with DeLong's standard error and 95 % interval.
func DeLong(scores []float64, labels []bool) (AUCEstimate, error) {
	pos, neg, err := check(scores, labels)
	if err != nil {
		return AUCEstimate{}, err
	}
	if pos == 0 || neg == 0 {
		return AUCEstimate{}, ErrOneClass
	}
	if pos < 2 || neg < 2 {
		return AUCEstimate{}, fmt.Errorf("%w (%d positive, %d negative)", ErrTooFew, pos, neg)
	}
	v10, v01, auc := placements(scores, labels)
	variance := covariance(v10, v10)/float64(pos) + covariance(v01, v01)/float64(neg)
	se := math.Sqrt(math.Max(variance, 0))
	return AUCEstimate{
		AUC:       auc,
		SE:        se,
		CI:        [2]float64{clip01(auc - Z95*se), clip01(auc + Z95*se)},
		Positives: pos,
		Negatives: neg,
	}, nil
}

// Comparison is DeLong's paired test of two scorers' AUCs on the same cases.
type Comparison struct {
	// N, Positives and Negatives count the cases both scorers scored.
	N, Positives, Negatives int
	// A and B are each scorer's AUC estimate.
	A, B AUCEstimate
	// Difference is A.AUC − B.AUC.
	Difference float64
	// SE is the standard error of the difference (DeLong's covariance).
	SE float64
	// CI is Difference ± Z95·SE.
	CI [2]float64
	// Z is Difference/SE: ±Inf when SE is 0 and the AUCs differ, 0 when SE
	// is 0 and they are equal.
	Z float64
	// P is the two-sided p-value of Z under the standard normal.
	P float64
	// Correlation is the correlation of the two AUC estimates.
	Correlation float64
}

// CompareAUC compares the AUCs of two scorers a and b on the same cases
// (a[i] and b[i] score case i, whose label is labels[i]) with DeLong's test
// for correlated ROC curves.
func CompareAUC(a, b []float64, labels []bool) (Comparison, error) {
	if len(a) != len(b) {
		return Comparison{}, fmt.Errorf("%w (%d and %d scores)", ErrLength, len(a), len(b))
	}
	ea, err := DeLong(a, labels)
	if err != nil {
		return Comparison{}, err
	}
	eb, err := DeLong(b, labels)
	if err != nil {
		return Comparison{}, err
	}
	m, n := float64(ea.Positives), float64(ea.Negatives)
	v10a, v01a, _ := placements(a, labels)
	v10b, v01b, _ := placements(b, labels)
	cov := covariance(v10a, v10b)/m + covariance(v01a, v01b)/n
	va, vb := ea.SE*ea.SE, eb.SE*eb.SE
	vd := va + vb - 2*cov
	// Rounding can leave a hair above or below zero for identical scorers.
	if vd <= 1e-14*(va+vb) {
		vd = 0
	}
	c := Comparison{
		N:          len(labels),
		Positives:  ea.Positives,
		Negatives:  ea.Negatives,
		A:          ea,
		B:          eb,
		Difference: ea.AUC - eb.AUC,
		SE:         math.Sqrt(vd),
	}
	c.CI = [2]float64{c.Difference - Z95*c.SE, c.Difference + Z95*c.SE}
	switch {
	case c.SE > 0:
		c.Z = c.Difference / c.SE
	case c.Difference > 0:
		c.Z = math.Inf(1)
	case c.Difference < 0:
		c.Z = math.Inf(-1)
	}
	c.P = math.Erfc(math.Abs(c.Z) / math.Sqrt2)
	if va > 0 && vb > 0 {
		c.Correlation = cov / math.Sqrt(va*vb)
	}
	return c, nil
}

// covariance is the sample covariance (n − 1 in the denominator).
func covariance(x, y []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var s float64
	for i := range x {
		s += (x[i] - mx) * (y[i] - my)
	}
	return s / float64(len(x)-1)
}

func clip01(x float64) float64 { return math.Min(1, math.Max(0, x)) }
