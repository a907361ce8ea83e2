package evaluation

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// This file holds the arithmetic of live monitoring (issue 14): how far the
// scores an engine gives today have moved from its reference distribution
// (PSI), the interval of a rate, the disagreement rule over a daily series,
// and the tier mix. It is pure: no clock, no store; callers pass the counts.

// DefaultPSIEpsilon is the proportion put in place of an empty bin's 0 in
// PSI (on either side), so that ln(a/e) stays finite. 1e-4 is the value
// common in credit scoring practice (Siddiqi, "Credit Risk Scorecards",
// 2006; Yurdakul, "Statistical properties of the population stability
// index", 2018, who shows the choice matters only for nearly empty bins).
const DefaultPSIEpsilon = 1e-4

// PSI thresholds in common use (Siddiqi 2006): below PSISlight the
// population is stable, from PSIMajor on it has shifted.
const (
	PSISlight = 0.1
	PSIMajor  = 0.25
)

// ReferenceDistribution is an engine's score distribution on its reference
// cases, as bins: bin i holds the scores s with Edges[i] ≤ s < Edges[i+1]
// (the last bin includes its upper edge). Proportions[i] is the share of
// the reference scores in bin i; they sum to 1 (within 1e-6).
type ReferenceDistribution struct {
	Edges       []float64 `json:"edges"`
	Proportions []float64 `json:"proportions"`
}

// Validate reports what is wrong with d: fewer than 2 bins, edges not
// strictly increasing, a proportion below 0, or proportions not summing
// to 1.
func (d ReferenceDistribution) Validate() error {
	if len(d.Proportions) < 2 {
		return fmt.Errorf("reference distribution: %d bins, want at least 2", len(d.Proportions))
	}
	if len(d.Edges) != len(d.Proportions)+1 {
		return fmt.Errorf("reference distribution: %d edges for %d bins, want %d", len(d.Edges), len(d.Proportions), len(d.Proportions)+1)
	}
	for i := 1; i < len(d.Edges); i++ {
		if !(d.Edges[i] > d.Edges[i-1]) {
			return fmt.Errorf("reference distribution: edge %d (%g) is not above edge %d (%g)", i, d.Edges[i], i-1, d.Edges[i-1])
		}
	}
	sum := 0.0
	for i, p := range d.Proportions {
		if p < 0 || math.IsNaN(p) {
			return fmt.Errorf("reference distribution: bin %d has proportion %g", i, p)
		}
		sum += p
	}
	if math.Abs(sum-1) > 1e-6 {
		return fmt.Errorf("reference distribution: proportions sum to %g, want 1", sum)
	}
	return nil
}

// Bin returns the index of the bin holding score s; a score below the first
// edge falls in the first bin, one above the last edge in the last (a
// probability outside the reference's range still counts somewhere).
func (d ReferenceDistribution) Bin(s float64) int {
	n := len(d.Proportions)
	for i := 1; i < n; i++ {
		if s < d.Edges[i] {
			return i - 1
		}
	}
	return n - 1
}

// PSIBin is one bin's share of a PSI.
type PSIBin struct {
	// Lo and Hi are the bin's edges.
	Lo, Hi float64
	// Reference and Live are the proportions as given and as counted.
	Reference, Live float64
	// Floored is true when either proportion was 0 and Epsilon stood in
	// for it in Term.
	Floored bool
	// Term is (live − reference)·ln(live/reference), with the floor.
	Term float64
}

// PSIResult is the Population Stability Index of live scores against a
// reference distribution.
type PSIResult struct {
	// PSI is Σ Term over the bins: 0 for identical distributions, growing
	// with the shift; compare with PSISlight and PSIMajor.
	PSI float64
	// N is the number of live scores.
	N int
	// Bins are the per-bin terms, in the reference's order.
	Bins []PSIBin
	// Epsilon is the floor used for empty bins.
	Epsilon float64
}

// PSI is the Population Stability Index of scores against ref:
//
//	PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)
//
// with e_i the reference proportion of bin i and a_i the live proportion
// (the share of scores in bin i, see ReferenceDistribution.Bin). A bin
// empty on either side (a_i = 0 or e_i = 0) has that 0 replaced by
// epsilon (DefaultPSIEpsilon when epsilon ≤ 0) in its term, and is marked
// Floored; the other bins are left as they are (no renormalisation). The
// index is the symmetrised Kullback–Leibler divergence J(a, e) of the binned
// distributions (Yurdakul 2018).
//
// It fails when ref is not valid or there are no scores, or a score is NaN.
func PSI(ref ReferenceDistribution, scores []float64, epsilon float64) (PSIResult, error) {
	if err := ref.Validate(); err != nil {
		return PSIResult{}, err
	}
	if len(scores) == 0 {
		return PSIResult{}, errors.New("PSI: no live scores")
	}
	counts := make([]int, len(ref.Proportions))
	for i, s := range scores {
		if math.IsNaN(s) {
			return PSIResult{}, fmt.Errorf("PSI: score %d is NaN", i)
		}
		counts[ref.Bin(s)]++
	}
	live := make([]float64, len(counts))
	for i, c := range counts {
		live[i] = float64(c) / float64(len(scores))
	}
	r, err := PSIFromProportions(ref.Proportions, live, epsilon)
	if err != nil {
		return PSIResult{}, err
	}
	r.N = len(scores)
	for i := range r.Bins {
		r.Bins[i].Lo, r.Bins[i].Hi = ref.Edges[i], ref.Edges[i+1]
	}
	return r, nil
}

