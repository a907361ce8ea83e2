// Package testenv tells tests where the real peers started by testenv/start.sh
// listen. A test that needs a peer calls one of these; when the peer is not
// running the test is skipped, except under the project's test command
// (RADGATE_REQUIRE_PEERS=1), where a missing peer fails the test.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// PACS is an Orthanc server with the DICOMweb plugin.
type PACS struct {
	// URL is Orthanc's REST root (http://127.0.0.1:PORT).
	URL string
	// DICOMweb is the DICOMweb root (URL + "/dicom-web").
	DICOMweb string
	Username string
	Password string
}

// FHIRServer is the R4 test server on Medplum's router.
type FHIRServer struct {
	// URL is the FHIR base URL (no trailing slash).
	URL string
}

// RepoRoot returns the repository root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Required reports whether missing peers fail tests instead of skipping them.
func Required() bool { return os.Getenv("RADGATE_REQUIRE_PEERS") == "1" }

func missing(t testing.TB, what, env string) {
	t.Helper()
	msg := what + " is not running (" + env + " unset): start the peers with testenv/start.sh and source testenv/run/env.sh"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Orthanc returns the running Orthanc, or skips/fails the test.
func Orthanc(t testing.TB) PACS {
	t.Helper()
	u := os.Getenv("RADGATE_TEST_ORTHANC_URL")
	if u == "" {
		missing(t, "Orthanc", "RADGATE_TEST_ORTHANC_URL")
	}
	return PACS{
		URL:      u,
		DICOMweb: u + "/dicom-web",
		Username: os.Getenv("RADGATE_TEST_ORTHANC_USER"),
		Password: os.Getenv("RADGATE_TEST_ORTHANC_PASSWORD"),
	}
}

// FHIR returns the running FHIR server, or skips/fails the test.
func FHIR(t testing.TB) FHIRServer {
	t.Helper()
	u := os.Getenv("RADGATE_TEST_FHIR_URL")
	if u == "" {
		missing(t, "the FHIR server", "RADGATE_TEST_FHIR_URL")
	}
	return FHIRServer{URL: u}
}

// ONNXRuntimeLib returns the ONNX Runtime shared library installed by
// testenv/setup.sh (or named by RADGATE_ONNXRUNTIME_LIB), or skips/fails.
func ONNXRuntimeLib(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RADGATE_ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	p := filepath.Join(RepoRoot(), ".tools", "onnxruntime", "lib", "libonnxruntime.so")
	if _, err := os.Stat(p); err != nil {
		missing(t, "the ONNX Runtime library", "RADGATE_ONNXRUNTIME_LIB; run testenv/setup.sh")
	}
	return p
}

// Testdata returns the path of a file or folder under the repo's testdata/.
func Testdata(parts ...string) string {
	return filepath.Join(append([]string{RepoRoot(), "testdata"}, parts...)...)
}

// DIMSEOnlyPACS is the second Orthanc, reached only over DICOM: no
// DICOMweb, its called AE title checked. Its REST API (URL) stores test
// studies and registers radgate's AE title (PUT /modalities/<name>).
type DIMSEOnlyPACS struct {
	// Addr is its DICOM port, 127.0.0.1:PORT; AETitle its called AE title.
	Addr, AETitle string
	// URL is its REST root; Username and Password as Orthanc's.
	URL, Username, Password string
}

// DIMSEPACS returns the running DIMSE-only Orthanc, or skips/fails the test.
func DIMSEPACS(t testing.TB) DIMSEOnlyPACS {
	t.Helper()
	port, aet, u := os.Getenv("RADGATE_TEST_DIMSE_PACS_PORT"), os.Getenv("RADGATE_TEST_DIMSE_PACS_AET"), os.Getenv("RADGATE_TEST_DIMSE_PACS_URL")
	if port == "" || aet == "" || u == "" {
		missing(t, "the DIMSE-only Orthanc", "RADGATE_TEST_DIMSE_PACS_PORT/_AET/_URL")
	}
	return DIMSEOnlyPACS{Addr: "127.0.0.1:" + port, AETitle: aet, URL: u,
		Username: os.Getenv("RADGATE_TEST_ORTHANC_USER"), Password: os.Getenv("RADGATE_TEST_ORTHANC_PASSWORD")}
}

// Chromium returns the headless browser the console's browser tests drive:
// RADGATE_TEST_CHROMIUM when set, else chromium (Debian's package, which
// testenv/setup.sh installs) or google-chrome on PATH; or skips/fails.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RADGATE_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium not on PATH, RADGATE_TEST_CHROMIUM unset): run testenv/setup.sh"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
