package service

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/internal/testenv"
)

// Every engine serve opens gets the inference section's threading (through
// onnx.OptionsFromConfig, as the bench's bare phase does) and the pacs
// section's inflate limits.
func TestEngineLoaderUsesTheInferenceSection(t *testing.T) {
	cfg := config.Default()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = testenv.ONNXRuntimeLib(t)
	cfg.Inference.Threads, cfg.Inference.Spinning = 2, true
	cfg.PACS.MaxInflatedBytes, cfg.PACS.MaxInflateRatio = 64<<20, 20
	l, err := newEngineLoader(cfg)
	require.NoError(t, err)
	defer l.Close()

	want, err := onnx.OptionsFromConfig(cfg.Inference)
	require.NoError(t, err)
	require.Equal(t, 2, want.Threads)
	require.True(t, want.Spinning)
	want.Decode = inference.DecodeOptions{MaxInflatedBytes: 64 << 20, MaxInflateRatio: 20}
	require.Equal(t, want, l.opts)

	engines, err := l.load([]string{config.DefaultEngine})
	require.NoError(t, err)
	require.Len(t, engines, 1)
	require.Equal(t, config.DefaultEngine, engines[0].Info().ID)
}
