package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// TestScaleOutTwoProcessesOneNATS: two radgate processes against one
// external NATS server share the durable consumers of every stage, so they
// share the work; orders posted to either end with exactly one report each.
func TestScaleOutTwoProcessesOneNATS(t *testing.T) {
	ext, err := broker.StartEmbedded(t.TempDir(), -1) // stands in for the hospital's NATS cluster
	require.NoError(t, err)
	t.Cleanup(ext.Shutdown)
	a := startRadgate(t, func(c *config.Config) { c.NATS.URL = ext.ClientURL() })
	b := startRadgate(t, func(c *config.Config) { c.NATS.URL = ext.ClientURL() })

	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	seed := int(time.Now().UnixNano()/1e6%900)*100 + 60 // twelve clones: variants seed … seed+11
	var viaA, viaB []*demo.Case
	for i := range 12 {
		clone, _, err := demo.Clone(src, seed+i)
		require.NoError(t, err)
		c := &demo.Case{File: "scaleout.dcm", Data: clone, Path: demo.ViaBundle}
		if i%2 == 0 {
			viaA = append(viaA, c)
		} else {
			viaB = append(viaB, c)
		}
	}
	all := append(append([]*demo.Case{}, viaA...), viaB...)
	require.NoError(t, a.env.LoadImages(t.Context(), all))
	require.NoError(t, a.env.Order(t.Context(), viaA))
	require.NoError(t, b.env.Order(t.Context(), viaB))
	require.NoError(t, a.env.Wait(t.Context(), all, 3*time.Minute), "either process answers for every order")

	published := map[*running]int{}
	for _, c := range all {
		require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)
		require.Equal(t, 1, countReports(t, a, c), "exactly one report for order %s", c.OrderID)
		for _, rg := range []*running{a, b} {
			if strings.Contains(rg.logs.String(), `msg="result published" component=pipeline order=`+c.OrderID) {
				published[rg]++
			}
		}
	}
	require.Equal(t, len(all), published[a]+published[b], "each order scored once, by one of the two")
	t.Logf("scored by process A: %d, by process B: %d", published[a], published[b])
}
