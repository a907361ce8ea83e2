package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/bench"
	"github.com/radgate/radgate/internal/testenv"
)

// TestBenchSmallRunOnRealPeers runs `radgate bench`'s harness with radgate
// serve in-process against the real PACS and FHIR server, with a handful of
// orders: every phase measures something and every order is delivered.
func TestBenchSmallRunOnRealPeers(t *testing.T) {
	pacs, fhirSrv := testenv.Orthanc(t), testenv.FHIR(t)
	var out bytes.Buffer
	err := bench.Run(t.Context(), bench.Options{
		Orthanc: pacs.URL, User: pacs.Username, Password: pacs.Password, FHIR: fhirSrv.URL,
		ModelsDir: filepath.Join(testenv.RepoRoot(), "models"), Library: testenv.ONNXRuntimeLib(t),
		Samples:  []string{testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm")},
		BareRuns: 2, ThroughputOrders: 2, Rate: 4, LatencyOrders: 2, JSON: true, Serve: serve,
	}, &out)
	require.NoError(t, err)
	var rep bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.Equal(t, "cxr-pneumonia-densenet121", rep.Engine)
	require.Positive(t, rep.BareImagesPerSecond)
	require.Positive(t, rep.OrdersPerSecond)
	require.Positive(t, rep.LatencyP50Ms)
	require.GreaterOrEqual(t, rep.LatencyMaxMs, rep.LatencyP99Ms)
	require.GreaterOrEqual(t, rep.LatencyP99Ms, rep.LatencyP50Ms)
	require.Contains(t, rep.StageMeanMs, "inference")
}
