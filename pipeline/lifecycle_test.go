package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// addView adds one image with a view position to a study's first series,
// creating the study when it is not there: a study arriving in pieces.
func (a *archive) addView(acsn, uid, sop, view string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.studies[uid]
	if !ok {
		s = &radgate.Study{StudyInstanceUID: uid, AccessionNumber: acsn,
			Series: []radgate.Series{{SeriesInstanceUID: uid + ".1", Modality: "DX", BodyPartExamined: "CHEST"}}}
		a.studies[uid] = s
		a.byAcsn[acsn] = uid
	}
	s.Series[0].Instances = append(s.Series[0].Instances, radgate.Instance{SOPInstanceUID: sop, ViewPosition: view})
}

// journal is a Sink that keeps every delivery in order (revisions and
// retractions included).
type journal struct {
	mu   sync.Mutex
	log  []radgate.Result
	hold chan struct{} // when set, Deliver waits until it is closed
}

// holdDeliveries makes Deliver wait until the returned function is called.
func (j *journal) holdDeliveries() (release func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.hold = make(chan struct{})
	return sync.OnceFunc(func() { close(j.hold) })
}

func (j *journal) Deliver(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	j.mu.Lock()
	hold := j.hold
	j.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return radgate.Receipt{}, ctx.Err()
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	r.HeatmapPNG, r.CAM = nil, nil
	j.log = append(j.log, r)
	return radgate.Receipt{Report: fmt.Sprintf("DiagnosticReport/%s", r.ID), Objects: []radgate.DeliveredObject{
		{Kind: "DiagnosticReport", Ref: "DiagnosticReport/" + r.ID}, {Kind: "Observation", Ref: "Observation/" + r.ID}}}, nil
}

func (j *journal) all() []radgate.Result {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]radgate.Result(nil), j.log...)
}

func lifecycleHarness(t *testing.T, mutate func(*Options)) (*harness, *journal) {
	t.Helper()
	j := &journal{}
	h := newHarness(t, func(o *Options) {
		o.Sinks = map[string]radgate.Sink{"fhir": j}
		o.Engines = []radgate.Engine{&scorer{probs: map[string]float64{"pa-1": 0.91, "pa-2": 0.35, "ap-3": 0.72, "ll-1": 0.5}, views: []string{"PA", "AP"}}}
		o.StableAfter = 300 * time.Millisecond
		if mutate != nil {
			mutate(o)
		}
	})
	return h, j
}

func (h *harness) invalidTransitions(t *testing.T, id string) {
	t.Helper()
	if n := testutil.ToFloat64(h.p.m.invalid); n != 0 {
		hist, _ := h.p.History(t.Context(), id)
		for _, e := range hist {
			t.Log(e)
		}
	}
	require.Zero(t, testutil.ToFloat64(h.p.m.invalid), "every state change is a row of radgate.Transitions")
}

