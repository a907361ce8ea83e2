package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteDeadLetters writes dead letters as `radgate dlq list` shows them:
// with asJSON one object per line, reasons in full; else a table (ID, time,
// stage, order, reason) with each reason on one line, cut to reasonWidth
// characters when reasonWidth > 0.
func WriteDeadLetters(w io.Writer, dls []DeadLetter, asJSON bool, reasonWidth int) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, dl := range dls {
			if err := enc.Encode(dl); err != nil {
				return err
			}
		}
		return nil
	}
	if len(dls) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSTAGE\tORDER\tREASON")
	for _, dl := range dls {
		reason := strings.Join(strings.Fields(dl.Reason), " ")
		if r := []rune(reason); reasonWidth > 0 && len(r) > reasonWidth {
			reason = string(r[:reasonWidth-1]) + "…"
		}
		if dl.ReplayOf != "" {
			reason = "(replay of " + dl.ReplayOf + ") " + reason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", dl.Seq, dl.Time.Local().Format(time.RFC3339), dl.Stage, orNone(dl.OrderID), reason)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shownDeadLetter is `radgate dlq show --json`.
type shownDeadLetter struct {
	DeadLetter
	Headers map[string][]string `json:"headers"`
	// Message is the original message when it is JSON (every radgate
	// message is), else null with MessageBytes saying how long it was.
	Message      json.RawMessage `json:"message"`
	MessageBytes int             `json:"message_bytes"`
}

// WriteDeadLetter writes one dead letter as `radgate dlq show` shows it:
// with asJSON one object (the keys of the list, plus headers, message and
// message_bytes); else its headers, then the message indented (a message
// that is not JSON is not shown).
func WriteDeadLetter(w io.Writer, dl DeadLetter, asJSON bool) error {
	valid := json.Valid(dl.Data)
	if asJSON {
		out := shownDeadLetter{DeadLetter: dl, Headers: dl.Header, MessageBytes: len(dl.Data)}
		if valid {
			out.Message = dl.Data
		} else {
			out.Message = json.RawMessage("null")
		}
		return json.NewEncoder(w).Encode(out)
	}
	fmt.Fprintf(w, "dead letter %d in %s\n", dl.Seq, StreamDLQ)
	fmt.Fprintf(w, "time:    %s\n", dl.Time.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "stage:   %s\n", dl.Stage)
	fmt.Fprintf(w, "headers:\n")
	keys := make([]string, 0, len(dl.Header))
	for k := range dl.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range dl.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "message (%d bytes, first published to %s):\n", len(dl.Data), dl.Subject)
	if !valid {
		_, err := fmt.Fprintln(w, "  (not JSON; not shown)")
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, dl.Data, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err := pretty.WriteTo(w)
	return err
}

// ReplayEach replays each dead letter in turn (see ReplayAll), writing to
// out what became of it and to errOut why one was not replayed; it goes on
// past failures and returns how many failed.
func (d *DLQ) ReplayEach(ctx context.Context, seqs []uint64, keep bool, out, errOut io.Writer) int {
	failed := 0
	for _, o := range d.ReplayAll(ctx, seqs, keep) {
		if o.Err != nil {
			failed++
			fmt.Fprintf(errOut, "radgate: dead letter %d: %v\n", o.Seq, o.Err)
			if o.Replayed.Stream == "" {
				continue
			}
		}
		fmt.Fprintln(out, o.Replayed.Describe(keep))
	}
	return failed
}

// Describe says in one line what a replay did ("replayed dead letter 7
// (deliver-fhir, order …) to radgate.results.…: RADGATE_RESULTS seq 12;
// removed from the DLQ"); keep is whether the replay was asked to keep it.
func (r Replayed) Describe(keep bool) string {
	dl := r.DeadLetter
	what := fmt.Sprintf("dead letter %d (%s, order %s)", dl.Seq, dl.Stage, orNone(dl.OrderID))
	var s string
	if r.Duplicate {
		s = what + " was replayed before, within the duplicate window: not sent again"
	} else {
		s = fmt.Sprintf("replayed %s to %s: %s seq %d", what, dl.Subject, r.Stream, r.Seq)
	}
	switch {
	case r.Removed:
		return s + "; removed from the DLQ"
	case keep:
		return s + "; kept in the DLQ (--keep)"
	}
	return s + "; still in the DLQ"
}
