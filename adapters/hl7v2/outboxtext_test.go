package hl7v2

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

func TestWriteStoredMessageCutsEmbeddedData(t *testing.T) {
	pdf := strings.Repeat("QUJD", 50) // 200 characters of base64
	raw := []byte("MSH|^~\\&|RADGATE|X|RIS|Y|20250101||ORU^R01|C1|P|2.5.1\rOBX|1|ED|PDF^Report||^AP^PDF^Base64^" + pdf + "||||||F\rOBX|2|NM|P^Prob||0.9||||||F\r")
	m := StoredMessage{ResultID: "r1", ControlID: "C1", StoredAt: time.Unix(0, 0), Attempts: 1}

	var b bytes.Buffer
	require.NoError(t, WriteStoredMessage(&b, m, raw, false))
	out := b.String()
	require.Contains(t, out, "result:      r1 (object r1.hl7 in "+BucketOutbox+")")
	require.Contains(t, out, "order:       -")
	require.Contains(t, out, "acked at:    -")
	require.Contains(t, out, "(215 characters; --full shows them)")
	require.NotContains(t, out, pdf)
	require.Contains(t, out, "  OBX|2|NM|P^Prob||0.9||||||F\n", "other segments unchanged")

	b.Reset()
	require.NoError(t, WriteStoredMessage(&b, m, raw, true))
	require.Contains(t, b.String(), pdf, "--full shows the data")
}

func TestWriteStoredMessages(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteStoredMessages(&b, nil, false))
	require.Equal(t, "no stored messages\n", b.String())

	b.Reset()
	msgs := []StoredMessage{{ResultID: "r1", ControlID: "C1", Destination: "ris:2575", AckCode: "AA", StoredAt: time.Unix(0, 0)}}
	require.NoError(t, WriteStoredMessages(&b, msgs, true))
	require.Contains(t, b.String(), `"result_id":"r1"`)
	require.NotContains(t, b.String(), "order_id", "omitted when empty")

	b.Reset()
	require.NoError(t, WriteStoredMessages(&b, msgs, false))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^RESULT\s+MSH-10\s+STORED\s+ACK\s+DESTINATION\s+ORDER$`, lines[0])
	require.Regexp(t, `^r1\s+C1\s+\S+\s+AA\s+ris:2575\s+-$`, lines[1])
}

// Later revisions and retractions are listed and shown by their outbox
// key, the one radgate hl7 show and resend take.
func TestWriteStoredMessageRevisions(t *testing.T) {
	first := StoredMessage{ResultID: "r1", Revision: 1, Status: radgate.ResultFinal, ControlID: "C1", StoredAt: time.Unix(0, 0)}
	amended := StoredMessage{ResultID: "r1", Revision: 2, Status: radgate.ResultAmended, ControlID: "C1-r2", StoredAt: time.Unix(1, 0)}
	retracted := StoredMessage{ResultID: "r1", Revision: 2, Status: radgate.ResultRetracted, ControlID: "C1-r2x", StoredAt: time.Unix(2, 0)}
	old := StoredMessage{ResultID: "r0", ControlID: "C0", StoredAt: time.Unix(0, 0)}
	require.Equal(t, "r1", first.Key())
	require.Equal(t, "r1-r2", amended.Key())
	require.Equal(t, "r1-r2x", retracted.Key())
	require.Equal(t, "r0", old.Key(), "a record from before revisions: a first result")

	var b bytes.Buffer
	require.NoError(t, WriteStoredMessages(&b, []StoredMessage{first, amended, retracted}, false))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 4)
	require.Regexp(t, `^r1\s+C1\s`, lines[1])
	require.Regexp(t, `^r1-r2\s+C1-r2\s`, lines[2])
	require.Regexp(t, `^r1-r2x\s+C1-r2x\s`, lines[3])

	b.Reset()
	require.NoError(t, WriteStoredMessage(&b, retracted, []byte("MSH|^~\\&|A\r"), false))
	require.Contains(t, b.String(), "result:      r1 (object r1-r2x.hl7 in "+BucketOutbox+")\nrevision:    2 (retracted)\n")
	b.Reset()
	require.NoError(t, WriteStoredMessage(&b, first, []byte("MSH|^~\\&|A\r"), false))
	require.NotContains(t, b.String(), "revision:")
}
