package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// partsPayload is the max_payload of the server these tests run on (the
// edge's heatmap store writes chunks of 128 KiB): a result with a 600 KiB
// heatmap needs five parts.
const partsPayload = 160 << 10

// bigScorer draws a heatmap of big's bytes for every image.
type bigScorer struct {
	scorer
	big []byte
}

func (s *bigScorer) Score(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	out, err := s.scorer.Score(ctx, files)
	for i := range out {
		out[i].Render = fakeDraw(true, s.big, 4, 4)
	}
	return out, err
}

// hubAndEdge is a hub pipeline and an edge pipeline on one JetStream whose
// server takes messages of partsPayload bytes at most: the hub publishes
// its results as it does for an edge, the edge delivers them.
type hubAndEdge struct {
	url      string
	topo     *broker.Topology
	arch     *archive
	sink     *recorder
	big      []byte
	edgeOpts Options
	hub      *Pipeline
	edge     *Pipeline
}

func newHubAndEdge(t *testing.T) *hubAndEdge {
	t.Helper()
	srv, err := broker.StartEmbeddedWith(broker.EmbeddedOptions{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1, MaxPayload: partsPayload})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.EqualValues(t, partsPayload, nc.MaxPayload())
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	he := &hubAndEdge{url: srv.ClientURL(), topo: topo, arch: newArchive(), sink: &recorder{}, big: make([]byte, 600<<10)}
	_, _ = rand.Read(he.big)
	he.arch.add("E1", "9.1", "CR", "CHEST", "sop-1")
	base := Options{
		Topology: topo, Source: he.arch,
		Engines:    []radgate.Engine{&bigScorer{scorer: scorer{probs: map[string]float64{"sop-1": 0.91}}, big: he.big}},
		Sinks:      map[string]radgate.Sink{"fhir": he.sink},
		Registerer: prometheus.NewRegistry(), StudyWaitWindow: 2 * time.Second, DeliveryWindow: 30 * time.Second,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, AckWait: time.Second,
		StableAfter: 100 * time.Millisecond, PollMin: 50 * time.Millisecond, PollMax: 200 * time.Millisecond,
	}
	hubOpts := base
	hubOpts.Role, hubOpts.Registerer = RoleHub, prometheus.NewRegistry()
	hubOpts.EdgeImages = func(context.Context, string) (radgate.StudySource, error) { return he.arch, nil }
	he.hub, err = NewPipeline(hubOpts)
	require.NoError(t, err)
	he.edgeOpts = base
	he.edgeOpts.Role, he.edgeOpts.Facility = RoleEdge, "site-a"
	return he
}

// startEdge starts a new edge pipeline (a restarted edge: the same
// durable consumers).
func (he *hubAndEdge) startEdge(t *testing.T) *Pipeline {
	t.Helper()
	opts := he.edgeOpts
	opts.Registerer = prometheus.NewRegistry()
	p, err := NewPipeline(opts)
	require.NoError(t, err)
	require.NoError(t, p.Start(t.Context()))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, p.Stop(ctx))
		}
	})
	he.edge = p
	return p
}

// order files an order at the edge as its router does before publishing
// the job.
func (he *hubAndEdge) order(t *testing.T, id string) radgate.OrderStatus {
	t.Helper()
	st, err := he.edge.store.update(t.Context(), id, true, func(o *radgate.OrderStatus) error {
		o.FacilityID, o.Priority = "site-a", "routine"
		o.Route = &radgate.RouteDecision{Matched: true, Engines: []string{"eng-a"}, Destinations: []string{"fhir"}}
		setEngine(o, "eng-a", radgate.EngineProgress{State: radgate.StateRouted, Revision: 1})
		return nil
	})
	require.NoError(t, err)
	return st
}

// parts are the messages the hub publishes for st's result, scored at
// scoredAt (two hub processes score at different times: other bytes).
func (he *hubAndEdge) parts(t *testing.T, st radgate.OrderStatus, scoredAt time.Time) ([]*nats.Msg, []string, radgate.Result) {
	t.Helper()
	info := (&scorer{}).Info()
	r := radgate.Result{ID: ResultID(st.ID, info), Engine: info, Order: st, Outcome: radgate.OutcomeScored, Probability: 0.91,
		Tier: "High", Marked: true, Revision: 1, Status: radgate.ResultFinal, ScoredAt: scoredAt, Destinations: []string{"fhir"},
		Destination: "fhir", HeatmapObject: ResultID(st.ID, info) + ".png", PreviewObject: ResultID(st.ID, info) + ".jpg"}
	whole, err := wholeOf(hubResult{Result: r, HeatmapPNG: he.big, Preview: []byte("JPEG preview")})
	require.NoError(t, err)
	out := nats.NewMsg(broker.ResultSubject("fhir", "routine", "site-a", "eng-a"))
	out.Header.Set(broker.HeaderOrderID, st.ID)
	out.Header.Set(headerHubResult, "1")
	msgs, ids := ResultParts(out, fmt.Sprintf("result.%s.r1.fhir", r.ID), whole, partsPayload-4096, r)
	require.Greater(t, len(msgs), 2)
	return msgs, ids, r
}

