package config

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shipped example must load and equal the defaults it documents.
func TestExampleConfigIsValidAndDocumentsTheDefaults(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	cfg, err := LoadFile(filepath.Join(filepath.Dir(file), "..", "radgate.example.yaml"))
	require.NoError(t, err)
	cfg.src = source{} // where it was read from
	require.Equal(t, Default(), cfg)
}
