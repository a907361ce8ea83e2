// Command radgate-demo plays the hospital around a running radgate: it loads
// sample radiographs into the PACS, files chest X-ray orders (through the
// FHIR server's Subscription, posted directly, and as a Bundle), waits for
// each order to finish, and prints each DiagnosticReport's confidence and
// tier, writing the heatmaps to a folder. scripts/demo.sh runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/internal/demo"
)

func main() {
	radgateURL := flag.String("radgate", "http://127.0.0.1:8080", "radgate intake base URL")
	fhirURL := flag.String("fhir", os.Getenv("RADGATE_TEST_FHIR_URL"), "FHIR server base URL")
	orthanc := flag.String("orthanc", os.Getenv("RADGATE_TEST_ORTHANC_URL"), "Orthanc URL (DICOMweb at /dicom-web)")
	user := flag.String("user", os.Getenv("RADGATE_TEST_ORTHANC_USER"), "PACS user")
	password := flag.String("password", os.Getenv("RADGATE_TEST_ORTHANC_PASSWORD"), "PACS password")
	samples := flag.String("samples", "testdata/cxr-dicom", "folder of DICOM files to order")
	heatmaps := flag.String("heatmaps", "demo-out/heatmaps", "where to write heatmap PNGs")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long to wait for all orders")
	flag.Parse()
	if err := run(*radgateURL, *fhirURL, *orthanc, *user, *password, *samples, *heatmaps, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "radgate-demo:", err)
		os.Exit(1)
	}
}

func run(radgateURL, fhirURL, orthanc, user, password, samples, heatmaps string, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if fhirURL == "" || orthanc == "" {
		return fmt.Errorf("need --fhir and --orthanc (or source testenv/run/env.sh)")
	}
	pacs, err := dicomweb.New(dicomweb.Options{BaseURL: orthanc + "/dicom-web", Username: user, Password: password})
	if err != nil {
		return err
	}
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: fhirURL})
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(samples, "*.dcm"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no .dcm files in %s", samples)
	}
	sort.Strings(files)
	paths := []demo.Path{demo.ViaSubscription, demo.ViaDirectPost, demo.ViaBundle}
	cases := make([]*demo.Case, len(files))
	for i, f := range files {
		cases[i] = &demo.Case{File: f, Path: paths[i%len(paths)]}
	}
	env := &demo.Env{RadgateURL: radgateURL, FHIR: fc, PACS: pacs}
	fmt.Printf("storing %d radiographs in the PACS (STOW-RS)…\n", len(cases))
	if err := env.LoadImages(ctx, cases); err != nil {
		return err
	}
	if err := env.Subscribe(ctx); err != nil {
		return err
	}
	fmt.Printf("filing %d chest X-ray orders (via FHIR Subscription, direct POST, and Bundle)…\n", len(cases))
	start := time.Now()
	if err := env.Order(ctx, cases); err != nil {
		return err
	}
	if err := env.Wait(ctx, cases, timeout); err != nil {
		return err
	}
	fmt.Printf("all orders finished in %s\n\n", time.Since(start).Round(time.Millisecond))
	if err := env.ReadReports(ctx, cases, heatmaps); err != nil {
		return err
	}
	demo.Print(os.Stdout, cases)
	fmt.Println("\nEvery report carries the engine's disclaimer: AI decision support, not a diagnosis.")
	// The engines are paediatric (intended use 1–5 y, accepts.age_years):
	// an adult's study is answered, not scored; one without an age is
	// scored with a caveat in every output.
	for _, c := range cases {
		if strings.Contains(c.Status.Reason, "(accepts.age_years)") {
			fmt.Printf("\nRefused for the engine's intended use: %s\n  %s\n", filepath.Base(c.File), c.Status.Reason)
		}
	}
	fmt.Println("\nReports marked [age unknown: caveat] were scored without a patient age: the caveat is in the\n" +
		"Observation, the conclusion, the PDF and the ORU (a route with unknown_age: reject refuses them).")
	return nil
}
