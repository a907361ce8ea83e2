package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate"
)

// The compressed day (issue 12): DayOrders orders through radgate serve as
// fast as it takes them, from a corpus the bench builds and stores first
// (dayMix: 10 % non-chest studies, which radgate rejects, 5 % stat orders;
// patients one to five years old), FHIR destination with the PDF report as
// configured. It reports the time until every order is terminal, latency
// percentiles (overall and stat), radgate's memory sampled every second
// (and where it stood when 1/8, 1/2 and all of the orders had finished:
// 1k, 4k and 8k of 8,000), radgate's CPU per order, the peers' memory and
// everyone's disk use.

// DayReport is the compressed day's part of the Report.
type DayReport struct {
	Orders   int `json:"orders"`
	Chest    int `json:"chest"`
	NonChest int `json:"non_chest"`
	Stat     int `json:"stat"`
	// CorpusSeconds is how long cloning and storing the corpus took (setup,
	// not timed).
	CorpusSeconds float64 `json:"corpus_seconds"`
	// Seconds runs from the first post to the last order's terminal state.
	Seconds         float64 `json:"seconds"`
	OrdersPerSecond float64 `json:"orders_per_second"`
	// Latencies: accept → terminal, every order, and the stat ones.
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	StatP50Ms float64 `json:"stat_p50_ms"`
	StatP99Ms float64 `json:"stat_p99_ms"`
	StatMaxMs float64 `json:"stat_max_ms"`
	// SlowestStat is the timeline of the slowest stat order (its history,
	// each step's time after its acceptance): where a stat order waited.
	SlowestStat []string `json:"slowest_stat,omitempty"`
	// CPU: radgate's process CPU over the day per order, per delivered
	// order, and that ÷ the bare CPU of one session.Run.
	CPUMsPerOrder     float64 `json:"cpu_ms_per_order"`
	CPUMsPerDelivered float64 `json:"cpu_ms_per_delivered"`
	CPURatio          float64 `json:"cpu_ratio"`
	// ClientCPUMsPerOrder is the bench's own CPU over the day per order
	// (posting, polling, sampling): what the client adds to the machine.
	ClientCPUMsPerOrder float64 `json:"client_cpu_ms_per_order"`
	// FHIRBytesPerResult: FHIR request bytes over the day ÷ delivered
	// results (the rejected orders' answers included in the bytes).
	FHIRBytesPerResult float64 `json:"fhir_bytes_per_result"`
	// RSS samples, one a second; RSSAtMB is radgate's RSS at the first
	// sample by which that many orders had finished.
	RSS      []RSSSample        `json:"rss"`
	RSSAtMB  map[string]float64 `json:"rss_at_finished_mb"`
	RSSMaxMB float64            `json:"rss_max_mb"`
	// The peers' memory (0 when their pid files were not found).
	FHIRServerRSSMaxMB float64 `json:"fhir_server_rss_max_mb"`
	OrthancRSSMaxMB    float64 `json:"orthanc_rss_max_mb"`
	// Disk is each party's disk use before and after the day (bytes).
	Disk map[string]DiskUse `json:"disk"`
	// Rejected are the reasons the non-chest orders were rejected with,
	// each once, with how many orders gave it.
	Rejected []string `json:"rejected_reasons"`
}

// RSSSample is one second's memory reading.
type RSSSample struct {
	Seconds   float64 `json:"t_s"`
	Finished  int     `json:"finished"`
	RadgateMB float64 `json:"radgate_mb"`
	FHIRMB    float64 `json:"fhir_server_mb,omitempty"`
	OrthancMB float64 `json:"orthanc_mb,omitempty"`
}

// DiskUse is a folder's disk use before the corpus was stored and after the
// day.
type DiskUse struct {
	Path   string `json:"path"`
	Before int64  `json:"before_bytes"`
	After  int64  `json:"after_bytes"`
}