func (he *hubAndEdge) publish(t *testing.T, msgs []*nats.Msg, ids []string) {
	t.Helper()
	for i, m := range msgs {
		_, err := he.topo.JS.PublishMsg(t.Context(), m, jetstream.WithMsgID(ids[i]))
		require.NoError(t, err)
	}
}

// settled waits until the edge's delivery consumer has every result
// message acknowledged (or terminated).
func (he *hubAndEdge) settled(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := he.topo.JS.Consumer(t.Context(), broker.StreamResults, "deliver-fhir")
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 15*time.Second, 20*time.Millisecond, "the edge's delivery left result parts unacknowledged")
}

func (he *hubAndEdge) deadLetters(t *testing.T) []broker.DeadLetter {
	t.Helper()
	dls, err := broker.NewDLQ(he.topo.JS).List(t.Context(), "")
	require.NoError(t, err)
	return dls
}

// heldParts counts the parts the edge's delivery stages hold.
func heldParts(p *Pipeline) int {
	p.mu.Lock()
	as := make([]*partAssembler, 0, len(p.parts))
	for _, a := range p.parts {
		as = append(as, a)
	}
	p.mu.Unlock()
	n := 0
	for _, a := range as {
		a.mu.Lock()
		for _, s := range a.sets {
			n += len(s.parts)
		}
		a.mu.Unlock()
	}
	return n
}

// A hub result larger than max_payload (a 600 KiB heatmap, 160 KiB
// messages) goes to the edge in parts on its results subject, each within
// the limit, and the edge delivers it once and whole: the heatmap's bytes
// at the destination, every part acknowledged, nothing dead-lettered. The
// parts carry the pictures raw: fewer bytes than the one message of base64
// JSON would have been.
func TestHubResultOverMaxPayloadReachesItsEdgeInParts(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	require.NoError(t, he.hub.Start(ctx))
	t.Cleanup(func() { _ = he.hub.Stop(context.Background()) })
	he.startEdge(t)
	st := he.order(t, "b1600000000000a1")
	job := Job{OrderID: st.ID, Engine: "eng-a", StudyInstanceUID: "9.1", Revision: 1, Order: &st,
		Pictures:  radgate.PictureHeatmap | radgate.PicturePreview,
		Instances: []JobInstance{{SeriesInstanceUID: "9.1.1", SOPInstanceUID: "sop-1", Modality: "CR"}}}
	data, err := json.Marshal(job)
	require.NoError(t, err)
	_, err = he.topo.JS.Publish(ctx, broker.JobSubject("routine", "site-a", "eng-a"), data)
	require.NoError(t, err)

	id := ResultID(st.ID, (&scorer{}).Info())
	require.Eventually(t, func() bool { return len(he.sink.results()) == 1 }, 15*time.Second, 20*time.Millisecond, "the big result was not delivered")
	got := he.sink.results()[id]
	require.True(t, bytes.Equal(he.big, got.HeatmapPNG), "the delivered heatmap is not the hub's (%d bytes)", len(got.HeatmapPNG))
	require.Equal(t, "JPEG preview", string(got.Preview))
	require.Equal(t, 0.91, got.Probability)
	he.settled(t)
	require.Empty(t, he.deadLetters(t))
	he.sink.mu.Lock()
	require.Equal(t, 1, he.sink.times[id], "delivered more than once")
	he.sink.mu.Unlock()
	final, err := he.edge.Status(ctx, st.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateDelivered, final.State)
	stored, err := he.topo.Heatmaps.GetBytes(ctx, id+".png")
	require.NoError(t, err)
	require.True(t, bytes.Equal(he.big, stored), "the edge's heatmap store does not hold the hub's heatmap")

	// What the stream holds: the parts, each within max_payload.
	results, err := he.topo.JS.Stream(ctx, broker.StreamResults)
	require.NoError(t, err)
	info, err := results.Info(ctx)
	require.NoError(t, err)
	total, n := 0, 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := results.GetMsg(ctx, seq)
		require.NoError(t, err)
		require.LessOrEqual(t, len(m.Data), partsPayload-4096)
		require.Equal(t, id, m.Header.Get(headerResultID))
		n++
		require.Equal(t, fmt.Sprintf("%d/%d", n, info.State.Msgs), m.Header.Get(HeaderPart))
		total += len(m.Data)
	}
	one, err := json.Marshal(hubResult{Result: got, HeatmapPNG: he.big, Preview: got.Preview})
	require.NoError(t, err)
	require.Less(t, total, len(one)*4/5, "the parts are not smaller than the base64 JSON of one message")
	t.Logf("a %d B heatmap: %d parts, %d B in all (one message of JSON would be %d B)", len(he.big), n, total, len(one))
}

