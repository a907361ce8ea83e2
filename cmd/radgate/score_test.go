package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// TestScoreJSONContract scores the sample radiographs and the rejected CT
// through the command itself and checks every line against DESIGN.md's
// `score --json` contract and reference.csv.
func TestScoreJSONContract(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	heatmaps := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := runScore(t.Context(), scoreOptions{jsonOut: true, engineID: "cxr-pneumonia-densenet121",
		modelsDir: filepath.Join(testenv.RepoRoot(), "models"), heatmapDir: heatmaps, lib: lib},
		[]string{testenv.Testdata("cxr-dicom"), testenv.Testdata("dicom-negative", "CT_small.dcm"),
			testenv.Testdata("dicom-negative", "no_meta.dcm")},
		&stdout, &stderr)
	var ee *exitError
	require.ErrorAs(t, err, &ee, "some files cannot be decoded: exit non-zero after scoring the rest")
	require.Equal(t, 1, ee.code)

	ref := reference(t)
	keys := []string{"confidence_percent", "engine", "error", "file", "heatmap", "marked", "probability", "sop_instance_uid", "tier", "warning"}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 17, "one line per file, failures included")
	scored := 0
	for _, line := range lines {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj), line)
		got := make([]string, 0, len(obj))
		for k := range obj {
			got = append(got, k)
		}
		sort.Strings(got)
		require.Equal(t, keys, got, "exactly the contract's keys")
		name := filepath.Base(obj["file"].(string))
		if obj["error"] != nil {
			for _, k := range []string{"probability", "confidence_percent", "tier", "marked", "heatmap"} {
				require.Nil(t, obj[k], "%s: %s must be null when error is set", name, k)
			}
			continue
		}
		scored++
		p := obj["probability"].(float64)
		if want, ok := ref[name]; ok {
			require.InDelta(t, want, p, 0.01, name)
		}
		require.InDelta(t, p*100, obj["confidence_percent"].(float64), 0.051)
		require.Equal(t, p >= 0.5, obj["marked"], name)
		if p >= 0.5 {
			require.FileExists(t, obj["heatmap"].(string))
		} else {
			require.Nil(t, obj["heatmap"])
		}
		switch name {
		case "CT_small.dcm":
			require.Contains(t, obj["warning"], "CT", "scored, with a warning: outside the declared modalities")
		case "cr-hip-jpeg-lossless.dcm", "cr-extremity-mono1-jpeg2000-lossless.dcm":
			require.NotNil(t, obj["warning"])
		}
	}
	require.GreaterOrEqual(t, scored, 7)
}

// TestScoreWritesNoHeatmapsUnlessAsked: `radgate score DIR` with its
// default flags draws no heatmap (heatmap is null for marked results too)
// and writes nothing into the working directory; --heatmaps DIR writes one
// PNG per marked file there.
func TestScoreWritesNoHeatmapsUnlessAsked(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	models := filepath.Join(testenv.RepoRoot(), "models")
	samples := testenv.Testdata("cxr-dicom")
	run := func(args ...string) []map[string]any {
		cmd := newScoreCmd()
		var stdout, stderr bytes.Buffer
		cmd.SetArgs(append([]string{"--json", "--models", models, "--onnxruntime-lib", lib}, args...))
		cmd.SetOut(&stdout)
		cmd.SetErr(&stderr)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		require.NoError(t, cmd.ExecuteContext(t.Context()), stderr.String())
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var obj map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &obj), l)
			lines = append(lines, obj)
		}
		return lines
	}

	cwd := t.TempDir()
	t.Chdir(cwd)
	marked := 0
	for _, obj := range run(samples) {
		require.Contains(t, obj, "heatmap")
		require.Nil(t, obj["heatmap"], "%s: no heatmap unless asked", obj["file"])
		if obj["marked"] == true {
			marked++
		}
	}
	require.Positive(t, marked)
	entries, err := os.ReadDir(cwd)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written into the working directory")

	dir := filepath.Join(t.TempDir(), "maps")
	n := 0
	for _, obj := range run("--heatmaps", dir, samples) {
		if obj["marked"] == true {
			require.FileExists(t, obj["heatmap"].(string))
			require.Equal(t, dir, filepath.Dir(obj["heatmap"].(string)))
			n++
		} else {
			require.Nil(t, obj["heatmap"])
		}
	}
	require.Equal(t, marked, n)
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, files, marked, "one PNG per marked file")
}