func (r *run) day(ctx context.Context) error {
	o := r.o
	if o.DayOrders < 1 {
		return fmt.Errorf("--day-orders must be at least 1, got %d", o.DayOrders)
	}
	chest, err := r.templates(o.Samples)
	if err != nil {
		return err
	}
	other, err := r.templates(o.NonChest)
	if err != nil {
		return err
	}
	orthanc, fhirSrv := findPeers(o.PeersRun)
	if orthanc == nil || fhirSrv == nil {
		r.progress("(peer pid files not found in %q: the peers' memory and disk use are not reported)", o.PeersRun)
	}
	rep := &DayReport{Orders: o.DayOrders, RSSAtMB: map[string]float64{}, Disk: map[string]DiskUse{}}
	r.rep.Day = rep
	disk := map[string]*peer{"orthanc": orthanc, "fhir_server": fhirSrv, "radgate": {name: "radgate", data: r.dataDir}}
	for k, p := range disk {
		if p != nil {
			rep.Disk[k] = DiskUse{Path: p.data, Before: p.disk()}
		}
	}

	// Setup, not timed: the corpus (the first order warms radgate up).
	start := time.Now()
	all, err := r.corpus(ctx, chest, other, 1+o.DayOrders, dayMix)
	if err != nil {
		return err
	}
	rep.CorpusSeconds = time.Since(start).Seconds()
	if orthanc != nil {
		r.progress("  Orthanc's storage: %.0f MB (%.0f MB before the corpus)", mb(orthanc.disk()), mb(rep.Disk["orthanc"].Before))
	}
	warm, orders := all[:1], all[1:]
	for _, od := range orders {
		switch {
		case !od.Chest:
			rep.NonChest++
		case od.Stat:
			rep.Stat++
			rep.Chest++
		default:
			rep.Chest++
		}
	}
	if err := r.postAndWait(ctx, warm, 0); err != nil {
		return err
	}
	r.progress("posting the day: %d orders (%d chest, of which %d stat; %d non-chest), PDF report %v…",
		len(orders), rep.Chest, rep.Stat, rep.NonChest, o.PDFReport)

	before, err := scrape(ctx, r.radgate.URL)
	if err != nil {
		return err
	}
	cpu0, err := r.radgate.CPU()
	if err != nil {
		return err
	}
	t0, self0 := time.Now(), selfCPU()
	sampler := newSampler(r.radgate.Pid(), fhirSrv, orthanc, t0)
	sampler.start()
	defer sampler.stop()
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	postErr := make(chan error, 1)
	go func() {
		err := r.rg.postAll(dctx, orders, 4, 0)
		if err != nil {
			cancel()
		}
		postErr <- err
	}()
	lastPrint := t0
	timeout := 15*time.Minute + time.Duration(len(orders))*200*time.Millisecond
	err = r.rg.waitAll(dctx, orders, time.Second, timeout, func(done int) {
		if time.Since(lastPrint) >= 30*time.Second {
			lastPrint = time.Now()
			rss, _ := r.radgate.RSS()
			r.progress("  %s: %d of %d finished, radgate RSS %.0f MB", time.Since(t0).Round(time.Second), done, len(orders), mb(rss))
		}
	})
	if err != nil {
		cancel()
	}
	if perr := <-postErr; perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	cpu1, err := r.radgate.CPU()
	if err != nil {
		return err
	}
	self1 := selfCPU()
	after, err := scrape(ctx, r.radgate.URL)
	if err != nil {
		return err
	}
	samples := sampler.stop()

	// Every chest order delivered, every non-chest one rejected.
	var wrong []string
	delivered := 0
	for _, od := range orders {
		want := radgate.StateRejected
		if od.Chest {
			want = radgate.StateDelivered
		}
		if od.State == radgate.StateDelivered {
			delivered++
		}
		if od.State != want {
			wrong = append(wrong, fmt.Sprintf("%s (%s, %s) ended %s, want %s: %s", od.ID, od.Meta.AccessionNumber, od.Meta.BodyPartExamined, od.State, want, od.Reason))
		}
	}
	reasons := map[string]int{}
	for _, od := range orders {
		if !od.Chest {
			reasons[od.Reason]++
		}
	}
	for reason, n := range reasons {
		rep.Rejected = append(rep.Rejected, fmt.Sprintf("%d× %q", n, reason))
	}
	sort.Strings(rep.Rejected)
	if len(wrong) > 0 {
		if len(wrong) > 10 {
			wrong = append(wrong[:10], fmt.Sprintf("… and %d more", len(wrong)-10))
		}
		return fmt.Errorf("%d of %d orders did not end as they should:\n  %s", len(wrong), len(orders), strings.Join(wrong, "\n  "))
	}

	var end time.Time
	var lats, stat []float64
	for _, od := range orders {
		if od.UpdatedAt.After(end) {
			end = od.UpdatedAt
		}
		lats = append(lats, ms(od.latency()))
		if od.Stat {
			stat = append(stat, ms(od.latency()))
		}
	}
	sort.Float64s(lats)
	sort.Float64s(stat)
	elapsed := end.Sub(t0)
	rep.Seconds = elapsed.Seconds()
	rep.OrdersPerSecond = float64(len(orders)) / rep.Seconds
	rep.P50Ms, rep.P99Ms, rep.MaxMs = quantile(lats, 0.5), quantile(lats, 0.99), lats[len(lats)-1]
	if len(stat) > 0 {
		rep.StatP50Ms, rep.StatP99Ms, rep.StatMaxMs = quantile(stat, 0.5), quantile(stat, 0.99), stat[len(stat)-1]
		var slowest *order
		for _, od := range orders {
			if od.Stat && (slowest == nil || od.latency() > slowest.latency()) {
				slowest = od
			}
		}
		if rep.SlowestStat, err = timeline(ctx, r.radgate.URL, slowest.ID); err != nil {
			return err
		}
	}
	cpu := ms(cpu1 - cpu0)
	rep.CPUMsPerOrder = cpu / float64(len(orders))
	rep.ClientCPUMsPerOrder = ms(self1-self0) / float64(len(orders))
	if delivered > 0 {
		rep.CPUMsPerDelivered = cpu / float64(delivered)
		rep.FHIRBytesPerResult = (after.sum(metricFHIRSentBytes) - before.sum(metricFHIRSentBytes)) / float64(delivered)
	}
	if r.bareCPU > 0 {
		rep.CPURatio = rep.CPUMsPerDelivered / ms(r.bareCPU)
	}
	rep.RSS, rep.RSSAtMB, rep.RSSMaxMB = rssByFinished(samples, finishTimes(orders, t0), len(orders))
	for _, s := range samples {
		rep.FHIRServerRSSMaxMB = max(rep.FHIRServerRSSMaxMB, s.FHIRMB)
		rep.OrthancRSSMaxMB = max(rep.OrthancRSSMaxMB, s.OrthancMB)
	}
	for k, p := range disk {
		if d, ok := rep.Disk[k]; ok {
			d.After = p.disk()
			rep.Disk[k] = d
		}
	}
	r.printDay(rep)
	return nil
}

