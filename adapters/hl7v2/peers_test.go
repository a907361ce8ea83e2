package hl7v2

// Tests against real MLLP peers: Debian's python3-hl7 (mllp_send, and an
// asyncio receiver in testdata/mllp_peer.py), installed by
// testenv/setup.sh. Without them the tests skip, except under the
// project's test command (RADGATE_REQUIRE_PEERS=1), where they fail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

const (
	debianPython = "/usr/bin/python3" // not the python3 first on PATH
	mllpSend     = "/usr/bin/mllp_send"
)

var python3HL7 = sync.OnceValue(func() error {
	if _, err := os.Stat(debianPython); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, "-c", "import hl7.mllp").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
})

// needPeer skips (or, with RADGATE_REQUIRE_PEERS=1, fails) a test whose
// python3-hl7 peer is missing.
func needPeer(t *testing.T, withMLLPSend bool) {
	t.Helper()
	missing := func(msg string) {
		msg += " (install python3-hl7: testenv/setup.sh)"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err := python3HL7(); err != nil {
		missing("python3-hl7 is not usable with " + debianPython + ": " + err.Error())
	}
	if withMLLPSend {
		if _, err := os.Stat(mllpSend); err != nil {
			missing(mllpSend + " is missing")
		}
	}
}

// TestPeerMLLPSendToServer: python3-hl7's mllp_send sends orders to our
// Server and receives our ACKs.
func TestPeerMLLPSendToServer(t *testing.T) {
	needPeer(t, true)
	got := make(chan radgate.OrderEvent, 10)
	s := startServer(t, ServerOptions{Handler: orderHandler(got)})
	_, port, _ := strings.Cut(s.Addr().String(), ":")

	bad := edit(t, "orm_o01.hl7", "OBR-18=", "-ZDS", "MSH-10=ORM0002")
	file := filepath.Join(t.TempDir(), "orders.hl7")
	// --loose: "\n" line ends, messages start at "MSH|^~\&|".
	body := readFixture(t, "orm_o01.hl7") + strings.ReplaceAll(bad.String(), "\r", "\n") + readFixture(t, "omi_o23.hl7")
	require.NoError(t, os.WriteFile(file, []byte(body), 0o600))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mllpSend, "--loose", "-p", port, "-f", file, "127.0.0.1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "mllp_send: %s", stderr.String())

	// mllp_send prints each ACK as received, framing bytes included.
	fr := NewFrameReader(&stdout, 0)
	var acks []Ack
	for {
		raw, err := fr.ReadFrame()
		if err != nil {
			break
		}
		m, err := Parse(raw)
		require.NoError(t, err)
		a, err := ReadACK(m)
		require.NoError(t, err)
		require.Equal(t, "ACK", m.Type().Code)
		acks = append(acks, a)
	}
	require.Len(t, acks, 3, "stdout: %q", stdout.String())
	require.Equal(t, AA, acks[0].Code)
	require.Equal(t, "ORM0001", acks[0].ControlID)
	require.Equal(t, AE, acks[1].Code)
	require.Equal(t, "ORM0002", acks[1].ControlID)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing, Severity: SeverityError,
		Message: "OBR-18: no accession number (nor a Study Instance UID in ZDS-1)"}}, acks[1].Errors)
	require.Equal(t, AA, acks[2].Code)
	require.Equal(t, "OMI0001", acks[2].ControlID)

	orm, omi := <-got, <-got
	require.Equal(t, "ORM", orm.ResourceType)
	require.Equal(t, "1.2.840.113619.2.55.3.604688119.969.1268071029.320", orm.StudyInstanceUID)
	require.Equal(t, "OMI", omi.ResourceType)
	require.Equal(t, "1.2.3.4.5.6.7.8.9", omi.StudyInstanceUID)
}

// lockedBuffer collects a child's stderr while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pyPeer is testdata/mllp_peer.py, running.
type pyPeer struct {
	addr  string
	lines chan string
}

