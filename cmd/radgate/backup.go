package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

func init() {
	rootCmd.AddCommand(newBackupCmd())
	rootCmd.AddCommand(newRestoreCmd())
}

const backupConnectHelp = `It connects as radgate dlq does: to nats.url when it is set, else to the
embedded NATS server of the running radgate serve at nats.embedded_listen
with the credential serve keeps in data_dir/nats; --config names the same
radgate.yaml serve runs with.`

// newBackupCmd builds `radgate backup`.
func newBackupCmd() *cobra.Command {
	var configPath, out string
	cmd := &cobra.Command{
		Use:   "backup --out DIR [--config radgate.yaml]",
		Short: "Back up radgate's JetStream state (every stream, bucket and object store) to DIR",
		Long: `Backup writes every radgate stream, KV bucket and object store (their
configuration and messages, with subjects and headers) to DIR: one file of
JSON lines per stream and manifest.json (state version, radgate version, per
stream its configuration, message count, first and last sequence and the
file's SHA-256). DIR is made with mode 0700 and its files 0600: a backup
holds order data (patient identifiers), keep it as PHI.

Messages written while it runs may or may not be in it: stop radgate serve
(or its intakes) for a consistent backup.

` + backupConnectHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &exitError{code: 2, err: fmt.Errorf("backup needs --out DIR")}
			}
			js, closeNATS, err := connectJetStream(configPath, "radgate-backup")
			if err != nil {
				return err
			}
			defer closeNATS()
			m, err := broker.Backup(cmd.Context(), js, out)
			if err != nil {
				return err
			}
			var msgs uint64
			for _, s := range m.Streams {
				fmt.Fprintf(cmd.OutOrStdout(), "%-32s %8d messages\n", s.Name, s.Messages)
				msgs += s.Messages
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %d streams, %d messages, state version %d, to %s\n", len(m.Streams), msgs, m.StateVersion, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the backup to (made 0700; must not hold a backup)")
	return cmd
}

// newRestoreCmd builds `radgate restore`.
func newRestoreCmd() *cobra.Command {
	var configPath, from string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore --from DIR [--force] [--config radgate.yaml]",
		Short: "Restore radgate's JetStream state from a backup radgate backup made",
		Long: `Restore checks the backup in DIR (every file's SHA-256) and recreates each
stream, bucket and object store in it with its configuration (nats.replicas
copies, from --config) and its messages republished in order with their
subjects and headers (a bucket's history per key comes back). Sequence
numbers and publish times are new; the order list's index is mapped to them.

It refuses, changing nothing: a backup of a newer state version than this
radgate knows, a damaged backup, and streams that hold messages (unless
--force, which replaces them). Run it with radgate serve stopped; serve
declares its consumers again when it starts.

` + backupConnectHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return &exitError{code: 2, err: fmt.Errorf("restore needs --from DIR")}
			}
			cfg := config.Default()
			if configPath != "" {
				var err error
				if cfg, err = config.LoadFile(configPath); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			js, closeNATS, err := connectJetStream(configPath, "radgate-restore")
			if err != nil {
				return err
			}
			defer closeNATS()
			m, err := broker.Restore(cmd.Context(), js, from, broker.RestoreOptions{Force: force, Replicas: cfg.NATS.Replicas})
			if err != nil {
				return err
			}
			var msgs uint64
			for _, s := range m.Streams {
				msgs += s.Messages
			}
			migrated := ""
			if m.StateVersion < broker.StateVersion {
				migrated = fmt.Sprintf("; migrated to state version %d", broker.StateVersion)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d streams, %d messages, state version %d (radgate %s, %s)%s\n",
				len(m.Streams), msgs, m.StateVersion, m.RadgateVersion, m.Created.Format("2006-01-02 15:04:05Z"), migrated)
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")
	cmd.Flags().StringVar(&from, "from", "", "directory radgate backup wrote")
	cmd.Flags().BoolVar(&force, "force", false, "replace streams that hold messages")
	return cmd
}
