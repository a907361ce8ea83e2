package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/internal/testenv"
)

// simJobs is the link subject a simulated facility publishes its jobs on
// (allowed by its permissions: radgate.link.<F>.jobs.>). The hub stores
// them in streamSimJobs, R3 like RADGATE_JOBS: the stand-in for a real
// edge's jobs, which the hub's RADGATE_JOBS source delivers on
// radgate.link.<F>.jobs.S.<id> (one token more, so not in that stream).
// (A subject mapping into RADGATE_JOBS would not do: nats-server checks a
// client's publish permission on the mapped subject.)
func simJobs(facility string) string { return broker.LinkPrefix(facility) + ".jobs.sim" }

// streamSimJobs holds them (simJobsAll: every site's).
const (
	streamSimJobs = "LOADTEST_SIM_JOBS"
	simJobsAll    = "radgate.link.*.jobs.sim"
)

// simFacility reads the facility token of a simJobs subject.
func simFacility(subject string) (string, bool) {
	t := strings.Split(subject, ".")
	if len(t) != 5 || t[2] == "" {
		return "", false
	}
	return t[2], true
}

// rigOptions say how big a run is.
type rigOptions struct {
	// Facilities is the number of facilities n; Edges of them (the first)
	// are real leaf-node edges, the others simulated clients.
	Facilities, Edges int
	// Orders are sent at Rate a second, facility k % n for the k-th.
	Orders int
	Rate   float64
	// Workers is the number of Consume loops of the hub's stand-in for
	// the inference stage.
	Workers int
}

// rig is one load run's hub, sites and bookkeeping.
type rig struct {
	tb      testing.TB
	o       rigOptions
	cluster *testenv.NATSCluster
	dir     string
	sc      *broker.SiteConfig
	hubNC   *nats.Conn
	hubJS   jetstream.JetStream
	sites   []*site

	mu       sync.Mutex
	sent     map[string]sentOrder // order → when and where
	latency  map[string]time.Duration
	results  map[string]int // order → results received at its site
	foreign  []string       // results a site got that were not its own
	asyncErr []string       // errors the sites' connections reported
	// consumeErr are the errors the hub's stand-in workers' Consume
	// reported (no responders, missed heartbeats), with their time.
	consumeErr []string
	scored     atomic.Int64
	taken      map[string]time.Time // order → when the hub's worker took its job
}

type sentOrder struct {
	at   time.Time
	site int
}

// site is one facility: a simulated client (nc, js) or a real edge (edge).
type site struct {
	idx      int
	facility string
	nc       *nats.Conn // simulated: the site's connection to the hub
	js       jetstream.JetStream
	edge     *edge
}

// edge is a real leaf-node edge: an embedded nats-server in its own domain.
type edge struct {
	srv *broker.EmbeddedServer
	nc  *nats.Conn
	js  jetstream.JetStream
}

func facilityName(i int) string { return fmt.Sprintf("fac-%04d", i) }

