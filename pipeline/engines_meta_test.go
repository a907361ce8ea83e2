package pipeline

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// An engine from its manifest only (an edge's) says what the router needs
// and refuses to score.
func TestEngineMetadata(t *testing.T) {
	reg, err := inference.LoadEngineMetadata(filepath.Join(testenv.RepoRoot(), "models"))
	require.NoError(t, err)
	m, err := reg.Default()
	require.NoError(t, err)
	e := NewEngineMetadata(m)
	require.Equal(t, m.ID, e.Info().ID)
	require.Equal(t, m.Version, e.Info().Version)
	require.Equal(t, m.Finding.Code, e.Info().Finding.Code)
	require.Equal(t, m.Modalities, e.Modalities())
	require.Equal(t, m.BodyParts, e.BodyParts())
	require.Equal(t, m.Views, e.Views())
	lo, hi, ok := e.(radgate.AgeRanged).AgeYears()
	require.Equal(t, m.Accepts.AgeYears != nil, ok)
	if ok {
		require.Equal(t, [2]int{m.Accepts.AgeYears.Min, m.Accepts.AgeYears.Max}, [2]int{lo, hi})
	}
	_, err = e.Score(t.Context(), [][]byte{{1}})
	require.ErrorContains(t, err, "engine "+m.ID+": loaded from its manifest only, without its model (role edge: the hub scores)")
}
