package evaluation

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadLabelsExtraColumnsAnyOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "labels.csv")
	require.NoError(t, os.WriteFile(p, []byte("\ufeffsource,Label,file\na.jpeg,1,a.dcm\nb.jpeg,0,sub/b.dcm\n"), 0o644))
	cases, err := ReadLabels(p)
	require.NoError(t, err)
	require.Equal(t, []Case{{File: "a.dcm", Positive: true}, {File: "sub/b.dcm", Positive: false}}, cases)
}

func TestReadLabelsErrorsNameTheLine(t *testing.T) {
	for content, want := range map[string]string{
		"file,class\nPMV0000.dcm,1\n":                  ":1: the header must name the columns file and label (got file,class)",
		"file,label\nPMV0000.dcm,1\nPMV0003.dcm,yes\n": `:3: label "yes": want 1 (positive) or 0 (negative)`,
		"file,label\nPMV0000.dcm,1\nPMV0000.dcm,0\n":   `:3: file "PMV0000.dcm" listed twice (first on line 2)`,
		"file,label\n../x.dcm,1\n":                     `:2: file "../x.dcm" must be a relative path inside the directory`,
		"file,label\n/etc/x.dcm,1\n":                   `:2: file "/etc/x.dcm" must be a relative path inside the directory`,
		"x,file,label\na,b\n":                          ":2: 2 columns, the header has 3",
		"file,label\n":                                 "no cases listed",
		"":                                             "reading the header",
	} {
		p := filepath.Join(t.TempDir(), "labels.csv")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		_, err := ReadLabels(p)
		require.ErrorContains(t, err, want, "%q", content)
	}
	_, err := ReadLabels(filepath.Join(t.TempDir(), "nope.csv"))
	require.ErrorContains(t, err, "reading labels")
}