// newRig generates the hub's and every facility's credential as radgate
// sites nats-config does, starts the hub with that authorization (and the
// link mapping of the simulated sites' jobs), declares radgate's topology
// (R3) and starts the hub's stand-in inference stage. Sites come with
// connectSites.
func newRig(tb testing.TB, o rigOptions) *rig {
	tb.Helper()
	r := &rig{tb: tb, o: o, dir: tb.TempDir(), sent: map[string]sentOrder{}, latency: map[string]time.Duration{},
		results: map[string]int{}, taken: map[string]time.Time{}}
	facilities := make([]string, o.Facilities)
	for i := range facilities {
		facilities[i] = facilityName(i)
	}
	var err error
	r.sc, err = broker.GenerateSites(r.dir, facilities, "127.0.0.1:7422")
	must(tb, err)
	r.cluster = testenv.StartNATSClusterWith(tb, testenv.NATSClusterOptions{Size: 3, Leaf: true,
		Config: r.sc.NodeConfig})
	r.hubNC, err = broker.Connect(r.cluster.ClientURLs(), broker.HubCredentialPath(r.dir), nil)
	must(tb, err)
	tb.Cleanup(r.hubNC.Close)
	// Just after the nodes report healthy, the meta leader may still count
	// a peer offline ("no suitable peers for placement", seen once in
	// about fifteen starts): declaring R3 is retried for a while.
	var topo *broker.Topology
	deadline := time.Now().Add(30 * time.Second)
	for {
		topo, err = broker.EnsureTopologyOn(tb.Context(), r.hubNC, broker.DefaultRetention(),
			broker.Cluster{Replicas: 3, PublishRetry: 30 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "no suitable peers") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	must(tb, err)
	r.hubJS = topo.JS
	must(tb, retry(tb, func() error {
		_, err := r.hubJS.CreateStream(tb.Context(), jetstream.StreamConfig{Name: streamSimJobs, Subjects: []string{simJobsAll},
			Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy, Replicas: 3, Duplicates: broker.DuplicateWindow})
		return err
	}))
	r.startInference(broker.StreamJobs, broker.SubjectJobs+">", broker.FacilityOfSubject)
	r.startInference(streamSimJobs, simJobsAll, simFacility)
	return r
}

// retry runs f again while JetStream is briefly unavailable (a leader
// being elected just after the cluster started), for at most 30 s.
func retry(tb testing.TB, f func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil || !broker.IsUnavailable(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-tb.Context().Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// startInference consumes the hub's RADGATE_JOBS (or the simulated sites'
// jobs) as the inference stage does and files one result per job on the
// hub's RADGATE_RESULTS (no model is run).
func (r *rig) startInference(stream, filter string, facilityOf func(string) (string, bool)) {
	ctx := r.tb.Context()
	var cons jetstream.Consumer
	must(r.tb, retry(r.tb, func() (err error) {
		cons, err = r.hubJS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "inference", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: filter,
			AckWait: 30 * time.Second, MaxAckPending: 20_000,
		})
		return err
	}))
	for range max(r.o.Workers, 1) {
		cc, err := cons.Consume(func(m jetstream.Msg) {
			order := m.Headers().Get(broker.HeaderOrderID)
			r.mu.Lock()
			if _, ok := r.taken[order]; !ok {
				r.taken[order] = time.Now()
			}
			r.mu.Unlock()
			fac, ok := facilityOf(m.Subject())
			if !ok || order == "" {
				r.fail("job %q on %s: no facility or order", order, m.Subject())
				_ = m.Term()
				return
			}
			out := nats.NewMsg(broker.ResultSubject("fhir", "routine", fac, "e1"))
			out.Header.Set(broker.HeaderOrderID, order)
			out.Data = []byte(order)
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := r.hubJS.PublishMsg(pctx, out, jetstream.WithMsgID("result."+order)); err != nil {
				_ = m.NakWithDelay(time.Second)
				return
			}
			r.scored.Add(1)
			_ = m.Ack()
		}, jetstream.PullMaxMessages(64), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// Logged, not failed: a pull answered "no responders" or a
			// missed heartbeat is what the trace looks for.
			r.mu.Lock()
			r.consumeErr = append(r.consumeErr, fmt.Sprintf("%s %s: %v", time.Now().UTC().Format("15:04:05.000"), stream, err))
			r.mu.Unlock()
		}))
		must(r.tb, err)
		r.tb.Cleanup(cc.Stop)
	}
}

func (r *rig) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asyncErr = append(r.asyncErr, fmt.Sprintf(format, args...))
}

