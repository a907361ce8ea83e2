package service

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/broker/brokertest"
)

// On a hub, a reload that adds sites declares RADGATE_JOBS's source of
// each new edge (a site marked edge: false gets none) before the new list
// is in service; a file that does not load changes nothing; an unchanged
// list is "unchanged". Real embedded server.
func TestFacilitiesReloadOnAHubDeclaresTheNewEdgesSources(t *testing.T) {
	_, topo := brokertest.Topology(t)
	path := filepath.Join(t.TempDir(), "radgate.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(path, []byte(s), 0o600)) }
	write("role: hub\nnats: {url: \"nats://127.0.0.1:4222\"}\nfacilities:\n  - {id: site-a, name: Site A}\n")
	cfg, err := LoadConfig(path, registry(t))
	require.NoError(t, err)
	require.NoError(t, broker.EnsureHubSources(t.Context(), topo.JS, cfg.EdgeFacilities()))
	facilities := radgate.NewFacilities(cfg.Facilities)
	metrics := prometheus.NewRegistry()
	r := newFacilitiesReloader(path, cfg, registry(t), facilities, topo.JS, slog.New(slog.DiscardHandler), metrics)
	sources := func() []string {
		s, err := topo.JS.Stream(t.Context(), broker.StreamJobs)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		var out []string
		for _, src := range info.Config.Sources {
			out = append(out, src.FilterSubject)
		}
		return out
	}
	require.Equal(t, []string{broker.JobsFilter("site-a")}, sources())

	require.NoError(t, r.reload(t.Context()))
	require.Equal(t, 1.0, counterValue(t, metrics, "radgate_facilities_reloads_total", "unchanged"))

	write("role: hub\nnats: {url: \"nats://127.0.0.1:4222\"}\nfacilities:\n  - {id: site-a, name: Site A}\n  - {id: site-b, name: Site B}\n  - {id: site-b, name: Site C}\n")
	require.ErrorContains(t, r.reload(t.Context()), `facility "site-b" is defined twice`)
	require.Equal(t, []string{broker.JobsFilter("site-a")}, sources(), "a list that does not load declares nothing")
	require.Empty(t, facilities.Resolve("Site B"))

	write("role: hub\nnats: {url: \"nats://127.0.0.1:4222\"}\nfacilities:\n  - {id: site-a, name: Site A}\n  - {id: site-b, name: Site B}\n  - {id: site-c, name: Site C, edge: false}\n")
	require.NoError(t, r.reload(t.Context()))
	require.ElementsMatch(t, []string{broker.JobsFilter("site-a"), broker.JobsFilter("site-b")}, sources())
	require.Equal(t, "site-b", facilities.Resolve("Site B"))
	require.Equal(t, "site-c", facilities.Resolve("Site C"))
	require.Equal(t, 1.0, counterValue(t, metrics, "radgate_facilities_reloads_total", "success"))
	require.Equal(t, 1.0, counterValue(t, metrics, "radgate_facilities_reloads_total", "failure"))
}

// counterValue is the value of a counter vector's series whose only label
// has value label.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
