package scoring

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

func TestHeatmapNameKeepsPathsInside(t *testing.T) {
	require.Equal(t, "1.2.840.113619.2.55.3.png", HeatmapName("1.2.840.113619.2.55.3"))
	for _, uid := range []string{"../../etc/passwd", "1.2/3", "", "1.2.3.", "1." + string(make([]byte, 70))} {
		name := HeatmapName(uid)
		require.Regexp(t, `^sop-[0-9a-f]{24}\.png$`, name, "%q", uid)
		require.True(t, filepath.IsLocal(name))
	}
}

func TestInputsSkipHiddenAndNonDICOM(t *testing.T) {
	dir := t.TempDir()
	sample, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	for _, p := range []string{"b.dcm", "sub/a.dcm", ".hidden.dcm", ".cache/c.dcm"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), sample, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not DICOM"), 0o644))
	missing := filepath.Join(dir, "absent.dcm")
	notes := filepath.Join(dir, "notes.txt")

	in, skipped, err := Inputs([]string{dir, missing, notes})
	require.NoError(t, err)
	require.Equal(t, 3, skipped, ".hidden.dcm, .cache/ and notes.txt")
	require.Len(t, in, 4)
	require.Equal(t, filepath.Join(dir, "b.dcm"), in[0].Path)
	require.Equal(t, filepath.Join(dir, "sub", "a.dcm"), in[1].Path)
	require.Equal(t, missing, in[2].Path)
	require.Error(t, in[2].Err, "a missing file named on the command line is reported, not dropped")
	require.Equal(t, Input{Path: notes}, in[3], "a file named on the command line is always scored")
}

// TestFilesHeatmapsOnlyWhenAsked scores the sample radiographs twice:
// without a heatmap directory no marked result has a heatmap and nothing is
// written; with one, every marked result's PNG is there.
func TestFilesHeatmapsOnlyWhenAsked(t *testing.T) {
	engines, warning, err := OpenEngines(filepath.Join(testenv.RepoRoot(), "models"), []string{inference.DefaultEngineID}, testenv.ONNXRuntimeLib(t), 0)
	require.NoError(t, err)
	require.NoError(t, warning)
	eng := engines[0]
	defer eng.Close()
	in, _, err := Inputs([]string{testenv.Testdata("cxr-dicom")})
	require.NoError(t, err)
	in = append(in, Input{Path: testenv.Testdata("dicom-negative", "no_meta.dcm")})

	t.Chdir(t.TempDir())
	lines := Files(t.Context(), eng, in, "")
	marked := 0
	for _, l := range lines {
		if l.Marked != nil && *l.Marked {
			marked++
		}
		require.Nil(t, l.Heatmap, l.File)
	}
	require.Positive(t, marked, "the samples include marked results")
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written without a heatmap directory")
	require.NotNil(t, lines[len(lines)-1].Error, "a file that does not decode is a line with its error")

	dir := filepath.Join(t.TempDir(), "heatmaps")
	withMaps := Files(t.Context(), eng, in, dir)
	n := 0
	for i, l := range withMaps {
		require.Equal(t, lines[i].Probability, l.Probability)
		if l.Marked != nil && *l.Marked {
			require.NotNil(t, l.Heatmap, l.File)
			require.FileExists(t, *l.Heatmap)
			require.Equal(t, dir, filepath.Dir(*l.Heatmap))
			n++
		}
	}
	require.Equal(t, marked, n)
}