func startPyPeer(t *testing.T) *pyPeer {
	t.Helper()
	cmd := exec.Command(debianPython, "-u", filepath.Join("testdata", "mllp_peer.py"))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	p := &pyPeer{lines: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		// Stop the peer we started, by its pid.
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill()
		}
		<-done
		_ = cmd.Wait()
	})
	select {
	case l, ok := <-p.lines:
		require.True(t, ok, "mllp_peer.py exited: %s", stderr.String())
		port, ok := strings.CutPrefix(l, "LISTENING ")
		require.True(t, ok, "mllp_peer.py said %q", l)
		p.addr = "127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		t.Fatalf("mllp_peer.py did not start: %s", stderr.String())
	}
	return p
}

type received struct {
	ControlID string            `json:"control_id"`
	Type      string            `json:"type"`
	Segments  []string          `json:"segments"`
	PID3      string            `json:"pid3"`
	PID5      string            `json:"pid5"`
	OBR       map[string]string `json:"obr"`
	OBX       []struct {
		Type, ID, Value, Units, Status string
	} `json:"obx"`
	NTE []string `json:"nte"`
}

// next returns what the peer read from the next message.
func (p *pyPeer) next(t *testing.T) received {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		require.True(t, ok, "mllp_peer.py exited")
		js, ok := strings.CutPrefix(l, "RECEIVED ")
		require.True(t, ok, "mllp_peer.py said %q", l)
		var r received
		require.NoError(t, json.Unmarshal([]byte(js), &r))
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("mllp_peer.py received nothing")
		return received{}
	}
}