// An edge that dies (its connection gone, nothing handed back) while it
// holds some of a result's parts: JetStream redelivers them after the ack
// wait to the edge that takes over, which delivers the result once.
func TestResultPartsHeldByACrashedEdgeAreDeliveredOnce(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	nc, err := broker.Connect(he.url, "", nil)
	require.NoError(t, err)
	topo, err := broker.EnsureTopology(ctx, nc)
	require.NoError(t, err)
	opts := he.edgeOpts
	opts.Topology, opts.Registerer = topo, prometheus.NewRegistry()
	crashed, err := NewPipeline(opts)
	require.NoError(t, err)
	require.NoError(t, crashed.Start(ctx))
	he.edge = crashed
	st := he.order(t, "b1600000000000a6")
	msgs, ids, r := he.parts(t, st, time.Now().UTC())
	k := len(msgs) - 1
	he.publish(t, msgs[:k], ids[:k])
	require.Eventually(t, func() bool { return heldParts(crashed) == k }, 10*time.Second, 20*time.Millisecond, "the edge does not hold the parts")
	nc.Close() // the crash: no ack, no nak
	stopCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = crashed.Stop(stopCtx)
	cancel()

	he.startEdge(t)
	he.publish(t, msgs[k:], ids[k:])
	require.Eventually(t, func() bool { return len(he.sink.results()) == 1 }, 15*time.Second, 20*time.Millisecond, "not delivered after the crash")
	he.settled(t)
	he.sink.mu.Lock()
	require.Equal(t, 1, he.sink.times[r.ID], "delivered more than once")
	he.sink.mu.Unlock()
	require.True(t, bytes.Equal(he.big, he.sink.results()[r.ID].HeatmapPNG))
	require.Empty(t, he.deadLetters(t))
}

// A result that would need more than maxResultParts parts is
// dead-lettered at the hub with its size; nothing of it is published.
func TestHubResultOverMaxPartsIsDeadLetteredWithItsSize(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	he.big = make([]byte, (maxResultParts+1)*partsPayload)
	opts := he.hub.opts
	opts.Engines = []radgate.Engine{&bigScorer{scorer: scorer{probs: map[string]float64{"sop-1": 0.91}}, big: he.big}}
	opts.Registerer = prometheus.NewRegistry()
	p, err := NewPipeline(opts)
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	st := radgate.OrderStatus{ID: "b1600000000000a5", FacilityID: "site-a", Priority: "routine",
		Route: &radgate.RouteDecision{Matched: true, Engines: []string{"eng-a"}, Destinations: []string{"fhir"}}}
	job := Job{OrderID: st.ID, Engine: "eng-a", StudyInstanceUID: "9.1", Revision: 1, Order: &st, Pictures: radgate.PictureHeatmap,
		Instances: []JobInstance{{SeriesInstanceUID: "9.1.1", SOPInstanceUID: "sop-1", Modality: "CR"}}}
	data, err := json.Marshal(job)
	require.NoError(t, err)
	_, err = he.topo.JS.Publish(ctx, broker.JobSubject("routine", "site-a", "eng-a"), data)
	require.NoError(t, err)
	var dls []broker.DeadLetter
	require.Eventually(t, func() bool { dls = he.deadLetters(t); return len(dls) == 1 }, 15*time.Second, 20*time.Millisecond)
	require.Contains(t, dls[0].Reason, fmt.Sprintf("result %s of engine eng-a with its pictures is", ResultID(st.ID, (&scorer{}).Info())))
	require.Contains(t, dls[0].Reason, fmt.Sprintf("more than %d parts of %d bytes", maxResultParts, partsPayload-4096))
	results, err := he.topo.JS.Stream(ctx, broker.StreamResults)
	require.NoError(t, err)
	info, err := results.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs, "parts of a result over the limit were published")
}

