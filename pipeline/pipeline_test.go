package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// archive is an in-memory StudySource whose studies can appear late and
// whose failures can be scripted.
type archive struct {
	mu        sync.Mutex
	studies   map[string]*radgate.Study // by study UID
	byAcsn    map[string]string
	findErr   error
	retrieves int
}

func newArchive() *archive {
	return &archive{studies: map[string]*radgate.Study{}, byAcsn: map[string]string{}}
}

func (a *archive) add(acsn, uid, modality, part string, sops ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &radgate.Study{StudyInstanceUID: uid, AccessionNumber: acsn}
	ser := radgate.Series{SeriesInstanceUID: uid + ".1", Modality: modality, BodyPartExamined: part}
	for _, sop := range sops {
		ser.Instances = append(ser.Instances, radgate.Instance{SOPInstanceUID: sop})
	}
	s.Series = append(s.Series, ser)
	a.studies[uid] = s
	a.byAcsn[acsn] = uid
}

func (a *archive) FindStudy(_ context.Context, q radgate.StudyQuery) (*radgate.Study, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.findErr != nil {
		return nil, a.findErr
	}
	uid := q.StudyInstanceUID
	if uid == "" {
		uid = a.byAcsn[q.AccessionNumber]
	}
	s, ok := a.studies[uid]
	if !ok {
		return nil, fmt.Errorf("%w: %+v", radgate.ErrStudyNotFound, q)
	}
	c := *s // a copy: the test goes on adding images
	c.Series = nil
	for _, se := range s.Series {
		se.Instances = append([]radgate.Instance(nil), se.Instances...)
		c.Series = append(c.Series, se)
	}
	return &c, nil
}

func (a *archive) RetrieveInstance(_ context.Context, _, _, sop string) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.retrieves++
	return []byte(sop), nil
}

// scorer is an Engine whose probability is looked up by SOP Instance UID.
type scorer struct {
	probs map[string]float64
	views []string
}

func (s *scorer) Info() radgate.EngineInfo {
	return radgate.EngineInfo{ID: "eng-a", Name: "Engine A", Version: "1", Disclaimer: "Not a diagnosis."}
}
func (s *scorer) Modalities() []string { return []string{"CR", "DX"} }
func (s *scorer) BodyParts() []string  { return []string{"CHEST"} }
func (s *scorer) Views() []string      { return s.views }
func (s *scorer) Score(_ context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	out := make([]radgate.ImageScore, len(files))
	for i, f := range files {
		p, ok := s.probs[string(f)]
		if !ok {
			out[i].Err = errors.New("transfer syntax 1.2.840.10008.1.2.4.90 (JPEG 2000) is not decoded")
			continue
		}
		out[i] = radgate.ImageScore{SOPInstanceUID: string(f), Probability: p, Tier: "High", Marked: p >= 0.5,
			Render: fakeDraw(p >= 0.5, []byte("\x89PNG fake"), 4, 4)}
	}
	return out, nil
}

// recorder is a Sink that records deliveries, failing as scripted.
type recorder struct {
	mu      sync.Mutex
	got     map[string]radgate.Result // by result id: a Sink must be idempotent
	times   map[string]int            // successful deliveries by result id
	calls   int
	failFor int   // fail the first failFor calls with failErr
	failErr error // nil: transient 503
}

func (r *recorder) Deliver(_ context.Context, res radgate.Result) (radgate.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFor {
		if r.failErr != nil {
			return radgate.Receipt{}, r.failErr
		}
		return radgate.Receipt{}, radgate.Transient(errors.New("HTTP 503"))
	}
	if r.got == nil {
		r.got = map[string]radgate.Result{}
	}
	r.got[res.ID] = res
	if r.times == nil {
		r.times = map[string]int{}
	}
	r.times[res.ID]++
	return radgate.Receipt{Report: "DiagnosticReport/" + res.ID}, nil
}

func (r *recorder) results() map[string]radgate.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]radgate.Result{}
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

