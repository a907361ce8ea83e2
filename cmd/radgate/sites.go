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
	cmd.AddCommand(natsConfig)
	return cmd
}