// PSIFromProportions is PSI over proportions already binned: reference and
// live (same length, each summing to 1 within 1e-6), for categories such
// as the tier mix. Bins' Lo and Hi are left zero.
func PSIFromProportions(reference, live []float64, epsilon float64) (PSIResult, error) {
	if len(reference) != len(live) || len(reference) < 2 {
		return PSIResult{}, fmt.Errorf("PSI: %d reference and %d live bins, want the same number, at least 2", len(reference), len(live))
	}
	for name, ps := range map[string][]float64{"reference": reference, "live": live} {
		sum := 0.0
		for i, p := range ps {
			if p < 0 || math.IsNaN(p) {
				return PSIResult{}, fmt.Errorf("PSI: %s bin %d has proportion %g", name, i, p)
			}
			sum += p
		}
		if math.Abs(sum-1) > 1e-6 {
			return PSIResult{}, fmt.Errorf("PSI: %s proportions sum to %g, want 1", name, sum)
		}
	}
	if epsilon <= 0 {
		epsilon = DefaultPSIEpsilon
	}
	out := PSIResult{Bins: make([]PSIBin, len(reference)), Epsilon: epsilon}
	for i := range reference {
		e, a := reference[i], live[i]
		b := PSIBin{Reference: e, Live: a}
		if e == 0 {
			e, b.Floored = epsilon, true
		}
		if a == 0 {
			a, b.Floored = epsilon, true
		}
		b.Term = (a - e) * math.Log(a/e)
		out.Bins[i] = b
		out.PSI += b.Term
	}
	return out, nil
}

// Interval is a rate's point estimate and its two-sided confidence
// interval.
type Interval struct {
	// K successes of N trials; Rate is K/N (0 when N is 0).
	K, N int
	Rate float64
	// Lower and Upper bound the interval, within [0, 1].
	Lower, Upper float64
}

