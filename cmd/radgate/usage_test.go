package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// TestUsageCountsWhatRan: two chest studies are scored and one hip study is
// answered without scoring; `radgate usage --csv`, run against the running
// server as an operator would, bills exactly the two analyses — and posting
// the same orders again bills nothing more.
func TestUsageCountsWhatRan(t *testing.T) {
	natsAddr := freeAddr(t)
	rg := startRadgate(t, func(c *config.Config) { c.NATS.EmbeddedListen = natsAddr })
	cfgFile := dlqConfig(t, natsAddr, rg.cfg.DataDir)
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 3
	var cases []*demo.Case
	for i, f := range []string{"dx-chest-implicit-le-8bit.dcm", "cr-chest-mono1-10bit-explicit-le.dcm", "cr-hip-jpeg-lossless.dcm"} {
		src, err := os.ReadFile(testenv.Testdata("cxr-dicom", f))
		require.NoError(t, err)
		b, _, err := demo.Clone(src, seed+i)
		require.NoError(t, err)
		cases = append(cases, &demo.Case{File: f, Data: b, Path: demo.ViaBundle})
	}
	require.NoError(t, rg.env.LoadImages(ctx, cases))
	require.NoError(t, rg.env.Order(ctx, cases))
	require.NoError(t, rg.env.Wait(ctx, cases, 2*time.Minute))
	require.Equal(t, radgate.StateRejected, cases[2].Status.State, "the hip study is not scored")
	require.NoError(t, rg.env.Order(ctx, cases)) // the same orders again
	time.Sleep(time.Second)

	month := time.Now().UTC().Format("2006-01")
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"usage", "--config", cfgFile, "--month", month, "--csv"})
	t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
	require.NoError(t, rootCmd.ExecuteContext(ctx))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"month", "facility", "engine", "analyses"},
		{month, billing.UnknownFacility, config.DefaultEngine, "2"},
	}, rows)
}