// An edge that stops while it holds some of a result's parts hands them
// back; the restarted edge takes them again with the rest and delivers the
// result once. A second copy of the same result (another hub process's,
// scored at another time: other bytes) whose parts interleave with the
// first's is dropped: its last part loses the duplicate window to the
// first's, and its parts are acknowledged once the first is delivered.
func TestResultPartsRedeliveredOrCopiedAreDeliveredOnce(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	first := he.startEdge(t)
	st := he.order(t, "b1600000000000a2")
	msgs, ids, r := he.parts(t, st, time.Now().UTC())
	copyMsgs, copyIDs, _ := he.parts(t, st, time.Now().UTC().Add(time.Second))
	require.NotEqual(t, msgs[0].Header.Get(headerWholeSHA256), copyMsgs[0].Header.Get(headerWholeSHA256))

	k := len(msgs) - 2
	he.publish(t, msgs[:k], ids[:k])
	require.Eventually(t, func() bool { return heldParts(first) == k }, 10*time.Second, 20*time.Millisecond, "the edge does not hold the parts")
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, first.Stop(stopCtx))
	cancel()
	require.Empty(t, he.sink.results(), "delivered before its last part")

	second := he.startEdge(t)
	he.publish(t, copyMsgs[:len(copyMsgs)-1], copyIDs[:len(copyIDs)-1]) // the other process's parts, interleaved
	he.publish(t, msgs[k:], ids[k:])
	he.publish(t, copyMsgs[len(copyMsgs)-1:], copyIDs[len(copyIDs)-1:]) // its last part: a duplicate of the first's
	require.Eventually(t, func() bool { return len(he.sink.results()) == 1 }, 15*time.Second, 20*time.Millisecond, "not delivered after the restart")
	he.settled(t)
	require.Zero(t, heldParts(second))
	he.sink.mu.Lock()
	require.Equal(t, 1, he.sink.times[r.ID], "delivered more than once")
	he.sink.mu.Unlock()
	require.True(t, bytes.Equal(he.big, he.sink.results()[r.ID].HeatmapPNG))
	require.Empty(t, he.deadLetters(t))

	// Parts redelivered after their result was delivered (the edge stopped
	// after its delivery, before their acks): acknowledged, not delivered
	// again. Published again under new ids, they stand for that.
	for i := range copyIDs {
		copyIDs[i] += ".again"
	}
	he.publish(t, copyMsgs, copyIDs)
	he.settled(t)
	he.sink.mu.Lock()
	require.Equal(t, 1, he.sink.times[r.ID], "delivered again")
	he.sink.mu.Unlock()
	require.Empty(t, he.deadLetters(t))
}

// A part whose bytes do not match its digest dead-letters the result,
// naming its id and the part; a last part whose others never come
// dead-letters it too, naming the missing part, once it has waited twice
// the ack wait. Nothing is delivered, no part is left unacknowledged, and
// the order shows why.
func TestCorruptOrMissingPartDeadLettersTheResult(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	he.startEdge(t)

	bad := he.order(t, "b1600000000000a3")
	msgs, ids, r := he.parts(t, bad, time.Now().UTC())
	msgs[1].Data = bytes.Clone(msgs[1].Data)
	msgs[1].Data[100] ^= 0xff
	he.publish(t, msgs, ids)
	var dls []broker.DeadLetter
	require.Eventually(t, func() bool { dls = he.deadLetters(t); return len(dls) == 1 }, 15*time.Second, 20*time.Millisecond)
	n := len(msgs)
	want := fmt.Sprintf("result %s (order %s, engine eng-a, revision 1) came in %d parts: part 2 of %d is corrupt", r.ID, bad.ID, n, n)
	require.Contains(t, dls[0].Reason, want)
	require.Equal(t, bad.ID, dls[0].OrderID)
	st, err := he.edge.Status(ctx, bad.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateFailed, st.State)
	require.Contains(t, st.Engines["eng-a"].Reason, want)
	he.settled(t)

	lost := he.order(t, "b1600000000000a4")
	msgs, ids, r = he.parts(t, lost, time.Now().UTC())
	n = len(msgs)
	he.publish(t, append([]*nats.Msg{msgs[0]}, msgs[2:]...), append([]string{ids[0]}, ids[2:]...))
	require.Eventually(t, func() bool { dls = he.deadLetters(t); return len(dls) == 2 }, 15*time.Second, 20*time.Millisecond)
	var reason string
	for _, dl := range dls {
		if dl.OrderID == lost.ID {
			reason = dl.Reason
		}
	}
	require.Contains(t, reason, fmt.Sprintf("result %s (order %s, engine eng-a, revision 1) came in %d parts: part 2 missing", r.ID, lost.ID, n))
	st, err = he.edge.Status(ctx, lost.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateFailed, st.State)
	require.True(t, strings.Contains(st.Engines["eng-a"].Reason, "part 2 missing"), st.Engines["eng-a"].Reason)
	he.settled(t)
	require.Empty(t, he.sink.results(), "a result with a corrupt or missing part was delivered")
}

