package evaluation

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestWilsonKnownValues(t *testing.T) {
	// 5 of 20: the Wilson 95 % interval is 0.1119–0.4687 (Newcombe,
	// Statistics in Medicine 1998, method 3; Brown, Cai & DasGupta 2001).
	cases := []struct {
		k, n         int
		lower, upper float64
	}{
		{5, 20, 0.111862, 0.468701},
		{0, 10, 0, 0.277533},
		{10, 10, 0.722467, 1},
		{81, 263, 0.2553, 0.3662}, // Newcombe 1998's example
	}
	for _, c := range cases {
		iv, err := Wilson(c.k, c.n, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !near(iv.Lower, c.lower, 1e-4) || !near(iv.Upper, c.upper, 1e-4) {
			t.Errorf("Wilson(%d, %d) = [%.6f, %.6f], want [%.4f, %.4f]", c.k, c.n, iv.Lower, iv.Upper, c.lower, c.upper)
		}
		if iv.Lower > iv.Rate || iv.Rate > iv.Upper {
			t.Errorf("Wilson(%d, %d): rate %g outside [%g, %g]", c.k, c.n, iv.Rate, iv.Lower, iv.Upper)
		}
	}
	if iv, _ := Wilson(0, 0, 0); iv.Lower != 0 || iv.Upper != 1 {
		t.Errorf("Wilson(0, 0) = %+v, want [0, 1]", iv)
	}
	for _, bad := range [][2]int{{3, 2}, {-1, 5}, {1, -1}} {
		if _, err := Wilson(bad[0], bad[1], 0); err == nil {
			t.Errorf("Wilson(%d, %d): no error", bad[0], bad[1])
		}
	}
}

func TestPSI(t *testing.T) {
	ref := ReferenceDistribution{Edges: []float64{0, 0.5, 1}, Proportions: []float64{0.5, 0.5}}
	// Identical distribution: 0.
	r, err := PSI(ref, []float64{0.1, 0.2, 0.7, 0.9}, 0)
	if err != nil || r.PSI != 0 || r.N != 4 {
		t.Fatalf("PSI of the reference itself = %+v, %v; want 0", r, err)
	}
	// 3 of 4 below 0.5: 0.25·ln 1.5 + 0.25·ln 2.
	r, _ = PSI(ref, []float64{0.1, 0.2, 0.3, 0.9}, 0)
	if want := 0.25*math.Log(1.5) + 0.25*math.Log(2); !near(r.PSI, want, 1e-12) {
		t.Errorf("PSI = %g, want %g", r.PSI, want)
	}
	// The edge 0.5 belongs to the upper bin, 1 to the last; outside the
	// edges, the end bins.
	for s, want := range map[float64]int{0.5: 1, 1: 1, 0: 0, -0.1: 0, 1.2: 1, 0.4999: 0} {
		if got := ref.Bin(s); got != want {
			t.Errorf("Bin(%g) = %d, want %d", s, got, want)
		}
	}
	// An empty live bin is floored at epsilon, and only that one.
	r, _ = PSI(ref, []float64{0.1, 0.2}, 0.001)
	if !r.Bins[1].Floored || r.Bins[0].Floored {
		t.Errorf("floored bins = %v, %v; want the second only", r.Bins[0].Floored, r.Bins[1].Floored)
	}
	want := (1-0.5)*math.Log(1/0.5) + (0.001-0.5)*math.Log(0.001/0.5)
	if !near(r.PSI, want, 1e-12) {
		t.Errorf("PSI with an empty bin = %g, want %g", r.PSI, want)
	}
	if r.Bins[1].Lo != 0.5 || r.Bins[1].Hi != 1 {
		t.Errorf("bin 1 edges = %g–%g, want 0.5–1", r.Bins[1].Lo, r.Bins[1].Hi)
	}
}

func TestPSIRefusesBadInput(t *testing.T) {
	for name, ref := range map[string]ReferenceDistribution{
		"one bin":        {Edges: []float64{0, 1}, Proportions: []float64{1}},
		"edges":          {Edges: []float64{0, 1}, Proportions: []float64{0.5, 0.5}},
		"not increasing": {Edges: []float64{0, 0.5, 0.5}, Proportions: []float64{0.5, 0.5}},
		"sum":            {Edges: []float64{0, 0.5, 1}, Proportions: []float64{0.5, 0.6}},
		"negative":       {Edges: []float64{0, 0.5, 1}, Proportions: []float64{1.5, -0.5}},
	} {
		if _, err := PSI(ref, []float64{0.3}, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	ref := ReferenceDistribution{Edges: []float64{0, 0.5, 1}, Proportions: []float64{0.5, 0.5}}
	if _, err := PSI(ref, nil, 0); err == nil {
		t.Error("no scores: no error")
	}
	if _, err := PSI(ref, []float64{math.NaN()}, 0); err == nil {
		t.Error("NaN score: no error")
	}
}

func days(start time.Time, counts ...[2]int) []DailyCount {
	out := make([]DailyCount, len(counts))
	for i, c := range counts {
		out[i] = DailyCount{Day: start.AddDate(0, 0, i), Labelled: c[0], Disagreeing: c[1]}
	}
	return out
}

func TestDisagreementRule(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	rule := DisagreementRule{ReferenceRate: 0.1, Days: 3}
	// With 20 a day, the bound is 0.1 + 1.96·√(0.09/20) = 0.2315: 5 of 20
	// (0.25) is above, 4 (0.2) is not.
	series := days(start, [2]int{20, 2}, [2]int{20, 5}, [2]int{20, 5}, [2]int{20, 4}, [2]int{20, 5}, [2]int{20, 6}, [2]int{0, 0}, [2]int{20, 7})
	a, err := rule.Check(series)
	if err != nil {
		t.Fatal(err)
	}
	if b := a.Days[0].Bound; !near(b, 0.1+Z95*math.Sqrt(0.09/20), 1e-12) {
		t.Errorf("bound = %g", b)
	}
	var runs []string
	for _, d := range a.Days {
		runs = append(runs, fmt.Sprint(d.Run))
	}
	// Days 2–3 above, day 4 breaks, days 5, 6 above, day 7 empty (skipped),
	// day 8 above: the run reaches 3 on day 8 and started on day 5.
	if got := strings.Join(runs, " "); got != "0 1 2 0 1 2 2 3" {
		t.Errorf("runs = %s, want 0 1 2 0 1 2 2 3", got)
	}
	if !a.Days[6].Skipped || a.Days[6].Above {
		t.Errorf("the empty day: %+v, want skipped", a.Days[6])
	}
	if !a.Holds || !a.Since.Equal(start.AddDate(0, 0, 4)) || !a.RaisedOn.Equal(start.AddDate(0, 0, 7)) {
		t.Errorf("alert = holds %v since %s raised %s; want since %s raised %s", a.Holds, a.Since, a.RaisedOn,
			start.AddDate(0, 0, 4), start.AddDate(0, 0, 7))
	}
	// A normal last day ends the alert.
	a, _ = rule.Check(append(series, DailyCount{Day: start.AddDate(0, 0, 8), Labelled: 20, Disagreeing: 1}))
	if a.Holds {
		t.Error("alert holds after a normal day")
	}
	// Each day's "above" is the Wilson interval wholly above the reference.
	for _, d := range a.Days {
		if !d.Skipped && d.Above != (d.Interval.Lower > rule.ReferenceRate) {
			t.Errorf("%s: above %v but Wilson lower bound %g vs reference %g", d.Day.Format(time.DateOnly), d.Above, d.Interval.Lower, rule.ReferenceRate)
		}
	}
}

func TestDisagreementRuleRefusesBadInput(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if _, err := (DisagreementRule{ReferenceRate: 0.1}).Check(nil); err == nil {
		t.Error("0 days: no error")
	}
	if _, err := (DisagreementRule{ReferenceRate: 1, Days: 7}).Check(nil); err == nil {
		t.Error("reference rate 1: no error")
	}
	same := []DailyCount{{Day: start, Labelled: 1}, {Day: start.Add(time.Hour), Labelled: 1}}
	if _, err := (DisagreementRule{ReferenceRate: 0.1, Days: 7}).Check(same); err == nil {
		t.Error("the same day twice: no error")
	}
	if _, err := (DisagreementRule{ReferenceRate: 0.1, Days: 7}).Check([]DailyCount{{Day: start, Labelled: 1, Disagreeing: 2}}); err == nil {
		t.Error("more disagreeing than labelled: no error")
	}
}

func TestTierMix(t *testing.T) {
	mix, err := TierMix([]string{"Low", "High", "Low", "Mid"}, []string{"Low", "Mid", "High"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(Proportions(mix)); got != "[0.5 0.25 0.25]" {
		t.Errorf("proportions = %s", got)
	}
	if _, err := TierMix([]string{"Unknown"}, []string{"Low", "Mid", "High"}); err == nil {
		t.Error("an unknown tier: no error")
	}
	r, err := PSIFromProportions([]float64{0.6, 0.3, 0.1}, Proportions(mix), 0)
	if err != nil || r.PSI <= 0 {
		t.Errorf("tier-mix PSI = %v, %v", r.PSI, err)
	}
}
