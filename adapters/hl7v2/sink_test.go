package hl7v2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/report"
)

// receiver is testdata/oru_receiver.py (python3-hl7), running.
type receiver struct {
	addr  string
	port  string
	lines chan string
	stop  func()
}

// startReceiver starts the python3-hl7 receiver on port ("" for a free
// one); it is stopped (by its pid) at the end of the test, or by stop.
func startReceiver(t *testing.T, port string) *receiver {
	t.Helper()
	args := []string{"-u", filepath.Join("testdata", "oru_receiver.py")}
	if port != "" {
		args = append(args, port)
	}
	cmd := exec.Command(debianPython, args...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	r := &receiver{lines: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 16<<20), 16<<20)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		<-done
		_ = cmd.Wait()
	}
	t.Cleanup(r.stop)
	select {
	case l, ok := <-r.lines:
		require.True(t, ok, "oru_receiver.py exited: %s", stderr.String())
		p, ok := strings.CutPrefix(l, "LISTENING ")
		require.True(t, ok, "oru_receiver.py said %q", l)
		r.port, r.addr = p, "127.0.0.1:"+p
	case <-time.After(30 * time.Second):
		t.Fatalf("oru_receiver.py did not start: %s", stderr.String())
	}
	return r
}

// next returns the next message the receiver got, as it arrived.
func (r *receiver) next(t *testing.T) []byte {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		require.True(t, ok, "oru_receiver.py exited")
		b64, ok := strings.CutPrefix(l, "RECEIVED ")
		require.True(t, ok, "oru_receiver.py said %q", l)
		raw, err := base64.StdEncoding.DecodeString(b64)
		require.NoError(t, err)
		return raw
	case <-time.After(30 * time.Second):
		t.Fatal("oru_receiver.py received nothing")
		return nil
	}
}

func embeddedJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func hexID(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// fhirValues are what the FHIR bundle of r says: confidence, tier code,
// and the DiagnosticReport's conclusion.
func fhirValues(t *testing.T, r radgate.Result) (confidence, tier, conclusion string) {
	t.Helper()
	b, err := fhir.BuildResultBundle(fhir.ResultInput{
		ID: r.ID, Engine: fhir.Engine{ID: r.Engine.ID, Name: r.Engine.Name, Version: r.Engine.Version, Disclaimer: r.Engine.Disclaimer},
		Probability: r.Probability, Tier: r.Tier, ScoredAt: r.ScoredAt,
	})
	require.NoError(t, err)
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType  string `json:"resourceType"`
				ValueQuantity struct {
					Value json.Number `json:"value"`
				} `json:"valueQuantity"`
				Component []struct {
					ValueCodeableConcept struct {
						Coding []struct{ Code string } `json:"coding"`
					} `json:"valueCodeableConcept"`
				} `json:"component"`
				Conclusion string `json:"conclusion"`
			} `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(b, &bundle))
	for _, e := range bundle.Entry {
		switch e.Resource.ResourceType {
		case "Observation":
			confidence = e.Resource.ValueQuantity.Value.String()
			tier = e.Resource.Component[0].ValueCodeableConcept.Coding[0].Code
		case "DiagnosticReport":
			conclusion = e.Resource.Conclusion
		}
	}
	return confidence, tier, conclusion
}

// TestResultSinkOnPythonReceiver delivers results over MLLP to the real
// python3-hl7 receiver, with the outbox in an embedded NATS.
func TestResultSinkOnPythonReceiver(t *testing.T) {
	needPeer(t, false)
	ctx := t.Context()
	js := embeddedJS(t)
	peer := startReceiver(t, "")
	sink, err := NewResultSink(ResultSinkOptions{
		JS: js, Address: peer.addr,
		ORU: ORUOptions{ReceivingApplication: HD{Namespace: "RIS"}, ReceivingFacility: HD{Namespace: "HOSP"}},
		PDF: func(_ context.Context, r radgate.Result) ([]byte, error) {
			return report.PDF(report.Input{Result: r})
		},
		Client: ClientOptions{DialTimeout: 5 * time.Second, AckTimeout: 10 * time.Second, MaxAttempts: 1},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sink.Close() })
	outbox, err := OpenOutbox(ctx, js, false)
	require.Error(t, err, "no bucket before the first delivery")
	require.ErrorContains(t, err, BucketOutbox)

	// sinkResult is a marked result with its heatmap (the PDF shows it).
	heatmap := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range heatmap.Pix {
		heatmap.Pix[i] = byte(i * 7)
	}
	var hm bytes.Buffer
	require.NoError(t, png.Encode(&hm, heatmap))
	sinkResult := func(id string) radgate.Result {
		r := sampleResult()
		r.ID, r.HeatmapPNG = id, hm.Bytes()
		return r
	}

	r := sinkResult(hexID(t, 12))
	r.Order.Accession.Value = "ACC-" + r.ID[:8]

	// 1. Delivered: AA.
	rec, err := sink.Deliver(ctx, r)
	require.NoError(t, err)
	got := peer.next(t)
	m, err := Parse(got)
	require.NoError(t, err)
	ctrl := m.ControlID()
	require.Equal(t, "ORU^R01/"+ctrl, rec.Report)
	require.Equal(t, "ORU", m.Type().Code)

	conf, tier, conclusion := fhirValues(t, r)
	require.Equal(t, conf, m.Get("OBX(1)-5"), "the confidence, as the FHIR Observation has it")
	require.Equal(t, "%", m.Get("OBX(1)-6-1"))
	require.Equal(t, tier, m.Get("OBX(2)-5-1"), "the tier, as the FHIR Observation has it")
	require.True(t, strings.HasSuffix(conclusion, r.Engine.Disclaimer))
	require.Equal(t, r.Engine.Disclaimer, m.Get("OBX(4)-5"), "the disclaimer, word for word")
	require.Equal(t, r.Order.Accession.Value, m.Get("OBR-18"), "the accession number")
	require.Equal(t, r.StudyInstanceUID, m.Get("OBX(7)-5"), "the Study Instance UID")
	require.Equal(t, "ED", m.Get("OBX(8)-2"))
	pdf, err := base64.StdEncoding.DecodeString(m.Get("OBX(8)-5-5"))
	require.NoError(t, err)
	wantPDF, err := report.PDF(report.Input{Result: r})
	require.NoError(t, err)
	require.Equal(t, wantPDF, pdf, "the PDF report, byte for byte")

	outbox, err = OpenOutbox(ctx, js, false)
	require.NoError(t, err)
	stored, raw, err := outbox.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, string(got), string(raw), "the stored copy is what was sent")
	require.Equal(t, ctrl, stored.ControlID)
	require.Equal(t, AA, stored.AckCode)
	require.Equal(t, peer.addr, stored.Destination)
	require.Equal(t, r.Order.ID, stored.OrderID)
	require.Equal(t, 1, stored.Attempts)
	require.False(t, stored.SentAt.IsZero())
	require.False(t, stored.StoredAt.After(stored.SentAt), "stored before it was sent")

	// 2. The same result again: recognised, not sent again.
	again, err := sink.Deliver(ctx, r)
	require.NoError(t, err)
	require.Equal(t, rec, again, "same control id")
	other := sinkResult(hexID(t, 12))
	_, err = sink.Deliver(ctx, other)
	require.NoError(t, err)
	next, err := Parse(peer.next(t))
	require.NoError(t, err)
	require.NotEqual(t, ctrl, next.ControlID(), "the first result was not sent twice")
	require.Equal(t, other.ID, next.Get("OBR-20"))

	// 3. Resend: the stored message, unchanged.
	st, err := outbox.Resend(ctx, r.ID, peer.addr, ClientOptions{AckTimeout: 10 * time.Second, MaxAttempts: 1})
	require.NoError(t, err)
	require.Equal(t, AA, st.AckCode)
	require.Equal(t, string(got), string(peer.next(t)), "resent byte for byte, same MSH-10")
	stored, _, err = outbox.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, 2, stored.Attempts)

	// 4. AE: permanent, naming the ERR segment.
	ae := sinkResult("AE-" + hexID(t, 4)) // short enough to be MSH-10 itself
	_, err = sink.Deliver(ctx, ae)
	require.Error(t, err)
	require.False(t, radgate.IsTransient(err), "AE is permanent: %v", err)
	require.ErrorIs(t, err, ErrApplicationError)
	require.ErrorContains(t, err, "flagged AE by the receiver (207 Application internal error)")
	require.ErrorContains(t, err, ae.ID)
	require.Equal(t, ae.ID, mustParse(t, string(peer.next(t))).ControlID())
	stored, _, err = outbox.Get(ctx, ae.ID)
	require.NoError(t, err)
	require.Equal(t, AE, stored.AckCode)
	require.Contains(t, stored.AckError, "flagged AE by the receiver")

	// 5. The receiver is down: transient; the message stays stored and the
	// next delivery sends that very message (same MSH-10).
	down := sinkResult(hexID(t, 12))
	port := peer.port
	peer.stop()
	_, err = sink.Deliver(ctx, down)
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err), "a stopped receiver is transient: %v", err)
	stored, raw, err = outbox.Get(ctx, down.ID)
	require.NoError(t, err, "stored before the send")
	require.Empty(t, stored.AckCode)
	require.NotEmpty(t, stored.LastError)

	peer = startReceiver(t, port)
	_, err = sink.Deliver(ctx, down)
	require.NoError(t, err)
	require.Equal(t, string(raw), string(peer.next(t)), "the stored message, unchanged")
	stored, _, err = outbox.Get(ctx, down.ID)
	require.NoError(t, err)
	require.Equal(t, AA, stored.AckCode)
	require.Equal(t, 2, stored.Attempts)
	require.Empty(t, stored.LastError)

	list, err := outbox.List(ctx)
	require.NoError(t, err)
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ResultID)
	}
	require.ElementsMatch(t, []string{r.ID, other.ID, ae.ID, down.ID}, ids)
}

func TestNewResultSinkErrors(t *testing.T) {
	js := embeddedJS(t)
	for _, tc := range []struct {
		opts ResultSinkOptions
		want string
	}{
		{ResultSinkOptions{Address: "127.0.0.1:2575"}, "JS is required"},
		{ResultSinkOptions{JS: js}, "Address is required"},
		{ResultSinkOptions{JS: js, Address: "ris.example"}, `Address "ris.example"`},
	} {
		_, err := NewResultSink(tc.opts)
		require.ErrorContains(t, err, tc.want)
	}
	s, err := NewResultSink(ResultSinkOptions{JS: js, Address: "127.0.0.1:1"})
	require.NoError(t, err)
	_, err = s.Deliver(t.Context(), radgate.Result{})
	require.ErrorIs(t, err, ErrInvalidResult)
	bad := sampleResult()
	bad.Tier = "Extreme"
	_, err = s.Deliver(t.Context(), bad)
	require.ErrorIs(t, err, ErrInvalidResult, "an unreportable result is permanent")
	require.False(t, radgate.IsTransient(err))
	_, _, err = mustOutbox(t, js).Get(t.Context(), bad.ID)
	require.True(t, errors.Is(err, ErrNotStored), "nothing stored for it")
}

func mustOutbox(t *testing.T, js jetstream.JetStream) *Outbox {
	t.Helper()
	o, err := OpenOutbox(t.Context(), js, true)
	require.NoError(t, err)
	return o
}

// TestResultSinkRevisionsOnPeer: the first result, an amended revision and
// a retraction of one result are three messages, each stored, sent and
// acknowledged on its own; python3-hl7 reads OBR-25 and OBX-11 F, C and
// X / W from them. Each delivered again is not sent again.
func TestResultSinkRevisionsOnPeer(t *testing.T) {
	needPeer(t, false)
	ctx := t.Context()
	js := embeddedJS(t)
	peer := startPyPeer(t)
	pdf := []byte("%PDF-1.4\n%%EOF\n")
	sink, err := NewResultSink(ResultSinkOptions{
		JS: js, Address: peer.addr,
		ORU:    ORUOptions{ReceivingApplication: HD{Namespace: "RIS"}},
		PDF:    func(context.Context, radgate.Result) ([]byte, error) { return pdf, nil },
		Client: ClientOptions{DialTimeout: 5 * time.Second, AckTimeout: 10 * time.Second, MaxAttempts: 1},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sink.Close() })

	statuses := func(r received) []string {
		var out []string
		for _, o := range r.OBX {
			out = append(out, o.Status)
		}
		return out
	}
	all := func(s string) []string { return []string{s, s, s, s, s, s, s, s} } // 7 OBX and the PDF

	final := sampleResult()
	final.ID = hexID(t, 12)
	final.Revision = 1
	amended := final
	amended.Revision, amended.Status = 2, radgate.ResultAmended
	amended.Probability, amended.Tier = 0.42, "Mid"
	amended.Images = []radgate.ImageNote{
		{SeriesInstanceUID: "1.2.3.4.1", SOPInstanceUID: "1.2.3.4.1.1", View: "PA", Scored: true},
		{SeriesInstanceUID: "1.2.3.4.1", SOPInstanceUID: "1.2.3.4.1.2", View: "LL", Reason: "lateral view"},
	}
	retracted := amended
	retracted.Status, retracted.RetractReason = radgate.ResultRetracted, "order cancelled: HL7 ORC-1 CA"

	var ctrls []string
	for _, c := range []struct {
		r        radgate.Result
		obr25    string
		obx      []string
		nte      []string
		key      string
		conf     string
		ctrlTail string
	}{
		{final, "F", all("F"), []string{}, final.ID, "87.3", ""},
		{amended, "C", all("C"), []string{"AI result revision 2: it replaces revision 1.", "AI images: 1 of 2 images scored.",
			"Not scored: 1.2.3.4.1.2 (view LL): lateral view"}, final.ID + "-r2", "42.0", "-r2"},
		{retracted, "X", all("W"), []string{"AI result retracted (revision 2): order cancelled: HL7 ORC-1 CA", "AI images: 1 of 2 images scored.",
			"Not scored: 1.2.3.4.1.2 (view LL): lateral view"}, final.ID + "-r2x", "42.0", "-r2x"},
	} {
		rec, err := sink.Deliver(ctx, c.r)
		require.NoError(t, err, c.key)
		got := peer.next(t)
		require.Equal(t, "ORU^R01^ORU_R01", got.Type)
		require.Equal(t, "ORU^R01/"+got.ControlID, rec.Report)
		require.True(t, strings.HasSuffix(got.ControlID, c.ctrlTail), "%s: MSH-10 %s", c.key, got.ControlID)
		require.LessOrEqual(t, len(got.ControlID), 20)
		require.Equal(t, c.obr25, got.OBR["25"], c.key)
		require.Equal(t, c.obx, statuses(got), c.key)
		require.Equal(t, c.nte, got.NTE, c.key)
		require.Equal(t, c.conf, got.OBX[0].Value, c.key)
		require.Equal(t, final.ID, got.OBR["20"], "the result id stays the same")
		ctrls = append(ctrls, got.ControlID)

		stored, _, err := mustOutbox(t, js).Get(ctx, c.key)
		require.NoError(t, err, c.key)
		require.Equal(t, AA, stored.AckCode, "the peer acknowledged AA")
		require.Equal(t, got.ControlID, stored.ControlID)
		require.Equal(t, c.r.EffectiveRevision(), stored.Revision)
		require.Equal(t, resultStatus(c.r), stored.Status)
		require.Equal(t, c.key, stored.Key())
	}
	require.Len(t, map[string]bool{ctrls[0]: true, ctrls[1]: true, ctrls[2]: true}, 3, "three control ids: %v", ctrls)

	// Each delivered again: recognised, nothing sent.
	for _, r := range []radgate.Result{final, amended, retracted} {
		rec, err := sink.Deliver(ctx, r)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(rec.Report, "ORU^R01/"))
	}
	marker := sampleResult()
	marker.ID = hexID(t, 12)
	_, err = sink.Deliver(ctx, marker)
	require.NoError(t, err)
	require.Equal(t, marker.ID, peer.next(t).OBR["20"], "the three were not sent again")

	list, err := mustOutbox(t, js).List(ctx)
	require.NoError(t, err)
	var keys []string
	for _, m := range list {
		keys = append(keys, m.Key())
	}
	require.ElementsMatch(t, []string{final.ID, final.ID + "-r2", final.ID + "-r2x", marker.ID}, keys)

	// Resend by key: the retraction, unchanged.
	st, err := mustOutbox(t, js).Resend(ctx, final.ID+"-r2x", peer.addr, ClientOptions{AckTimeout: 10 * time.Second, MaxAttempts: 1})
	require.NoError(t, err)
	require.Equal(t, AA, st.AckCode)
	again := peer.next(t)
	require.Equal(t, ctrls[2], again.ControlID)
	require.Equal(t, "X", again.OBR["25"])
	require.Equal(t, 2, st.Attempts)
}