func (r *run) printDay(rep *DayReport) {
	p := r.progress
	p("the day: %d orders terminal in %s = %.2f orders/s (8,000 in 10 min is 13.3/s)", rep.Orders, time.Duration(rep.Seconds*float64(time.Second)).Round(100*time.Millisecond), rep.OrdersPerSecond)
	for _, reason := range rep.Rejected {
		p("  rejected as radgate says: %s", reason)
	}
	p("  latency accept→terminal: p50 %.0f ms, p99 %.0f ms, max %.0f ms; stat orders (%d): p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		rep.P50Ms, rep.P99Ms, rep.MaxMs, rep.Stat, rep.StatP50Ms, rep.StatP99Ms, rep.StatMaxMs)
	if len(rep.SlowestStat) > 0 {
		p("  the slowest stat order, step by step:")
		for _, l := range rep.SlowestStat {
			p("    %s", l)
		}
	}
	p("  radgate CPU %.1f ms/order, %.1f ms/delivered order = %.2f × bare CPU; FHIR %.0f kB sent/result; the bench client %.1f CPU-ms/order",
		rep.CPUMsPerOrder, rep.CPUMsPerDelivered, rep.CPURatio, rep.FHIRBytesPerResult/1000, rep.ClientCPUMsPerOrder)
	var at []string
	for _, k := range sortedKeysByNumber(rep.RSSAtMB) {
		at = append(at, fmt.Sprintf("%s finished %.0f MB", k, rep.RSSAtMB[k]))
	}
	p("  radgate RSS: %s; max %.0f MB (%d samples, one a second)", strings.Join(at, ", "), rep.RSSMaxMB, len(rep.RSS))
	if rep.FHIRServerRSSMaxMB > 0 || rep.OrthancRSSMaxMB > 0 {
		p("  peers' RSS, max: FHIR server %.0f MB, Orthanc %.0f MB", rep.FHIRServerRSSMaxMB, rep.OrthancRSSMaxMB)
	}
	for _, k := range []string{"orthanc", "fhir_server", "radgate"} {
		if d, ok := rep.Disk[k]; ok {
			p("  disk %-11s %8.0f MB (+%.0f MB for the corpus and the day) %s", k, mb(d.After), mb(d.After-d.Before), d.Path)
		}
	}
}

// finishTimes are the orders' terminal times after t0, sorted.
func finishTimes(orders []*order, t0 time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(orders))
	for _, od := range orders {
		out = append(out, od.UpdatedAt.Sub(t0))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// rssByFinished fills in each sample's finished count (orders terminal by
// its time, from radgate's own timestamps) and reads radgate's RSS at the
// first sample by which n/8, n/2 and n orders had finished (1k, 4k and 8k
// of 8,000), and the largest.
func rssByFinished(samples []RSSSample, done []time.Duration, n int) ([]RSSSample, map[string]float64, float64) {
	at := map[string]float64{}
	maxMB := 0.0
	marks := []int{n / 8, n / 2, n}
	for i := range samples {
		t := time.Duration(samples[i].Seconds * float64(time.Second))
		samples[i].Finished = sort.Search(len(done), func(j int) bool { return done[j] > t })
		maxMB = max(maxMB, samples[i].RadgateMB)
		for _, m := range marks {
			k := fmt.Sprint(m)
			if _, ok := at[k]; !ok && m > 0 && samples[i].Finished >= m {
				at[k] = samples[i].RadgateMB
			}
		}
	}
	return samples, at, maxMB
}

func sortedKeysByNumber(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
	return keys
}

// sampler reads the processes' resident memory once a second.
type sampler struct {
	pid           int
	fhir, orthanc *peer
	t0            time.Time
	mu            sync.Mutex
	samples       []RSSSample
	quit, done    chan struct{}
	stopped       sync.Once
}

func newSampler(pid int, fhir, orthanc *peer, t0 time.Time) *sampler {
	return &sampler{pid: pid, fhir: fhir, orthanc: orthanc, t0: t0, quit: make(chan struct{}), done: make(chan struct{})}
}

func (s *sampler) start() {
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s.take()
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
}

func (s *sampler) take() {
	rss, err := procRSS(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, RSSSample{Seconds: time.Since(s.t0).Seconds(), RadgateMB: mb(rss),
		FHIRMB: mb(s.fhir.rss()), OrthancMB: mb(s.orthanc.rss())})
}

// stop ends the sampling with one last sample and returns them all; later
// calls return the same.
func (s *sampler) stop() []RSSSample {
	s.stopped.Do(func() {
		close(s.quit)
		<-s.done
		s.take()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// timeline reads an order's history from radgate (GET /orders/{id}/history)
// and writes each step with its time after the first.
func timeline(ctx context.Context, base, id string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/orders/"+url.PathEscape(id)+"/history", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the history of order %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the history of order %s: HTTP %d", id, resp.StatusCode)
	}
	var hist []radgate.HistoryEntry
	if err := json.NewDecoder(resp.Body).Decode(&hist); err != nil {
		return nil, fmt.Errorf("reading the history of order %s: %w", id, err)
	}
	var out []string
	for _, h := range hist {
		what := string(h.Event) + " → " + string(h.To)
		switch {
		case h.Destination != "":
			what = h.Engine + " → " + h.Destination + ": " + what
		case h.Engine != "":
			what = h.Engine + ": " + what
		}
		out = append(out, fmt.Sprintf("+%7.1f s  %s", h.At.Sub(hist[0].At).Seconds(), what))
	}
	return out, nil
}
