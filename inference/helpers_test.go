package inference

import (
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// loadTestManifest loads models/<id>/model.yaml from the repository.
func loadTestManifest(t testing.TB, id string) *Manifest {
	t.Helper()
	m, err := LoadManifest(filepath.Join(testenv.RepoRoot(), "models", id, ManifestFile))
	require.NoError(t, err)
	return m
}
