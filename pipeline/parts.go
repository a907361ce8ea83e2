package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// A hub result whose pictures make it larger than one message may carry
// (the connection's max_payload less room for headers) goes to its edge in
// parts (issue 16): ordered messages on the same results subject, in the
// same stream, so the edge's results source carries them like any result.
//
// The parts together are the whole: the result's JSON without the
// pictures (their sizes in heatmap_bytes and preview_bytes) followed by
// the pictures' raw bytes — no base64, a third smaller than the JSON of a
// result in one message. Every part carries the headers of the result's
// message (order id, Radgate-Hub-Result, Radgate-Withheld, a replay's
// Radgate-Replay-Of) and its own:
//
//	Radgate-Result-Id        the result's id (ResultID)
//	Radgate-Result-Engine    its engine, Radgate-Result-Revision its revision
//	Radgate-Part             i/n, from 1
//	Radgate-Part-Sha256      the SHA-256 of this part
//	Radgate-Result-Sha256    the SHA-256 of the whole
//
// The last part has the result's message id, so of two hub processes
// publishing the same result at once the first to land its last part wins
// the duplicate window, as with a result in one message; the other parts'
// ids add the whole's digest and their index.
//
// The edge's delivery holds the parts, unacknowledged, until all n of one
// digest are there (partAssembler), then checks each part's and the
// whole's digest, delivers the result once and acknowledges every part
// after the result's message; a part that does not match its digest, or a
// last part whose others never came, dead-letters the result naming its
// id and the part. (HeaderPart is exported for internal/edgetest.)
const (
	headerResultID     = "Radgate-Result-Id"
	headerResultEngine = "Radgate-Result-Engine"
	headerResultRev    = "Radgate-Result-Revision"
	HeaderPart         = "Radgate-Part"
	headerPartSHA256   = "Radgate-Part-Sha256"
	headerWholeSHA256  = "Radgate-Result-Sha256"
)

// maxResultParts bounds the parts of one result (32 × 8 MiB less headers
// at the default max_payload); a delivery consumer's MaxAckPending leaves
// room for twice as many held parts.
const maxResultParts = 32

// stageKey is the context key of the stage's name (stageRunner.start).
type stageKey struct{}

func stageOf(ctx context.Context) string {
	s, _ := ctx.Value(stageKey{}).(string)
	return s
}

// wholeOf is a hub result as its parts carry it: its JSON without the
// pictures, then the pictures' bytes.
func wholeOf(hr hubResult) ([]byte, error) {
	head := hr
	head.HeatmapPNG, head.Preview = nil, nil
	head.HeatmapBytes, head.PreviewBytes = len(hr.HeatmapPNG), len(hr.Preview)
	data, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+len(hr.HeatmapPNG)+len(hr.Preview))
	return append(append(append(out, data...), hr.HeatmapPNG...), hr.Preview...), nil
}

