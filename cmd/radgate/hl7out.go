package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/adapters/hl7v2"
)

func init() { rootCmd.AddCommand(newHL7Cmd()) }

// newHL7Cmd builds `radgate hl7` and its subcommands (tests build their own).
func newHL7Cmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "hl7",
		Short: "Inspect and re-send the HL7 v2 results (ORU^R01) sent to a RIS",
		Long: `Inspect and re-send the ORU^R01 messages the HL7 v2 result destination
sent to a RIS. Every message is stored before it is sent, in the JetStream
object store ` + hl7v2.BucketOutbox + ` (one object per result: <result id>.hl7), with its
delivery record: destination, control id (MSH-10), when it was stored and
acknowledged, the ACK code and, for a refusal, the ERR segments.

radgate hl7 connects to nats.url when it is set, else to the embedded NATS
server of the running radgate serve at nats.embedded_listen (default
127.0.0.1:4222) with the credential serve keeps in data_dir/nats; --config
names the same radgate.yaml serve runs with.

  radgate hl7 list [--json]
  radgate hl7 show RESULT_ID [--json | --raw] [--full]
  radgate hl7 resend RESULT_ID [--to HOST:PORT] [--timeout 30s]`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&configPath, "config", "c", "", "radgate.yaml (default: built-in defaults)")

	var listJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List stored messages, oldest first",
		Long: `List the stored messages, oldest first: result id, control id (MSH-10),
stored at, ACK code (none yet: -), destination, order id. --json prints one
object per line (keys result_id, order_id, control_id, destination,
stored_at, sent_at, ack_code, ack_error, last_error, attempts, size).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ob, closeNATS, err := connectOutbox(cmd, configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			msgs, err := ob.List(cmd.Context())
			if err != nil {
				return err
			}
			return hl7v2.WriteStoredMessages(cmd.OutOrStdout(), msgs, listJSON)
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "one JSON object per line")

	var showJSON, showRaw, showFull bool
	show := &cobra.Command{
		Use:   "show RESULT_ID [--json | --raw] [--full]",
		Short: "Show one stored message and its delivery record",
		Long: `Show one stored message: its delivery record, then the message, one
segment per line. The message carries the patient identifier (PID-3) but no
name. An embedded PDF (ED OBX) is cut short unless --full. --raw writes the
message exactly as sent (segments end with a carriage return), nothing else;
--json prints one object (the keys of list --json, plus message).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if showJSON && showRaw {
				return &exitError{code: 2, err: errors.New("--json and --raw go alone")}
			}
			ob, closeNATS, err := connectOutbox(cmd, configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			m, raw, err := ob.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case showRaw:
				_, err = w.Write(raw)
				return err
			case showJSON:
				return hl7v2.WriteStoredMessageJSON(w, m, raw)
			}
			return hl7v2.WriteStoredMessage(w, m, raw, showFull)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print one JSON object")
	show.Flags().BoolVar(&showRaw, "raw", false, "write the message exactly as sent")
	show.Flags().BoolVar(&showFull, "full", false, "show embedded data (the PDF) in full")

	var to string
	var timeout time.Duration
	resend := &cobra.Command{
		Use:   "resend RESULT_ID [--to HOST:PORT]",
		Short: "Send a stored message again, unchanged",
		Long: `Send a stored message again over MLLP, exactly as stored (same MSH-10, so
the RIS can recognise a duplicate), to --to or, without it, to the
destination it was sent to, and record the outcome. It tries once and waits
--timeout for the ACK.

Exit status: 0 when the RIS answered AA (or CA); 1 otherwise (the ACK's
errors, or why nothing came back, are printed).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "" {
				if _, _, err := net.SplitHostPort(to); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--to %q: want host:port: %w", to, err)}
				}
			}
			if timeout <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("--timeout %s: must be positive", timeout)}
			}
			ob, closeNATS, err := connectOutbox(cmd, configPath)
			if err != nil {
				return err
			}
			defer closeNATS()
			m, addr, err := ob.ResendTo(cmd.Context(), args[0], to, timeout)
			if errors.Is(err, hl7v2.ErrNoDestination) {
				return &exitError{code: 2, err: fmt.Errorf("%w: give --to HOST:PORT", err)}
			}
			if err != nil {
				if m.ControlID == "" {
					m.ControlID = "-"
				}
				return fmt.Errorf("resending %s (MSH-10 %s) to %s: %w", args[0], m.ControlID, addr, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "resent %s (MSH-10 %s) to %s: %s\n", m.ResultID, m.ControlID, addr, m.AckCode)
			return err
		},
	}
	resend.Flags().StringVar(&to, "to", "", "MLLP receiver host:port (default: the recorded destination)")
	resend.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the connection and the ACK")

	cmd.AddCommand(list, show, resend)
	return cmd
}

// connectOutbox opens the outbox on the NATS server radgate serve uses.
func connectOutbox(cmd *cobra.Command, configPath string) (*hl7v2.Outbox, func(), error) {
	js, closeNATS, err := connectJetStream(configPath, "radgate-hl7")
	if err != nil {
		return nil, nil, err
	}
	ob, err := hl7v2.OpenOutbox(cmd.Context(), js, false)
	if err != nil {
		closeNATS()
		return nil, nil, err
	}
	return ob, closeNATS, nil
}
