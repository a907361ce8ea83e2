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
