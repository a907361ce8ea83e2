package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/bench"
)

func init() {
	o := bench.Options{Serve: serve}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the whole order→report path beside bare ONNX Runtime inference",
		Long: `Measure the whole path on loopback — FHIR intake, NATS, QIDO-RS and WADO-RS
against Orthanc, decode, preprocessing, ONNX Runtime, CAM heatmap PNG, and the
FHIR transaction write — beside bare ONNX Runtime inference of the same model
on a ready tensor, in the same run.

It needs a running Orthanc (DICOMweb) and FHIR server: scripts/bench.sh starts
them. Phase 1 times bare session runs; phase 2 posts --orders orders at once
(throughput); phase 3 posts --latency-orders at --rate orders/s and reports
p50/p99 of order→report latency (from the intake's accept to the report
being written, as radgate's order store records them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Orthanc, "orthanc", os.Getenv("RADGATE_TEST_ORTHANC_URL"), "Orthanc URL (DICOMweb at /dicom-web)")
	f.StringVar(&o.User, "user", os.Getenv("RADGATE_TEST_ORTHANC_USER"), "PACS user")
	f.StringVar(&o.Password, "password", os.Getenv("RADGATE_TEST_ORTHANC_PASSWORD"), "PACS password")
	f.StringVar(&o.FHIR, "fhir", os.Getenv("RADGATE_TEST_FHIR_URL"), "FHIR server base URL")
	f.StringVar(&o.ModelsDir, "models", "models", "models directory")
	f.StringVar(&o.Library, "onnxruntime-lib", "", "ONNX Runtime library (default: the usual lookup)")
	f.StringSliceVar(&o.Samples, "sample", []string{
		"testdata/cxr-dicom/cr-chest-pa-jpeg-baseline.dcm",
		"testdata/cxr-dicom/cr-chest-header-mono1-jpeg-baseline.dcm",
		"testdata/cxr-dicom/dx-chest-implicit-le-8bit.dcm",
	}, "radiographs to clone into orders (default: the 1024² chest samples)")
	f.IntVar(&o.BareRuns, "bare-runs", 40, "bare session runs to time")
	f.IntVar(&o.ThroughputOrders, "orders", 60, "orders posted at once for throughput")
	f.Float64Var(&o.Rate, "rate", 2, "orders per second for the latency phase")
	f.IntVar(&o.LatencyOrders, "latency-orders", 40, "orders posted at --rate for latency")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object")
	f.BoolVar(&o.PDFReport, "pdf-report", config.Default().FHIR.PDFReport, "attach the PDF report to each DiagnosticReport (fhir.pdf_report)")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole-path phases to this file (go tool pprof)")
	rootCmd.AddCommand(cmd)
}
