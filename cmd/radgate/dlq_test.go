package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// runDLQ runs `radgate dlq ARGS` in-process on a command of its own.
func runDLQ(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newDLQCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// freeAddr is a loopback address nobody listens on (a fixed port for the
// embedded NATS server, so that `radgate dlq` can find it).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// dlqConfig writes the radgate.yaml an operator would pass to radgate dlq:
// serve's embedded_listen and data_dir (where its NATS credential is).
func dlqConfig(t *testing.T, embeddedListen, dataDir string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "radgate.yaml")
	yaml := "data_dir: " + dataDir + "\nnats:\n  embedded_listen: " + embeddedListen + "\n"
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// startServeNATS starts the embedded NATS server as radgate serve does on
// dataDir (requiring the credential it generates there) at addr, and
// connects to it with that credential.
func startServeNATS(t *testing.T, addr, dataDir string) *nats.Conn {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)
	cred, err := broker.LoadOrCreateCredential(broker.CredentialPath(dataDir))
	require.NoError(t, err)
	srv, err := broker.StartEmbeddedWith(broker.EmbeddedOptions{StoreDir: filepath.Join(dataDir, "nats"), Host: host, Port: p, Credential: cred})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil, cred.Option())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	require.Error(t, err)
	ee, ok := err.(*exitError)
	if !ok {
		return 1
	}
	return ee.code
}

func TestDLQCommandNeedsARunningServer(t *testing.T) {
	addr, dataDir := freeAddr(t), t.TempDir()
	// serve never ran on this data_dir: no credential, and the error names
	// the file.
	_, _, err := runDLQ(t, "list", "--config", dlqConfig(t, addr, dataDir))
	require.ErrorContains(t, err, "reading the embedded NATS credential: open "+broker.CredentialPath(dataDir)+": no such file or directory")
	require.Equal(t, 1, exitCode(t, err))

	_, err = broker.LoadOrCreateCredential(broker.CredentialPath(dataDir))
	require.NoError(t, err)
	_, _, err = runDLQ(t, "list", "--config", dlqConfig(t, addr, dataDir))
	require.ErrorContains(t, err, "is radgate serve running? nats.embedded_listen = "+addr)

	_, _, err = runDLQ(t, "list", "--config", dlqConfig(t, "127.0.0.1:-1", dataDir))
	require.ErrorContains(t, err, "nats.embedded_listen = 127.0.0.1:-1 is a random port")
	require.Equal(t, 2, exitCode(t, err))

	_, _, err = runDLQ(t, "replay", "1", "--all")
	require.Equal(t, 2, exitCode(t, err))
	_, _, err = runDLQ(t, "replay", "--stage", "router", "1")
	require.Equal(t, 2, exitCode(t, err))
	_, _, err = runDLQ(t, "show", "seven")
	require.Equal(t, 2, exitCode(t, err))
}

