package pipeline

import (
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// waitDeadLetters waits until stage (all stages when empty) holds n dead
// letters: a stage records the order's state before it writes the DLQ copy.
func waitDeadLetters(t *testing.T, d *broker.DLQ, stage string, n int) []broker.DeadLetter {
	t.Helper()
	var got []broker.DeadLetter
	var err error
	require.Eventually(t, func() bool {
		got, err = d.List(t.Context(), stage)
		return err == nil && len(got) == n
	}, 10*time.Second, 20*time.Millisecond, "want %d dead letters in %q", n, stage)
	require.NoError(t, err)
	return got
}

func (r *recorder) heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failFor = 0
}

// A result the destination refused for good is dead-lettered; once the
// cause is fixed, replaying it delivers it and the order ends delivered.
func TestDLQListShowAndReplayARefusedResult(t *testing.T) {
	h := newHarness(t, nil)
	h.sink.failFor = 1 << 30
	h.sink.failErr = errors.New("HTTP 400: DiagnosticReport.code is required")
	h.arch.add("E1", "5.1", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("E1", "e1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateFailed)

	d := broker.NewDLQ(h.topo.JS)
	list := waitDeadLetters(t, d, "", 1)
	dl := list[0]
	require.Equal(t, "deliver-fhir", dl.Stage)
	require.Equal(t, st.ID, dl.OrderID)
	require.Equal(t, "delivering to fhir: HTTP 400: DiagnosticReport.code is required", dl.Reason)
	require.Equal(t, broker.ResultSubject("fhir", radgate.PriorityRoutine, broker.NoFacility, "eng-a"), dl.Subject)
	require.WithinDuration(t, time.Now(), dl.Time, time.Minute)
	require.Empty(t, dl.Data, "list reads headers only")
	require.Empty(t, dl.ReplayOf)
	require.Equal(t, 1, dl.Attempts, "refused for good on the first delivery")

	shown, err := d.Get(t.Context(), dl.Seq)
	require.NoError(t, err)
	var res radgate.Result
	require.NoError(t, json.Unmarshal(shown.Data, &res))
	resultID := ResultID(st.ID, (&scorer{}).Info())
	require.Equal(t, resultID, res.ID)
	require.Equal(t, radgate.OutcomeScored, res.Outcome)
	require.Equal(t, st.ID, shown.Header.Get(broker.HeaderOrderID))

	// Why a replay needs an id of its own: the original one is still in
	// the duplicate window, and JetStream would drop the message.
	again := nats.NewMsg(dl.Subject)
	again.Data = shown.Data
	ack, err := h.topo.JS.PublishMsg(t.Context(), again, jetstream.WithMsgID("result."+resultID+".r1.fhir"))
	require.NoError(t, err)
	require.True(t, ack.Duplicate)

	h.sink.heal()
	rep, err := d.Replay(t.Context(), dl.Seq, false)
	require.NoError(t, err)
	require.Equal(t, broker.StreamResults, rep.Stream)
	require.False(t, rep.Duplicate)
	require.True(t, rep.Removed)

	got := h.waitState(t, st.ID, radgate.StateDelivered)
	// Re-opened by the replay (failed → scored, replayed), then delivered;
	// the refusal's reason is gone from the engine and its destination.
	h.invalidTransitions(t, st.ID)
	hist, err := h.p.History(t.Context(), st.ID)
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(hist, func(e radgate.HistoryEntry) bool {
		return e.Engine == "" && e.From == radgate.StateFailed && e.To == radgate.StateScored && e.Event == radgate.EvReplayed
	}), "the order was re-opened by the replay: %v", hist)
	require.Empty(t, got.Engines["eng-a"].Reason)
	require.Empty(t, got.Engines["eng-a"].Deliveries["fhir"].Reason)
	require.Equal(t, "DiagnosticReport/"+resultID, got.Engines["eng-a"].Report)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
	require.Len(t, h.sink.results(), 1)

	left, err := d.List(t.Context(), "")
	require.NoError(t, err)
	require.Empty(t, left, "a replayed dead letter is removed")
	_, err = d.Get(t.Context(), dl.Seq)
	require.ErrorIs(t, err, broker.ErrDeadLetterNotFound)
	_, err = d.Replay(t.Context(), dl.Seq, false)
	require.ErrorIs(t, err, broker.ErrDeadLetterNotFound)
}

// --stage keeps one stage's dead letters; a replayed job that fails again
// is dead-lettered anew and names the dead letter it was replayed from.
func TestDLQStageFilterAndAJobReplayedIntoTheSameFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.sink.failFor = 1 // the first delivery is refused for good
	h.sink.failErr = errors.New("HTTP 422: unprocessable")
	h.arch.add("F1", "6.1", "CR", "CHEST", "sop-1")
	first, err := h.p.Accept(t.Context(), sr("F1", "f1"))
	require.NoError(t, err)
	h.waitState(t, first.ID, radgate.StateFailed)

	// A job for an engine this process has not loaded (another radgate of
	// the cluster routed it, say) is terminated by the inference stage.
	h.arch.add("F2", "6.2", "CR", "CHEST", "sop-2")
	second, err := h.p.Accept(t.Context(), sr("F2", "f2"))
	require.NoError(t, err)
	h.waitState(t, second.ID, radgate.StateDelivered)
	job := nats.NewMsg(broker.JobSubject(radgate.PriorityRoutine, broker.NoFacility, "eng-x"))
	job.Data, _ = json.Marshal(Job{OrderID: second.ID, Engine: "eng-x", StudyInstanceUID: "6.2"})
	job.Header.Set(broker.HeaderOrderID, second.ID)
	_, err = h.topo.JS.PublishMsg(t.Context(), job)
	require.NoError(t, err)

	d := broker.NewDLQ(h.topo.JS)
	all := waitDeadLetters(t, d, "", 2)
	require.Equal(t, []string{"deliver-fhir", "inference"}, []string{all[0].Stage, all[1].Stage}, "oldest first")
	inf, err := d.List(t.Context(), "inference")
	require.NoError(t, err)
	require.Len(t, inf, 1)
	require.Equal(t, `engine "eng-x" is not loaded in this process`, inf[0].Reason)
	require.Equal(t, second.ID, inf[0].OrderID)
	del, err := d.List(t.Context(), "deliver-fhir")
	require.NoError(t, err)
	require.Len(t, del, 1)
	require.Equal(t, first.ID, del[0].OrderID)
	none, err := d.List(t.Context(), "router")
	require.NoError(t, err)
	require.Empty(t, none)

	// Replayed (and kept) while the engine is still missing: the job really
	// runs again, and fails again.
	rep, err := d.Replay(t.Context(), inf[0].Seq, true)
	require.NoError(t, err)
	require.Equal(t, broker.StreamJobs, rep.Stream)
	require.False(t, rep.Removed)
	inf = waitDeadLetters(t, d, "inference", 2)
	require.Equal(t, strconv.FormatUint(inf[0].Seq, 10), inf[1].ReplayOf)

	// The same dead letter again within the duplicate window is stored once.
	rep, err = d.Replay(t.Context(), inf[0].Seq, false)
	require.NoError(t, err)
	require.True(t, rep.Duplicate)
	require.True(t, rep.Removed)
	time.Sleep(300 * time.Millisecond) // no third failure surfaces
	inf, err = d.List(t.Context(), "inference")
	require.NoError(t, err)
	require.Len(t, inf, 1)
	require.NotEmpty(t, inf[0].ReplayOf)
	got, err := h.p.Status(t.Context(), second.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateDelivered, got.State, "the order's own engine is untouched")
}

