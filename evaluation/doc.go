// Package evaluation measures how well an engine's probabilities separate and
// describe labelled cases: the statistics behind `radgate eval`. It is plain
// Go on (probability, label) pairs and knows nothing of DICOM or ONNX, so any
// scorer can be evaluated with it.
//
// What it computes, and how:
//
//   - AUC: the Mann–Whitney statistic, P(score of a positive > score of a
//     negative) with ties counted one half — the area under the empirical ROC
//     curve including its diagonal steps through tied scores.
//   - The AUC's 95 % confidence interval: AUC ± 1.959964·SE, where SE² is
//     DeLong's variance (DeLong, DeLong & Clarke-Pearson, Biometrics 1988):
//     the sample variances of the placement values V10 (per positive) and V01
//     (per negative), divided by the class sizes. The interval is clipped to
//     [0, 1]. No resampling, so the result is deterministic.
//   - The paired comparison of two scorers on the same cases (CompareAUC):
//     DeLong's test for correlated ROC curves: z = (AUC_A − AUC_B)/SE(diff),
//     two-sided p from the normal distribution, and the difference's 95 %
//     interval.
//   - Operating points: a case is called positive when its probability is ≥
//     the cut-off (the same "≥" as the tiers and the heatmap mark), giving
//     sensitivity TP/(TP+FN) and specificity TN/(TN+FP).
//   - Tiers: Low < TierMid ≤ Mid < TierHigh ≤ High, counted per label.
//   - Calibration: 10 equal-width bins of the positive-class probability over
//     [0, 1] (the last bin includes 1); per bin the mean probability and the
//     observed fraction of positives; the expected calibration error (ECE) is
//     Σ (n_bin/N)·|mean probability − observed fraction|. This is the
//     definition the engines' training-metrics.json use.
//
// Reference values in the tests come from testdata/delong_reference.py, an
// independent O(m·n) implementation of the same definitions.
package evaluation