// TestDLQCommand checks what the command prints, against a NATS server
// holding the topology and two dead letters (no peers needed).
func TestDLQCommand(t *testing.T) {
	addr, dataDir := freeAddr(t), t.TempDir()
	nc := startServeNATS(t, addr, dataDir)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	cfg := dlqConfig(t, addr, dataDir)

	longReason := "delivering to fhir: posting a transaction Bundle: HTTP 400: " + strings.Repeat("DiagnosticReport.code is required; ", 4)
	put := func(stage, subject, order, reason string, data any) uint64 {
		m := nats.NewMsg("radgate.dlq." + stage)
		m.Data, _ = json.Marshal(data)
		m.Header.Set(broker.HeaderOrderID, order)
		m.Header.Set(broker.HeaderReason, reason)
		m.Header.Set(broker.HeaderSubject, subject)
		ack, err := topo.JS.PublishMsg(t.Context(), m)
		require.NoError(t, err)
		return ack.Sequence
	}
	resSeq := put("deliver-fhir", "radgate.results.fhir.routine._.eng-a", "aaaa00000000000000000001", longReason,
		map[string]any{"id": "r1", "outcome": "scored", "order": map[string]any{"id": "aaaa00000000000000000001"}})
	jobSeq := put("inference", "radgate.jobs.routine._.eng-x", "aaaa00000000000000000002", `engine "eng-x" is not loaded in this process`,
		pipeline.Job{OrderID: "aaaa00000000000000000002", Engine: "eng-x", StudyInstanceUID: "1.2.3"})

	out, _, err := runDLQ(t, "list", "--config", cfg)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^ID\s+TIME\s+STAGE\s+ORDER\s+REASON$`, lines[0])
	require.Regexp(t, `^`+strconv.FormatUint(resSeq, 10)+`\s+\S+\s+deliver-fhir\s+aaaa00000000000000000001\s+delivering to fhir`, lines[1])
	require.Contains(t, lines[1], strings.TrimSpace(longReason), "not a terminal: the reason in full")
	require.Regexp(t, `^`+strconv.FormatUint(jobSeq, 10)+`\s+\S+\s+inference\s+`, lines[2])

	out, _, err = runDLQ(t, "list", "--config", cfg, "--json", "--stage", "inference")
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, map[string]any{"seq": float64(jobSeq), "time": got["time"], "stage": "inference",
		"order_id": "aaaa00000000000000000002", "reason": `engine "eng-x" is not loaded in this process`,
		"subject": "radgate.jobs.routine._.eng-x"}, got)

	out, _, err = runDLQ(t, "show", strconv.FormatUint(resSeq, 10), "--config", cfg)
	require.NoError(t, err)
	require.Contains(t, out, "dead letter "+strconv.FormatUint(resSeq, 10)+" in RADGATE_DLQ")
	require.Contains(t, out, "stage:   deliver-fhir")
	require.Contains(t, out, "  Radgate-Reason: "+strings.TrimSpace(longReason))
	require.Contains(t, out, "  Radgate-Subject: radgate.results.fhir.routine._.eng-a")
	require.Contains(t, out, "first published to radgate.results.fhir.routine._.eng-a")
	require.Contains(t, out, "{\n  \"id\": \"r1\",\n", "indented JSON")

	out, _, err = runDLQ(t, "show", strconv.FormatUint(jobSeq, 10), "--config", cfg, "--json")
	require.NoError(t, err)
	var shown struct {
		Seq     uint64              `json:"seq"`
		Headers map[string][]string `json:"headers"`
		Message pipeline.Job        `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, jobSeq, shown.Seq)
	require.Equal(t, "eng-x", shown.Message.Engine)
	require.Equal(t, []string{"radgate.jobs.routine._.eng-x"}, shown.Headers[broker.HeaderSubject])

	// --all --stage, kept: the job goes back to JOBS with a replay id.
	out, _, err = runDLQ(t, "replay", "--all", "--stage", "inference", "--keep", "--config", cfg)
	require.NoError(t, err)
	require.Equal(t, "replayed dead letter "+strconv.FormatUint(jobSeq, 10)+" (inference, order aaaa00000000000000000002) to radgate.jobs.routine._.eng-x: RADGATE_JOBS seq 1; kept in the DLQ (--keep)\n", out)
	jobs, err := topo.JS.Stream(t.Context(), broker.StreamJobs)
	require.NoError(t, err)
	raw, err := jobs.GetMsg(t.Context(), 1)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatUint(jobSeq, 10), raw.Header.Get(broker.HeaderReplayOf))
	require.Equal(t, "replay."+strconv.FormatUint(jobSeq, 10), raw.Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, "aaaa00000000000000000002", raw.Header.Get(broker.HeaderOrderID))

	// The same one again within the duplicate window: not sent twice.
	out, _, err = runDLQ(t, "replay", strconv.FormatUint(jobSeq, 10), "--config", cfg)
	require.NoError(t, err)
	require.Contains(t, out, "was replayed before, within the duplicate window: not sent again; removed from the DLQ")

	out, stderr, err := runDLQ(t, "replay", "999", strconv.FormatUint(resSeq, 10), "--config", cfg)
	require.Equal(t, 1, exitCode(t, err))
	require.ErrorContains(t, err, "1 of 2 dead letters not replayed")
	require.Contains(t, stderr, "dead letter 999: dead letter not found: no 999 in RADGATE_DLQ")
	require.Contains(t, out, "replayed dead letter "+strconv.FormatUint(resSeq, 10)+" (deliver-fhir, order aaaa00000000000000000001) to radgate.results.fhir.routine._.eng-a")

	out, _, err = runDLQ(t, "list", "--config", cfg)
	require.NoError(t, err)
	require.Equal(t, "no dead letters\n", out)
	out, _, err = runDLQ(t, "replay", "--all", "--config", cfg)
	require.NoError(t, err)
	require.Equal(t, "no dead letters to replay\n", out)
}