// connectSites starts the real edges and connects every simulated site,
// 16 at a time, each to one hub node in turn (as a site's edge would be
// given one).
func (r *rig) connectSites() {
	tb := r.tb
	r.sites = make([]*site, r.o.Facilities)
	var edges []string
	for i := range r.o.Facilities {
		r.sites[i] = &site{idx: i, facility: facilityName(i)}
		if i < r.o.Edges {
			edges = append(edges, facilityName(i))
		}
	}
	for i := range r.o.Edges {
		r.startEdge(r.sites[i], r.cluster.Nodes[i%len(r.cluster.Nodes)].LeafURL())
	}
	if len(edges) > 0 {
		must(tb, broker.EnsureHubSources(tb.Context(), r.hubJS, edges))
	}
	sem := make(chan struct{}, 16)
	errs := make(chan error, r.o.Facilities)
	var wg sync.WaitGroup
	for _, s := range r.sites[r.o.Edges:] {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.connectSim(s); err != nil {
				errs <- fmt.Errorf("%s: %w", s.facility, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// startEdge starts s as a real edge: an embedded nats-server, leaf node of
// the hub node at leafURL with the site's credential, radgate's edge
// topology, the source of its results and a consumer of them (its
// delivery stage).
func (r *rig) startEdge(s *site, leafURL string) {
	tb := r.tb
	e := &edge{}
	var err error
	o := broker.EmbeddedOptions{
		StoreDir: tb.TempDir(), Host: "127.0.0.1", Port: -1,
		ServerName: broker.EdgeDomain(s.facility), Domain: broker.EdgeDomain(s.facility),
		Leaf: &broker.LeafRemote{URLs: []string{leafURL}, Credential: r.sc.Sites[s.facility],
			ReconnectWait: 250 * time.Millisecond},
	}
	if dir := os.Getenv(testenv.NATSLogDirEnv); dir != "" {
		// The edge's nats-server log at debug beside the hub nodes'.
		must(tb, os.MkdirAll(dir, 0o755))
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(tb.Name(), "/", "_")+"-"+o.ServerName+".log"))
		must(tb, err)
		tb.Cleanup(func() { _ = f.Close() })
		o.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.LogDebug = true
	}
	e.srv, err = broker.StartEmbeddedWith(o)
	must(tb, err)
	tb.Cleanup(e.srv.Shutdown)
	must(tb, e.srv.WaitLeaf(15*time.Second))
	e.nc, err = broker.Connect(e.srv.ClientURL(), "", nil, e.srv.InProcess())
	must(tb, err)
	tb.Cleanup(e.nc.Close)
	topo, err := broker.EnsureTopologyOn(tb.Context(), e.nc, broker.DefaultRetention(), broker.Cluster{Edge: true})
	must(tb, err)
	e.js = topo.JS
	must(tb, broker.EnsureEdgeSource(tb.Context(), e.js, s.facility))
	cons, err := e.js.CreateOrUpdateConsumer(tb.Context(), broker.StreamResults, jetstream.ConsumerConfig{
		Durable: "deliver-fhir", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: broker.SubjectResults + ">",
	})
	must(tb, err)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r.arrived(s, m.Headers().Get(broker.HeaderOrderID), m.Subject())
		_ = m.Ack()
	})
	must(tb, err)
	tb.Cleanup(cc.Stop)
	s.edge = e
}

