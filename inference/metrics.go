package inference

import (
	"errors"
	"sort"
)

// AUC is the area under the ROC curve of scores against binary labels
// (true = positive), by the Mann–Whitney rank statistic with ties counted
// half. It is an error when either class is empty or the lengths differ.
func AUC(scores []float64, labels []bool) (float64, error) {
	if len(scores) != len(labels) {
		return 0, errors.New("AUC: scores and labels differ in length")
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSumPos float64
	var nPos, nNeg int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks i+1 … j, averaged
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				rankSumPos += avgRank
			}
		}
		i = j
	}
	for _, l := range labels {
		if l {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return 0, errors.New("AUC: needs both positive and negative cases")
	}
	return (rankSumPos - float64(nPos)*float64(nPos+1)/2) / (float64(nPos) * float64(nNeg)), nil
}
