package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate/internal/testenv"
)

// checkConfig is a radgate.yaml for the real peers with every kind of
// destination, written to a file as an operator would.
func checkConfig(t *testing.T, ris, routes string) string {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	t.Setenv("RADGATE_CHECK_PACS_PASSWORD", pacs.Password)
	dir := t.TempDir()
	cfg := map[string]any{
		"models_dir": filepath.Join(testenv.RepoRoot(), "models"),
		"inference":  map[string]any{"onnxruntime_library": testenv.ONNXRuntimeLib(t)},
		"pacs": map[string]any{"dicomweb_url": pacs.DICOMweb, "username": pacs.Username,
			"password_env": "RADGATE_CHECK_PACS_PASSWORD"},
		"fhir": map[string]any{"base_url": fhirSrv.URL},
		"destinations": map[string]any{
			"fhir-b": map[string]any{"type": "fhir", "url": fhirSrv.URL},
			"pacs-results": map[string]any{"type": "dicomweb", "url": pacs.DICOMweb,
				"auth": map[string]any{"username": pacs.Username, "password_env": "RADGATE_CHECK_PACS_PASSWORD"}},
			"ris": map[string]any{"type": "hl7v2", "address": ris},
		},
	}
	if routes != "" {
		p := filepath.Join(dir, "routes.yaml")
		require.NoError(t, os.WriteFile(p, []byte(routes), 0o600))
		cfg["routes_file"] = p
	}
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	p := filepath.Join(dir, "radgate.yaml")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

func runCheckCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(append([]string{"check"}, args...))
	t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil); rootCmd.SetErr(nil) })
	err := rootCmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestCheckBuildsAndConnects: with every peer up, check builds every
// component and reaches the PACS, both FHIR servers, the DICOMweb
// destination and the RIS.
func TestCheckBuildsAndConnects(t *testing.T) {
	ris, _ := oruReceiver(t)
	cfgFile := checkConfig(t, ris, `routes:
  - name: chest
    engines: [cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224]
    destinations: [fhir, fhir-b, pacs-results, ris]
`)
	out, err := runCheckCmd(t, "--config", cfgFile, "--connect")
	require.NoError(t, err, out)
	for _, want := range []string{
		"ok   engine cxr-pneumonia-densenet121: ONNX session",
		"ok   engine cxr-pneumonia-densenet121-k224: ONNX session",
		"ok   destinations: 4 built",
		"ok   connect pacs ",
		"ok   connect destination fhir ",
		"ok   connect destination fhir-b ",
		"ok   connect destination pacs-results ",
		"ok   connect destination ris " + ris + " (MLLP connection)",
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "FAIL")
}

// TestCheckReportsWhatIsWrong: an unreachable RIS is found only with
// --connect; a route file naming an unknown engine fails the build step
// with the linter's positioned message.
func TestCheckReportsWhatIsWrong(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	cfgFile := checkConfig(t, dead, "")
	out, err := runCheckCmd(t, "--config", cfgFile, "--connect=false") // flags persist across runs of rootCmd
	require.NoError(t, err, "built, not connected: %s", out)

	out, err = runCheckCmd(t, "--config", cfgFile, "--connect", "--timeout", "5s")
	require.Equal(t, 1, exitCode(t, err), out)
	require.Contains(t, out, "FAIL connect destination ris "+dead+" (MLLP connection)")
	require.Contains(t, out, "ok   connect destination fhir-b ")
	require.Equal(t, 1, strings.Count(out, "FAIL"), out)

	bad := checkConfig(t, dead, "routes:\n  - name: chest\n    engines: [cxr-pneumonia-densenet12]\n    destinations: [fhir]\n")
	out, err = runCheckCmd(t, "--config", bad, "--connect=false")
	require.Equal(t, 1, exitCode(t, err), out)
	require.Regexp(t, `FAIL routes: .*routes.yaml: .*routes.yaml:3:15: route "chest": engines: unknown engine "cxr-pneumonia-densenet12" \(did you mean "cxr-pneumonia-densenet121"\?`, out)
}
