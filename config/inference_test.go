package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadInferenceThreading(t *testing.T) {
	cfg, err := Load("radgate.yaml", nil)
	require.NoError(t, err)
	require.Equal(t, 0, cfg.Inference.Threads)
	require.Equal(t, DefaultInferenceThreads, cfg.Inference.IntraOpThreads(), "0 means the default")
	require.Equal(t, 1, DefaultInferenceThreads)
	require.False(t, cfg.Inference.Spinning, "spinning is off by default")

	cfg, err = Load("radgate.yaml", []byte("inference:\n  threads: 2\n  spinning: true\n"))
	require.NoError(t, err)
	require.Equal(t, 2, cfg.Inference.IntraOpThreads())
	require.True(t, cfg.Inference.Spinning)
	require.Equal(t, 4, cfg.Inference.Workers, "the other inference keys keep their defaults")

	for _, tc := range []struct{ yaml, want string }{
		{"inference:\n  threads: -1\n", `radgate.yaml:2:12: inference.threads: must be 0 (the default: 1 per engine) or more, got -1`},
		{"inference:\n  threads: two\n", `radgate.yaml:2:12: inference.threads: expected an integer, got "two"`},
		{"inference:\n  spinning: sometimes\n", `radgate.yaml:2:13: inference.spinning:`},
	} {
		_, err := Load("radgate.yaml", []byte(tc.yaml))
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
}
