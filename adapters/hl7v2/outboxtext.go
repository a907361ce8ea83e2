package hl7v2

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// EDShown is how much of an ED OBX's data WriteStoredMessage prints
// unless asked for the message in full.
const EDShown = 60

// WriteStoredMessages writes delivery records as `radgate hl7 list` shows
// them: with asJSON one object per line; else a table (outbox key — the
// result id, with -r<N>[x] for a later revision or a retraction —, MSH-10,
// stored at, ACK code, destination, order id), "-" for what is not known.
func WriteStoredMessages(w io.Writer, msgs []StoredMessage, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, m := range msgs {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	}
	if len(msgs) == 0 {
		_, err := fmt.Fprintln(w, "no stored messages")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tMSH-10\tSTORED\tACK\tDESTINATION\tORDER")
	for _, m := range msgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Key(), m.ControlID, m.StoredAt.Local().Format(time.RFC3339),
			orDash(string(m.AckCode)), orDash(m.Destination), orDash(m.OrderID))
	}
	return tw.Flush()
}

// WriteStoredMessageJSON writes one delivery record and its message as one
// JSON object (the keys of WriteStoredMessages, plus message).
func WriteStoredMessageJSON(w io.Writer, m StoredMessage, raw []byte) error {
	return json.NewEncoder(w).Encode(struct {
		StoredMessage
		Message string `json:"message"`
	}{m, string(raw)})
}

// WriteStoredMessage writes one delivery record, then the message one
// segment per line; unless full, the data of an ED OBX (the embedded PDF) is
// cut to EDShown characters.
func WriteStoredMessage(w io.Writer, m StoredMessage, raw []byte, full bool) error {
	fmt.Fprintf(w, "result:      %s (object %s in %s)\n", m.ResultID, ObjectName(m.Key()), BucketOutbox)
	if m.Key() != m.ResultID {
		fmt.Fprintf(w, "revision:    %d (%s)\n", m.Revision, m.Status)
	}
	fmt.Fprintf(w, "order:       %s\n", orDash(m.OrderID))
	fmt.Fprintf(w, "control id:  %s\n", m.ControlID)
	fmt.Fprintf(w, "destination: %s\n", orDash(m.Destination))
	fmt.Fprintf(w, "stored at:   %s\n", m.StoredAt.Local().Format(time.RFC3339))
	sent := "-"
	if !m.SentAt.IsZero() {
		sent = m.SentAt.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "acked at:    %s\n", sent)
	fmt.Fprintf(w, "ack:         %s\n", orDash(string(m.AckCode)))
	if m.AckError != "" {
		fmt.Fprintf(w, "ack error:   %s\n", m.AckError)
	}
	if m.LastError != "" {
		fmt.Fprintf(w, "last error:  %s\n", m.LastError)
	}
	fmt.Fprintf(w, "attempts:    %d\n", m.Attempts)
	fmt.Fprintf(w, "message (%d bytes):\n", len(raw))
	for _, seg := range strings.Split(strings.TrimRight(string(raw), "\r\n"), "\r") {
		if !full {
			seg = shortenED(seg)
		}
		if _, err := fmt.Fprintf(w, "  %s\n", seg); err != nil {
			return err
		}
	}
	return nil
}

// shortenED cuts the data of an ED OBX (OBX|n|ED|…) to EDShown characters.
func shortenED(seg string) string {
	if len(seg) < 8 || !strings.HasPrefix(seg, "OBX") {
		return seg
	}
	sep := seg[3:4]
	fields := strings.Split(seg, sep)
	if len(fields) < 6 || fields[2] != "ED" || len(fields[5]) <= EDShown {
		return seg
	}
	fields[5] = fmt.Sprintf("%s… (%d characters; --full shows them)", fields[5][:EDShown], len(fields[5]))
	return strings.Join(fields, sep)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
