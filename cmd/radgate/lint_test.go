package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// runCmd runs a fresh command in-process and returns its stdout, stderr
// and error.
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func routesTestdata(parts ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot(), "testdata", "routes"}, parts...)...)
}

func routeExit(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	ee, ok := err.(*exitError)
	require.True(t, ok, "error %v is not an exitError", err)
	return ee.code
}

// The registry the route package's tests assume is what the shipped models
// and testdata/routes/radgate.yaml define.
func TestRouteRegistryMatchesTheShippedFiles(t *testing.T) {
	env, err := loadRouteEnv(routesTestdata("radgate.yaml"), filepath.Join(testenv.RepoRoot(), "models"), os.Stderr)
	require.NoError(t, err)
	require.Equal(t, []string{"cxr-pneumonia-densenet121", "cxr-pneumonia-densenet121-k224"}, env.reg.Engines)
	require.Equal(t, []string{"fhir", "fhir-stmary", "pacs", "ris"}, env.reg.Destinations)
}

func TestLintPrintsEveryFindingAndOkForCleanFiles(t *testing.T) {
	models := filepath.Join(testenv.RepoRoot(), "models")
	example := filepath.Join(testenv.RepoRoot(), "routes.example.yaml")
	bad := routesTestdata("two-errors.bad.yaml")
	unknown := routesTestdata("unknown-engine.bad.yaml")
	out, _, err := runCmd(t, newLintCmd(), "--config", routesTestdata("radgate.yaml"), "--models", models, example, bad, unknown)
	require.Equal(t, 1, routeExit(t, err))
	require.Equal(t, "3 findings in 2 of 3 route file(s)", err.Error())
	require.Equal(t, []string{
		example + ": ok",
		bad + `:6:24: route "chest-xray": when.priority: unknown priority "soon" (known: routine, urgent, asap, stat)`,
		bad + `:9:21: route "chest-xray": read.request: unknown value "sometimes" (known: never, always, from_tier)`,
		unknown + `:3:15: route "chest-xray": engines: unknown engine "cxr-pneumonia-densenet12" (did you mean "cxr-pneumonia-densenet121"? registered: cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224)`,
	}, strings.Split(strings.TrimSpace(out), "\n"))

	out, _, err = runCmd(t, newLintCmd(), "--config", routesTestdata("radgate.yaml"), "--models", models, example, routesTestdata("match-all.good.yaml"))
	require.NoError(t, err)
	require.Equal(t, example+": ok\n"+routesTestdata("match-all.good.yaml")+": ok\n", out)

	out, _, err = runCmd(t, newLintCmd(), "--models", models, filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, 1, routeExit(t, err))
	require.Contains(t, out, "missing.yaml: reading routes: open ")
}

// Without --config and without ./radgate.yaml the built-in defaults define
// only the "fhir" destination; the models directory comes from --models,
// else the config's models_dir.
func TestLintWithoutAConfig(t *testing.T) {
	models := filepath.Join(testenv.RepoRoot(), "models")
	example := filepath.Join(testenv.RepoRoot(), "routes.example.yaml")
	t.Chdir(t.TempDir())
	out, _, err := runCmd(t, newLintCmd(), "--models", models, example)
	require.Equal(t, 1, routeExit(t, err))
	require.Contains(t, out, `route "chest-xray-urgent": destinations: unknown destination "ris" (defined in radgate.yaml: fhir)`)

	// ./radgate.yaml is picked up when present, and its models_dir used.
	cfg, err := os.ReadFile(routesTestdata("radgate.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile("radgate.yaml", bytes.Replace(cfg, []byte("models_dir: models"), []byte("models_dir: "+models), 1), 0o644))
	out, _, err = runCmd(t, newLintCmd(), example)
	require.NoError(t, err)
	require.Equal(t, example+": ok\n", out)

	// A models directory that cannot be read is not a route finding.
	_, _, err = runCmd(t, newLintCmd(), "--models", "no-such-dir", example)
	require.Equal(t, 2, routeExit(t, err))
	require.ErrorContains(t, err, "loading engines from no-such-dir")

	// Nor is a config that does not load.
	require.NoError(t, os.WriteFile("bad.yaml", []byte("lsiten: x\n"), 0o644))
	_, _, err = runCmd(t, newLintCmd(), "--config", "bad.yaml", example)
	require.Equal(t, 2, routeExit(t, err))
	require.ErrorContains(t, err, "bad.yaml:1:1: unknown key \"lsiten\"")
}

// resetFlags sets every flag of rootCmd's commands back to its default, as
// a fresh process would have them: the tests run several commands on the
// one rootCmd, whose flag variables otherwise keep the last run's values
// (and slice flags would append to them).
func resetFlags() {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		reset := func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				var def []string
				if d := strings.Trim(f.DefValue, "[]"); d != "" {
					def = strings.Split(d, ",")
				}
				_ = sv.Replace(def)
			} else {
				_ = f.Value.Set(f.DefValue)
			}
			f.Changed = false
		}
		c.Flags().VisitAll(reset)
		c.PersistentFlags().VisitAll(reset)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCmd)
}
