package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

func TestEnginesListsBothShippedEngines(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, listEngines(filepath.Join(testenv.RepoRoot(), "models"), true, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	got := map[string]engineEntry{}
	for _, l := range lines {
		var e engineEntry
		require.NoError(t, json.Unmarshal([]byte(l), &e))
		got[e.ID] = e
	}
	def := got["cxr-pneumonia-densenet121"]
	require.True(t, def.Default)
	require.Equal(t, []string{"CR", "DX"}, def.Modalities)
	require.Equal(t, "233604007", def.Finding.Code)
	require.InDelta(t, 0.9979, def.Validation.AUC, 0.0005, "the measured metrics come from the manifest")
	require.Equal(t, "none", got["cxr-pneumonia-densenet121-k224"].Preprocess.Crop)
	require.False(t, got["cxr-pneumonia-densenet121-k224"].Default)

	out.Reset()
	require.NoError(t, listEngines(filepath.Join(testenv.RepoRoot(), "models"), false, &out))
	require.Contains(t, out.String(), "cxr-pneumonia-densenet121 (default)")
	require.Contains(t, out.String(), "CR,DX × CHEST")
}

// A broken manifest is reported with its position, the good engines are
// still listed, and the exit status says something is wrong.
func TestEnginesReportsABrokenManifest(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(testenv.RepoRoot(), "models", "cxr-pneumonia-densenet121")
	dst := filepath.Join(dir, "cxr-pneumonia-densenet121")
	require.NoError(t, os.MkdirAll(dst, 0o755))
	y, err := os.ReadFile(filepath.Join(src, "model.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "model.yaml"), y, 0o644))
	require.NoError(t, os.Symlink(filepath.Join(src, "model.onnx"), filepath.Join(dst, "model.onnx")))
	bad := filepath.Join(dir, "broken")
	require.NoError(t, os.MkdirAll(bad, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bad, "model.yaml"), []byte("id: broken\nversoin: 1\n"), 0o644))

	var out bytes.Buffer
	err = listEngines(dir, false, &out)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.code)
	require.Contains(t, err.Error(), "model.yaml:2:1")
	require.Contains(t, out.String(), "cxr-pneumonia-densenet121 (default)")
}
