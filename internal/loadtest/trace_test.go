package loadtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/broker"
)

// traceEnv, set (to anything; a duration: how long a source may be
// silent before it is noted, 1.5 s otherwise), makes a run trace its link
// sources from the sites' connection to the load's end (traceSources) and
// log the real edges' orders by the second they were sent (logTimeline):
// for diagnosing a stalled link by hand, with testenv.NATSLogDirEnv for
// the servers' debug logs.
const traceEnv = "RADGATE_LOAD_TRACE"

// traceSources samples, every 250 ms until stop is closed, the hub's
// RADGATE_JOBS sources and leaders and each real edge's RADGATE_RESULTS
// source, and the hub worker's consumer, and logs a line when a leader
// changes, a source has been silent over 1.5 s (no message or heartbeat:
// Active; see traceEnv) or never heard from (Active < 0) or reports an
// error, with its consumers at the origin, when the worker has no pull
// waiting, and every 2 s the worst source.
func (r *rig) traceSources(stop <-chan struct{}, t0 time.Time) {
	tb := r.tb
	ctx := tb.Context()
	leaders := map[string]string{}
	lastLine := time.Time{}
	info := func(js jetstream.JetStream, stream string) *jetstream.StreamInfo {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := js.Stream(c, stream)
		if err != nil {
			return nil
		}
		i, err := s.Info(c)
		if err != nil {
			return nil
		}
		return i
	}
	silent := 1500 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv(traceEnv)); err == nil {
		silent = d
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		at := time.Since(t0).Seconds()
		var notes []string
		worst, worstWho := time.Duration(0), ""
		var lag uint64
		var jobs string
		// see notes a silent source, with the sourcing consumers at the
		// other end (on origin's stream): bound (interest in its deliver
		// subject seen), delivered, pending.
		see := func(who string, si *jetstream.StreamSourceInfo, origin *edge, stream string) {
			lag += si.Lag
			if si.Active > worst {
				worst, worstWho = si.Active, who
			}
			if si.Active < 0 || si.Active > silent || si.Error != nil {
				active := "never"
				if si.Active >= 0 {
					active = si.Active.Round(time.Millisecond).String()
				}
				notes = append(notes, fmt.Sprintf("%s active %s lag %d err %v: %s", who, active,
					si.Lag, si.Error, r.sourcingConsumers(origin, stream, si.FilterSubject)))
			}
		}
		for _, stream := range []string{broker.StreamJobs, broker.StreamResults} {
			i := info(r.hubJS, stream)
			if i == nil {
				notes = append(notes, "hub "+stream+": no info")
				continue
			}
			if i.Cluster != nil && i.Cluster.Leader != leaders[stream] {
				notes = append(notes, fmt.Sprintf("hub %s leader %q → %q", stream, leaders[stream], i.Cluster.Leader))
				leaders[stream] = i.Cluster.Leader
			}
			if stream == broker.StreamJobs {
				// The hub's worker: jobs stored and not taken, its pull
				// requests waiting at the consumer's leader.
				c, cancel := context.WithTimeout(ctx, 2*time.Second)
				ci, err := r.hubJS.Consumer(c, broker.StreamJobs, "inference")
				cancel()
				var cinfo string
				if err != nil {
					cinfo = err.Error()
				} else {
					in := ci.CachedInfo()
					cinfo = fmt.Sprintf("leader %s, pending %d, ack pending %d, pulls waiting %d", in.Cluster.Leader,
						in.NumPending, in.NumAckPending, in.NumWaiting)
					if in.NumWaiting == 0 {
						notes = append(notes, "hub inference consumer "+cinfo)
					}
				}
				jobs = fmt.Sprintf("hub RADGATE_JOBS %d msgs, inference consumer %s", i.State.Msgs, cinfo)
				for _, si := range i.Sources {
					f, _ := broker.FacilityOfSubject(strings.ReplaceAll(si.FilterSubject, "*", "routine"))
					for _, s := range r.sites[:r.o.Edges] {
						if broker.Token(s.facility) == f {
							see("hub←"+f, si, s.edge, broker.StreamJobs)
						}
					}
				}
			}
		}
		for _, s := range r.sites[:r.o.Edges] {
			i := info(s.edge.js, broker.StreamResults)
			if i == nil {
				notes = append(notes, s.facility+" "+broker.StreamResults+": no info")
				continue
			}
			for _, si := range i.Sources {
				see(s.facility+"←hub", si, nil, broker.StreamResults)
			}
			if ls, err := s.edge.srv.LeafLinks(); err == nil && len(ls) == 0 {
				notes = append(notes, s.facility+": no leaf link")
			}
		}
		if len(notes) > 0 || time.Since(lastLine) >= 2*time.Second {
			lastLine = time.Now()
			tb.Logf("trace %6.2fs: worst source %s active %v, total lag %d; %s; %s", at, worstWho,
				worst.Round(time.Millisecond), lag, jobs, strings.Join(notes, "; "))
		}
	}
}

