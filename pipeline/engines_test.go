package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/internal/testenv"
)

// The shipped engine refuses the 1940-born patient's radiograph (its
// intended use is 1–5 y) unscored; asked for an engine in shadow it scores
// the same image and says why it is out of scope.
func TestInferenceEngineScoresOutOfScopeOnlyWhenAsked(t *testing.T) {
	m, err := inference.LoadManifest(filepath.Join(testenv.RepoRoot(), "models", inference.DefaultEngineID, inference.ManifestFile))
	require.NoError(t, err)
	e, err := onnx.NewEngine(m, onnx.EngineOptions{Library: testenv.ONNXRuntimeLib(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	eng := NewInferenceEngine(e, inference.HeatmapOptions{})
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "cxr-dicom", "cr-chest-mono1-jpeg2000-lossy.dcm"))
	require.NoError(t, err)

	got, err := eng.Score(t.Context(), [][]byte{b})
	require.NoError(t, err)
	require.ErrorIs(t, got[0].Err, inference.ErrNotAccepted)
	require.Contains(t, got[0].Err.Error(), "accepts.age_years")
	require.Zero(t, got[0].Probability)

	got, err = eng.(radgate.OutOfScopeScorer).ScoreOutOfScope(t.Context(), [][]byte{b})
	require.NoError(t, err)
	require.NoError(t, got[0].Err)
	require.Contains(t, got[0].OutOfScope, "accepts.age_years")
	require.Greater(t, got[0].Probability, 0.0)
	require.NotEmpty(t, got[0].Tier)
}
