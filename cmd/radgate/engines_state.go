package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/governance"
)

// engineStateCmds are `radgate engines state | activate | suspend | shadow`:
// they ask the running radgate serve over its HTTP intake, which
// authenticates the caller; a change needs the operator role.
func engineStateCmds() []*cobra.Command {
	var server, tokenEnv, facility, route, engine, why string
	client := func() governance.Client {
		return governance.Client{URL: server, Token: os.Getenv(tokenEnv)}
	}
	flags := func(c *cobra.Command, change bool) {
		c.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "the running radgate serve's HTTP intake")
		c.Flags().StringVar(&tokenEnv, "token-env", "RADGATE_TOKEN", "environment variable holding the bearer token (a static token or JWT with the operator role for changes)")
		c.Flags().StringVar(&facility, "facility", "", "facility id (as radgate.yaml facilities names it) or name")
		c.Flags().StringVar(&route, "route", "", "route name")
		if change {
			c.Flags().StringVar(&engine, "engine", "", "engine id")
			c.Flags().StringVar(&why, "reason", "", "why, kept with the change and in its AuditEvent")
			for _, f := range []string{"facility", "route", "engine"} {
				_ = c.MarkFlagRequired(f)
			}
		}
	}
	state := &cobra.Command{
		Use:   "state [--facility F] [--route R]",
		Short: "List engine modes (shadow, active, suspended) per facility × route × engine version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := client().States(cmd.Context(), facility, route)
			if err != nil {
				return err
			}
			return governance.WriteStates(cmd.OutOrStdout(), states)
		},
	}
	flags(state, false)
	out := []*cobra.Command{state}
	for _, m := range []struct {
		mode  radgate.EngineMode
		use   string
		short string
	}{
		{radgate.EngineActive, "activate", "Activate an engine on a route at a facility: refused unless its evaluation on the facility's labels meets the route's acceptance minimums"},
		{radgate.EngineSuspended, "suspend", "Suspend an engine on a route at a facility: scored and recorded, never delivered"},
		{radgate.EngineShadow, "shadow", "Put an engine back in shadow on a route at a facility"},
	} {
		c := &cobra.Command{
			Use:          m.use + " --facility F --route R --engine E [--reason TEXT]",
			Short:        m.short,
			Args:         cobra.NoArgs,
			SilenceUsage: true,
			RunE: func(cmd *cobra.Command, _ []string) error {
				res, err := client().Change(cmd.Context(), governance.ChangeRequest{Facility: facility, Route: route, Engine: engine, Mode: m.mode, Why: why})
				if err := governance.WriteChange(cmd.OutOrStdout(), res, err); err != nil {
					return &exitError{code: 1, err: err}
				}
				return nil
			},
		}
		flags(c, true)
		out = append(out, c)
	}
	return out
}