type harness struct {
	p     *Pipeline
	arch  *archive
	sink  *recorder
	topo  *broker.Topology
	usage *billing.UsageMeter
}

func newHarness(t *testing.T, mutate func(*Options)) *harness {
	t.Helper()
	h := newIdleHarness(t, mutate)
	require.NoError(t, h.p.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, h.p.Stop(ctx))
	})
	return h
}

// newIdleHarness builds the pipeline on a real JetStream without starting
// its stages, so a test can drive one handler step by step.
func newIdleHarness(t testing.TB, mutate func(*Options)) *harness {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	usage, err := billing.EnsureUsageMeter(t.Context(), topo.JS)
	require.NoError(t, err)
	h := &harness{arch: newArchive(), sink: &recorder{}, topo: topo, usage: usage}
	opts := Options{
		Topology: topo, Usage: usage, Source: h.arch,
		Engines:         []radgate.Engine{&scorer{probs: map[string]float64{"sop-1": 0.91, "sop-2": 0.12, "sop-3": 0.40}}},
		Sinks:           map[string]radgate.Sink{"fhir": h.sink},
		Registerer:      prometheus.NewRegistry(),
		StudyWaitWindow: 2 * time.Second, DeliveryWindow: 5 * time.Second,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		StableAfter: 100 * time.Millisecond, PollMin: 50 * time.Millisecond, PollMax: 200 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&opts)
	}
	h.p, err = NewPipeline(opts)
	require.NoError(t, err)
	return h
}

func (h *harness) waitState(t *testing.T, id string, want radgate.OrderState) radgate.OrderStatus {
	t.Helper()
	var st radgate.OrderStatus
	ok := assert.Eventually(t, func() bool {
		var err error
		st, err = h.p.Status(t.Context(), id)
		return err == nil && st.State == want
	}, 10*time.Second, 20*time.Millisecond, "order %s never reached %s", id, want)
	if !ok {
		hist, _ := h.p.History(context.Background(), id)
		for _, e := range hist {
			t.Log(e)
		}
		t.FailNow()
	}
	return st
}

func sr(acsn, id string) radgate.OrderEvent {
	return radgate.OrderEvent{Source: "fhir", ResourceType: "ServiceRequest",
		Accession:      &radgate.Identifier{System: "urn:acsn", Value: acsn},
		ServiceRequest: &radgate.Reference{Reference: "ServiceRequest/" + id},
		Patient:        &radgate.Reference{Reference: "Patient/p1"},
		ProcedureCodes: []radgate.Coding{{System: "http://loinc.org", Code: "36643-5", Display: "XR Chest 2 Views"}}}
}

func TestOrderToResult(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("A1", "1.2.3", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("A1", "sr1"))
	require.NoError(t, err)
	require.Equal(t, radgate.StateReceived, st.State)
	require.Equal(t, radgate.OrderID("acsn|urn:acsn|A1"), st.ID)

	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.Equal(t, "DiagnosticReport/"+ResultID(st.ID, (&scorer{}).Info()), st.Engines["eng-a"].Report)
	require.InDelta(t, 0.91, *st.Engines["eng-a"].Probability, 1e-9)

	got := h.sink.results()
	require.Len(t, got, 1)
	for _, r := range got {
		require.Equal(t, radgate.OutcomeScored, r.Outcome)
		require.True(t, r.Marked)
		require.Equal(t, []byte("\x89PNG fake"), r.HeatmapPNG, "heatmap travels through the object store")
		require.Equal(t, "sop-1", r.SOPInstanceUID)
		require.Equal(t, "ServiceRequest/sr1", r.Order.ServiceRequest.Reference)
	}
}

