package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// watcher looks again, on schedule, for the studies of orders that wait
// for them (and, more slowly, of answered orders, for added images). The
// schedule lives in the order bucket as "w.<order>" entries (watchEntry),
// so waiting costs no consumer slot and survives a restart; every radgate
// process watches the entries and claims a due one by a compare-and-set on
// its revision, so one process looks. A look that finds something to do
// (the study came, its count changed or held long enough, the wait window
// ended) sends the order to the router; one that finds nothing only
// schedules the next.
//
// Cost: each waiting order is looked up at PollMin, 2×PollMin, … up to
// PollMax apart (defaults 30 s → 15 min: 7 looks in its first hour, 4 an
// hour after), and all looks together are capped at PollRate per second
// (default 20, so at most 72,000 an hour however many orders wait). A look
// is one FindStudy (a QIDO-RS study query, plus series and instance
// queries once the study exists).
type watcher struct {
	p   *Pipeline
	kw  jetstream.KeyWatcher
	lim *rate.Limiter

	mu      sync.Mutex
	entries map[string]watchItem

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// looks counts FindStudy calls (the benchmark reads it).
	looks int64
}

type watchItem struct {
	e   watchEntry
	rev uint64
	// busy: a look is under way in this process.
	busy bool
}

func (p *Pipeline) newWatcher() *watcher {
	return &watcher{p: p, entries: map[string]watchItem{},
		lim: rate.NewLimiter(rate.Limit(p.opts.PollRate), max(1, int(p.opts.PollRate)))}
}

func (p *Pipeline) startWatcher(ctx context.Context) (*watcher, error) {
	w := p.newWatcher()
	w.ctx, w.cancel = context.WithCancel(context.Background())
	kw, err := p.opts.Topology.Orders.Watch(ctx, "w.*")
	if err != nil {
		w.cancel()
		return nil, err
	}
	w.kw = kw
	w.wg.Add(2)
	go func() { defer w.wg.Done(); w.follow() }()
	go func() { defer w.wg.Done(); w.loop() }()
	return w, nil
}

func (w *watcher) stop() {
	w.cancel()
	_ = w.kw.Stop()
	w.wg.Wait()
}

// load reads the whole schedule once (a benchmark drives tick itself).
func (w *watcher) load(ctx context.Context) error {
	kw, err := w.p.opts.Topology.Orders.Watch(ctx, "w.*")
	if err != nil {
		return err
	}
	defer func() { _ = kw.Stop() }()
	for e := range kw.Updates() {
		if e == nil {
			return nil // the initial values are all in
		}
		w.apply(e)
	}
	return nil
}

// follow keeps the in-memory schedule in step with the bucket.
func (w *watcher) follow() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case e, ok := <-w.kw.Updates():
			if !ok {
				return
			}
			if e != nil {
				w.apply(e)
			}
		}
	}
}

func (w *watcher) apply(e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), "w.")
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(w.entries, id)
		return
	}
	var we watchEntry
	if json.Unmarshal(e.Value(), &we) != nil {
		return
	}
	busy := w.entries[id].busy
	w.entries[id] = watchItem{e: we, rev: e.Revision(), busy: busy}
}

func (w *watcher) loop() {
	every := min(max(w.p.opts.PollMin/4, 10*time.Millisecond), time.Second)
	if w.p.opts.StableAfter > 0 {
		every = min(every, max(w.p.opts.StableAfter/4, 10*time.Millisecond))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			w.tick(w.ctx, w.p.opts.Now())
		}
	}
}

// tick looks at every due order (urgent first, then the longest overdue),
// as many as the rate allows, at most 8 at once, and returns when they are
// done.
func (w *watcher) tick(ctx context.Context, now time.Time) {
	type due struct {
		id string
		it watchItem
	}
	var list []due
	w.mu.Lock()
	for id, it := range w.entries {
		if !it.busy && !it.e.Next.After(now) {
			list = append(list, due{id, it})
		}
	}
	w.mu.Unlock()
	slices.SortFunc(list, func(a, b due) int {
		if (a.it.e.Class == radgate.PriorityUrgent) != (b.it.e.Class == radgate.PriorityUrgent) {
			if a.it.e.Class == radgate.PriorityUrgent {
				return -1
			}
			return 1
		}
		return a.it.e.Next.Compare(b.it.e.Next)
	})
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, d := range list {
		if ctx.Err() != nil || !w.lim.AllowN(now, 1) {
			break
		}
		if !w.claim(ctx, d.id, d.it, now) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.look(ctx, d.id, d.it.e, now)
			w.mu.Lock()
			if it, ok := w.entries[d.id]; ok {
				it.busy = false
				w.entries[d.id] = it
			}
			w.mu.Unlock()
		}()
	}
	wg.Wait()
}

// claim moves the entry's next look on (the backoff) by a compare-and-set:
// only one process wins a due look.
func (w *watcher) claim(ctx context.Context, id string, it watchItem, now time.Time) bool {
	next := it.e
	next.Attempt++
	if next.Slow {
		next.Next = now.Add(w.p.opts.PollMax)
	} else {
		next.Next = now.Add(w.p.pollInterval(next.Attempt))
	}
	b, _ := json.Marshal(next)
	rev, err := w.p.opts.Topology.Orders.Update(ctx, watchKey(id), b, it.rev)
	if err != nil {
		return false // another process claimed it, or the entry changed
	}
	w.mu.Lock()
	w.entries[id] = watchItem{e: next, rev: rev, busy: true}
	w.mu.Unlock()
	return true
}

// look checks one order's study and, when there is something to do, hands
// the order to the router.
func (w *watcher) look(ctx context.Context, id string, e watchEntry, now time.Time) {
	p := w.p
	st, err := p.store.get(ctx, id)
	if errors.Is(err, radgate.ErrOrderNotFound) || err == nil && (st.Cancelled != nil || !e.Until.IsZero() && now.After(e.Until)) {
		p.unwatch(ctx, id)
		return
	}
	if err != nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	study, err := p.opts.Source.FindStudy(lctx, radgate.StudyQuery{StudyInstanceUID: st.StudyInstanceUID, AccessionNumber: accessionValue(st)})
	cancel()
	w.mu.Lock()
	w.looks++
	w.mu.Unlock()
	poke := false
	switch {
	case err != nil:
		// Still missing: only the end of the wait window is news, or a
		// study that was there and is gone.
		poke = st.State == radgate.StateStabilising ||
			st.State == radgate.StateWaiting && !st.WaitUntil.IsZero() && !now.Before(st.WaitUntil)
	case st.State == radgate.StateWaiting || st.State == radgate.StateStabilising || st.State == radgate.StateReceived:
		poke = true // it came, or its count may have held long enough
	default:
		// Answered: added images (or the late study of a failed order).
		poke = st.Study == nil || st.Study.Scored != p.imageCount(study)
	}
	if !poke {
		return
	}
	msg := nats.NewMsg(broker.OrderSubject(cmp.Or(e.Class, radgate.PriorityRoutine), p.facilityOf(st), "watch"))
	msg.Data = []byte("{}")
	msg.Header.Set(broker.HeaderOrderID, id)
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		p.log.Warn("handing a watched order to the router failed; the next look retries", "order", id, "err", err)
		return
	}
	p.log.Debug("watched order handed to the router", "order", id, "state", st.State)
}
