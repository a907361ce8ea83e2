package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// The shipped golden cases pass against routes.example.yaml.
func TestRouteTestPassesTheShippedCases(t *testing.T) {
	out, _, err := runCmd(t, newRouteTestCmd(), "--config", routesTestdata("radgate.yaml"),
		"--models", filepath.Join(testenv.RepoRoot(), "models"),
		"--routes", filepath.Join(testenv.RepoRoot(), "routes.example.yaml"), routesTestdata("cases"))
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Contains(t, lines[0], "routes.example.yaml (sha256 ")
	require.Contains(t, lines, "PASS 04-st-mary-override")
	require.Contains(t, lines, "PASS 09-ct-head-unmatched")
	require.Regexp(t, `^\d+ passed, 0 failed$`, lines[len(lines)-1])
	require.GreaterOrEqual(t, len(lines), 11)
}

// A wrong expectation fails with every mismatch named, and the exit status
// is 1; the other cases still run.
func TestRouteTestFailsAWrongExpectation(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"01-stat-chest-dx.yaml", "09-ct-head-unmatched.yaml"} {
		b, err := os.ReadFile(routesTestdata("cases", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	wrong := filepath.Join(dir, "05-wrong.yaml")
	require.NoError(t, os.WriteFile(wrong, []byte(`name: routine chest wrongly expected urgent
facts: {modality: [CR], body_part: [CHEST]}
expect:
  matched: true
  routes: [chest-xray-urgent]
  destinations: [fhir, ris]
  read: {request: always, group: CareTeam/chest-readers}
`), 0o644))
	out, _, err := runCmd(t, newRouteTestCmd(), "--config", routesTestdata("radgate.yaml"),
		"--models", filepath.Join(testenv.RepoRoot(), "models"),
		"--routes", filepath.Join(testenv.RepoRoot(), "routes.example.yaml"), dir)
	require.Equal(t, 1, routeExit(t, err))
	require.Equal(t, "2 passed, 1 failed", err.Error())
	require.Equal(t, []string{
		"PASS 01-stat-chest-dx",
		"FAIL routine chest wrongly expected urgent (" + wrong + ")",
		"    routes: want [chest-xray-urgent], got [chest-xray]",
		"    destinations: want [fhir ris], got [fhir]",
		"    read: want {request: always, group: CareTeam/chest-readers}, got {request: from_tier, from_tier: Mid, group: CareTeam/chest-readers}",
		"PASS 09-ct-head-unmatched",
		"2 passed, 1 failed",
	}, strings.Split(strings.TrimSpace(out), "\n")[1:])
}

// The route file comes from the config's routes_file when --routes is not
// given, and is the built-in route when neither names one. Case files with
// findings and route files that do not load fail the run.
func TestRouteTestRouteSources(t *testing.T) {
	models := filepath.Join(testenv.RepoRoot(), "models")
	dir := t.TempDir()
	cfg, err := os.ReadFile(routesTestdata("radgate.yaml"))
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "radgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, append(cfg, []byte("routes_file: "+filepath.Join(testenv.RepoRoot(), "routes.example.yaml")+"\n")...), 0o644))
	out, _, err := runCmd(t, newRouteTestCmd(), "--config", cfgPath, "--models", models, routesTestdata("cases"))
	require.NoError(t, err, out)
	require.Contains(t, out, "routes.example.yaml (sha256 ")

	cases := filepath.Join(dir, "cases")
	require.NoError(t, os.MkdirAll(cases, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cases, "ct.yaml"), []byte(`facts: {modality: [CT], body_part: [HEAD]}
expect: {matched: true, routes: [default], engines: [cxr-pneumonia-densenet121], destinations: [fhir], read: {request: never}}
`), 0o644))
	out, _, err = runCmd(t, newRouteTestCmd(), "--config", routesTestdata("radgate.yaml"), "--models", models, cases)
	require.NoError(t, err, out)
	require.Equal(t, "PASS ct\n1 passed, 0 failed\n", out[strings.Index(out, "\n")+1:])
	require.Contains(t, out, "routes: built-in default (sha256 ")

	require.NoError(t, os.WriteFile(filepath.Join(cases, "typo.yaml"), []byte("facts: {}\nexpct: {matched: true}\n"), 0o644))
	out, _, err = runCmd(t, newRouteTestCmd(), "--config", routesTestdata("radgate.yaml"), "--models", models, cases)
	require.Equal(t, 1, routeExit(t, err))
	require.Contains(t, out, filepath.Join(cases, "typo.yaml")+`:2:1: the top level: unknown key "expct" (did you mean "expect"? known: name, description, facts, expect)`)
	require.Contains(t, out, "1 passed, 0 failed, 1 case file(s) with findings")

	out, _, err = runCmd(t, newRouteTestCmd(), "--config", routesTestdata("radgate.yaml"), "--models", models,
		"--routes", routesTestdata("unknown-engine.bad.yaml"), routesTestdata("cases"))
	require.Equal(t, 1, routeExit(t, err))
	require.Contains(t, out, `unknown-engine.bad.yaml:3:15: route "chest-xray": engines: unknown engine "cxr-pneumonia-densenet12"`)
}