// TestPeerClientToPythonReceiver: our Client sends ORU^R01 to
// python3-hl7's asyncio MLLP server, which parses them and acknowledges.
func TestPeerClientToPythonReceiver(t *testing.T) {
	needPeer(t, false)
	p := startPyPeer(t)
	c := newClient(t, p.addr, ClientOptions{AckTimeout: 5 * time.Second, MaxAttempts: 2})
	ctx := t.Context()
	pdf := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n%%EOF\n")

	t.Run("ORU accepted, read back by the peer", func(t *testing.T) {
		m, err := ORU(sampleResult(), ORUOptions{ControlID: "ORU-OK-1", PDF: pdf, ReceivingApplication: HD{Namespace: "RIS"}})
		require.NoError(t, err)
		ack, err := c.Send(ctx, m)
		require.NoError(t, err)
		require.Equal(t, "AA", ack.Get("MSA-1"))
		require.Equal(t, "ORU-OK-1", ack.Get("MSA-2"))
		require.Equal(t, "RIS", ack.Get("MSH-3"), "python-hl7 swapped the applications")

		r := p.next(t)
		require.Equal(t, "ORU-OK-1", r.ControlID)
		require.Equal(t, "ORU^R01^ORU_R01", r.Type)
		require.Equal(t, []string{"MSH", "PID", "ORC", "OBR", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX"}, r.Segments)
		require.Equal(t, "MRN12345^^^&1.2.3.4.9&ISO", r.PID3)
		require.Equal(t, UnknownName, r.PID5, "PID-5 present, no name: name type U")
		require.Equal(t, "ACC-778899", r.OBR["18"])
		require.Equal(t, "F", r.OBR["25"])
		require.Equal(t, "NM", r.OBX[0].Type)
		require.Equal(t, "87.3", r.OBX[0].Value)
		require.Equal(t, "%^percent^UCUM", r.OBX[0].Units)
		require.Equal(t, "CWE", r.OBX[1].Type)
		require.Equal(t, "high^High^RADGATE-TIER", r.OBX[1].Value)
		require.Equal(t, "disclaimer^Disclaimer^RADGATE", r.OBX[3].ID)
		// python-hl7 turns \.br\ into "\r".
		require.Equal(t, testDisclaimer, strings.ReplaceAll(r.OBX[3].Value, "\r", "\n"), "the disclaimer, word for word")
		require.Equal(t, "ED", r.OBX[7].Type)
		b64, ok := strings.CutPrefix(r.OBX[7].Value, "^application^pdf^Base64^")
		require.True(t, ok, r.OBX[7].Value)
		got, err := base64.StdEncoding.DecodeString(b64)
		require.NoError(t, err)
		require.Equal(t, pdf, got)
		for _, o := range r.OBX {
			require.Equal(t, "F", o.Status)
		}
	})

	t.Run("other delimiters", func(t *testing.T) {
		d := Delimiters{FieldSep: '$', ComponentSep: '%', RepetitionSep: '@', EscapeChar: '*', SubcomponentSep: '&'}
		m, err := ORU(sampleResult(), ORUOptions{ControlID: "ORU-DELIM", Delimiters: d})
		require.NoError(t, err)
		ack, err := c.Send(ctx, m)
		require.NoError(t, err)
		require.Equal(t, d, ack.Delimiters(), "the ACK comes back in the message's delimiters")
		require.Equal(t, "AA", ack.Get("MSA-1"))
		r := p.next(t)
		require.Equal(t, "ORU%R01%ORU_R01", r.Type)
		require.Equal(t, "87.3", r.OBX[0].Value)
		require.Equal(t, testDisclaimer, strings.ReplaceAll(r.OBX[3].Value, "\r", "\n"))
	})

	t.Run("not scored", func(t *testing.T) {
		res := sampleResult()
		res.Outcome, res.Reason = radgate.OutcomeNotApplicable, "lateral view only | no PA"
		m, err := ORU(res, ORUOptions{ControlID: "ORU-X-1"})
		require.NoError(t, err)
		_, err = c.Send(ctx, m)
		require.NoError(t, err)
		r := p.next(t)
		require.Equal(t, "X", r.OBR["25"])
		require.Empty(t, r.OBX)
		require.Equal(t, []string{"AI analysis by CXR pneumonia DenseNet-121 1.2.0 not applicable: lateral view only | no PA"}, r.NTE)
	})

	t.Run("AE is final: the content was wrong (Table 0008)", func(t *testing.T) {
		_, err := c.Send(ctx, oru(t, "AE-1"))
		require.ErrorIs(t, err, ErrApplicationError)
		require.False(t, radgate.IsTransient(err))
		var ae *AckError
		require.True(t, errors.As(err, &ae))
		require.Equal(t, 1, ae.Attempts)
		require.Equal(t, []ErrorDetail{{Code: CodeInternalError, Severity: SeverityError, Message: "flagged AE by the test"}}, ae.Errors)
		require.Equal(t, "AE-1", p.next(t).ControlID)
		ack, err := c.Send(ctx, oru(t, "ORU-OK-1B"))
		require.NoError(t, err)
		require.Equal(t, "ORU-OK-1B", ack.Get("MSA-2"))
		require.Equal(t, "ORU-OK-1B", p.next(t).ControlID, "AE-1 was not sent again")
	})

	t.Run("AR for an internal error is retried, then left to the caller to retry later", func(t *testing.T) {
		_, err := c.Send(ctx, oru(t, "BUSY-1"))
		require.ErrorIs(t, err, ErrRejected)
		require.True(t, radgate.IsTransient(err), "the receiver could not take it now: %v", err)
		var ae *AckError
		require.True(t, errors.As(err, &ae))
		require.Equal(t, 2, ae.Attempts)
		require.Equal(t, "BUSY-1", p.next(t).ControlID)
		require.Equal(t, "BUSY-1", p.next(t).ControlID, "sent twice, same control id")
	})

	t.Run("AR is final", func(t *testing.T) {
		_, err := c.Send(ctx, oru(t, "AR-1"))
		require.ErrorIs(t, err, ErrRejected)
		require.ErrorContains(t, err, "flagged AR by the test (200 Unsupported message type)")
		require.Equal(t, "AR-1", p.next(t).ControlID)
		ack, err := c.Send(ctx, oru(t, "ORU-OK-2"))
		require.NoError(t, err, "the next message goes through")
		require.Equal(t, "ORU-OK-2", ack.Get("MSA-2"))
		require.Equal(t, "ORU-OK-2", p.next(t).ControlID, "AR-1 was not sent again")
	})

	t.Run("no ACK: timeout", func(t *testing.T) {
		quick := newClient(t, p.addr, ClientOptions{AckTimeout: 200 * time.Millisecond, MaxAttempts: 1})
		_, err := quick.Send(ctx, oru(t, "SILENT-1"))
		require.ErrorIs(t, err, ErrAckTimeout)
		require.True(t, radgate.IsTransient(err))
		require.Equal(t, "SILENT-1", p.next(t).ControlID)
	})
}

// mllpSendAll sends the messages of body (segments ended by "\n", as
// --loose wants) with python3-hl7's mllp_send and returns the ACKs it
// printed, in order.
func mllpSendAll(t *testing.T, addr, body string) []Ack {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	file := filepath.Join(t.TempDir(), "orders.hl7")
	require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mllpSend, "--loose", "-p", port, "-f", file, "127.0.0.1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "mllp_send: %s", stderr.String())
	fr := NewFrameReader(&stdout, 0)
	var acks []Ack
	for {
		raw, err := fr.ReadFrame()
		if err != nil {
			break
		}
		m, err := Parse(raw)
		require.NoError(t, err)
		a, err := ReadACK(m)
		require.NoError(t, err)
		acks = append(acks, a)
	}
	return acks
}

// TestPeerIdentifiersAndSize: mllp_send sends radgate's intake orders whose
// identifiers carry control characters (as HL7 escapes), are far too long,
// or whose message is over the size limit. Each is answered AE with an ERR
// naming the field (or the limit), and nothing is stored; the good order
// after them is stored.
func TestPeerIdentifiersAndSize(t *testing.T) {
	needPeer(t, true)
	in := &fakeIntake{}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, ServerOptions{MaxMessageSize: 2 << 20, Logger: logger,
		Handler: NewIntakeHandler(in, IntakeOptions{Logger: logger})})

	msg := func(id string, edits ...string) string {
		return strings.ReplaceAll(edit(t, "orm_o01.hl7", append([]string{"MSH-10=" + id}, edits...)...).String(), "\r", "\n")
	}
	cases := []struct {
		id   string
		edit []string
		loc  Location
		text string
	}{
		{"NUL", []string{`OBR-18=ACC\X00\1`}, Location{Segment: "OBR", Seq: 1, Field: 18}, "OBR-18: contains the control character U+0000 at character 4"},
		{"VT", []string{`OBR-18=ACC\X0B\1`}, Location{Segment: "OBR", Seq: 1, Field: 18}, "OBR-18: contains the control character U+000B at character 4"},
		{"FSCR", []string{`OBR-18=ACC\X1C0D\1`}, Location{Segment: "OBR", Seq: 1, Field: 18}, "OBR-18: contains the control character U+001C at character 4"},
		{"HUGE", []string{"OBR-18=" + strings.Repeat("A", 1<<20)}, Location{Segment: "OBR", Seq: 1, Field: 18}, "OBR-18: is 1048576 characters long; at most 64 are accepted"},
		{"PID", []string{`PID-3=MRN\X1B\1^^^HOSP^MR`}, Location{Segment: "PID", Seq: 1, Field: 3}, "PID-3: contains the control character U+001B at character 4"},
		{"PLACER", []string{"ORC-2=" + strings.Repeat("P", 65)}, Location{Segment: "ORC", Seq: 1, Field: 2}, "ORC-2: is 65 characters long; at most 64 are accepted"},
		{"UID", []string{"ZDS-1=1.2.840.10008.1.2.1.99999999999999999999999999999999999999999999999999"}, Location{Segment: "ZDS", Seq: 1, Field: 1},
			"ZDS-1: is 70 characters long; a DICOM UID has at most 64"},
		{"FACILITY", []string{"ORC-21=", `MSH-4=HOSP\X0A\X`}, Location{Segment: "MSH", Seq: 1, Field: 4}, "MSH-4: contains the control character U+000A at character 5"},
	}
	var body strings.Builder
	for _, c := range cases {
		body.WriteString(msg(c.id, c.edit...))
	}
	// Over the 2 MiB limit: a 3 MiB note.
	body.WriteString(msg("TOOBIG", "OBR-13="+strings.Repeat("x", 3<<20)))
	body.WriteString(msg("GOOD"))

	acks := mllpSendAll(t, s.Addr().String(), body.String())
	require.Len(t, acks, len(cases)+2)
	for i, c := range cases {
		a := acks[i]
		require.Equal(t, c.id, a.ControlID)
		require.Equal(t, AE, a.Code, c.id)
		require.Equal(t, []ErrorDetail{{Loc: c.loc, Code: CodeDataTypeError, Severity: SeverityError, Message: c.text}}, a.Errors, c.id)
	}
	big := acks[len(cases)]
	require.Equal(t, "TOOBIG", big.ControlID)
	require.Equal(t, AE, big.Code)
	require.Len(t, big.Errors, 1)
	require.Equal(t, CodeDataTypeError, big.Errors[0].Code)
	require.Contains(t, big.Errors[0].Message, "exceeds the maximum of 2097152 bytes")
	require.Equal(t, "GOOD", acks[len(cases)+1].ControlID)
	require.Equal(t, AA, acks[len(cases)+1].Code)

	require.Len(t, in.got, 1, "only the good order was stored")
	require.Equal(t, "ACC-778899", in.got[0].Accession.Value)
	require.NotContains(t, logs.String(), "Doe", "no patient name in the log")
}

// TestPeerOrderLifecycle: python3-hl7's mllp_send sends an order, its
// status updates and its cancellations to our intake; each ACK is what
// the lifecycle asks for (AA, AE naming the order, AA for a repeated
// cancellation).
func TestPeerOrderLifecycle(t *testing.T) {
	needPeer(t, true)
	in := &lifecycleIntake{}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, ServerOptions{Logger: logger,
		Handler: NewIntakeHandler(in, IntakeOptions{Logger: logger, Order: OrderOptions{AccessionSystem: "http://hosp.example/acsn"}})})

	msg := func(id string, edits ...string) string {
		return strings.ReplaceAll(edit(t, "orm_o01.hl7", append([]string{"MSH-10=" + id}, edits...)...).String(), "\r", "\n")
	}
	steps := []struct {
		id, edits string
		code      AckCode
		err       *ErrorDetail
	}{
		{"UNKNOWN-CA", "ORC-1=CA|OBR-18=ACC-NONE|ORC-3=FIL-NONE^RIS", AE, &ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18},
			Code: CodeUnknownKeyIdentifier, Severity: SeverityError, Message: "no such order: accession ACC-NONE, placer order PLC-1001, filler order FIL-NONE"}},
		{"NW", "", AA, nil},
		{"XO", "ORC-1=XO|ORC-7=^^^^^R", AA, nil},
		{"SC-CM", "ORC-1=SC|ORC-5=CM", AA, nil},
		{"CA", "ORC-1=CA|OBR-4=", AA, nil},
		{"CA-AGAIN", "ORC-1=CA|OBR-4=", AA, nil},
		{"XO-AFTER", "ORC-1=XO", AE, nil},
	}
	var body strings.Builder
	for _, st := range steps {
		var edits []string
		if st.edits != "" {
			edits = strings.Split(st.edits, "|")
		}
		body.WriteString(msg(st.id, edits...))
	}
	acks := mllpSendAll(t, s.Addr().String(), body.String())
	require.Len(t, acks, len(steps))
	for i, st := range steps {
		a := acks[i]
		require.Equal(t, st.id, a.ControlID)
		require.Equal(t, st.code, a.Code, "%s: %v", st.id, a.Errors)
		if st.err != nil {
			require.Equal(t, []ErrorDetail{*st.err}, a.Errors, st.id)
		}
	}
	last := acks[len(acks)-1].Errors
	require.Len(t, last, 1)
	require.Contains(t, last[0].Message, "order cancelled (HL7 ORC-1 CA)")
	require.Contains(t, last[0].Message, "accession ACC-778899, placer order PLC-1001, filler order FIL-2002")

	require.Len(t, in.got, 4, "NW, XO, SC, CA; the repeated CA changed nothing")
	require.Equal(t, radgate.PriorityUrgent, radgate.PriorityClass(in.got[0].Priority), "ORC-7 S")
	require.Equal(t, radgate.PriorityRoutine, radgate.PriorityClass(in.got[1].Priority), "XO to routine")
	require.Equal(t, radgate.ActionOrder, in.got[2].Action)
	require.True(t, in.got[2].StudyComplete, "ORC-5 CM")
	require.Equal(t, radgate.ActionCancel, in.got[3].Action)
	require.Equal(t, "HL7 ORC-1 CA", in.got[3].Reason)
	st, err := in.Status(t.Context(), radgate.OrderID("acsn|http://hosp.example/acsn|ACC-778899"))
	require.NoError(t, err)
	require.Equal(t, radgate.StateCancelled, st.State)
	require.NotContains(t, logs.String(), "Doe", "no patient name in the log")
}

