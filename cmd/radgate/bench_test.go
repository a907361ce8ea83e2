package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/bench"
	"github.com/radgate/radgate/internal/testenv"
)

// benchOptions run `radgate bench`'s harness against the real PACS and FHIR
// server, with this test binary as the radgate serve child.
func benchOptions(t *testing.T) bench.Options {
	pacs, fhirSrv := testenv.Orthanc(t), testenv.FHIR(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	return bench.Options{
		Orthanc: pacs.URL, User: pacs.Username, Password: pacs.Password, FHIR: fhirSrv.URL,
		ModelsDir: filepath.Join(testenv.RepoRoot(), "models"), Library: testenv.ONNXRuntimeLib(t),
		Samples:  []string{testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm")},
		NonChest: []string{testenv.Testdata("cxr-dicom", "cr-hip-jpeg-lossless.dcm")},
		BareRuns: 2, JSON: true, PeersRun: peersRun(),
		Executable: exe, Env: []string{execEnv + "=1"},
	}
}

// TestBenchSmallRunOnRealPeers: a handful of orders through radgate serve
// as a child process; every phase measures something and every order is
// delivered.
func TestBenchSmallRunOnRealPeers(t *testing.T) {
	o := benchOptions(t)
	o.ThroughputOrders, o.Rate, o.LatencyOrders = 2, 4, 2
	o.CPUProfile = filepath.Join(t.TempDir(), "serve.prof")
	var out bytes.Buffer
	require.NoError(t, bench.Run(t.Context(), o, &out))
	var rep bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.Equal(t, "cxr-pneumonia-densenet121", rep.Engine)
	require.Positive(t, rep.BareImagesPerSecond)
	require.Positive(t, rep.BareCPUMsPerImage)
	require.Positive(t, rep.OrdersPerSecond)
	require.Positive(t, rep.CPURatio)
	require.Positive(t, rep.LatencyCPURatio)
	require.Greater(t, rep.FHIRBytesPerResult, 1000.0, "a result's transaction is counted")
	require.Positive(t, rep.LatencyFHIRBytesPerResult)
	require.Positive(t, rep.LatencyP50Ms)
	require.GreaterOrEqual(t, rep.LatencyMaxMs, rep.LatencyP99Ms)
	require.GreaterOrEqual(t, rep.LatencyP99Ms, rep.LatencyP50Ms)
	require.Contains(t, rep.StageMeanMs, "inference")
	require.Positive(t, rep.RadgateRSSMB)
	st, err := os.Stat(o.CPUProfile)
	require.NoError(t, err, "radgate serve wrote its CPU profile on SIGTERM")
	require.Positive(t, st.Size())
}

// TestBenchSmallDayOnRealPeers: a compressed day of 12 orders, one of them
// a hip study (rejected) and one stat.
func TestBenchSmallDayOnRealPeers(t *testing.T) {
	o := benchOptions(t)
	o.Day, o.DayOrders = true, 12
	var out bytes.Buffer
	require.NoError(t, bench.Run(t.Context(), o, &out))
	var rep bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	d := rep.Day
	require.NotNil(t, d)
	require.Equal(t, 12, d.Orders)
	require.Equal(t, 1, d.NonChest)
	require.Equal(t, 1, d.Stat)
	require.Positive(t, d.OrdersPerSecond)
	require.Positive(t, d.StatP50Ms)
	require.GreaterOrEqual(t, d.P99Ms, d.P50Ms)
	require.Positive(t, d.CPURatio)
	require.Positive(t, d.FHIRBytesPerResult)
	require.NotEmpty(t, d.RSS)
	require.Contains(t, d.RSSAtMB, "12", "RSS when every order had finished")
	require.Positive(t, d.RSSMaxMB)
	require.Contains(t, d.Disk, "radgate")
	require.Positive(t, d.Disk["radgate"].After)
}