// connectSim connects simulated site s with its own credential, its reply
// inboxes under its own results link (a site may not subscribe to _INBOX),
// and creates its results consumer on the hub as an edge's results source
// does (broker.EdgeResultsSource; nats-server's setupSourceConsumer).
func (r *rig) connectSim(s *site) error {
	node := r.cluster.Nodes[s.idx%len(r.cluster.Nodes)]
	link := broker.LinkPrefix(s.facility)
	nc, err := broker.Connect(node.ClientURL(), "", nil, r.sc.Sites[s.facility].Option(),
		nats.Name("site "+s.facility), nats.CustomInboxPrefix(link+".results._INBOX"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			r.fail("%s: %v", s.facility, err)
		}))
	if err != nil {
		return err
	}
	r.tb.Cleanup(nc.Close)
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		return err
	}
	deliver := link + ".results.S.sim"
	if _, err := nc.Subscribe(deliver, func(m *nats.Msg) {
		if m.Header.Get("Status") == "100" { // heartbeat, or flow control (with a reply)
			if m.Reply != "" {
				_ = m.Respond(nil)
			}
			return
		}
		r.arrived(s, m.Header.Get(broker.HeaderOrderID), m.Subject)
	}); err != nil {
		return err
	}
	req, _ := json.Marshal(map[string]any{
		"stream_name": broker.StreamResults,
		"config": map[string]any{
			"name": "sim-" + broker.Token(s.facility), "deliver_subject": deliver, "filter_subject": broker.ResultsFilter(s.facility),
			"deliver_policy": "all", "ack_policy": "none", "max_deliver": 1, "flow_control": true, "direct": true,
			"idle_heartbeat": time.Second, "inactive_threshold": 30 * time.Second, "ack_wait": 22 * time.Hour,
		},
	})
	subj := fmt.Sprintf("$JS.%s.API.CONSUMER.CREATE.%s.sim-%s.%s", broker.HubDomain, broker.StreamResults,
		broker.Token(s.facility), broker.ResultsFilter(s.facility))
	var resp *nats.Msg
	for attempt := 0; ; attempt++ {
		// A direct consumer is created by the stream's leader only.
		resp, err = nc.Request(subj, req, 10*time.Second)
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("creating its results consumer: %w", err)
	}
	var cr struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &cr); err != nil {
		return fmt.Errorf("creating its results consumer: %w", err)
	}
	if cr.Error != nil {
		return fmt.Errorf("creating its results consumer: %s", cr.Error.Description)
	}
	return nil
}

// arrived records a result at site s.
func (r *rig) arrived(s *site, order, subject string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if fac, _ := broker.FacilityOfSubject(subject); fac != broker.Token(s.facility) {
		r.foreign = append(r.foreign, s.facility+" got "+subject)
		return
	}
	r.results[order]++
	if so, ok := r.sent[order]; ok && r.results[order] == 1 {
		r.latency[order] = now.Sub(so.at)
	}
}

// send files order k for facility k % n: at a real edge, in its own
// JetStream; a simulated site, on its link subject on the hub.
func (r *rig) send(ctx context.Context, k int) error {
	s := r.sites[k%len(r.sites)]
	order := fmt.Sprintf("%s-%06d", s.facility, k)
	subject, js := simJobs(s.facility), s.js
	if s.edge != nil {
		subject, js = broker.JobSubject("routine", s.facility, "e1"), s.edge.js
	}
	m := nats.NewMsg(subject)
	m.Header.Set(broker.HeaderOrderID, order)
	m.Data = []byte(order)
	r.mu.Lock()
	r.sent[order] = sentOrder{at: time.Now(), site: s.idx}
	r.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := js.PublishMsg(pctx, m, jetstream.WithMsgID("job."+order))
	if err != nil {
		return fmt.Errorf("order %s at %s: %w", order, s.facility, err)
	}
	return nil
}

// runLoad sends the orders at the rate (open loop: each in its own
// goroutine, so a slow acknowledgement does not slow the sender) and waits
// until every result arrived or within passed after the last send.
func (r *rig) runLoad(within time.Duration) loadFigures {
	ctx := r.tb.Context()
	interval := time.Duration(float64(time.Second) / r.o.Rate)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, r.o.Orders)
	for k := range r.o.Orders {
		if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.send(ctx, k); err != nil {
				errs <- err
			}
		}()
	}
	sentIn := time.Since(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		r.fail("%v", err)
	}
	// Until every result arrived, within passed, or none came for 30 s.
	deadline, last, lastAt := time.Now().Add(within), -1, time.Now()
	for {
		r.mu.Lock()
		done := len(r.latency)
		r.mu.Unlock()
		if done != last {
			last, lastAt = done, time.Now()
		}
		if done >= r.o.Orders || time.Now().After(deadline) || time.Since(lastAt) > 30*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r.figures(start, sentIn)
}

