package service

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// checkHubSources on a hub with many edges keeps its output bounded: with
// no edge reachable every source is never heard from, and it lists the
// first hubSourcesListed of them, then how many more, then the facilities
// with an edge that are not sourced, by their id; a facility marked edge:
// false is not expected to be sourced.
func TestCheckHubSourcesBounded(t *testing.T) {
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Role = config.RoleHub
	var sourced []string
	for i := range hubSourcesListed + 5 {
		f := fmt.Sprintf("site.%02d", i) // shown by id, sourced by token site_NN
		sourced = append(sourced, f)
		cfg.Facilities = append(cfg.Facilities, config.Facility{ID: f})
	}
	cfg.Facilities = append(cfg.Facilities, config.Facility{ID: "late"}, config.Facility{ID: "no-edge", Edge: new(bool)})
	require.NoError(t, broker.EnsureHubSources(t.Context(), topo.JS, sourced))

	var lines []string
	failed := 0
	checkHubSources(t.Context(), cfg, nc, func(what string, err error) bool {
		if err != nil {
			failed++
			lines = append(lines, "FAIL "+what+": "+err.Error())
			return false
		}
		lines = append(lines, "ok   "+what)
		return true
	})
	require.Len(t, lines, hubSourcesListed+2, strings.Join(lines, "\n"))
	require.Equal(t, len(lines), failed)
	for i, l := range lines[:hubSourcesListed] {
		require.True(t, strings.HasPrefix(l, fmt.Sprintf("FAIL hub: source of edge site.%02d's jobs: never heard from: the edge's link is down", i)), l)
	}
	require.Equal(t, "FAIL hub: edge sources: 5 more not active (only the first 20 are listed)", lines[hubSourcesListed])
	require.Equal(t, "FAIL hub: source of edge late's jobs: not declared: a hub radgate serve declares it at its next start or SIGHUP (or radgate sites sources)", lines[hubSourcesListed+1])
}
