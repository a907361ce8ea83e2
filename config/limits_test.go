package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadIntakeLimits(t *testing.T) {
	require.Equal(t, IntakeLimits{MaxBundleEntries: 100, OrdersPerSecond: 2, OrderBurst: 200, MaxClients: 10000},
		Default().HTTP.Limits, "the defaults the README and radgate.example.yaml state")

	cfg, err := Load("radgate.yaml", []byte("http:\n  limits:\n    max_bundle_entries: 20\n    orders_per_second: 0.5\n    order_burst: 40\n"))
	require.NoError(t, err)
	require.Equal(t, IntakeLimits{MaxBundleEntries: 20, OrdersPerSecond: 0.5, OrderBurst: 40, MaxClients: 10000}, cfg.HTTP.Limits)

	cfg, err = Load("radgate.yaml", []byte("http:\n  limits:\n    orders_per_second: 0\n    order_burst: 1\n"))
	require.NoError(t, err, "rate limit off: the burst does not matter")
	require.Zero(t, cfg.HTTP.Limits.OrdersPerSecond)

	for _, tc := range []struct{ name, yaml, want string }{
		{"burst below the bundle limit", "http:\n  limits:\n    max_bundle_entries: 100\n    order_burst: 50\n",
			"radgate.yaml:4:18: http.limits.order_burst: must be at least http.limits.max_bundle_entries (100), so that a Bundle radgate takes can be paid for; got 50"},
		{"negative rate", "http:\n  limits:\n    orders_per_second: -1\n",
			"radgate.yaml:3:24: http.limits.orders_per_second: must not be negative (0 turns the limit off)"},
		{"no entries", "http:\n  limits:\n    max_bundle_entries: 0\n    order_burst: 0\n",
			"radgate.yaml:3:25: http.limits.max_bundle_entries: must be at least 1, got 0"},
		{"no clients", "http:\n  limits:\n    max_clients: 0\n",
			"radgate.yaml:3:18: http.limits.max_clients: must be at least 1, got 0"},
		{"misspelled", "http:\n  limits:\n    orders_per_sec: 3\n",
			`radgate.yaml:3:5: unknown key "orders_per_sec" in http.limits (known: max_bundle_entries, orders_per_second, order_burst, max_clients)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("radgate.yaml", []byte(tc.yaml))
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			require.Equal(t, tc.want, errs[0].Error())
		})
	}
}