// loadFigures are one run's order figures.
type loadFigures struct {
	Orders, Done, Doubled, Foreign int
	Offered, Sent, Sustained       float64 // orders/s
	P50, P99, Max                  time.Duration
	SiteP95Median, SiteP95Max      time.Duration
	SitesMeasured, PerSite         int
	EdgeP50                        time.Duration // the real edges' orders
	// The real edges' and the simulated sites' orders, p50 of each leg:
	// sent → the hub's worker took the job, took → result at the site.
	EdgeToHub, EdgeBack, SimToHub, SimBack time.Duration
}

func (r *rig) figures(start time.Time, sentIn time.Duration) loadFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := loadFigures{Orders: r.o.Orders, Done: len(r.latency), Foreign: len(r.foreign), Offered: r.o.Rate,
		Sent: float64(r.o.Orders) / sentIn.Seconds(), PerSite: r.o.Orders / r.o.Facilities}
	var all, edges, edgeTo, edgeBack, simTo, simBack []time.Duration
	perSite := map[int][]time.Duration{}
	var last time.Time
	for order, l := range r.latency {
		so := r.sent[order]
		all = append(all, l)
		perSite[so.site] = append(perSite[so.site], l)
		to, back := r.taken[order].Sub(so.at), so.at.Add(l).Sub(r.taken[order])
		if so.site < r.o.Edges {
			edges = append(edges, l)
			edgeTo, edgeBack = append(edgeTo, to), append(edgeBack, back)
		} else {
			simTo, simBack = append(simTo, to), append(simBack, back)
		}
		if at := so.at.Add(l); at.After(last) {
			last = at
		}
	}
	for _, n := range r.results {
		if n > 1 {
			f.Doubled++
		}
	}
	if len(all) == 0 {
		return f
	}
	f.Sustained = float64(len(all)) / last.Sub(start).Seconds()
	f.P50, f.P99, f.Max = quantile(all, 0.50), quantile(all, 0.99), quantile(all, 1)
	f.EdgeP50 = quantile(edges, 0.5)
	f.EdgeToHub, f.EdgeBack = quantile(edgeTo, 0.5), quantile(edgeBack, 0.5)
	f.SimToHub, f.SimBack = quantile(simTo, 0.5), quantile(simBack, 0.5)
	var p95s []time.Duration
	for _, ls := range perSite {
		p95s = append(p95s, quantile(ls, 0.95))
	}
	f.SitesMeasured = len(p95s)
	f.SiteP95Median, f.SiteP95Max = quantile(p95s, 0.5), quantile(p95s, 1)
	return f
}

// quantile is the nearest-rank q-quantile of ds (0 for none).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// nodeStats is one hub node's resources as its monitoring endpoints say.
type nodeStats struct {
	Node          string
	Mem           int64   // /varz mem: resident bytes
	CPU           float64 // /varz cpu: percent of a core
	Conns, Leafs  int     // /varz connections, leafnodes
	Subs          int     // /varz subscriptions (= /subsz num_subscriptions)
	SubsCache     int     // /subsz num_cache
	Streams       int     // /jsz streams on this node
	Consumers     int     // /jsz consumers on this node
	APITotal      int64   // /jsz api.total
	InMsgs, OutMs int64   // /varz in_msgs, out_msgs
}

var monitor = &http.Client{Timeout: 10 * time.Second}