// An order that failed (its study never came) is routed again when its
// event is replayed after the cause is fixed, even within the duplicate
// window of the failed result it already produced.
func TestReplayedOrderEventReopensAFailedOrder(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.StudyWaitWindow = 400 * time.Millisecond })
	st, err := h.p.Accept(t.Context(), sr("G1", "g1"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "study not found in the PACS")
	require.Eventually(t, func() bool { return len(h.sink.results()) == 1 }, 5*time.Second, 20*time.Millisecond)

	// Dead-letter the order's event as the router does when it gives up.
	cons, err := h.topo.JS.OrderedConsumer(t.Context(), broker.StreamOrders, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	ev, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.NoError(t, h.p.deadLetter(t.Context(), "router", ev, "internal error in stage router: simulated", nil))
	d := broker.NewDLQ(h.topo.JS)
	dl := waitDeadLetters(t, d, "router", 1)[0]
	require.Equal(t, broker.OrderSubject(radgate.PriorityRoutine, broker.NoFacility, "fhir"), dl.Subject)

	h.arch.add("G1", "7.1", "CR", "CHEST", "sop-1") // the cause, fixed
	_, err = d.Replay(t.Context(), dl.Seq, false)
	require.NoError(t, err)

	got := h.waitState(t, st.ID, radgate.StateDelivered)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
	require.Equal(t, strconv.FormatUint(dl.Seq, 10), got.ReplayOf)
	res := h.sink.results()[ResultID(st.ID, (&scorer{}).Info())]
	require.Equal(t, radgate.OutcomeScored, res.Outcome, "the same result id, delivered again with the score")
}

// The reset applies once per replay: a redelivery of the same replayed
// message leaves what the replay's own run finished alone.
func TestReplayReopensOncePerReplay(t *testing.T) {
	h := newIdleHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("H1", "h1"))
	require.NoError(t, err)
	fail := func() {
		_, err := h.p.store.update(t.Context(), st.ID, false, func(o *radgate.OrderStatus) error {
			setEngine(o, "eng-a", radgate.EngineProgress{State: radgate.StateFailed, Reason: "study not found", Report: "Task/1"})
			return nil
		})
		require.NoError(t, err)
	}
	replayed := func(v any, replay string) *testMsg {
		m := fakeMsg(t, v)
		m.hdr.Set(broker.HeaderOrderID, st.ID)
		if replay != "" {
			m.hdr.Set(broker.HeaderReplayOf, replay)
		}
		return m
	}
	status := func() radgate.OrderStatus {
		got, err := h.p.Status(t.Context(), st.ID)
		require.NoError(t, err)
		return got
	}

	fail()
	require.Equal(t, ack, h.p.route(t.Context(), replayed(radgate.OrderEvent{}, "")).kind, "no replay: a failed order stays failed")
	require.Equal(t, radgate.StateFailed, status().State)

	v := h.p.route(t.Context(), replayed(radgate.OrderEvent{}, "7"))
	require.Equal(t, ack, v.kind, "re-opened; waiting for the study holds no consumer slot")
	got := status()
	require.Equal(t, radgate.StateReceived, got.State)
	require.Equal(t, "7", got.ReplayOf)
	require.Empty(t, got.Engines["eng-a"].Report)

	fail() // the replay's run ended failed again
	require.Equal(t, ack, h.p.route(t.Context(), replayed(radgate.OrderEvent{}, "7")).kind)
	require.Equal(t, radgate.StateFailed, status().State, "a redelivered replay does not re-open twice")

	// A replayed job re-opens its engine and is scored; a plain one is not.
	h.arch.add("H1", "8.1", "CR", "CHEST", "sop-1")
	job := Job{OrderID: st.ID, Engine: "eng-a", StudyInstanceUID: "8.1",
		Instances: []JobInstance{{SeriesInstanceUID: "8.1.1", SOPInstanceUID: "sop-1", Modality: "CR", BodyPart: "CHEST"}}}
	require.Equal(t, ack, h.p.score(t.Context(), replayed(job, "")).kind)
	require.Equal(t, radgate.StateFailed, status().State)
	require.Equal(t, ack, h.p.score(t.Context(), replayed(job, "9")).kind)
	got = status()
	require.Equal(t, radgate.StateScored, got.State)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
	require.Equal(t, "9", got.ReplayOf)

	// Delivered engines are never re-opened.
	_, err = h.p.store.update(t.Context(), st.ID, false, func(o *radgate.OrderStatus) error {
		setEngine(o, "eng-a", radgate.EngineProgress{State: radgate.StateDelivered, Report: "DiagnosticReport/1"})
		o.Study = &radgate.StudyObservation{Instances: 1, Scored: 1} // the images it was scored on
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, ack, h.p.route(t.Context(), replayed(radgate.OrderEvent{}, "10")).kind)
	require.Equal(t, radgate.StateDelivered, status().State)
}

func TestDLQErrors(t *testing.T) {
	h := newIdleHarness(t, nil)
	d := broker.NewDLQ(h.topo.JS)
	list, err := d.List(t.Context(), "")
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = d.Get(t.Context(), 999)
	require.ErrorIs(t, err, broker.ErrDeadLetterNotFound)
	require.ErrorContains(t, err, "no 999 in RADGATE_DLQ")
	_, err = d.Replay(t.Context(), 999, false)
	require.ErrorIs(t, err, broker.ErrDeadLetterNotFound)

	// A dead letter that names no stage subject has nowhere to go back to.
	bad := nats.NewMsg(broker.SubjectDLQ + "router")
	bad.Header.Set(broker.HeaderSubject, broker.SubjectDLQ+"router")
	ack, err := h.topo.JS.PublishMsg(t.Context(), bad)
	require.NoError(t, err)
	_, err = d.Replay(t.Context(), ack.Sequence, false)
	require.ErrorIs(t, err, broker.ErrNotReplayable)
	_, err = d.Get(t.Context(), ack.Sequence)
	require.NoError(t, err, "kept")

	// A server radgate never ran against has no DLQ stream.
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = broker.NewDLQ(js).List(t.Context(), "")
	require.ErrorIs(t, err, broker.ErrNoDLQ)
}

func TestEmbeddedServerAddress(t *testing.T) {
	a, err := broker.StartEmbeddedOn(t.TempDir(), "127.0.0.1", 0)
	require.NoError(t, err, "port 0 is a free port, not nats-server's 4222")
	t.Cleanup(a.Shutdown)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(a.ClientURL(), "nats://"))
	require.NoError(t, err)

	start := time.Now()
	p, _ := strconv.Atoi(port)
	_, err = broker.StartEmbeddedOn(t.TempDir(), "127.0.0.1", p)
	require.ErrorContains(t, err, "starting the embedded NATS server on 127.0.0.1:"+port)
	require.ErrorContains(t, err, "address already in use")
	require.Less(t, time.Since(start), 5*time.Second, "a taken port fails at once")

	wild, err := broker.StartEmbeddedOn(t.TempDir(), "0.0.0.0", -1)
	require.NoError(t, err)
	t.Cleanup(wild.Shutdown)
	require.True(t, strings.HasPrefix(wild.ClientURL(), "nats://127.0.0.1:"), wild.ClientURL())
	nc, err := broker.Connect(wild.ClientURL(), "", nil)
	require.NoError(t, err)
	nc.Close()
}
