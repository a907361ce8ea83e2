package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

func init() { rootCmd.AddCommand(newDLQCmd()) }

// reasonWidth is how much of a reason `dlq list` shows on a terminal.
const reasonWidth = 60

// newDLQCmd builds `radgate dlq` and its subcommands (tests build their own).
func newDLQCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay dead letters: messages a stage gave up on",
		Long: `Inspect and replay the dead-letter stream (RADGATE_DLQ): every message a
stage terminated (a result the FHIR server refused for good, a job for an
engine this process has not loaded, a stage that crashed), with the reason.

radgate dlq connects to nats.url when it is set, else to the embedded NATS
server of the running radgate serve at nats.embedded_listen (default
127.0.0.1:4222) with the credential serve keeps in data_dir/nats; --config
names the same radgate.yaml serve runs with.

  radgate dlq list [--stage STAGE] [--json]
  radgate dlq show ID [--json]
  radgate dlq replay ID... [--keep]
  radgate dlq replay --all [--stage STAGE] [--keep]

ID is the dead letter's sequence in RADGATE_DLQ, as list prints it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")

	var listStage string
	var listJSON bool
	list := &cobra.Command{
		Use:   "list [--stage STAGE] [--json]",
		Short: "List dead letters, oldest first",
		Long: `List dead letters, oldest first: ID (the RADGATE_DLQ sequence), time,
stage, order id and reason, one per line. On a terminal the reason is cut to
fit; --json prints one object per line with the full reason (keys seq, time,
stage, order_id, reason, subject, replay_of).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, closeNATS, err := connectDLQ(configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			dls, err := d.List(cmd.Context(), listStage)
			if err != nil {
				return err
			}
			width := 0
			if isTerminal(cmd.OutOrStdout()) {
				width = reasonWidth
			}
			return broker.WriteDeadLetters(cmd.OutOrStdout(), dls, listJSON, width)
		},
	}
	list.Flags().StringVar(&listStage, "stage", "", "only this stage's dead letters (router, inference, deliver-fhir, …)")
	list.Flags().BoolVar(&listJSON, "json", false, "one JSON object per line, reasons in full")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID [--json]",
		Short: "Show one dead letter: its headers and its message",
		Long: `Show one dead letter: its headers and the original message, decoded and
indented. Messages carry identifiers and references, never pixel data; an
order event may name the patient as the EHR sent it. --json prints one object
(the keys of list --json, plus headers and message).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seqs, err := parseSeqs(args)
			if err != nil {
				return err
			}
			d, closeNATS, err := connectDLQ(configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			dl, err := d.Get(cmd.Context(), seqs[0])
			if err != nil {
				return err
			}
			return broker.WriteDeadLetter(cmd.OutOrStdout(), dl, showJSON)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print one JSON object")

	var replayAll, keep bool
	var replayStage string
	replay := &cobra.Command{
		Use:   "replay ID... | --all [--stage STAGE]",
		Short: "Send dead letters again, after their cause is fixed",
		Long: `Send each dead letter again to the subject it was first published to, so
the stage that gave up on it runs again, and remove it from the dead-letter
stream once JetStream has stored the replay (--keep leaves it there).

The replay carries a message id of its own (the original one may still be in
JetStream's duplicate window, which would drop it) and the header
Radgate-Replay-Of: ID. An order a replayed event or job belongs to is
re-opened: engines that ended failed or rejected are run again; delivered
ones keep their report. A replayed result is delivered again (destinations
are idempotent: one report per order and engine). Replaying the same ID twice
within the duplicate window (10m) sends it once.

Exit status: 0 when every dead letter was replayed, 1 when any was not.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case replayAll && len(args) > 0:
				return &exitError{code: 2, err: errors.New("replay takes IDs or --all, not both")}
			case !replayAll && len(args) == 0:
				return &exitError{code: 2, err: errors.New("replay needs IDs (see radgate dlq list) or --all")}
			case !replayAll && replayStage != "":
				return &exitError{code: 2, err: errors.New("--stage goes with --all")}
			}
			seqs, err := parseSeqs(args)
			if err != nil {
				return err
			}
			d, closeNATS, err := connectDLQ(configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			if replayAll {
				dls, err := d.List(cmd.Context(), replayStage)
				if err != nil {
					return err
				}
				if len(dls) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no dead letters to replay")
					return nil
				}
				for _, dl := range dls {
					seqs = append(seqs, dl.Seq)
				}
			}
			if failed := d.ReplayEach(cmd.Context(), seqs, keep, cmd.OutOrStdout(), cmd.ErrOrStderr()); failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d dead letters not replayed", failed, len(seqs))}
			}
			return nil
		},
	}
	replay.Flags().BoolVar(&replayAll, "all", false, "replay every dead letter (of --stage, when given)")
	replay.Flags().StringVar(&replayStage, "stage", "", "with --all: only this stage's dead letters")
	replay.Flags().BoolVar(&keep, "keep", false, "keep the dead letters in the DLQ after replaying them")

	cmd.AddCommand(list, show, replay)
	return cmd
}

// connectDLQ opens the dead-letter stream of the running radgate.
func connectDLQ(configPath string) (*broker.DLQ, func(), error) {
	js, closeFn, err := connectJetStream(configPath, "radgate-dlq")
	if err != nil {
		return nil, nil, err
	}
	return broker.NewDLQ(js), closeFn, nil
}

// connectJetStream connects to the NATS server radgate serve uses, as the
// config at configPath names it (see broker.ResolveAddress). The CLI tools
// (dlq, hl7, usage) share it; a config that names no reachable address is
// exit status 2.
func connectJetStream(configPath, clientName string) (jetstream.JetStream, func(), error) {
	cfg := config.Default()
	if configPath != "" {
		var err error
		if cfg, err = config.LoadFile(configPath); err != nil {
			return nil, nil, &exitError{code: 2, err: err}
		}
	}
	addr, err := broker.ResolveAddress(cfg)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return addr.ConnectJetStream(clientName)
}

func parseSeqs(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, &exitError{code: 2, err: fmt.Errorf("%q is not a dead-letter ID (a sequence number, as radgate dlq list prints it)", a)}
		}
		out = append(out, n)
	}
	return out, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