// Wilson is the Wilson score interval of the rate k/n at normal quantile z
// (Z95 when z ≤ 0):
//
//	centre = (p̂ + z²/2n) / (1 + z²/n)
//	half   = z / (1 + z²/n) · √(p̂(1−p̂)/n + z²/4n²)
//
// (E. B. Wilson, JASA 1927; recommended over the Wald interval for small n
// and rates near 0 or 1 by Brown, Cai & DasGupta, Statistical Science
// 2001). It is the set of rates p a two-sided score test at level z would
// not reject, so p lies below Lower exactly when k/n > p + z·√(p(1−p)/n).
// With n = 0 the interval is [0, 1].
func Wilson(k, n int, z float64) (Interval, error) {
	if n < 0 || k < 0 || k > n {
		return Interval{}, fmt.Errorf("Wilson interval: %d of %d is not a rate", k, n)
	}
	if z <= 0 {
		z = Z95
	}
	iv := Interval{K: k, N: n, Lower: 0, Upper: 1}
	if n == 0 {
		return iv, nil
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := z * z
	den := 1 + z2/nf
	centre := (p + z2/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	iv.Rate = p
	iv.Lower = math.Max(0, centre-half)
	iv.Upper = math.Min(1, centre+half)
	// The bounds are exact at the ends.
	if k == 0 {
		iv.Lower = 0
	}
	if k == n {
		iv.Upper = 1
	}
	return iv, nil
}

// DailyCount is one day of verdicts on an engine's results.
type DailyCount struct {
	// Day is the calendar day (its date is what counts).
	Day time.Time
	// Labelled is how many results got a labelled verdict that day;
	// Disagreeing how many of those disagreed with the engine.
	Labelled, Disagreeing int
}

// DisagreementRule raises an alert when the daily disagreement rate is
// above what the reference rate allows on Days consecutive days.
type DisagreementRule struct {
	// ReferenceRate is the disagreement rate expected of the engine (from
	// its acceptance evaluation), in [0, 1).
	ReferenceRate float64
	// Days is how many consecutive days above it raise the alert (7 in the
	// issue's example); at least 1.
	Days int
	// Z is the normal quantile of the interval; 0 means Z95.
	Z float64
}

// DayCheck is one day as the rule saw it.
type DayCheck struct {
	DailyCount
	// Interval is the day's Wilson interval of Disagreeing/Labelled.
	Interval Interval
	// Bound is the upper bound of the reference's 95 % interval at the
	// day's Labelled: ReferenceRate + z·√(p(1−p)/n).
	Bound float64
	// Above: the day's rate is above Bound (equivalently, the day's Wilson
	// interval lies wholly above ReferenceRate). False on a day without
	// labels.
	Above bool
	// Skipped: no labelled verdict that day; it neither counts towards the
	// run nor breaks it.
	Skipped bool
	// Run is the length of the run of days above, ending at this day.
	Run int
}

// DisagreementAlert is the rule's answer over a series.
type DisagreementAlert struct {
	// Holds: the run of days above that ends at the series' last day with
	// labels is at least Days long.
	Holds bool
	// Since is the first day of that run and RaisedOn the day the run
	// reached Days (both zero unless Holds).
	Since, RaisedOn time.Time
	// Days are the series' days, in order, as checked.
	Days []DayCheck
}

// Check applies the rule to days, which must be in increasing order with
// each day at most once. A day's rate is above the reference when
//
//	d/n > p₀ + z·√(p₀(1−p₀)/n)
//
// with d disagreeing of n labelled and p₀ the reference rate: the upper
// bound of the 95 % interval of a daily rate of n verdicts were the engine
// still at its reference (the normal approximation of the binomial; it is
// the score test that the Wilson interval inverts, so the day is above
// exactly when its Wilson interval lies wholly above p₀). The rule is in
// the spirit of statistical process control charts for proportions (the
// p-chart of Shewhart, with a 95 % rather than a 3σ limit) and of the
// "N consecutive points beyond a limit" run rules (Western Electric
// Handbook, 1956). Days without labels are skipped, not counted as normal:
// a weekend without reads does not reset a run.
func (r DisagreementRule) Check(days []DailyCount) (DisagreementAlert, error) {
	if r.Days < 1 {
		return DisagreementAlert{}, fmt.Errorf("disagreement rule: %d days, want at least 1", r.Days)
	}
	if r.ReferenceRate < 0 || r.ReferenceRate >= 1 || math.IsNaN(r.ReferenceRate) {
		return DisagreementAlert{}, fmt.Errorf("disagreement rule: reference rate %g is not in [0, 1)", r.ReferenceRate)
	}
	z := r.Z
	if z <= 0 {
		z = Z95
	}
	var out DisagreementAlert
	run := 0
	var runStart, raised time.Time
	var last time.Time
	for i, d := range days {
		if i > 0 && !dayAfter(last, d.Day) {
			return DisagreementAlert{}, fmt.Errorf("disagreement rule: day %d (%s) is not after day %d (%s)",
				i, d.Day.Format(time.DateOnly), i-1, last.Format(time.DateOnly))
		}
		last = d.Day
		iv, err := Wilson(d.Disagreeing, d.Labelled, z)
		if err != nil {
			return DisagreementAlert{}, fmt.Errorf("disagreement rule: %s: %w", d.Day.Format(time.DateOnly), err)
		}
		c := DayCheck{DailyCount: d, Interval: iv}
		if d.Labelled == 0 {
			c.Skipped = true
			c.Run = run
			out.Days = append(out.Days, c)
			continue
		}
		p0, n := r.ReferenceRate, float64(d.Labelled)
		c.Bound = p0 + z*math.Sqrt(p0*(1-p0)/n)
		c.Above = iv.Rate > c.Bound
		if c.Above {
			if run == 0 {
				runStart = d.Day
			}
			run++
			if run == r.Days {
				raised = d.Day
			}
		} else {
			run = 0
		}
		c.Run = run
		out.Days = append(out.Days, c)
	}
	if run >= r.Days {
		out.Holds, out.Since, out.RaisedOn = true, runStart, raised
	}
	return out, nil
}

// dayAfter reports whether b's date is after a's.
func dayAfter(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return time.Date(by, bm, bd, 0, 0, 0, 0, time.UTC).After(time.Date(ay, am, ad, 0, 0, 0, 0, time.UTC))
}

// TierShare is one tier's part of a tier mix.
type TierShare struct {
	Tier       string
	Count      int
	Proportion float64
}

// TierMix counts tiers (the results' tier names) into the tiers named in
// order (Low, Mid, High, say), as counts and proportions of all counted.
// A tier name not in order is an error: a mix that silently dropped results
// would hide a shift.
func TierMix(tiers []string, order []string) ([]TierShare, error) {
	idx := make(map[string]int, len(order))
	out := make([]TierShare, len(order))
	for i, t := range order {
		if _, dup := idx[t]; dup {
			return nil, fmt.Errorf("tier mix: tier %q named twice", t)
		}
		idx[t] = i
		out[i].Tier = t
	}
	for _, t := range tiers {
		i, ok := idx[t]
		if !ok {
			return nil, fmt.Errorf("tier mix: tier %q is not one of %q", t, order)
		}
		out[i].Count++
	}
	if len(tiers) > 0 {
		for i := range out {
			out[i].Proportion = float64(out[i].Count) / float64(len(tiers))
		}
	}
	return out, nil
}

// Proportions are the shares' proportions, in order (for
// PSIFromProportions against a reference tier mix).
func Proportions(shares []TierShare) []float64 {
	out := make([]float64, len(shares))
	for i, s := range shares {
		out[i] = s.Proportion
	}
	return out
}
