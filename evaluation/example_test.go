package evaluation_test

import (
	"fmt"

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
