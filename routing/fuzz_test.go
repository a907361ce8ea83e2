package routing

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLoad: no input makes Load panic, and what loads decides without
// panicking.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(repo("testdata", "routes", "*.yaml"))
	require.NoError(f, err)
	for _, p := range append(files, repo("routes.example.yaml")) {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Load("f.yaml", data, testReg)
		if err != nil {
			return
		}
		s.Decide(Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Facilities: []string{"St Mary Hospital"}, Priority: "stat"})
		s.Decide(Facts{})
	})
}