// hubResultOfWhole decodes wholeOf's bytes.
func hubResultOfWhole(whole []byte) (hubResult, error) {
	var hr hubResult
	dec := json.NewDecoder(bytes.NewReader(whole))
	if err := dec.Decode(&hr); err != nil {
		return hr, fmt.Errorf("its JSON: %w", err)
	}
	rest := whole[dec.InputOffset():]
	if hr.HeatmapBytes < 0 || hr.PreviewBytes < 0 || hr.HeatmapBytes+hr.PreviewBytes != len(rest) {
		return hr, fmt.Errorf("its pictures are %d bytes where its JSON says %d + %d", len(rest), hr.HeatmapBytes, hr.PreviewBytes)
	}
	hr.HeatmapPNG, hr.Preview = rest[:hr.HeatmapBytes:hr.HeatmapBytes], rest[hr.HeatmapBytes:]
	if len(hr.HeatmapPNG) == 0 {
		hr.HeatmapPNG = nil
	}
	if len(hr.Preview) == 0 {
		hr.Preview = nil
	}
	hr.HeatmapBytes, hr.PreviewBytes = 0, 0
	return hr, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ResultParts cuts whole into messages of at most size bytes, each with
// msg's subject and headers and the parts' headers for result r; ids are
// their message ids (msgID the last one's). The hub's publication
// (publishToEdge); exported for internal/edgetest's proof of the leaf link.
func ResultParts(msg *nats.Msg, msgID string, whole []byte, size int, r radgate.Result) (parts []*nats.Msg, ids []string) {
	n := (len(whole) + size - 1) / size
	digest := sha256Hex(whole)
	for i := range n {
		body := whole[i*size : min((i+1)*size, len(whole))]
		m := nats.NewMsg(msg.Subject)
		for k, v := range msg.Header {
			m.Header[k] = slices.Clone(v)
		}
		m.Data = body
		m.Header.Set(headerResultID, r.ID)
		m.Header.Set(headerResultEngine, r.Engine.ID)
		m.Header.Set(headerResultRev, strconv.Itoa(max(r.Revision, 1)))
		m.Header.Set(HeaderPart, fmt.Sprintf("%d/%d", i+1, n))
		m.Header.Set(headerPartSHA256, sha256Hex(body))
		m.Header.Set(headerWholeSHA256, digest)
		id := msgID
		if i < n-1 {
			id = fmt.Sprintf("%s.%s.p%d", msgID, digest[:16], i+1)
		}
		parts, ids = append(parts, m), append(ids, id)
	}
	return parts, ids
}

// partInfo is what a part's headers say.
type partInfo struct {
	// destination is the delivery stage's destination.
	order, result, engine, digest, replay, destination string
	rev, i, n                                          int
}

func (pi partInfo) key() string { return pi.result + "/" + pi.digest + "/" + pi.replay }

func (pi partInfo) String() string {
	return fmt.Sprintf("result %s (order %s, engine %s, revision %d)", pi.result, pi.order, pi.engine, pi.rev)
}

func partOf(msg jetstream.Msg) (partInfo, error) {
	h := msg.Headers()
	pi := partInfo{order: h.Get(broker.HeaderOrderID), result: h.Get(headerResultID), engine: h.Get(headerResultEngine),
		digest: h.Get(headerWholeSHA256), replay: h.Get(broker.HeaderReplayOf)}
	var err error
	if pi.rev, err = strconv.Atoi(h.Get(headerResultRev)); err != nil || pi.rev < 1 {
		return pi, fmt.Errorf("%s: a part whose %s %q is no revision", pi, headerResultRev, h.Get(headerResultRev))
	}
	is, ns, ok := strings.Cut(h.Get(HeaderPart), "/")
	pi.i, err = strconv.Atoi(is)
	if err == nil {
		pi.n, err = strconv.Atoi(ns)
	}
	if !ok || err != nil || pi.n < 1 || pi.n > maxResultParts || pi.i < 1 || pi.i > pi.n {
		return pi, fmt.Errorf("%s: a part whose %s %q is not i/n with 1 ≤ i ≤ n ≤ %d", pi, HeaderPart, h.Get(HeaderPart), maxResultParts)
	}
	if pi.result == "" || pi.digest == "" || pi.engine == "" {
		return pi, fmt.Errorf("%s: part %d of %d lacks %s, %s or %s", pi, pi.i, pi.n, headerResultID, headerResultEngine, headerWholeSHA256)
	}
	return pi, nil
}

// partSet is the parts of one result (one digest) a delivery stage holds.
type partSet struct {
	info  partInfo
	parts map[int]jetstream.Msg // by index
	first time.Time             // its first part held
	last  time.Time             // its last part first held; zero: not yet
	// busy: one of its parts is delivering the result; once: every part
	// was here once (a retry of the delivery took the last one away).
	busy, once bool
}

func (s *partSet) msgs(except jetstream.Msg) []jetstream.Msg {
	var out []jetstream.Msg
	for _, i := range slices.Sorted(maps.Keys(s.parts)) {
		if m := s.parts[i]; m != except {
			out = append(out, m)
		}
	}
	return out
}

func (s *partSet) missing() []int {
	var out []int
	for i := 1; i <= s.info.n; i++ {
		if _, ok := s.parts[i]; !ok {
			out = append(out, i)
		}
	}
	return out
}

// partAssembler holds one delivery stage's parts: it keeps them alive
// (InProgress every third of the ack wait, as the fair queue does), gives
// up on a result whose last part came without the others (twice the ack
// wait: any part pending would have been redelivered by then) or whose
// last part never came (the delivery window), and at the stage's stop
// hands them back at once.
type partAssembler struct {
	p     *Pipeline
	stage string
	mu    sync.Mutex
	sets  map[string]*partSet
}

// assembler is the stage's partAssembler, started with the stage's ctx.
func (p *Pipeline) assembler(ctx context.Context) *partAssembler {
	stage := stageOf(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.parts[stage]; a != nil {
		return a
	}
	if p.parts == nil {
		p.parts = map[string]*partAssembler{}
	}
	a := &partAssembler{p: p, stage: stage, sets: map[string]*partSet{}}
	p.parts[stage] = a
	go a.keep(ctx)
	return a
}

func (a *partAssembler) keep(ctx context.Context) {
	every := max(a.p.opts.AckWait/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.p.mu.Lock()
			if a.p.parts[a.stage] == a {
				delete(a.p.parts, a.stage)
			}
			a.p.mu.Unlock()
			a.mu.Lock()
			for _, s := range a.sets {
				for _, m := range s.msgs(nil) {
					_ = m.Nak() // for whoever takes them next
				}
			}
			a.sets = map[string]*partSet{}
			a.mu.Unlock()
			return
		case <-t.C:
			a.tick()
		}
	}
}

func (a *partAssembler) tick() {
	now := a.p.opts.Now()
	var giveUp []*partSet
	var reasons []string
	a.mu.Lock()
	for k, s := range a.sets {
		for _, m := range s.msgs(nil) {
			_ = m.InProgress()
		}
		if s.busy || s.once {
			continue
		}
		switch {
		case !s.last.IsZero() && now.Sub(s.last) >= 2*a.p.opts.AckWait:
			reasons = append(reasons, fmt.Sprintf("%s came in %d parts: %s missing (its last part waited %v for them)",
				s.info, s.info.n, partList(s.missing()), now.Sub(s.last).Round(time.Second)))
		case s.last.IsZero() && now.Sub(s.first) >= a.p.opts.DeliveryWindow:
			reasons = append(reasons, fmt.Sprintf("%s came in %d parts: its last part (%d of %d) never came within the delivery window (%v; %s held)",
				s.info, s.info.n, s.info.n, s.info.n, a.p.opts.DeliveryWindow, partList(slices.Collect(maps.Keys(s.parts)))))
		default:
			continue
		}
		delete(a.sets, k)
		giveUp = append(giveUp, s)
	}
	a.mu.Unlock()
	for i, s := range giveUp {
		a.deadLetter(s, reasons[i])
	}
}

// partList names parts: "part 2", "parts 2, 5".
func partList(idx []int) string {
	slices.Sort(idx)
	s := make([]string, len(idx))
	for i, n := range idx {
		s[i] = strconv.Itoa(n)
	}
	if len(s) == 1 {
		return "part " + s[0]
	}
	return "parts " + strings.Join(s, ", ")
}

// deadLetter dead-letters a set's result outside a handler: one dead
// letter (the copy of its first part held, the reason naming the result
// and the parts), every part terminated, the order's engine failed.
func (a *partAssembler) deadLetter(s *partSet, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := s.msgs(nil)
	if len(msgs) == 0 {
		return
	}
	if st, err := a.p.store.get(ctx, s.info.order); err == nil && s.info.replay == "" && deliveredAlready(st, s.info.engine, s.info.destination, s.info.rev) {
		for _, m := range msgs {
			_ = m.DoubleAck(ctx) // another copy of the result was delivered
		}
		return
	}
	if err := a.p.deadLetter(ctx, a.stage, msgs[0], reason, nil); err != nil {
		a.p.log.Error("dead-lettering a result's parts failed; handing them back", "stage", a.stage, "result", s.info.result, "err", err)
		for _, m := range msgs {
			_ = m.NakWithDelay(a.p.opts.RetryMax)
		}
		return
	}
	for _, m := range msgs {
		_ = m.TermWithReason(reason)
	}
	a.p.failOrder(ctx, s.info.order, a.stage, reason)
	a.p.log.Warn("result dead-lettered", "stage", a.stage, "order", s.info.order, "result", s.info.result, "reason", reason)
	fac := a.p.facilityLabel(msgs[0].Subject())
	a.p.m.handled.WithLabelValues(a.stage, "dead-letter", fac).Inc()
	a.p.stages.Record(a.stage, "dead-letter", 0)
}

// add holds msg, part pi. When it completes its set, add marks the set
// busy and returns it: the caller delivers the result and settles it
// (done). It also returns the held parts of other copies of the same
// result (another digest) for the caller to settle with it.
func (a *partAssembler) add(pi partInfo, msg jetstream.Msg) *partSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sets[pi.key()]
	if s == nil {
		s = &partSet{info: pi, parts: map[int]jetstream.Msg{}, first: a.p.opts.Now()}
		a.sets[pi.key()] = s
	}
	s.parts[pi.i] = msg // a redelivered part replaces its earlier delivery
	if pi.i == pi.n && s.last.IsZero() {
		s.last = a.p.opts.Now()
	}
	if s.busy || len(s.parts) < pi.n {
		return nil
	}
	s.busy = true
	return s
}