func TestServiceRequestAndImagingStudyAreOneOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("A2", "1.2.4", "DX", "CHEST", "sop-2", "sop-1")
	a, err := h.p.Accept(t.Context(), sr("A2", "sr2"))
	require.NoError(t, err)
	// The ImagingStudy names no accession number; it joins through basedOn.
	b, err := h.p.Accept(t.Context(), radgate.OrderEvent{Source: "fhir", ResourceType: "ImagingStudy",
		StudyInstanceUID: "urn:oid:1.2.4", ImagingStudy: &radgate.Reference{Reference: "ImagingStudy/is2"},
		BasedOn: []radgate.Reference{{Reference: "ServiceRequest/sr2"}}})
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID)
	// The same ServiceRequest posted again changes nothing.
	_, err = h.p.Accept(t.Context(), sr("A2", "sr2"))
	require.NoError(t, err)

	st := h.waitState(t, a.ID, radgate.StateDelivered)
	require.Equal(t, "1.2.4", st.StudyInstanceUID)
	require.Equal(t, "ImagingStudy/is2", st.ImagingStudy.Reference)
	time.Sleep(300 * time.Millisecond) // let any duplicate work surface
	got := h.sink.results()
	require.Len(t, got, 1, "one result per order × engine")
	for _, r := range got {
		require.Equal(t, "sop-1", r.SOPInstanceUID, "the most confident image of the study is reported")
		require.InDelta(t, 0.91, r.Probability, 1e-9)
	}
}

func TestStudyArrivingLateIsWaitedFor(t *testing.T) {
	h := newHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("A3", "sr3"))
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	h.arch.add("A3", "1.2.5", "CR", "CHEST", "sop-3")
	st = h.waitState(t, st.ID, radgate.StateDelivered)
	require.InDelta(t, 0.40, *st.Engines["eng-a"].Probability, 1e-9)
}

func TestStudyNeverArrivingFailsVisibly(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.StudyWaitWindow = 400 * time.Millisecond })
	st, err := h.p.Accept(t.Context(), sr("A4", "sr4"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "study not found in the PACS within 400ms")
	require.Eventually(t, func() bool { return len(h.sink.results()) == 1 }, 5*time.Second, 20*time.Millisecond,
		"the failure is delivered as a result, not only recorded")
	for _, r := range h.sink.results() {
		require.Equal(t, radgate.OutcomeFailed, r.Outcome)
	}
}

func TestNonChestStudyIsAnsweredNotScored(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("A5", "1.2.6", "CR", "HIP", "sop-1")
	h.arch.add("A6", "1.2.7", "CT", "CHEST", "sop-1")
	for _, acsn := range []string{"A5", "A6"} {
		st, err := h.p.Accept(t.Context(), sr(acsn, "sr-"+acsn))
		require.NoError(t, err)
		st = h.waitState(t, st.ID, radgate.StateRejected)
		require.Contains(t, st.Reason, "not scored: engine eng-a takes CR/DX images of CHEST")
	}
	require.Contains(t, h.waitState(t, radgate.OrderID("acsn|urn:acsn|A5"), radgate.StateRejected).Reason, "CR (body part HIP)")
	require.Contains(t, h.waitState(t, radgate.OrderID("acsn|urn:acsn|A6"), radgate.StateRejected).Reason, "CT (body part CHEST)")
	require.Zero(t, h.arch.retrieves, "nothing is fetched for a study no engine may score")
	require.Len(t, h.sink.results(), 2)
}

func TestMissingBodyPartFallsBackToProcedureCode(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("A7", "1.2.8", "DX", "", "sop-2")
	st, err := h.p.Accept(t.Context(), sr("A7", "sr7"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)

	ev := sr("A8", "sr8")
	ev.ProcedureCodes = []radgate.Coding{{System: "http://loinc.org", Code: "37637-6", Display: "XR Knee"}}
	h.arch.add("A8", "1.2.9", "DX", "", "sop-2")
	st, err = h.p.Accept(t.Context(), ev)
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateRejected)
	require.Contains(t, st.Reason, "body part unknown: no Body Part Examined and no recognised procedure code")
}

