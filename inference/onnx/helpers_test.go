package onnx

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

// refRow is one line of a reference CSV (file, label, encoding, probability[, tier]).
type refRow struct {
	File        string
	Label       string
	Encoding    string
	Probability float64
	Tier        string
}

func readReference(t testing.TB, path string) []refRow {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var rows []refRow
	for _, r := range recs[1:] {
		p, err := strconv.ParseFloat(r[col["probability"]], 64)
		require.NoError(t, err)
		row := refRow{File: r[col["file"]], Label: r[col["label"]], Encoding: r[col["encoding"]], Probability: p}
		if i, ok := col["tier"]; ok {
			row.Tier = r[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// newTestEngine creates an engine for models/<id>, closed at the end of the test.
func newTestEngine(t testing.TB, id string) *Engine {
	t.Helper()
	return newTestEngineWith(t, id, EngineOptions{})
}

// newTestEngineWith is newTestEngine with these options (the library is the
// test environment's).
func newTestEngineWith(t testing.TB, id string, opts EngineOptions) *Engine {
	t.Helper()
	opts.Library = testenv.ONNXRuntimeLib(t)
	e, err := NewEngine(loadTestManifest(t, id), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// loadTestManifest loads models/<id>/model.yaml from the repository.
func loadTestManifest(t testing.TB, id string) *inference.Manifest {
	t.Helper()
	m, err := inference.LoadManifest(filepath.Join(testenv.RepoRoot(), "models", id, inference.ManifestFile))
	require.NoError(t, err)
	return m
}
