package broker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The link sources survive radgate's topology being declared again (every
// serve start): an update of RADGATE_JOBS or RADGATE_RESULTS without them
// would drop them.
func TestTopologyKeepsLinkSources(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	require.NoError(t, EnsureHubSources(t.Context(), topo.JS, []string{"general-hospital", "st-mary", "st-mary"}))
	require.NoError(t, EnsureEdgeSource(t.Context(), topo.JS, "general-hospital"))

	sources := func(stream string) []string {
		s, err := topo.JS.Stream(t.Context(), stream)
		require.NoError(t, err)
		var out []string
		for _, src := range s.CachedInfo().Config.Sources {
			out = append(out, src.External.APIPrefix+" "+src.FilterSubject+" "+src.External.DeliverPrefix)
		}
		return out
	}
	wantJobs := []string{
		"$JS.edge-general-hospital.API radgate.jobs.*.general-hospital.> radgate.link.general-hospital.jobs",
		"$JS.edge-st-mary.API radgate.jobs.*.st-mary.> radgate.link.st-mary.jobs",
	}
	wantResults := []string{"$JS.hub.API radgate.results.*.*.general-hospital.> radgate.link.general-hospital.results"}
	require.Equal(t, wantJobs, sources(StreamJobs))
	require.Equal(t, wantResults, sources(StreamResults))

	_, err = EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	require.Equal(t, wantJobs, sources(StreamJobs), "RADGATE_JOBS lost its sources on a second start")
	require.Equal(t, wantResults, sources(StreamResults), "RADGATE_RESULTS lost its source on a second start")
	// Idempotent: the same call again changes nothing.
	require.NoError(t, EnsureHubSources(t.Context(), topo.JS, []string{"general-hospital", "st-mary"}))
	require.Equal(t, wantJobs, sources(StreamJobs))

	// No edge answers here: the server reports each link source never
	// heard from.
	for stream, want := range map[string][]string{StreamJobs: {"general-hospital", "st-mary"}, StreamResults: {"general-hospital"}} {
		s, err := topo.JS.Stream(t.Context(), stream)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		var got []string
		for _, ls := range LinkSources(info) {
			require.Equal(t, stream, ls.Stream)
			require.ErrorContains(t, ls.Problem(), "never heard from", "%s's source of %s", stream, ls.Facility)
			got = append(got, ls.Facility)
		}
		require.Equal(t, want, got, stream)
	}
}