func getJSON(url string, v any) error {
	resp, err := monitor.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(url + ": " + resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// stats reads every hub node's /varz, /jsz and /subsz.
func (r *rig) stats() []nodeStats {
	var out []nodeStats
	for _, n := range r.cluster.Nodes {
		base := fmt.Sprintf("http://127.0.0.1:%d", n.HTTP)
		var v struct {
			Mem         int64   `json:"mem"`
			CPU         float64 `json:"cpu"`
			Connections int     `json:"connections"`
			Leafnodes   int     `json:"leafnodes"`
			Subs        int     `json:"subscriptions"`
			InMsgs      int64   `json:"in_msgs"`
			OutMsgs     int64   `json:"out_msgs"`
		}
		var j struct {
			Streams   int `json:"streams"`
			Consumers int `json:"consumers"`
			API       struct {
				Total int64 `json:"total"`
			} `json:"api"`
		}
		var s struct {
			Subs  int `json:"num_subscriptions"`
			Cache int `json:"num_cache"`
		}
		must(r.tb, getJSON(base+"/varz", &v))
		must(r.tb, getJSON(base+"/jsz", &j))
		must(r.tb, getJSON(base+"/subsz", &s))
		out = append(out, nodeStats{Node: n.Name, Mem: v.Mem, CPU: v.CPU, Conns: v.Connections, Leafs: v.Leafnodes,
			Subs: s.Subs, SubsCache: s.Cache, Streams: j.Streams, Consumers: j.Consumers, APITotal: j.API.Total,
			InMsgs: v.InMsgs, OutMs: v.OutMsgs})
	}
	return out
}

// total sums the nodes' figures (CPU too: percent of a core, all nodes).
func total(ns []nodeStats) nodeStats {
	t := nodeStats{Node: "all"}
	for _, n := range ns {
		t.Mem += n.Mem
		t.CPU += n.CPU
		t.Conns += n.Conns
		t.Leafs += n.Leafs
		t.Subs += n.Subs
		t.SubsCache += n.SubsCache
		t.Streams += n.Streams
		t.Consumers += n.Consumers
		t.APITotal += n.APITotal
		t.InMsgs += n.InMsgs
		t.OutMs += n.OutMs
	}
	return t
}

func (n nodeStats) String() string {
	return fmt.Sprintf("%s: mem %.1f MiB, cpu %.0f%%, conns %d, leafs %d, subs %d (cache %d), streams %d, consumers %d, api %d",
		n.Node, float64(n.Mem)/(1<<20), n.CPU, n.Conns, n.Leafs, n.Subs, n.SubsCache, n.Streams, n.Consumers, n.APITotal)
}

func logStats(tb testing.TB, when string, ns []nodeStats) {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString("\n  " + n.String())
	}
	b.WriteString("\n  " + total(ns).String())
	tb.Logf("hub %s:%s", when, b.String())
}

// linkMsgs is what crossed the real edges' leaf links (msgs both ways),
// as the hub nodes' /leafz count them.
func (r *rig) linkMsgs() int64 {
	lz, err := r.cluster.Leafz()
	must(r.tb, err)
	var n int64
	for _, l := range lz {
		n += l.InMsgs + l.OutMsgs
	}
	return n
}

// sourceState is the hub's RADGATE_JOBS sources: how many, how many
// active (a message or heartbeat seen lately) and how many in error.
func (r *rig) sourceState() (sources, active, failing int) {
	ctx, cancel := context.WithTimeout(r.tb.Context(), 30*time.Second)
	defer cancel()
	s, err := r.hubJS.Stream(ctx, broker.StreamJobs)
	must(r.tb, err)
	info, err := s.Info(ctx)
	must(r.tb, err)
	for _, si := range info.Sources {
		sources++
		if si.Error != nil {
			failing++
		} else if si.Active > 0 && si.Active < 5*time.Second {
			active++
		}
	}
	return sources, active, failing
}

// linkSources describes the real edges' link sources: the hub's
// RADGATE_JOBS sources and each edge's RADGATE_RESULTS source.
func (r *rig) linkSources() string {
	ctx, cancel := context.WithTimeout(r.tb.Context(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	show := func(who string, js jetstream.JetStream, stream string) {
		b.WriteString(testenv.DescribeSources(ctx, who, js, stream, 4))
	}
	show("hub", r.hubJS, broker.StreamJobs)
	for _, s := range r.sites[:r.o.Edges] {
		show(s.facility, s.edge.js, broker.StreamResults)
	}
	return b.String()
}
