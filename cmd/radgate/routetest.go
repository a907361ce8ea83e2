package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/routing"
)

func newRouteTestCmd() *cobra.Command {
	var configPath, modelsDir, routesFile string
	cmd := &cobra.Command{
		Use:   "test [--config radgate.yaml] [--models DIR] [--routes FILE] DIR",
		Short: "Run golden route cases: the decision each order should get",
		Long: `Run golden route cases against a route file. Each *.yaml file in DIR is one
case: the facts of an order (modality, body_part, sop_class, procedure_code,
facility, priority) and the decision expected for it (matched, routes,
engines, destinations, read, facility, reason_contains); see
testdata/routes/cases for examples. Each case prints PASS or FAIL with every
mismatch, then a summary; the exit status is 1 when a case fails or a case
or route file has findings.

The route file is --routes, else the config's routes_file, else the built-in
route (every order to the config's engines and the "fhir" destination). It
is checked as radgate lint checks it: destinations from --config (default:
./radgate.yaml when it exists, else built-in defaults), engines from --models
(default: the config's models_dir).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := loadRouteEnv(configPath, modelsDir, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runRouteCases(env, routesFile, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml defining the destinations (default: ./radgate.yaml if present, else built-in defaults)")
	cmd.Flags().StringVar(&modelsDir, "models", "", "models directory (default: the config's models_dir)")
	cmd.Flags().StringVar(&routesFile, "routes", "", "route file to test (default: the config's routes_file, else the built-in route)")
	return cmd
}

func runRouteCases(env routeEnv, routesFile, dir string, out io.Writer) error {
	if routesFile == "" {
		routesFile = env.cfg.RoutesFile
	}
	var set *routing.Set
	if routesFile == "" {
		set = routing.Default(env.cfg.Engines, []string{config.BuiltinDestination})
		fmt.Fprintf(out, "routes: built-in default (sha256 %s)\n", set.Digest()[:12])
	} else {
		var err error
		if set, err = routing.LoadFile(routesFile, env.reg); err != nil {
			printFindings(out, routesFile, err)
			return &exitError{code: 1, err: fmt.Errorf("route file %s does not load", routesFile)}
		}
		fmt.Fprintf(out, "routes: %s (sha256 %s)\n", routesFile, set.Digest()[:12])
	}
	cases, loadErr := routing.LoadCases(dir)
	broken := 0
	if loadErr != nil {
		var errs config.Errors
		if !errors.As(loadErr, &errs) {
			return &exitError{code: 2, err: loadErr}
		}
		printFindings(out, dir, loadErr)
		files := map[string]bool{}
		for _, e := range errs {
			files[e.File] = true
		}
		broken = len(files)
	}
	passed, failed := 0, 0
	for _, c := range cases {
		mismatches := set.Run(c)
		if len(mismatches) == 0 {
			passed++
			fmt.Fprintf(out, "PASS %s\n", c.Name)
			continue
		}
		failed++
		fmt.Fprintf(out, "FAIL %s (%s)\n", c.Name, c.File)
		for _, m := range mismatches {
			fmt.Fprintf(out, "    %s\n", m)
		}
	}
	summary := fmt.Sprintf("%d passed, %d failed", passed, failed)
	if broken > 0 {
		summary += fmt.Sprintf(", %d case file(s) with findings", broken)
	}
	fmt.Fprintln(out, summary)
	if failed > 0 || broken > 0 {
		return &exitError{code: 1, err: errors.New(summary)}
	}
	return nil
}

// printFindings prints a config.Errors one finding a line, any other error
// prefixed with what it is about.
func printFindings(out io.Writer, what string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(out, e.Error())
		}
		return
	}
	fmt.Fprintf(out, "%s: %v\n", what, err)
}