// done settles a set its delivery ended with v: delivered or dead-lettered,
// the set goes (with the held parts of other copies of its result when it
// was delivered), and v.also lists them; retried, trigger goes back to
// JetStream and the others stay held.
func (a *partAssembler) done(s *partSet, trigger jetstream.Msg, v verdict) verdict {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.busy = false
	if v.kind == retry || v.kind == hold {
		for i, m := range s.parts {
			if m == trigger {
				delete(s.parts, i)
			}
		}
		s.once = true
		return v
	}
	delete(a.sets, s.info.key())
	v.also = s.msgs(trigger)
	if v.kind == ack {
		v.also = append(v.also, a.takeCopies(s.info)...)
	}
	return v
}

// takeCopies removes and returns the held parts of every set of result
// pi.result, revision pi.rev, of another digest (a.mu held): another hub
// process's copy, or a publication the hub retried.
func (a *partAssembler) takeCopies(pi partInfo) []jetstream.Msg {
	var out []jetstream.Msg
	for k, s := range a.sets {
		if s.info.result == pi.result && s.info.rev == pi.rev && !s.busy {
			out = append(out, s.msgs(nil)...)
			delete(a.sets, k)
		}
	}
	return out
}

// join checks each part against its digest and the whole against its
// own, and returns the whole; the error names the result and the part that
// is wrong.
func (s *partSet) join() ([]byte, error) {
	data, hdrs := make([][]byte, s.info.n), make([]nats.Header, s.info.n)
	for i := range s.info.n {
		m := s.parts[i+1]
		data[i], hdrs[i] = m.Data(), m.Headers()
	}
	whole, err := JoinResultParts(data, hdrs)
	if err != nil {
		return nil, fmt.Errorf("%s came in %d parts: %w", s.info, s.info.n, err)
	}
	return whole, nil
}

