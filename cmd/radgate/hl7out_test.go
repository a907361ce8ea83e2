package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/internal/testenv"
)

// runHL7 runs `radgate hl7 ARGS` in-process on a command of its own.
func runHL7(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	cmd := newHL7Cmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// oruReceiver starts adapters/hl7v2/testdata/oru_receiver.py (python3-hl7)
// and returns its address and what it receives (each message as it
// arrived). It is stopped, by its pid, at the end of the test.
func oruReceiver(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-u", filepath.Join(testenv.RepoRoot(), "adapters", "hl7v2", "testdata", "oru_receiver.py"))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	lines := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 16<<20), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		<-done
		_ = cmd.Wait()
	})
	var port string
	select {
	case l := <-lines:
		var ok bool
		port, ok = strings.CutPrefix(l, "LISTENING ")
		require.True(t, ok, "oru_receiver.py said %q", l)
	case <-time.After(30 * time.Second):
		t.Fatal("oru_receiver.py did not start")
	}
	got := make(chan []byte, 10)
	go func() {
		defer close(got)
		for l := range lines {
			if b64, ok := strings.CutPrefix(l, "RECEIVED "); ok {
				raw, _ := base64.StdEncoding.DecodeString(b64)
				got <- raw
			}
		}
	}()
	return "127.0.0.1:" + port, got
}

func received(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case raw, ok := <-got:
		require.True(t, ok, "the receiver exited")
		return raw
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver got nothing")
		return nil
	}
}

// TestHL7CommandListShowResend: results the HL7 sink delivered to the real
// python3-hl7 receiver are listed, shown and re-sent (unchanged) by
// radgate hl7, through the embedded NATS server.
func TestHL7CommandListShowResend(t *testing.T) {
	needMLLPSend(t)
	addr, dataDir := freeAddr(t), t.TempDir()
	js, err := jetstream.New(startServeNATS(t, addr, dataDir))
	require.NoError(t, err)
	cfg := dlqConfig(t, addr, dataDir)

	_, err = runHL7(t, "list", "--config", cfg)
	require.ErrorContains(t, err, "no HL7 message has been stored yet")

	ris, got := oruReceiver(t)
	sink, err := hl7v2.NewResultSink(hl7v2.ResultSinkOptions{JS: js, Address: ris,
		Client: hl7v2.ClientOptions{AckTimeout: 10 * time.Second, MaxAttempts: 1}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sink.Close() })
	r := radgate.Result{
		ID: "5f0c2a9e7d41b3c6a8e0f1d2",
		Order: radgate.OrderStatus{ID: "order-hl7-cli",
			Accession: &radgate.Identifier{Value: "ACC-HL7-CLI"},
			Patient:   &radgate.Reference{Identifier: &radgate.Identifier{Value: "MRN-CLI-1"}, Display: "Zyxwa Clipatient"}},
		Engine: radgate.EngineInfo{ID: "cxr-pneumonia-densenet121", Name: "CXR pneumonia DenseNet-121", Version: "1.0.0",
			Disclaimer: "AI decision support — not a diagnosis."},
		Outcome: radgate.OutcomeScored, Probability: 0.42, Tier: "Mid",
		StudyInstanceUID: "1.2.826.0.1.3680043.8.498.99", ScoredAt: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC),
	}
	rec, err := sink.Deliver(t.Context(), r)
	require.NoError(t, err)
	sent := received(t, got)
	ctrl := strings.TrimPrefix(rec.Report, "ORU^R01/")

	out, err := runHL7(t, "list", "--config", cfg)
	require.NoError(t, err)
	require.Contains(t, out, "RESULT")
	require.Regexp(t, r.ID+` +`+ctrl+` +\S+ +AA +`+ris+` +order-hl7-cli`, out)

	out, err = runHL7(t, "list", "--json", "--config", cfg)
	require.NoError(t, err)
	var listed hl7v2.StoredMessage
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	require.Equal(t, ctrl, listed.ControlID)
	require.Equal(t, hl7v2.AA, listed.AckCode)

	out, err = runHL7(t, "show", r.ID, "--config", cfg)
	require.NoError(t, err)
	require.Contains(t, out, "control id:  "+ctrl)
	require.Contains(t, out, "destination: "+ris)
	require.Contains(t, out, "ack:         AA")
	require.Contains(t, out, "  OBX|4|FT|disclaimer^Disclaimer^RADGATE||AI decision support — not a diagnosis.")
	require.NotContains(t, out, "Zyxwa", "no patient name")

	out, err = runHL7(t, "show", r.ID, "--raw", "--config", cfg)
	require.NoError(t, err)
	require.Equal(t, string(sent), out, "--raw is the message as sent")

	_, err = runHL7(t, "show", "no-such-result", "--config", cfg)
	require.ErrorIs(t, err, hl7v2.ErrNotStored)

	out, err = runHL7(t, "resend", r.ID, "--to", ris, "--config", cfg)
	require.NoError(t, err)
	require.Equal(t, "resent "+r.ID+" (MSH-10 "+ctrl+") to "+ris+": AA\n", out)
	require.Equal(t, string(sent), string(received(t, got)), "the same message again, same MSH-10")

	out, err = runHL7(t, "resend", r.ID, "--config", cfg)
	require.NoError(t, err, "to the recorded destination")
	require.Contains(t, out, ": AA")
	require.Equal(t, string(sent), string(received(t, got)))

	_, err = runHL7(t, "resend", r.ID, "--to", freeAddr(t), "--timeout", "3s", "--config", cfg)
	require.ErrorContains(t, err, "resending "+r.ID+" (MSH-10 "+ctrl+")")
	require.ErrorContains(t, err, "connection refused")

	_, err = runHL7(t, "resend", r.ID, "--to", "nowhere", "--config", cfg)
	require.Equal(t, 2, exitCode(t, err))

	out, err = runHL7(t, "show", r.ID, "--json", "--config", cfg)
	require.NoError(t, err)
	var shown struct {
		hl7v2.StoredMessage
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, 4, shown.Attempts, "delivered once, resent three times")
	require.Contains(t, shown.LastError, "connection refused")
	require.Equal(t, hl7v2.AA, shown.AckCode, "the last ACK stays on record")
	require.Equal(t, string(sent), shown.Message)
}
