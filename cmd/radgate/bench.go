package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/bench"
)

func init() {
	var o bench.Options
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the whole order→report path beside bare ONNX Runtime inference",
		Long: `Measure the whole path on loopback — FHIR intake, NATS, QIDO-RS and WADO-RS
against Orthanc, decode, preprocessing, ONNX Runtime, heatmap, the FHIR
transaction write — beside bare ONNX Runtime inference of the same model
on a ready tensor, in the same run.

It needs a running Orthanc (DICOMweb) and FHIR server: scripts/bench.sh starts
them. Phase 1 times bare batch-1 session runs in this process (wall and
process CPU, the same session options as serve). Then radgate serve runs as
a child process (this executable, embedded NATS, a temporary data folder), so
its CPU time and memory, read from /proc, are radgate's alone. The bench
clones the sample radiographs into distinct studies (fresh UIDs and
accession numbers, patients one to five years old: the engines' intended
use) and stores them in the PACS before any timing. Phase 2 posts --orders
orders at once (throughput); phase 3 posts --latency-orders at --rate
orders/s and reports p50/p99 of order→report latency (from the intake's
accept to the report being written, as radgate's order store records them).
Both print the CPU ratio (radgate's CPU per delivered order ÷ the bare
CPU of one run) and the FHIR bytes sent per result (from /metrics).

--day runs the compressed day instead of phases 2 and 3: --day-orders
orders (default 8,000; 10 % non-chest studies, which radgate must reject,
5 % stat) posted as fast as radgate takes them; it prints the time until
every order is terminal, p50/p99 overall and for the stat orders, radgate's
RSS sampled every second (at 1/8, 1/2 and all of the orders finished), its
CPU per order, and the peers' memory and disk use (from the pid files in
--peers-run). The FHIR test server holds every result in memory: give it a
larger heap for 8,000 (RADGATE_FHIR_HEAP_MB, testenv/README.md).`,
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
	}, "chest radiographs to clone into orders (default: the 1024² chest samples)")
	f.StringSliceVar(&o.NonChest, "non-chest-sample", []string{
		"testdata/cxr-dicom/cr-hip-jpeg-lossless.dcm",
		"testdata/cxr-dicom/cr-extremity-mono1-jpeg2000-lossless.dcm",
	}, "non-chest studies cloned into the day's rejected orders")
	f.IntVar(&o.BareRuns, "bare-runs", 40, "bare session runs to time")
	f.IntVar(&o.ThroughputOrders, "orders", 60, "orders posted at once for throughput")
	f.Float64Var(&o.Rate, "rate", 4, "orders per second for the latency phase")
	f.IntVar(&o.LatencyOrders, "latency-orders", 40, "orders posted at --rate for latency")
	f.BoolVar(&o.Day, "day", false, "run the compressed day instead of the throughput and latency phases")
	f.IntVar(&o.DayOrders, "day-orders", 8000, "orders in the compressed day")
	f.StringVar(&o.PeersRun, "peers-run", peersRun(), "testenv/run folder of the running peers (pid files, data), for their memory and disk use")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object")
	f.BoolVar(&o.PDFReport, "pdf-report", config.Default().FHIR.PDFReport, "attach the PDF report to each DiagnosticReport (fhir.pdf_report)")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "have radgate serve write a CPU profile of its run (start-up to stop) to this file (go tool pprof)")
	f.StringVar(&o.MemProfile, "memprofile", "", "have radgate serve write a heap profile at its stop to this file (go tool pprof)")
	rootCmd.AddCommand(cmd)
}

// peersRun is the run folder of the peers env.sh describes: beside the FHIR
// server's script (…/testenv/fhir-server/server.js → …/testenv/run).
func peersRun() string {
	if js := os.Getenv("RADGATE_TEST_FHIR_SERVER_JS"); js != "" {
		return filepath.Join(filepath.Dir(filepath.Dir(js)), "run")
	}
	return "testenv/run"
}