// JoinResultParts checks the parts of one result (each one's body and
// headers, in order) against their digests and joins them; the error names
// the part that is wrong. The edge's delivery (partSet.join); exported for
// internal/edgetest's proof of the leaf link.
func JoinResultParts(data [][]byte, hdrs []nats.Header) ([]byte, error) {
	n := len(data)
	if n == 0 || len(hdrs) != n {
		return nil, fmt.Errorf("%d parts with %d headers", n, len(hdrs))
	}
	var whole []byte
	for i := range n {
		if got, want := hdrs[i].Get(HeaderPart), fmt.Sprintf("%d/%d", i+1, n); got != want {
			return nil, fmt.Errorf("part %d of %d says it is %s %q", i+1, n, HeaderPart, got)
		}
		if got, want := sha256Hex(data[i]), hdrs[i].Get(headerPartSHA256); got != want {
			return nil, fmt.Errorf("part %d of %d is corrupt (%d bytes, SHA-256 %s where its %s says %s)",
				i+1, n, len(data[i]), got[:16], headerPartSHA256, short(want))
		}
		whole = append(whole, data[i]...)
	}
	if got, want := sha256Hex(whole), hdrs[n-1].Get(headerWholeSHA256); got != want {
		return nil, fmt.Errorf("joined they are %d bytes with SHA-256 %s where the last part's %s says %s",
			len(whole), got[:16], headerWholeSHA256, short(want))
	}
	return whole, nil
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// deliveredAlready reports whether the order's engine holds revision rev
// (or a later one) delivered at dest: parts that come after it are a copy
// (another hub process's, or redelivered after the result was acked).
func deliveredAlready(st radgate.OrderStatus, engine, dest string, rev int) bool {
	return st.Engines[engine].Deliveries[dest].DeliveredRevision >= rev
}

// deliverPart is the delivery of a result's part (parts.go): held until
// its set is complete; the part that completes it delivers the result.
func (p *Pipeline) deliverPart(ctx context.Context, name string, sink radgate.Sink, msg jetstream.Msg) verdict {
	pi, err := partOf(msg)
	if err != nil {
		return deadLetter(err.Error())
	}
	pi.destination = name
	a := p.assembler(ctx)
	if pi.replay == "" {
		st, err := p.store.get(ctx, pi.order)
		switch {
		case err == nil && deliveredAlready(st, pi.engine, name, pi.rev):
			a.mu.Lock()
			v := verdict{kind: ack, also: a.takeCopies(pi)}
			a.mu.Unlock()
			p.log.Info("part of a result delivered already; dropped", "order", pi.order, "result", pi.result, "destination", name, "part", pi.i)
			return v
		case err != nil && !errors.Is(err, radgate.ErrOrderNotFound):
			return retryIn(p.opts.RetryMin)
		}
	}
	s := a.add(pi, msg)
	if s == nil {
		return held()
	}
	v := p.deliverSet(ctx, name, sink, s, msg)
	return a.done(s, msg, v)
}

// deliverSet joins a complete set and delivers its result, msg the part
// that completed it.
func (p *Pipeline) deliverSet(ctx context.Context, name string, sink radgate.Sink, s *partSet, msg jetstream.Msg) verdict {
	whole, err := s.join()
	if err != nil {
		return deadLetter(err.Error())
	}
	hr, err := hubResultOfWhole(whole)
	if err != nil {
		return deadLetter(fmt.Sprintf("%s came in %d parts that do not decode: %v", s.info, s.info.n, err))
	}
	if hr.ID != s.info.result {
		return deadLetter(fmt.Sprintf("%s came in %d parts that hold result %s", s.info, s.info.n, hr.ID))
	}
	p.log.Info("result joined from its parts", "order", s.info.order, "result", s.info.result, "destination", name, "parts", s.info.n, "bytes", len(whole))
	v := p.deliverResult(ctx, name, sink, msg, hr.Result, &hr)
	if v.kind == terminate {
		// The destination refused it. Its pictures are in this edge's
		// heatmap store by now (receiveHubResult), so the dead letter
		// keeps the result as one message, without them, on its results
		// subject: a replay delivers it from there like any result.
		if data, err := json.Marshal(hr.Result); err == nil {
			v.letter = &letter{subject: msg.Subject(), data: data}
		}
	}
	return v
}

// sourceRescore is the source token of the ORDERS message a replay of a
// dead-lettered result in parts publishes (rescoreLetter).
const sourceRescore = "rescore"

// rescoreLetter is the dead letter of a result in parts that could not be
// joined (a part corrupt, missing or undecodable): no part, sent again
// alone, makes the result, and the edge holds no other copy of it. So a
// replay of its dead letter goes to the order's ORDERS subject (source
// sourceRescore): the router re-opens the engine the dead letter failed
// and routes it again — the job goes to the hub, which scores it and sends
// the result once more. Its body names the result and its results
// subject (the dead letter's reason names the part that was wrong). Nil
// when msg's subject is not a results subject of this layout.
func rescoreLetter(msg jetstream.Msg) *letter {
	class, ok := broker.ClassOfSubject(msg.Subject())
	facility, ok2 := broker.FacilityOfSubject(msg.Subject())
	if !ok || !ok2 {
		return nil
	}
	h := msg.Headers()
	data, _ := json.Marshal(map[string]string{
		"rescore": "result in parts not delivered: replaying routes the order's engine again",
		"result":  h.Get(headerResultID), "engine": h.Get(headerResultEngine), "revision": h.Get(headerResultRev),
		"result_subject": msg.Subject(),
	})
	return &letter{subject: broker.OrderSubject(class, facility, sourceRescore), data: data}
}