// TestPeerVerdicts: python3-hl7's mllp_send sends radgate's intake, on the
// listener that takes orders, ORU^R01 verdicts from the RIS: coded
// (AA, recorded), an unknown code (AE naming OBX-5), an unknown result (AE
// 204 at OBR-18), free text (AA, unlabelled), a preliminary read and
// radgate's own ORU (AA, nothing recorded), and an order after them (AA).
func TestPeerVerdicts(t *testing.T) {
	needPeer(t, true)
	rec := newFakeRecorder()
	in := &fakeIntake{}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, ServerOptions{Logger: logger,
		Handler: NewIntakeHandler(in, IntakeOptions{Logger: logger, Verdicts: rec, Order: OrderOptions{AccessionSystem: "http://hosp.example/acsn"}})})

	msg := func(fixture, id string, edits ...string) string {
		return strings.ReplaceAll(edit(t, fixture, append([]string{"MSH-10=" + id}, edits...)...).String(), "\r", "\n")
	}
	own, err := ORU(sampleResult(), ORUOptions{Time: time.Unix(0, 0), ControlID: "OWN"})
	require.NoError(t, err)
	steps := []struct {
		body string
		id   string
		code AckCode
		err  string
	}{
		{msg("oru_r01_ris.hl7", "CODED"), "CODED", AA, ""},
		{msg("oru_r01_ris.hl7", "BADCODE", "OBX-5=60046008^Pleural effusion^SCT"), "BADCODE", AE, "OBX-5: code 60046008 (SCT) is not a known verdict code"},
		{msg("oru_r01_ris.hl7", "NORESULT", "OBR-18=ACC-NONE"), "NORESULT", AE, "no AI result for this verdict (accession ACC-NONE, filler order FIL-2002)"},
		{msg("oru_r01_ris.hl7", "TEXT", "OBX-2=TX", "OBX-5=Patchy opacity, infection not excluded"), "TEXT", AA, ""},
		{msg("oru_r01_ris.hl7", "PRELIM", "OBR-25=P"), "PRELIM", AA, "result status P"},
		{strings.ReplaceAll(own.String(), "\r", "\n"), "OWN", AA, "radgate's own ORU"},
		{msg("orm_o01.hl7", "ORDER"), "ORDER", AA, ""},
	}
	var body strings.Builder
	for _, st := range steps {
		body.WriteString(st.body)
	}
	acks := mllpSendAll(t, s.Addr().String(), body.String())
	require.Len(t, acks, len(steps))
	for i, st := range steps {
		a := acks[i]
		require.Equal(t, st.id, a.ControlID)
		require.Equal(t, st.code, a.Code, "%s: %v", st.id, a.Errors)
		if st.err != "" {
			require.NotEmpty(t, a.Errors, st.id)
			require.Contains(t, a.Errors[0].Message, st.err, st.id)
		}
	}
	require.Equal(t, Location{Segment: "OBR", Seq: 1, Field: 18}, acks[2].Errors[0].Loc)
	require.Equal(t, CodeUnknownKeyIdentifier, acks[2].Errors[0].Code)

	vs := rec.Verdicts()
	require.Len(t, vs, 2, "the coded verdict and the free text")
	require.Equal(t, radgate.FindingPresent, vs[0].Finding)
	require.Equal(t, radgate.FindingUnlabelled, vs[1].Finding)
	require.Equal(t, "Patchy opacity, infection not excluded\nRight lower lobe consolidation.\nNo effusion.", vs[1].Text)
	require.Len(t, in.got, 1, "the order")
	require.NotContains(t, logs.String(), "Doe", "no patient name in the log")
	require.NotContains(t, logs.String(), "opacity", "no report text in the log")
}
