package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadMaxStudyBytes(t *testing.T) {
	require.Equal(t, int64(1<<30), Default().Orders.MaxStudyBytes, "the default radgate.example.yaml states")

	cfg, err := Load("radgate.yaml", []byte("orders:\n  max_study_bytes: 52428800\n"))
	require.NoError(t, err)
	require.Equal(t, int64(50<<20), cfg.Orders.MaxStudyBytes)

	for _, tc := range []struct{ yaml, want string }{
		{"orders:\n  max_study_bytes: 0\n", "radgate.yaml:2:20: orders.max_study_bytes: must be positive, got 0"},
		{"orders:\n  max_study_bytes: -1\n", "radgate.yaml:2:20: orders.max_study_bytes: must be positive, got -1"},
		{"orders:\n  max_study_bytes: 1GiB\n", `radgate.yaml:2:20: orders.max_study_bytes: expected an integer, got "1GiB"`},
	} {
		_, err := Load("radgate.yaml", []byte(tc.yaml))
		var errs Errors
		require.ErrorAs(t, err, &errs)
		require.Len(t, errs, 1, "%v", err)
		require.Equal(t, tc.want, errs[0].Error())
	}
}

func TestLoadFairWindow(t *testing.T) {
	require.Equal(t, 1024, Default().Orders.FairWindow, "the default radgate.example.yaml states")
	cfg, err := Load("radgate.yaml", []byte("orders:\n  fair_window: -1\n"))
	require.NoError(t, err)
	require.Equal(t, -1, cfg.Orders.FairWindow, "stream order")
	for _, v := range []string{"0", "-2"} {
		_, err := Load("radgate.yaml", []byte("orders:\n  fair_window: "+v+"\n"))
		var errs Errors
		require.ErrorAs(t, err, &errs)
		require.Len(t, errs, 1, "%v", err)
		require.Equal(t, "radgate.yaml:2:16: orders.fair_window: must be positive, or -1 for stream order; got "+v, errs[0].Error())
	}
}
