package broker

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestWriteDeadLetters(t *testing.T) {
	reason := "delivering to fhir:\n  HTTP 400: " + strings.Repeat("DiagnosticReport.code is required; ", 3)
	dls := []DeadLetter{
		{Seq: 7, Time: time.Unix(0, 0), Stage: "deliver-fhir", OrderID: "o-1", Reason: reason},
		{Seq: 9, Time: time.Unix(0, 0), Stage: "router", Reason: "no route", ReplayOf: "7"},
	}
	var b bytes.Buffer
	require.NoError(t, WriteDeadLetters(&b, dls, false, 30))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	require.True(t, strings.HasSuffix(lines[1], "delivering to fhir: HTTP 400:…"), "reason on one line, cut to 30: %q", lines[1])
	require.Regexp(t, `router\s+-\s`, lines[2])
	require.True(t, strings.HasSuffix(lines[2], "(replay of 7) no route"))

	b.Reset()
	require.NoError(t, WriteDeadLetters(&b, dls, false, 0))
	require.Contains(t, b.String(), "is required; DiagnosticReport.code is required; Diag", "no width: reasons in full")

	b.Reset()
	require.NoError(t, WriteDeadLetters(&b, dls, true, 30))
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.Split(b.String(), "\n")[0]), &first))
	require.Equal(t, reason, first["reason"], "JSON keeps the reason as it is")

	b.Reset()
	require.NoError(t, WriteDeadLetters(&b, nil, false, 30))
	require.Equal(t, "no dead letters\n", b.String())
}

func TestWriteDeadLetter(t *testing.T) {
	dl := DeadLetter{Seq: 3, Time: time.Unix(0, 0), Stage: "inference", Subject: "radgate.jobs.x",
		Header: nats.Header{HeaderReason: {"engine not loaded"}}, Data: []byte(`{"order_id":"o-1"}`)}
	var b bytes.Buffer
	require.NoError(t, WriteDeadLetter(&b, dl, false))
	require.Contains(t, b.String(), "dead letter 3 in "+StreamDLQ)
	require.Contains(t, b.String(), "  "+HeaderReason+": engine not loaded\n")
	require.Contains(t, b.String(), "message (18 bytes, first published to radgate.jobs.x):\n{\n  \"order_id\": \"o-1\"\n}\n")

	dl.Data = []byte{0xff, 0x00}
	b.Reset()
	require.NoError(t, WriteDeadLetter(&b, dl, false))
	require.Contains(t, b.String(), "(not JSON; not shown)")
	b.Reset()
	require.NoError(t, WriteDeadLetter(&b, dl, true))
	var obj map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &obj))
	require.Nil(t, obj["message"])
	require.EqualValues(t, 2, obj["message_bytes"])
}