// TestDeadLetterReplayAfterTheCauseIsFixed is the operator's path on the
// real peers: radgate is configured with a wrong FHIR base, so the FHIR
// server refuses the result (404, which no retry changes) and it is
// dead-lettered; `radgate dlq list` and `show` tell why; radgate is
// restarted with the right base on the same data directory; `radgate dlq
// replay` sends the result again, and the order ends delivered with exactly
// one DiagnosticReport.
func TestDeadLetterReplayAfterTheCauseIsFixed(t *testing.T) {
	dataDir := t.TempDir()
	natsAddr := freeAddr(t)
	cfgFile := dlqConfig(t, natsAddr, dataDir)
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	img, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+7)
	require.NoError(t, err)
	c := &demo.Case{File: "refused.dcm", Data: img, Path: demo.ViaDirectPost}
	var id string

	t.Run("the FHIR server refuses the result", func(t *testing.T) {
		rg := startRadgate(t, func(cfg *config.Config) {
			cfg.DataDir = dataDir
			cfg.NATS.EmbeddedListen = natsAddr
			cfg.FHIR.BaseURL = strings.TrimSuffix(cfg.FHIR.BaseURL, "/R4") + "/R5"
		})
		ctx := t.Context()
		require.NoError(t, rg.env.LoadImages(ctx, []*demo.Case{c}))
		require.NoError(t, rg.env.Order(ctx, []*demo.Case{c}))
		require.NoError(t, rg.env.Wait(ctx, []*demo.Case{c}, 2*time.Minute))
		require.Equal(t, radgate.StateFailed, c.Status.State)
		require.Contains(t, c.Status.Reason, "delivering to fhir")
		require.Contains(t, c.Status.Reason, "404")

		var dl broker.DeadLetter
		var out string
		require.Eventually(t, func() bool { // the order is marked failed just before the DLQ copy is written
			out, _, err = runDLQ(t, "list", "--json", "--config", cfgFile)
			return err == nil && out != ""
		}, 10*time.Second, 100*time.Millisecond, "no dead letter listed: %v", err)
		require.NoError(t, json.Unmarshal([]byte(out), &dl), "exactly one dead letter: %s", out)
		require.Equal(t, "deliver-fhir", dl.Stage)
		require.Equal(t, c.OrderID, dl.OrderID)
		require.Contains(t, dl.Reason, "FHIR server answered 404 Not Found: error not-found", "status and issue code")
		require.NotContains(t, dl.Reason, "Not a FHIR path", "never the server's own text (it can quote patient data)")
		require.Equal(t, broker.ResultSubject("fhir", radgate.PriorityRoutine, broker.NoFacility, config.DefaultEngine), dl.Subject)
		id = strconv.FormatUint(dl.Seq, 10)

		out, _, err = runDLQ(t, "show", id, "--config", cfgFile)
		require.NoError(t, err)
		require.Contains(t, out, "Radgate-Order-Id: "+c.OrderID)
		require.Contains(t, out, `"outcome": "scored"`)
		require.NotContains(t, out, "heatmap_png", "pixels travel through the object store, never in messages")
		require.Zero(t, countReports(t, rg, c), "nothing was written")

		// The orders are there for the credential only.
		_, err = nats.Connect("nats://" + natsAddr)
		require.ErrorIs(t, err, nats.ErrAuthorization, "a client without serve's credential")
	})
	require.NotEmpty(t, id)

	t.Run("with serve stopped the command says so", func(t *testing.T) {
		_, _, err := runDLQ(t, "list", "--config", cfgFile)
		require.ErrorContains(t, err, "is radgate serve running? nats.embedded_listen = "+natsAddr)
	})

	t.Run("fixed, restarted and replayed, the order is delivered once", func(t *testing.T) {
		rg := startRadgate(t, func(cfg *config.Config) {
			cfg.DataDir = dataDir
			cfg.NATS.EmbeddedListen = natsAddr
		})
		ctx := t.Context()
		st, err := rg.env.OrderStatus(ctx, c.OrderID)
		require.NoError(t, err)
		require.Equal(t, radgate.StateFailed, st.State, "a restart alone re-runs nothing")

		out, _, err := runDLQ(t, "replay", id, "--config", cfgFile)
		require.NoError(t, err)
		require.Contains(t, out, "replayed dead letter "+id+" (deliver-fhir, order "+c.OrderID+") to "+broker.ResultSubject("fhir", radgate.PriorityRoutine, broker.NoFacility, config.DefaultEngine))
		require.Contains(t, out, "removed from the DLQ")

		require.Eventually(t, func() bool {
			st, err = rg.env.OrderStatus(ctx, c.OrderID)
			return err == nil && st.State == radgate.StateDelivered
		}, time.Minute, 100*time.Millisecond, "order never delivered: %+v", st)
		require.True(t, strings.HasPrefix(st.Engines[config.DefaultEngine].Report, "DiagnosticReport/"), st.Engines[config.DefaultEngine].Report)
		require.NotNil(t, st.Engines[config.DefaultEngine].Probability, "the score survives the replay")
		time.Sleep(time.Second) // time for a duplicate to surface
		require.Equal(t, 1, countReports(t, rg, c))

		out, _, err = runDLQ(t, "list", "--config", cfgFile)
		require.NoError(t, err)
		require.Equal(t, "no dead letters\n", out)
		_, stderr, err := runDLQ(t, "replay", id, "--config", cfgFile)
		require.Equal(t, 1, exitCode(t, err))
		require.Contains(t, stderr, "dead letter not found")
	})
}