func TestUndecodableImageFailsTheOrderWithTheReason(t *testing.T) {
	h := newHarness(t, nil)
	h.arch.add("A9", "1.2.10", "CR", "CHEST", "jp2k-only")
	st, err := h.p.Accept(t.Context(), sr("A9", "sr9"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "JPEG 2000")
}

func TestTransientDeliveryFailuresAreRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.sink.failFor = 3
	h.arch.add("B1", "2.1", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("B1", "b1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	require.Len(t, h.sink.results(), 1)
	require.Equal(t, 4, h.sink.calls)
}

func TestPermanentDeliveryFailureIsDeadLettered(t *testing.T) {
	h := newHarness(t, nil)
	h.sink.failFor = 1000
	h.sink.failErr = errors.New("HTTP 400: DiagnosticReport.code is required")
	h.arch.add("B2", "2.2", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("B2", "b2"))
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "delivering to fhir: HTTP 400")

	cons, err := h.topo.JS.OrderedConsumer(t.Context(), broker.StreamDLQ, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	require.Equal(t, st.ID, msg.Headers().Get(broker.HeaderOrderID))
	require.Contains(t, msg.Headers().Get(broker.HeaderReason), "HTTP 400")
	require.Equal(t, broker.ResultSubject("fhir", radgate.PriorityRoutine, broker.NoFacility, "eng-a"), msg.Headers().Get(broker.HeaderSubject))
}

func TestInvalidOrderIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	_, err := h.p.Accept(t.Context(), radgate.OrderEvent{Source: "fhir", ResourceType: "ServiceRequest"})
	require.ErrorIs(t, err, radgate.ErrInvalidOrder)
	_, err = h.p.Status(t.Context(), "not-an-id")
	require.ErrorIs(t, err, radgate.ErrOrderNotFound)
	_, err = h.p.Status(t.Context(), "0123456789abcdef01234567")
	require.ErrorIs(t, err, radgate.ErrOrderNotFound)
}

func TestRecompute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		engines map[string]radgate.EngineProgress
		want    radgate.OrderState
		reason  string
	}{
		{"one running", map[string]radgate.EngineProgress{"a": {State: radgate.StateDelivered}, "b": {State: radgate.StateRouted}}, radgate.StateRouted, ""},
		{"all delivered", map[string]radgate.EngineProgress{"a": {State: radgate.StateDelivered}, "b": {State: radgate.StateDelivered}}, radgate.StateDelivered, ""},
		{"one failed", map[string]radgate.EngineProgress{"a": {State: radgate.StateDelivered}, "b": {State: radgate.StateFailed, Reason: "x"}}, radgate.StateFailed, "b: x"},
		{"rejected", map[string]radgate.EngineProgress{"a": {State: radgate.StateRejected, Reason: "hip"}}, radgate.StateRejected, "a: hip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := radgate.OrderStatus{Engines: tc.engines}
			recompute(&st)
			require.Equal(t, tc.want, st.State)
			require.Equal(t, tc.reason, st.Reason)
		})
	}
}

// A delivery that finishes before the publisher records "scored" must not be
// overwritten: the order stays terminal.
func TestTerminalStateIsNeverRegressed(t *testing.T) {
	h := newIdleHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("C1", "c1"))
	require.NoError(t, err)
	_, err = h.p.store.update(t.Context(), st.ID, false, func(o *radgate.OrderStatus) error {
		setEngine(o, "eng-a", radgate.EngineProgress{State: radgate.StateRejected, Reason: "hip", Report: "Task/1"})
		return nil
	})
	require.NoError(t, err)
	v := h.p.publishResult(t.Context(), st, radgate.Result{Engine: (&scorer{}).Info(), Outcome: radgate.OutcomeNotApplicable, Reason: "hip"}, "")
	require.Equal(t, ack, v.kind)
	got, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateRejected, got.State)
	require.Equal(t, "Task/1", got.Engines["eng-a"].Report)
}

