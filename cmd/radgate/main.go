// Command radgate is a hospital interface engine that brings imaging AI into
// clinical work: orders in from the EHR and RIS, images from the PACS, scores
// from an ONNX engine, results back as FHIR.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	// The adapters register their destination types (radgate.RegisterDestination).
	_ "github.com/radgate/radgate/adapters/dicomweb"
	_ "github.com/radgate/radgate/adapters/fhirhttp"
	_ "github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/service"
)

// rootCmd is the radgate command; each subcommand adds itself in its own file.
var rootCmd = &cobra.Command{
	Use:           "radgate",
	Short:         "Imaging-AI interface engine: orders in, AI results out",
	SilenceUsage:  true,
	SilenceErrors: true,
	// cobra gives a subcommand the context of the first Execute only; when
	// the command tree runs more than once in a process (the tests), later
	// runs would see a stale, cancelled context. Every run takes the
	// root's, which ExecuteContext sets each time.
	PersistentPreRun: func(cmd *cobra.Command, _ []string) {
		if ctx := cmd.Root().Context(); ctx != nil {
			cmd.SetContext(ctx)
		}
	},
}

func init() {
	rootCmd.AddCommand(newLintCmd())
	rootCmd.AddCommand(newRouteTestCmd())
}

// exitError carries a process exit code through cobra without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	if err := rootCmd.Execute(); err != nil {
		code := 1
		var ee *exitError
		var ce *service.ConfigError
		switch {
		case errors.As(err, &ee):
			code = ee.code
		case errors.As(err, &ce):
			code = 2
		}
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "radgate:", err)
		}
		os.Exit(code)
	}
}
