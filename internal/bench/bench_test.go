package bench

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

func TestQuantile(t *testing.T) {
	require.Zero(t, quantile(nil, 0.5))
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	require.Equal(t, 1.0, quantile(xs, 0))
	require.Equal(t, 6.0, quantile(xs, 0.5), "nearest rank, rounding half up")
	require.Equal(t, 10.0, quantile(xs, 0.99))
	require.Equal(t, 10.0, quantile(xs, 1))
}

func TestStageMeansFromMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/metrics", r.URL.Path)
		_, _ = w.Write([]byte(`# HELP radgate_stage_handle_seconds time
radgate_stage_handle_seconds_bucket{stage="inference",le="1"} 3
radgate_stage_handle_seconds_sum{stage="inference"} 1.5
radgate_stage_handle_seconds_count{stage="inference"} 3
radgate_stage_handle_seconds_sum{stage="router"} 0.02
radgate_stage_handle_seconds_count{stage="router"} 4
radgate_stage_handle_seconds_sum{stage="idle"} 0
radgate_stage_handle_seconds_count{stage="idle"} 0
`))
	}))
	defer srv.Close()
	got, err := stageMeans(t.Context(), srv.URL)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"inference": 500, "router": 5}, got, "mean ms per message; stages without messages left out")
}

func TestCloneCasesAreDistinctStudies(t *testing.T) {
	samples := []string{testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"), testenv.Testdata("cxr-dicom", "cr-chest-pa-jpeg-baseline.dcm")}
	cases, err := cloneCases(samples, 3, 4200)
	require.NoError(t, err)
	require.Len(t, cases, 3)
	uids := map[string]bool{}
	for _, c := range cases {
		require.NotEmpty(t, c.Data)
		uids[c.Meta.StudyInstanceUID] = true
	}
	require.Len(t, uids, 3, "one study per order")
	require.Equal(t, "dx-chest-implicit-le-8bit.dcm", cases[2].File, "samples taken in turn")

	_, err = cloneCases([]string{"absent.dcm"}, 1, 0)
	require.Error(t, err)
}

func TestRunNeedsThePeersAndServe(t *testing.T) {
	serve := func(context.Context, config.Config, *slog.Logger, chan<- string) error { return nil }
	err := Run(t.Context(), Options{Serve: serve}, nil)
	require.ErrorContains(t, err, "bench needs --orthanc and --fhir")
	err = Run(t.Context(), Options{Orthanc: "http://127.0.0.1:1", FHIR: "http://127.0.0.1:1"}, nil)
	require.ErrorContains(t, err, "Options.Serve is not set")
}
