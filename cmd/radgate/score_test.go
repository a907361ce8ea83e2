package main

import (
	"bytes"
	"encoding/json"
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