// sourcingConsumers describes the sourcing (direct) consumers filtered
// on filter on stream at a source's origin, as the origin's /jsz reports
// them: the hub nodes (edge nil) or an edge. Bound means the origin sees
// interest in the consumer's deliver subject.
func (r *rig) sourcingConsumers(e *edge, stream, filter string) string {
	opts := &server.JSzOptions{Accounts: true, Streams: true, Consumer: true, DirectConsumer: true, Config: true}
	var infos []*server.JSInfo
	if e != nil {
		i, err := e.srv.Jsz(opts)
		if err != nil {
			return err.Error()
		}
		infos = append(infos, i)
	} else {
		for _, n := range r.cluster.Nodes {
			var i server.JSInfo
			if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=1&streams=1&consumers=1&direct-consumers=1&config=1", n.HTTP), &i); err != nil {
				return err.Error()
			}
			infos = append(infos, &i)
		}
	}
	var b strings.Builder
	for _, i := range infos {
		for _, a := range i.AccountDetails {
			for _, sd := range a.Streams {
				if sd.Name != stream {
					continue
				}
				for _, ci := range sd.DirectConsumer {
					if ci.Config == nil || ci.Config.FilterSubject != filter {
						continue
					}
					fmt.Fprintf(&b, "[%s on %s bound %v delivered %d/%d pending %d created %s ago deliver %s]", ci.Name, i.ID[:6],
						ci.PushBound, ci.Delivered.Consumer, ci.Delivered.Stream, ci.NumPending,
						time.Since(ci.Created).Round(time.Millisecond), ci.Config.DeliverSubject)
				}
			}
		}
	}
	if b.Len() == 0 {
		return "no sourcing consumer at the origin"
	}
	return b.String()
}

// startTrace starts traceSources when traceEnv is set; the returned func
// stops it and waits.
func (r *rig) startTrace(t0 time.Time) func() {
	if os.Getenv(traceEnv) == "" {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.traceSources(stop, t0) }()
	end := sync.OnceFunc(func() { close(stop); wg.Wait() })
	r.tb.Cleanup(end) // before the test ends, whatever stops it
	return end
}

// logTimeline logs, when traceEnv is set, the real edges' orders by the
// second (since t0) they were sent: how many, and each leg's worst (sent
// → job taken on the hub, taken → result at the edge).
func (r *rig) logTimeline(t0 time.Time) {
	if os.Getenv(traceEnv) == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	type sec struct {
		n, missing   int
		toMax, backM time.Duration
	}
	secs := map[int]*sec{}
	for order, so := range r.sent {
		if so.site >= r.o.Edges {
			continue
		}
		k := int(so.at.Sub(t0).Seconds())
		if secs[k] == nil {
			secs[k] = &sec{}
		}
		b := secs[k]
		b.n++
		l, ok := r.latency[order]
		taken, took := r.taken[order]
		if !ok || !took {
			b.missing++
			continue
		}
		b.toMax = max(b.toMax, taken.Sub(so.at))
		b.backM = max(b.backM, so.at.Add(l).Sub(taken))
	}
	keys := make([]int, 0, len(secs))
	for k := range secs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		s := secs[k]
		fmt.Fprintf(&b, "\n  %3ds: %3d orders, %d without result; worst edge → hub %v, hub → edge %v", k, s.n, s.missing,
			s.toMax.Round(time.Millisecond), s.backM.Round(time.Millisecond))
	}
	r.tb.Logf("the real edges' orders by the second they were sent:%s", b.String())
}
