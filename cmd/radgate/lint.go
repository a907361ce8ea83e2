package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/routing"
)

// routeEnv is what route files are checked against: the config (for its
// destinations, models_dir, engines and routes_file) and the engines in the
// models directory.
type routeEnv struct {
	cfg config.Config
	reg routing.Registry
}

// loadRouteEnv loads --config (else ./radgate.yaml when it exists, else the
// built-in defaults) and the engine manifests of --models (else the
// config's models_dir). Manifests that do not load are reported on stderr;
// their engines are then unknown to the routes.
func loadRouteEnv(configPath, modelsDir string, stderr io.Writer) (routeEnv, error) {
	var env routeEnv
	env.cfg = config.Default()
	if configPath == "" {
		if _, err := os.Stat("radgate.yaml"); err == nil {
			configPath = "radgate.yaml"
		}
	}
	if configPath != "" {
		cfg, err := config.LoadFile(configPath)
		if err != nil {
			return env, &exitError{code: 2, err: fmt.Errorf("loading %s:\n%w", configPath, err)}
		}
		env.cfg = cfg
	}
	if modelsDir == "" {
		modelsDir = env.cfg.ModelsDir
	}
	engines, err := inference.LoadEngines(modelsDir)
	if err != nil {
		if len(engines.IDs()) == 0 {
			return env, &exitError{code: 2, err: fmt.Errorf("loading engines from %s: %w", modelsDir, err)}
		}
		fmt.Fprintf(stderr, "radgate: some engines in %s did not load (routes naming them are reported as unknown):\n%v\n", modelsDir, err)
	}
	env.reg = routing.Registry{Engines: engines.IDs(), Destinations: env.cfg.DestinationNames()}
	return env, nil
}

func newLintCmd() *cobra.Command {
	var configPath, modelsDir string
	cmd := &cobra.Command{
		Use:   "lint [--config radgate.yaml] [--models DIR] FILE...",
		Short: "Check route files: every finding as file:line:col: message",
		Long: `Check route files (see routes.example.yaml) without running anything: unknown
or misspelled keys, values of the wrong type, engines that are not in the
models directory, destinations radgate.yaml does not define, duplicate route
names, bad read requests, and routes that can never match. Every finding of
every file is printed as file:line:col: message; a clean file prints
"FILE: ok". The exit status is 1 when there is any finding, 2 when the config
or the models directory cannot be read.

Destinations come from --config (default: ./radgate.yaml when it exists,
else the built-in defaults, which define only "fhir"); engines from the
manifests in --models (default: the config's models_dir).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := loadRouteEnv(configPath, modelsDir, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return lintRoutes(env.reg, args, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml defining the destinations (default: ./radgate.yaml if present, else built-in defaults)")
	cmd.Flags().StringVar(&modelsDir, "models", "", "models directory (default: the config's models_dir)")
	return cmd
}

// lintRoutes prints every finding of every file, or "FILE: ok".
func lintRoutes(reg routing.Registry, files []string, out io.Writer) error {
	findings, bad := 0, 0
	for _, f := range files {
		_, err := routing.LoadFile(f, reg)
		if err == nil {
			fmt.Fprintf(out, "%s: ok\n", f)
			continue
		}
		bad++
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(out, e.Error())
			}
			findings += len(errs)
		} else {
			fmt.Fprintf(out, "%s: %v\n", f, err)
			findings++
		}
	}
	if findings > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s in %d of %d route file(s)", plural(findings, "finding"), bad, len(files))}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