// The router publishes a job before it records "routed": a job read while
// the order still says "received" must be scored, not skipped.
func TestJobSeenBeforeRoutedIsStillScored(t *testing.T) {
	h := newIdleHarness(t, nil)
	h.arch.add("D1", "4.1", "CR", "CHEST", "sop-1")
	st, err := h.p.Accept(t.Context(), sr("D1", "d1"))
	require.NoError(t, err)
	require.Empty(t, st.Engines, "nothing routed yet")
	job := Job{OrderID: st.ID, Engine: "eng-a", StudyInstanceUID: "4.1",
		Instances: []JobInstance{{SeriesInstanceUID: "4.1.1", SOPInstanceUID: "sop-1", Modality: "CR", BodyPart: "CHEST"}}}
	v := h.p.score(t.Context(), fakeMsg(t, job))
	require.Equal(t, ack, v.kind)
	got, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateScored, got.Engines["eng-a"].State)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
}

// testMsg is a jetstream.Msg for driving one handler directly.
type testMsg struct {
	data []byte
	hdr  nats.Header
}

func fakeMsg(t testing.TB, v any) *testMsg {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return &testMsg{data: b, hdr: nats.Header{}}
}

func (m *testMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: 1, Timestamp: time.Now()}, nil
}
func (m *testMsg) Data() []byte                     { return m.data }
func (m *testMsg) Headers() nats.Header             { return m.hdr }
func (m *testMsg) Subject() string                  { return "test" }
func (m *testMsg) Reply() string                    { return "" }
func (m *testMsg) Ack() error                       { return nil }
func (m *testMsg) DoubleAck(context.Context) error  { return nil }
func (m *testMsg) Nak() error                       { return nil }
func (m *testMsg) NakWithDelay(time.Duration) error { return nil }
func (m *testMsg) InProgress() error                { return nil }
func (m *testMsg) Term() error                      { return nil }
func (m *testMsg) TermWithReason(string) error      { return nil }

// A message a stage gives up on (here: a job for an engine this process does
// not have) leaves its order visibly failed, not waiting forever.
func TestDeadLetterFailsTheOrderVisibly(t *testing.T) {
	h := newHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("E1", "e1"))
	require.NoError(t, err)
	job := Job{OrderID: st.ID, Engine: "eng-missing", StudyInstanceUID: "5.1"}
	b, err := json.Marshal(job)
	require.NoError(t, err)
	msg := nats.NewMsg(broker.JobSubject(radgate.PriorityRoutine, broker.NoFacility, "eng-missing"))
	msg.Data = b
	msg.Header.Set(broker.HeaderOrderID, st.ID)
	_, err = h.topo.JS.PublishMsg(t.Context(), msg)
	require.NoError(t, err)
	st = h.waitState(t, st.ID, radgate.StateFailed)
	require.Contains(t, st.Reason, "dead-lettered by stage inference")
	require.Contains(t, st.Reason, `engine "eng-missing" is not loaded`)
}

func TestConsumerErrorLevel(t *testing.T) {
	require.Equal(t, slog.LevelError, consumerErrorLevel(jetstream.ErrConsumerDeleted))
	require.Equal(t, slog.LevelError, consumerErrorLevel(fmt.Errorf("pull: %w", jetstream.ErrConsumerNotFound)))
	require.Equal(t, slog.LevelDebug, consumerErrorLevel(nats.ErrConnectionClosed))
	require.Equal(t, slog.LevelWarn, consumerErrorLevel(jetstream.ErrNoHeartbeat))
}

// fakeDraw is an ImageScore.Render that draws, as the real engine does,
// what is asked for and applies: the heatmap (png) and a preview when
// marked, a thumbnail when not.
func fakeDraw(marked bool, png []byte, w, h int) func(radgate.Pictures) (radgate.Drawn, error) {
	return func(want radgate.Pictures) (radgate.Drawn, error) {
		var d radgate.Drawn
		if marked && want&radgate.PictureHeatmap != 0 {
			d.HeatmapPNG, d.HeatmapWidth, d.HeatmapHeight = png, w, h
		}
		if marked && want&radgate.PicturePreview != 0 {
			d.Preview, d.PreviewWidth, d.PreviewHeight = []byte("JPEG preview"), w, h
		}
		if !marked && want&radgate.PictureThumbnail != 0 {
			d.Preview, d.PreviewWidth, d.PreviewHeight = []byte("JPEG thumbnail"), w, h
		}
		return d, nil
	}
}
