package evaluation_test

import (
	"fmt"
	"time"

	"github.com/radgate/radgate/evaluation"
)

func ExampleEvaluate() {
	probs := []float64{0.92, 0.81, 0.70, 0.55, 0.40, 0.62, 0.33, 0.21, 0.10, 0.05}
	labels := []bool{true, true, true, true, true, false, false, false, false, false}
	r, err := evaluation.Evaluate(probs, labels, evaluation.DefaultOptions)
	if err != nil {
		panic(err)
	}
	at, _ := r.At(0.5)
	fmt.Printf("AUC %.2f (95%% CI %.2f-%.2f, DeLong)\n", r.AUC.AUC, r.AUC.CI[0], r.AUC.CI[1])
	fmt.Printf("at 0.5: sensitivity %.2f, specificity %.2f\n", at.Sensitivity, at.Specificity)
	fmt.Printf("tiers: positives %d Low / %d Mid / %d High\n", r.Tiers.Low.Positive, r.Tiers.Mid.Positive, r.Tiers.High.Positive)
	fmt.Printf("ECE %.3f\n", r.ECE)
	// Output:
	// AUC 0.92 (95% CI 0.74-1.00, DeLong)
	// at 0.5: sensitivity 0.80, specificity 0.80
	// tiers: positives 0 Low / 2 Mid / 3 High
	// ECE 0.293
}

func ExampleCompareAUC() {
	labels := []bool{true, true, true, true, false, false, false, false}
	a := []float64{0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1}
	b := []float64{0.6, 0.9, 0.3, 0.5, 0.7, 0.4, 0.2, 0.1}
	c, err := evaluation.CompareAUC(a, b, labels)
	if err != nil {
		panic(err)
	}
	fmt.Printf("AUC %.4f vs %.4f: difference %.4f (95%% CI %.4f to %.4f), z %.2f, p %.3f\n",
		c.A.AUC, c.B.AUC, c.Difference, c.CI[0], c.CI[1], c.Z, c.P)
	// Output:
	// AUC 0.9375 vs 0.7500: difference 0.1875 (95% CI -0.1442 to 0.5192), z 1.11, p 0.268
}

func ExamplePSI() {
	// The engine's reference: scores spread evenly over four bins.
	ref := evaluation.ReferenceDistribution{
		Edges:       []float64{0, 0.25, 0.5, 0.75, 1},
		Proportions: []float64{0.25, 0.25, 0.25, 0.25},
	}
	// This week's scores crowd the top bin.
	live := []float64{0.1, 0.6, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99}
	r, _ := evaluation.PSI(ref, live, 0)
	fmt.Printf("PSI %.3f, major shift: %v\n", r.PSI, r.PSI >= evaluation.PSIMajor)
	for _, b := range r.Bins {
		fmt.Printf("%.2f–%.2f reference %.2f live %.3f floored %v\n", b.Lo, b.Hi, b.Reference, b.Live, b.Floored)
	}
	// Output:
	// PSI 2.678, major shift: true
	// 0.00–0.25 reference 0.25 live 0.125 floored false
	// 0.25–0.50 reference 0.25 live 0.000 floored true
	// 0.50–0.75 reference 0.25 live 0.125 floored false
	// 0.75–1.00 reference 0.25 live 0.750 floored false
}

func ExampleWilson() {
	iv, _ := evaluation.Wilson(5, 20, 0)
	fmt.Printf("5/20 = %.2f, 95 %% CI %.3f–%.3f\n", iv.Rate, iv.Lower, iv.Upper)
	// Output: 5/20 = 0.25, 95 % CI 0.112–0.469
}

func ExampleDisagreementRule() {
	rule := evaluation.DisagreementRule{ReferenceRate: 0.10, Days: 3}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var series []evaluation.DailyCount
	for i, disagreeing := range []int{2, 3, 6, 7, 6} { // of 20 verdicts a day
		series = append(series, evaluation.DailyCount{Day: start.AddDate(0, 0, i), Labelled: 20, Disagreeing: disagreeing})
	}
	a, _ := rule.Check(series)
	for _, d := range a.Days {
		fmt.Printf("%s %d/%d bound %.3f above %v\n", d.Day.Format(time.DateOnly), d.Disagreeing, d.Labelled, d.Bound, d.Above)
	}
	fmt.Printf("alert %v since %s (raised %s)\n", a.Holds, a.Since.Format(time.DateOnly), a.RaisedOn.Format(time.DateOnly))
	// Output:
	// 2026-03-02 2/20 bound 0.231 above false
	// 2026-03-03 3/20 bound 0.231 above false
	// 2026-03-04 6/20 bound 0.231 above true
	// 2026-03-05 7/20 bound 0.231 above true
	// 2026-03-06 6/20 bound 0.231 above true
	// alert true since 2026-03-04 (raised 2026-03-06)
}