// An order whose study comes after its wait window ended is answered
// failed, then re-opened by the study and delivered.
func TestStudyAfterTheWaitWindowReopensTheOrder(t *testing.T) {
	h, _ := lifecycleHarness(t, func(o *Options) { o.StudyWaitWindow = 300 * time.Millisecond })
	st, err := h.p.Accept(t.Context(), sr("L1", "l1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateFailed)
	time.Sleep(300 * time.Millisecond) // 2× the window in all
	h.arch.addView("L1", "9.1", "pa-1", "PA")
	got := h.waitState(t, st.ID, radgate.StateDelivered)
	require.InDelta(t, 0.91, *got.Engines["eng-a"].Probability, 1e-9)
	hist, err := h.p.History(t.Context(), st.ID)
	require.NoError(t, err)
	var path []string
	for _, e := range hist {
		if e.Engine == "" && e.To != radgate.StateScored { // scored may be passed over: its record can trail the delivery
			path = append(path, string(e.To))
		}
	}
	// The "not found" answer goes out, then the order fails, re-opens.
	require.Equal(t, []string{"received", "waiting", "failed", "stabilising", "routed", "delivered"}, path)
	h.invalidTransitions(t, st.ID)
}

// A study stored in three pieces is scored once, on all its frontal
// images; the lateral is skipped and named.
func TestStudyInPiecesIsScoredOnceWhenStable(t *testing.T) {
	h, j := lifecycleHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("L2", "l2"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateWaiting)
	h.arch.addView("L2", "9.2", "pa-2", "PA")
	h.waitState(t, st.ID, radgate.StateStabilising)
	time.Sleep(150 * time.Millisecond)
	h.arch.addView("L2", "9.2", "ll-1", "LL")
	time.Sleep(150 * time.Millisecond)
	h.arch.addView("L2", "9.2", "ap-3", "AP")
	got := h.waitState(t, st.ID, radgate.StateDelivered)
	time.Sleep(200 * time.Millisecond)
	results := j.all()
	require.Len(t, results, 1, "one result for the whole study")
	r := results[0]
	require.Equal(t, "ap-3", r.SOPInstanceUID, "the most confident of the frontal images")
	require.Equal(t, 1, r.Revision)
	require.Equal(t, radgate.ResultFinal, r.Status)
	notes := map[string]radgate.ImageNote{}
	for _, n := range r.Images {
		notes[n.SOPInstanceUID] = n
	}
	require.True(t, notes["pa-2"].Scored)
	require.True(t, notes["ap-3"].Scored)
	require.False(t, notes["ll-1"].Scored)
	require.Contains(t, notes["ll-1"].Reason, "view LL is outside engine eng-a's intended use: PA/AP (views)")
	require.Equal(t, 3, got.Study.Scored)
	// The order's status keeps what the result said (the console's order
	// page shows it) and what the destination wrote.
	e := got.Engines["eng-a"]
	require.Equal(t, r.Images, e.Images, "every image offered, scored or skipped with why")
	require.Equal(t, r.Marked, e.Marked)
	require.Equal(t, r.HeatmapObject, e.HeatmapObject)
	require.Equal(t, r.PreviewObject, e.PreviewObject)
	require.Equal(t, []radgate.DeliveredObject{{Kind: "DiagnosticReport", Ref: "DiagnosticReport/" + r.ID}, {Kind: "Observation", Ref: "Observation/" + r.ID}},
		e.Deliveries["fhir"].Objects, "the receipt's objects")
	h.invalidTransitions(t, st.ID)
}

// 100 orders waiting for their studies hold no consumer slot: an order
// whose study is there is routed and delivered while they all still wait.
func TestWaitingOrdersDoNotBlockOthers(t *testing.T) {
	h, _ := lifecycleHarness(t, func(o *Options) { o.PollMin, o.PollMax = time.Hour, time.Hour; o.RouterWorkers = 2 })
	var waiting []string
	for i := range 100 {
		st, err := h.p.Accept(t.Context(), sr(fmt.Sprintf("W%d", i), fmt.Sprintf("w%d", i)))
		require.NoError(t, err)
		waiting = append(waiting, st.ID)
	}
	for _, id := range waiting {
		h.waitState(t, id, radgate.StateWaiting)
	}
	h.arch.addView("L3", "9.3", "pa-1", "PA")
	st, err := h.p.Accept(t.Context(), sr("L3", "l3"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	for _, id := range waiting {
		w, err := h.p.Status(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, radgate.StateWaiting, w.State)
	}
}

func cancelOf(acsn string) radgate.OrderEvent {
	ev := sr(acsn, "x")
	ev.ServiceRequest = nil
	ev.Action, ev.Reason = radgate.ActionCancel, "FHIR ServiceRequest status revoked"
	return ev
}

func TestCancelBeforeImagesScoresNothing(t *testing.T) {
	h, j := lifecycleHarness(t, nil)
	st, err := h.p.Accept(t.Context(), sr("C1", "c1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateWaiting)
	_, err = h.p.Accept(t.Context(), cancelOf("C1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateCancelled)
	h.arch.addView("C1", "9.4", "pa-1", "PA")
	time.Sleep(800 * time.Millisecond)
	require.Empty(t, j.all(), "nothing scored, nothing delivered")
	require.Zero(t, h.arch.retrieves)
	got, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateCancelled, got.State)
	require.Equal(t, "FHIR ServiceRequest status revoked", got.Cancelled.Reason)
	h.invalidTransitions(t, st.ID)
}

func TestCancelAfterDeliveryRetractsOnce(t *testing.T) {
	h, j := lifecycleHarness(t, nil)
	h.arch.addView("C2", "9.5", "pa-1", "PA")
	st, err := h.p.Accept(t.Context(), sr("C2", "c2"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	_, err = h.p.Accept(t.Context(), cancelOf("C2"))
	require.NoError(t, err)
	got := h.waitState(t, st.ID, radgate.StateCancelled)
	require.True(t, got.Engines["eng-a"].Deliveries["fhir"].Retracted)
	_, err = h.p.Accept(t.Context(), cancelOf("C2"))
	require.NoError(t, err, "a second cancellation is idempotent")
	time.Sleep(300 * time.Millisecond)
	results := j.all()
	require.Len(t, results, 2, "the result, then one retraction")
	require.Equal(t, radgate.ResultRetracted, results[1].Status)
	require.Equal(t, results[0].ID, results[1].ID)
	require.Equal(t, 1, results[1].Revision)
	require.Contains(t, results[1].RetractReason, "revoked")

	// An amendment of a cancelled order is refused, saying why.
	ev := sr("C2", "c2")
	ev.ResourceType, ev.ImagingStudy = "ImagingStudy", &radgate.Reference{Reference: "ImagingStudy/c2"}
	_, err = h.p.Accept(t.Context(), ev)
	require.ErrorIs(t, err, radgate.ErrOrderCancelled)
	require.Contains(t, err.Error(), "accession number C2")

	hist, err := h.p.History(t.Context(), st.ID)
	require.NoError(t, err)
	var last radgate.HistoryEntry
	for _, e := range hist {
		if e.Engine == "" {
			last = e
		}
	}
	require.Equal(t, radgate.EvRetracted, last.Event)
	require.Equal(t, radgate.StateRetracting, last.From)
	h.invalidTransitions(t, st.ID)
}

func TestCancelOfAnUnknownOrderNamesIt(t *testing.T) {
	h, _ := lifecycleHarness(t, nil)
	_, err := h.p.Accept(t.Context(), cancelOf("NOPE-1"))
	require.ErrorIs(t, err, radgate.ErrUnknownOrder)
	require.Contains(t, err.Error(), "accession number NOPE-1")
}

// Images added after the result make revision 2: delivered as amended,
// counted once.
func TestImagesAddedAfterTheResultAmendIt(t *testing.T) {
	h, j := lifecycleHarness(t, func(o *Options) { o.PollMax = 100 * time.Millisecond })
	h.arch.addView("A1", "9.6", "pa-2", "PA")
	st, err := h.p.Accept(t.Context(), sr("A1", "a1"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	h.arch.addView("A1", "9.6", "pa-1", "PA")
	require.Eventually(t, func() bool { return len(j.all()) == 2 }, 10*time.Second, 20*time.Millisecond, "an amended result follows")
	got := h.waitState(t, st.ID, radgate.StateDelivered)
	results := j.all()
	require.Equal(t, radgate.ResultFinal, results[0].Status)
	require.Equal(t, radgate.ResultAmended, results[1].Status)
	require.Equal(t, 2, results[1].Revision)
	require.Equal(t, results[0].ID, results[1].ID, "one result per order × engine, in its second revision")
	require.InDelta(t, 0.91, results[1].Probability, 1e-9)
	require.Equal(t, 2, got.Engines["eng-a"].Revision)
	require.Equal(t, 2, got.Study.Scored)
	rows, err := h.usage.Month(t.Context(), time.Now().UTC().Format("2006-01"))
	require.NoError(t, err)
	total := 0
	for _, c := range rows {
		total += int(c.Analyses)
	}
	require.Equal(t, 1, total, "a re-score is not billed again")
	hist, err := h.p.History(t.Context(), st.ID)
	require.NoError(t, err)
	superseded := false
	for _, e := range hist {
		superseded = superseded || e.Event == radgate.EvSuperseded && e.Revision == 1
	}
	require.True(t, superseded, "the history shows revision 1 superseded")
	h.invalidTransitions(t, st.ID)
}

// A stat order is not queued behind routine work: with the one routine
// inference worker busy, it is scored by the urgent one.
func TestStatOrderOvertakesRoutineWork(t *testing.T) {
	gate := make(chan struct{})
	slow := &gatedScorer{scorer: scorer{probs: map[string]float64{"pa-1": 0.9, "st-1": 0.8}}, gate: gate, slowSOP: "pa-1"}
	h, _ := lifecycleHarness(t, func(o *Options) { o.Engines = []radgate.Engine{slow}; o.InferenceWorkers = 1 })
	defer close(gate)
	var routine []string
	for i := range 5 {
		acsn := fmt.Sprintf("R%d", i)
		h.arch.addView(acsn, "8."+acsn, "pa-1", "PA")
		st, err := h.p.Accept(t.Context(), sr(acsn, "r"+acsn))
		require.NoError(t, err)
		routine = append(routine, st.ID)
	}
	h.arch.addView("S1", "8.S1", "st-1", "PA")
	ev := sr("S1", "s1")
	ev.Priority = "stat"
	st, err := h.p.Accept(t.Context(), ev)
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	for _, id := range routine {
		r, err := h.p.Status(t.Context(), id)
		require.NoError(t, err)
		require.NotEqual(t, radgate.StateDelivered, r.State, "routine work is still held at the gate")
	}
}

// gatedScorer blocks on slowSOP until gate closes.
type gatedScorer struct {
	scorer
	gate    chan struct{}
	slowSOP string
}

func (g *gatedScorer) Score(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	if len(files) == 1 && string(files[0]) == g.slowSOP {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, errors.New("stopped")
		}
	}
	return g.scorer.Score(ctx, files)
}

// radgate's own objects stored back into the study (SC, SR, KOS, PDF) are
// not images added: they make no amendment.
func TestDerivedObjectsInTheStudyAreNotNewImages(t *testing.T) {
	h, j := lifecycleHarness(t, func(o *Options) { o.PollMax = 50 * time.Millisecond })
	h.arch.addView("D9", "9.9", "pa-1", "PA")
	st, err := h.p.Accept(t.Context(), sr("D9", "d9"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	h.arch.mu.Lock()
	s := h.arch.studies["9.9"]
	for i, m := range []string{"OT", "SR", "KO", "DOC"} {
		s.Series = append(s.Series, radgate.Series{SeriesInstanceUID: fmt.Sprintf("9.9.%d", 10+i), Modality: m,
			Instances: []radgate.Instance{{SOPInstanceUID: fmt.Sprintf("derived-%d", i)}}})
	}
	h.arch.mu.Unlock()
	time.Sleep(500 * time.Millisecond) // ten looks of the watcher
	got, err := h.p.Status(t.Context(), st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateDelivered, got.State)
	require.Equal(t, 1, got.Engines["eng-a"].Revision)
	require.Len(t, j.all(), 1, "no amended result")
}

// A retraction says what it withdraws: the score it replaces.
func TestRetractionCarriesTheWithdrawnOutcome(t *testing.T) {
	h, j := lifecycleHarness(t, nil)
	h.arch.addView("D10", "9.10", "pa-1", "PA")
	st, err := h.p.Accept(t.Context(), sr("D10", "d10"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateDelivered)
	_, err = h.p.Accept(t.Context(), cancelOf("D10"))
	require.NoError(t, err)
	h.waitState(t, st.ID, radgate.StateCancelled)
	r := j.all()[1]
	require.Equal(t, radgate.ResultRetracted, r.Status)
	require.Equal(t, radgate.OutcomeScored, r.Outcome)
	require.InDelta(t, 0.91, r.Probability, 1e-9)
}
