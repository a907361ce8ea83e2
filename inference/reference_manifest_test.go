package inference

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestManifestReferenceFromCSV recomputes each manifest's reference
// distribution from the validation scores radgate computed (testdata
// reference CSVs): the counts in model.yaml are exactly those.
func TestManifestReferenceFromCSV(t *testing.T) {
	for _, tc := range []struct{ id, csv string }{
		{"cxr-pneumonia-densenet121", "testdata/pneumoniamnist-val-dicom/reference.csv"},
		{"cxr-pneumonia-densenet121-k224", "testdata/kermany224-val-dicom/reference-k224.csv"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			m := loadTestManifest(t, tc.id)
			require.NotNil(t, m.Reference)
			f, err := os.Open(filepath.Join(testenv.RepoRoot(), tc.csv))
			require.NoError(t, err)
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			require.NoError(t, err)
			col := -1
			for i, h := range rows[0] {
				if h == "probability" {
					col = i
				}
			}
			require.GreaterOrEqual(t, col, 0)
			counts := make([]int, len(m.Reference.Counts))
			for _, r := range rows[1:] {
				p, err := strconv.ParseFloat(r[col], 64)
				require.NoError(t, err)
				counts[ReferenceBin(p, len(counts))]++
			}
			require.Equal(t, len(rows)-1, m.Reference.N)
			require.Equal(t, counts, m.Reference.Counts)
			require.Equal(t, m.Metrics.Validation.N, m.Reference.N, "the reference is the card's validation set")
			require.InDelta(t, 1, sum(m.Reference.Proportions()), 1e-9)
			require.Equal(t, []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}, m.Reference.Edges())
		})
	}
}

func TestManifestReferenceErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "models", DefaultEngineID, "model.yaml"))
	require.NoError(t, err)
	i := strings.Index(string(base), "\nreference:")
	require.Positive(t, i)
	head := string(base[:i+1])
	for _, tc := range []struct{ ref, want string }{
		{"reference:\n  dataset: x\n  n: 5\n  counts: [1, 2, 3]\n", "reference.n 5: want the sum of the counts (6)"},
		{"reference:\n  dataset: x\n  n: 1\n  counts: [1]\n", "reference.counts: want at least 2 equal-width bins"},
		{"reference:\n  dataset: x\n  n: 1\n  counts: [2, -1]\n", "reference.counts[1] is -1"},
		{"reference:\n  n: 1\n  counts: [0, 1]\n", "reference.dataset is required"},
		{"reference:\n  dataset: x\n  n: 1\n  counts: [0, 1]\n  bins: 2\n", `unknown key "bins"`},
	} {
		path := filepath.Join(testenv.RepoRoot(), "models", DefaultEngineID, "model.yaml")
		_, err := ParseManifest(path, []byte(head+tc.ref))
		require.ErrorContains(t, err, tc.want)
	}
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}
