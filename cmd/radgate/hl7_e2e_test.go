package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

const mllpSend = "/usr/bin/mllp_send" // Debian python3-hl7, run by /usr/bin/python3

// needMLLPSend skips (or, with RADGATE_REQUIRE_PEERS=1, fails) when the
// python3-hl7 peer is not installed.
func needMLLPSend(t *testing.T) {
	t.Helper()
	msg := ""
	if _, err := os.Stat(mllpSend); err != nil {
		msg = mllpSend + " is missing"
	} else if out, err := exec.CommandContext(t.Context(), "/usr/bin/python3", "-c", "import hl7.client").CombinedOutput(); err != nil {
		msg = "python3-hl7 is not usable: " + strings.TrimSpace(string(out))
	}
	if msg == "" {
		return
	}
	msg += " (install python3-hl7: testenv/setup.sh)"
	if testenv.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, ln.Close())
	return port
}

// sendMLLP sends one message (segments joined with "\n", as --loose wants)
// with mllp_send and returns the ACK it printed.
func sendMLLP(t *testing.T, port string, segments ...string) hl7v2.Ack {
	t.Helper()
	file := filepath.Join(t.TempDir(), "msg.hl7")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(segments, "\n")+"\n"), 0o600))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mllpSend, "--loose", "-p", port, "-f", file, "127.0.0.1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "mllp_send: %s", stderr.String())
	// mllp_send prints each ACK as received, MLLP framing included.
	raw, err := hl7v2.NewFrameReader(&stdout, 0).ReadFrame()
	require.NoError(t, err, "stdout: %q", stdout.String())
	m, err := hl7v2.Parse(raw)
	require.NoError(t, err)
	require.Equal(t, "ACK", m.Type().Code)
	a, err := hl7v2.ReadACK(m)
	require.NoError(t, err)
	return a
}

// TestHL7OrderToResultOnRealPeers: an ORM^O01 sent by the real python3-hl7
// peer over MLLP is ACKed AA once stored, becomes a scored DiagnosticReport
// on the real FHIR server, linked to the order by its accession number; a
// malformed ORM gets AE with an ERR naming the field.
func TestHL7OrderToResultOnRealPeers(t *testing.T) {
	needMLLPSend(t)
	port := freePort(t)
	rg := startRadgate(t, func(c *config.Config) {
		c.HL7v2.Listen = "127.0.0.1:" + port
		c.HL7v2.AccessionSystem = demo.AccessionSystem // the FHIR side's: one order per study
	})
	ctx := t.Context()
	require.Contains(t, rg.logs.String(), "127.0.0.1:"+port, "the MLLP address is logged")

	// A chest radiograph of its own (fresh UIDs and accession number).
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	data, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+7)
	require.NoError(t, err)
	c := &demo.Case{File: "hl7.dcm", Data: data}
	require.NoError(t, rg.env.LoadImages(ctx, []*demo.Case{c}))
	acc, uid := c.Meta.AccessionNumber, c.Meta.StudyInstanceUID
	require.NotEmpty(t, acc)

	// PID-7: a child of 2 at MSH-7 (the shipped engines are for 1–5 y); the
	// image has no age, so the order's decides, and no caveat is written.
	ack := sendMLLP(t, port,
		`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01^ORM_O01|HL7E2E0001|P|2.5.1`,
		`PID|1||MRN-E2E-1^^^HOSP^MR||Zyxwa^Hl7patient||20210315|F`,
		`ORC|NW`,
		`OBR|1|||36643-5^XR Chest 2 Views^LN||||||||||||||`+acc+`||||||CR`,
		`ZDS|`+uid+`^RADGATE^Application^DICOM`)
	require.Equal(t, hl7v2.AA, ack.Code, "%+v", ack)
	require.Equal(t, "HL7E2E0001", ack.ControlID)

	// The ACK came after the order was stored: it is known at once.
	c.OrderID = radgate.OrderID(mustKey(t, radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: acc}}))
	st, err := rg.env.OrderStatus(ctx, c.OrderID)
	require.NoError(t, err, "the order exists as soon as AA is sent")
	require.Contains(t, st.Sources, hl7v2.Source+":ORM")

	require.NoError(t, rg.env.Wait(ctx, []*demo.Case{c}, 2*time.Minute))
	require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)
	rep := c.Status.Engines[config.DefaultEngine].Report
	require.True(t, strings.HasPrefix(rep, "DiagnosticReport/"), rep)
	b, err := rg.env.FHIR.Read(ctx, rep)
	require.NoError(t, err)
	var dr map[string]any
	require.NoError(t, json.Unmarshal(b, &dr))
	require.Equal(t, "final", dr["status"])
	require.NotContains(t, dr["conclusion"], "Patient age unknown", "the order's age stood in for the image's")
	st, err = rg.env.OrderStatus(ctx, c.OrderID)
	require.NoError(t, err)
	require.Equal(t, &radgate.PatientAge{Years: 2, Text: "2 y", From: "HL7 PID-7 at the order's date, MSH-7"}, st.Age, "the age, never the birth date")
	basedOn := mustJSON(dr["basedOn"])
	require.Contains(t, basedOn, `"system":"`+demo.AccessionSystem+`"`)
	require.Contains(t, basedOn, `"value":"`+acc+`"`, "linked by the accession number's identifier")
	require.Contains(t, basedOn, `"code":"ACSN"`)
	require.Contains(t, mustJSON(dr["imagingStudy"]), uid)

	// Malformed: neither an accession number (OBR-18) nor a study UID (ZDS).
	ack = sendMLLP(t, port,
		`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240131142504||ORM^O01^ORM_O01|HL7E2E0002|P|2.5.1`,
		`PID|1||MRN-E2E-2^^^HOSP^MR||Zyxwa^Hl7patient||20210315|F`,
		`ORC|NW`,
		`OBR|1|||36643-5^XR Chest 2 Views^LN`)
	require.Equal(t, hl7v2.AE, ack.Code)
	require.Equal(t, "HL7E2E0002", ack.ControlID)
	require.Len(t, ack.Errors, 1)
	require.Equal(t, hl7v2.Location{Segment: "OBR", Seq: 1, Field: 18}, ack.Errors[0].Loc)
	require.Equal(t, hl7v2.CodeRequiredFieldMissing, ack.Errors[0].Code)
	require.Contains(t, ack.Errors[0].Message, "no accession number")

	logs := rg.logs.String()
	require.Contains(t, logs, "HL7E2E0001")
	require.Contains(t, logs, c.OrderID)
	require.NotContains(t, logs, "Zyxwa")
	require.NotContains(t, logs, "Hl7patient")
}

func mustKey(t *testing.T, ev radgate.OrderEvent) string {
	t.Helper()
	k, err := radgate.OrderKey(ev)
	require.NoError(t, err)
	return k
}
