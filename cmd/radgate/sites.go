package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

func init() { rootCmd.AddCommand(newSitesCmd()) }

// newSitesCmd builds `radgate sites`.
func newSitesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sites",
		Short: "The hub's and the sites' NATS credentials (hub and edges, issue 16)",
	}
	var configPath, out, leafListen string
	natsConfig := &cobra.Command{
		Use:   "nats-config --config radgate.yaml --out DIR [--leaf-listen HOST:PORT]",
		Short: "Write the hub's and each facility's NKey credential to DIR and print the hub nodes' NATS configuration",
		Long: `nats-config reads the facility list (facilities: in radgate.yaml) and writes
to DIR (made 0700) the hub's NKey user (hub.nk) and one per facility
(site-<facility>.nk), each mode 0600; an existing file is kept, so adding a
facility and running it again changes no other site's credential. It
prints what every hub node's nats-server configuration needs: the JetStream
domain, the leafnode listener and the authorization block, where each
site's user may publish and subscribe only its own subjects (its link
subjects, the JetStream API of its own domain, its results source).

Copy site-<facility>.nk to that site's edge only; keep hub.nk on the hubs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" || out == "" {
				return &exitError{code: 2, err: fmt.Errorf("sites nats-config needs --config radgate.yaml and --out DIR")}
			}
			cfg, err := config.LoadFile(configPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var ids []string
			for _, f := range cfg.Facilities {
				ids = append(ids, f.ID)
			}
			sc, err := broker.GenerateSites(out, ids, leafListen)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprint(cmd.OutOrStdout(), sc.HubConfig)
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "hub credential: %s (%s)\n", sc.Hub.Path(), sc.Hub.PublicKey())
			slices.Sort(ids)
			for _, id := range ids {
				fmt.Fprintf(w, "site %s: %s (domain %s)\n", id, sc.Sites[id].Path(), broker.EdgeDomain(id))
			}
			return nil
		},
	}
	natsConfig.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml with the facility list")
	natsConfig.Flags().StringVar(&out, "out", "", "directory for the credentials (made 0700)")
	natsConfig.Flags().StringVar(&leafListen, "leaf-listen", "0.0.0.0:7422", "the hub nodes' leafnode listener")
	cmd.AddCommand(natsConfig, newSitesSourcesCmd())
	return cmd
}

// newSitesSourcesCmd builds `radgate sites sources`.
func newSitesSourcesCmd() *cobra.Command {
	var configPath, edge string
	var prune bool
	cmd := &cobra.Command{
		Use:   "sources --config radgate.yaml [--prune | --edge FACILITY]",
		Short: "Declare the link sources: the hub's RADGATE_JOBS from every site's edge, or an edge's RADGATE_RESULTS from the hub",
		Long: `sources connects as radgate dlq does (nats.url with nats.credentials_file — on a
hub, the hub.nk of radgate sites nats-config — else the embedded server of
the running radgate serve) and sets the link sources on the streams radgate
serve created there:

  on the hub (no --edge): RADGATE_JOBS sources each facility's edge
  (domain edge-<facility>), only that facility's jobs, one source per entry of
  facilities: in radgate.yaml but those marked edge: false, besides the
  sources it already has (a hub radgate serve declares the same at every
  start, from its own facility list); with --prune, the sources of
  facilities not in this list are removed;
  on an edge (--edge FACILITY): RADGATE_RESULTS sources the hub's results of
  that facility (a role edge serve declares it at every start).

It is idempotent: run it again after changing the facility list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return &exitError{code: 2, err: fmt.Errorf("sites sources needs --config radgate.yaml")}
			}
			if prune && edge != "" {
				return &exitError{code: 2, err: fmt.Errorf("sites sources: --prune is for the hub's sources, not --edge")}
			}
			cfg, err := config.LoadFile(configPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			js, closeNATS, err := connectJetStream(configPath, "radgate-sites")
			if err != nil {
				return err
			}
			defer closeNATS()
			if edge != "" {
				if err := broker.EnsureEdgeSource(cmd.Context(), js, edge); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s sources the hub's results of %s (%s)\n", broker.StreamResults, edge, broker.ResultsFilter(edge))
				return nil
			}
			ids := cfg.EdgeFacilities()
			if len(ids) == 0 && !prune {
				return &exitError{code: 2, err: fmt.Errorf("%s: no facility with an edge: list the sites under facilities:", configPath)}
			}
			ch, err := broker.DeclareHubSources(cmd.Context(), js, ids, prune)
			if err != nil {
				return err
			}
			for _, id := range ch.Facilities {
				fmt.Fprintf(cmd.OutOrStdout(), "%s sources %s's jobs from domain %s\n", broker.StreamJobs, id, broker.EdgeDomain(id))
			}
			for _, id := range ch.Removed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s no longer sources %s's jobs (--prune)\n", broker.StreamJobs, id)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (the facility list; where NATS is)")
	cmd.Flags().StringVar(&edge, "edge", "", "this NATS is the edge of FACILITY: source its results from the hub")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove the hub's sources of facilities not in this list (a facility taken off it)")
	return cmd
}