// A dead-lettered result in parts can be replayed. One whose parts do not
// join (a corrupt part) has a dead letter addressed to its order's ORDERS
// subject: the replay routes the engine again, the hub scores it again and
// the edge delivers the new result once, whole. One the destination
// refused has the joined result (without its pictures, which the edge
// keeps) on its results subject: the replay delivers it from there.
func TestDeadLetteredResultInPartsIsReplayable(t *testing.T) {
	he := newHubAndEdge(t)
	ctx := t.Context()
	require.NoError(t, he.hub.Start(ctx))
	t.Cleanup(func() { _ = he.hub.Stop(context.Background()) })
	he.startEdge(t)
	dlq := broker.NewDLQ(he.topo.JS)
	order := func(id string) radgate.OrderStatus {
		he.order(t, id)
		st, err := he.edge.store.update(ctx, id, false, func(o *radgate.OrderStatus) error {
			o.StudyInstanceUID = "9.1"
			return nil
		})
		require.NoError(t, err)
		return st
	}
	replayed := func(st radgate.OrderStatus, r radgate.Result, dl broker.DeadLetter) {
		t.Helper()
		_, err := dlq.Replay(ctx, dl.Seq, false)
		require.NoError(t, err)
		require.Eventually(t, func() bool { _, ok := he.sink.results()[r.ID]; return ok }, 15*time.Second, 20*time.Millisecond,
			"the replay of %s was not delivered", dl.Subject)
		require.Eventually(t, func() bool {
			final, err := he.edge.Status(ctx, st.ID)
			return err == nil && final.State == radgate.StateDelivered
		}, 10*time.Second, 20*time.Millisecond, "the order is not delivered after the replay")
		he.settled(t)
		require.Empty(t, he.deadLetters(t))
		he.sink.mu.Lock()
		require.Equal(t, 1, he.sink.times[r.ID], "delivered more than once")
		he.sink.mu.Unlock()
		require.True(t, bytes.Equal(he.big, he.sink.results()[r.ID].HeatmapPNG), "the replayed result's heatmap is not the hub's")
	}

	bad := order("b1600000000000a7")
	msgs, ids, r := he.parts(t, bad, time.Now().UTC())
	msgs[1].Data = bytes.Clone(msgs[1].Data)
	msgs[1].Data[100] ^= 0xff
	he.publish(t, msgs, ids)
	var dls []broker.DeadLetter
	require.Eventually(t, func() bool { dls = he.deadLetters(t); return len(dls) == 1 }, 15*time.Second, 20*time.Millisecond)
	require.Equal(t, broker.OrderSubject(radgate.PriorityRoutine, "site-a", sourceRescore), dls[0].Subject)
	require.Contains(t, dls[0].Reason, "part 2 of")
	dl, err := dlq.Get(ctx, dls[0].Seq)
	require.NoError(t, err)
	require.Contains(t, string(dl.Data), `"result_subject":"`+broker.ResultSubject("fhir", "routine", "site-a", "eng-a"))
	require.Contains(t, string(dl.Data), r.ID)
	st, err := he.edge.Status(ctx, bad.ID)
	require.NoError(t, err)
	require.Equal(t, radgate.StateFailed, st.State)
	he.settled(t)
	replayed(bad, r, dls[0])

	refused := order("b1600000000000a8")
	he.sink.mu.Lock()
	he.sink.failFor, he.sink.failErr = he.sink.calls+1, errors.New("HTTP 422: the destination refused the report")
	he.sink.mu.Unlock()
	msgs, ids, r = he.parts(t, refused, time.Now().UTC())
	he.publish(t, msgs, ids)
	require.Eventually(t, func() bool { dls = he.deadLetters(t); return len(dls) == 1 }, 15*time.Second, 20*time.Millisecond)
	require.Equal(t, broker.ResultSubject("fhir", "routine", "site-a", "eng-a"), dls[0].Subject)
	require.Contains(t, dls[0].Reason, "HTTP 422")
	dl, err = dlq.Get(ctx, dls[0].Seq)
	require.NoError(t, err)
	var kept radgate.Result
	require.NoError(t, json.Unmarshal(dl.Data, &kept))
	require.Equal(t, r.ID, kept.ID)
	require.Less(t, len(dl.Data), len(he.big)/4, "the dead letter keeps the pictures")
	he.settled(t)
	replayed(refused, r, dls[0])
}
