package governance

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/evaluation"
)

// EngineReference is what live monitoring compares an engine with, from its
// manifest (radgate serve reads it from model.yaml).
type EngineReference struct {
	// Dataset, N and Counts are the manifest's reference: the validation
	// scores in len(Counts) equal-width probability bins over [0, 1].
	Dataset string `json:"dataset,omitempty"`
	N       int    `json:"n,omitempty"`
	Counts  []int  `json:"counts,omitempty"`
	// Mark is the threshold the engine calls the finding from (the
	// manifest's thresholds.mark): the AI's call that a label agrees or
	// disagrees with.
	Mark float64 `json:"mark"`
	// ValidationAccuracy is the manifest's validation accuracy: 1 − it is
	// the reference disagreement rate when the facility has no acceptance
	// evaluation.
	ValidationAccuracy float64 `json:"validation_accuracy,omitempty"`
}

// distribution is r's reference as evaluation wants it (nil without one).
func (r EngineReference) distribution() *evaluation.ReferenceDistribution {
	if len(r.Counts) < 2 || r.N < 1 {
		return nil
	}
	d := &evaluation.ReferenceDistribution{}
	for i := 0; i <= len(r.Counts); i++ {
		d.Edges = append(d.Edges, float64(i)/float64(len(r.Counts)))
	}
	for _, c := range r.Counts {
		d.Proportions = append(d.Proportions, float64(c)/float64(r.N))
	}
	if d.Validate() != nil {
		return nil
	}
	return d
}

// Monitor is an engine's live figures at one facility over a window: from
// every result recorded, the tier mix, the score histogram against the
// manifest's reference, its PSI and the input mix; from the labels, the
// agreement, AUC, sensitivity and specificity at each tier and the
// calibration; and a daily series of both.
type Monitor struct {
	Facility string `json:"facility"`
	Engine   string `json:"engine"`
	// Version is the model version measured ("" for all, Versions naming
	// those seen).
	Version  string   `json:"version,omitempty"`
	Versions []string `json:"versions"`
	From     string   `json:"from"`
	To       string   `json:"to"`

	// Results counts the results recorded in the window; Scored those with
	// a probability (OutOfScope of them scored in shadow outside the
	// intended use); NotScored the rest (not applicable, failed).
	Results    int `json:"results"`
	Scored     int `json:"scored"`
	OutOfScope int `json:"out_of_scope"`
	NotScored  int `json:"not_scored"`

	TierMix []evaluation.TierShare `json:"tier_mix"`
	// Reference is the manifest's; Histogram counts the window's scores in
	// its bins (10 equal-width bins when there is none).
	Reference *EngineReference `json:"reference,omitempty"`
	Histogram []int            `json:"histogram"`
	// PSI of the window's scores against the reference (nil without a
	// reference or scores).
	PSI *evaluation.PSIResult `json:"psi,omitempty"`
	// Inputs count the results by modality, manufacturer and age band.
	Inputs InputMix `json:"inputs"`

	// Labelled counts the results with a verdict that says whether the AI
	// was right (finding present or absent, or the reader's agree or
	// disagree); Disagreeing of them disagreed. Agreement is the rate of
	// agreeing with its Wilson 95 % interval.
	Labelled    int                  `json:"labelled"`
	Disagreeing int                  `json:"disagreeing"`
	Agreement   *evaluation.Interval `json:"agreement,omitempty"`
	// AUC, AtTiers and calibration are over the labels with a finding.
	AUC         *float64         `json:"auc,omitempty"`
	AUCCI       [2]float64       `json:"auc_ci_95"`
	AUCNote     string           `json:"auc_note,omitempty"`
	AtTiers     []TierFigures    `json:"at_tiers,omitempty"`
	ECE         *float64         `json:"ece,omitempty"`
	Reliability []evaluation.Bin `json:"reliability,omitempty"`
	// ROC is the empirical ROC curve's points (thresholds left out: the
	// first is +Inf, which JSON cannot carry).
	ROC []ROCXY `json:"roc,omitempty"`

	Daily []MonitorDay `json:"daily"`
}

// ROCXY is a point of a ROC curve.
type ROCXY struct {
	FPR float64 `json:"fpr"`
	TPR float64 `json:"tpr"`
}

// InputMix counts results by what was scored.
type InputMix struct {
	Modality     map[string]int `json:"modality"`
	Manufacturer map[string]int `json:"manufacturer"`
	AgeBand      map[string]int `json:"age_band"`
}

// MonitorDay is one calendar day (UTC) of the series.
type MonitorDay struct {
	Day         string   `json:"day"`
	Results     int      `json:"results"`
	Labelled    int      `json:"labelled"`
	Disagreeing int      `json:"disagreeing"`
	PSI         *float64 `json:"psi,omitempty"`
}

// MonitorQuery asks for one facility × engine's figures.
type MonitorQuery struct {
	Facility string
	Engine   string
	// Version filters by model version; "" is the version loaded now
	// (Options.Version), else all.
	Version string
	// Days is the window: the last Days calendar days up to now (7 when
	// 0).
	Days int
}

// Monitor computes q's figures from the records: the results and labels
// of one facility × engine only (each listed by a key prefix of both).
func (g *Governance) Monitor(ctx context.Context, q MonitorQuery) (*Monitor, error) {
	if q.Facility == "" || q.Engine == "" {
		return nil, fmt.Errorf("%w: facility and engine must be set", ErrBadRequest)
	}
	if q.Days <= 0 {
		q.Days = 7
	}
	if q.Days > 366 {
		return nil, fmt.Errorf("%w: a window of %d days is over a year", ErrBadRequest, q.Days)
	}
	if q.Version == "" && g.o.Version != nil {
		q.Version, _ = g.o.Version(q.Engine)
	}
	scores, labels, err := g.records(ctx, q.Facility, q.Engine)
	if err != nil {
		return nil, err
	}
	var ref EngineReference
	if g.o.Reference != nil {
		ref, _ = g.o.Reference(q.Engine)
	}
	to := g.o.Now().UTC()
	from := startOfDay(to).AddDate(0, 0, -(q.Days - 1))
	return Figures(q.Facility, q.Engine, q.Version, scores, labels, ref, from, to), nil
}

// records lists one facility × engine's recorded results and labels.
func (g *Governance) records(ctx context.Context, facility, engine string) ([]Score, []Label, error) {
	var scores []Score
	kv := g.o.Topology.Scores
	lister, err := kv.ListKeysFiltered(ctx, "m."+broker.Token(facility)+"."+broker.Token(engine)+".*")
	if err != nil {
		return nil, nil, fmt.Errorf("listing the results of engine %s at facility %q: %w", engine, facility, err)
	}
	for key := range lister.Keys() {
		var s Score
		if _, err := getJSON(ctx, kv, key, &s); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, nil, err
		}
		scores = append(scores, s)
	}
	var labels []Label
	lkv := g.o.Topology.Labels
	ll, err := lkv.ListKeysFiltered(ctx, "l."+broker.Token(facility)+"."+broker.Token(engine)+".>")
	if err != nil {
		return nil, nil, fmt.Errorf("listing the labels of engine %s at facility %q: %w", engine, facility, err)
	}
	for key := range ll.Keys() {
		var lb Label
		if _, err := getJSON(ctx, lkv, key, &lb); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, nil, err
		}
		labels = append(labels, lb)
	}
	return scores, labels, nil
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// recordedAt is when a score was recorded (ScoredAt for records written
// before RecordedAt existed).
func (s Score) recordedAt() time.Time {
	t, err := time.Parse(time.RFC3339Nano, cmpOr(s.RecordedAt, s.ScoredAt))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// disagrees says whether a label disagrees with the AI's call at mark:
// the reader's agree or disagree when given, else the finding against the
// call; ok is false when the verdict says neither.
func (lb Label) disagrees(mark float64) (disagree, ok bool) {
	switch lb.Verdict.Agreement {
	case radgate.AgreementAgree:
		return false, true
	case radgate.AgreementDisagree:
		return true, true
	}
	if lb.Probability == nil {
		return false, false
	}
	called := *lb.Probability >= mark
	switch lb.Verdict.Finding {
	case radgate.FindingPresent:
		return !called, true
	case radgate.FindingAbsent:
		return called, true
	}
	return false, false
}

// latestLabels keeps one label per result, the latest recorded that says
// something (a finding or an agreement), of version ("" any).
func latestLabels(labels []Label, version string) []Label {
	latest := map[string]Label{}
	for _, lb := range labels {
		if (version != "" && lb.Version != version) || lb.Probability == nil {
			continue
		}
		if lb.Verdict.Finding == radgate.FindingUnlabelled && lb.Verdict.Agreement == "" {
			continue
		}
		if cur, ok := latest[lb.ResultID]; !ok || cur.RecordedAt < lb.RecordedAt {
			latest[lb.ResultID] = lb
		}
	}
	out := make([]Label, 0, len(latest))
	for _, lb := range latest {
		out = append(out, lb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RecordedAt < out[j].RecordedAt })
	return out
}

// Figures computes a Monitor from records (pure: the window is [from,
// to], days are UTC calendar days, scores count by when they were
// recorded and labels by when theirs was). version "" takes every version.
func Figures(facility, engine, version string, scores []Score, labels []Label, ref EngineReference, from, to time.Time) *Monitor {
	from, to = from.UTC(), to.UTC()
	m := &Monitor{Facility: facility, Engine: engine, Version: version, Versions: []string{},
		From: from.Format(time.RFC3339), To: to.Format(time.RFC3339),
		Inputs: InputMix{Modality: map[string]int{}, Manufacturer: map[string]int{}, AgeBand: map[string]int{}}}
	in := func(t time.Time) bool { return !t.Before(from) && !t.After(to) }
	dist := ref.distribution()
	if dist != nil {
		r := ref
		m.Reference = &r
	}
	bins := 10
	if dist != nil {
		bins = len(dist.Proportions)
	}
	m.Histogram = make([]int, bins)
	type day struct {
		MonitorDay
		scores []float64
	}
	var days []*day
	byDay := map[string]*day{}
	for d := startOfDay(from); !d.After(to); d = d.AddDate(0, 0, 1) {
		dd := &day{MonitorDay: MonitorDay{Day: d.Format(time.DateOnly)}}
		days = append(days, dd)
		byDay[dd.Day] = dd
	}
	dayOf := func(t time.Time) *day { return byDay[t.Format(time.DateOnly)] }
	seen := map[string]bool{}
	var all []float64
	var tiers []string
	for _, s := range scores {
		if !seen[s.Version] {
			seen[s.Version] = true
			m.Versions = append(m.Versions, s.Version)
		}
		t := s.recordedAt()
		if (version != "" && s.Version != version) || !in(t) {
			continue
		}
		m.Results++
		m.Inputs.Modality[cmpOr(s.Modality, "unknown")]++
		m.Inputs.Manufacturer[cmpOr(s.Manufacturer, "unknown")]++
		m.Inputs.AgeBand[cmpOr(s.AgeBand, AgeBandUnknown)]++
		d := dayOf(t)
		if d != nil {
			d.Results++
		}
		if s.Probability == nil {
			m.NotScored++
			continue
		}
		m.Scored++
		if !s.InScope {
			m.OutOfScope++
		}
		p := *s.Probability
		all = append(all, p)
		m.Histogram[min(max(int(p*float64(bins)), 0), bins-1)]++
		if radgate.TierRank(s.Tier) >= 0 && s.Tier != "" {
			tiers = append(tiers, s.Tier)
		}
		if d != nil {
			d.scores = append(d.scores, p)
		}
	}
	sort.Strings(m.Versions)
	m.TierMix, _ = evaluation.TierMix(tiers, []string{"Low", "Mid", "High"})
	if dist != nil && len(all) > 0 {
		if r, err := evaluation.PSI(*dist, all, 0); err == nil {
			m.PSI = &r
		}
	}

	var ls []float64
	var truth []bool
	var ltiers []string
	for _, lb := range latestLabels(labels, version) {
		t, err := time.Parse(time.RFC3339Nano, lb.RecordedAt)
		if err != nil || !in(t.UTC()) {
			continue
		}
		dis, ok := lb.disagrees(cmp.Or(ref.Mark, 0.5))
		if !ok {
			continue
		}
		m.Labelled++
		d := dayOf(t.UTC())
		if d != nil {
			d.Labelled++
		}
		if dis {
			m.Disagreeing++
			if d != nil {
				d.Disagreeing++
			}
		}
		if f := lb.Verdict.Finding; f == radgate.FindingPresent || f == radgate.FindingAbsent {
			ls = append(ls, *lb.Probability)
			truth = append(truth, f == radgate.FindingPresent)
			ltiers = append(ltiers, lb.Tier)
		}
	}
	if m.Labelled > 0 {
		iv, _ := evaluation.Wilson(m.Labelled-m.Disagreeing, m.Labelled, 0)
		m.Agreement = &iv
	}
	if len(ls) > 0 {
		if est, err := evaluation.DeLong(ls, truth); err == nil {
			auc := est.AUC
			m.AUC, m.AUCCI = &auc, est.CI
			for _, pt := range evaluation.ROC(ls, truth) {
				m.ROC = append(m.ROC, ROCXY{FPR: pt.FPR, TPR: pt.TPR})
			}
		} else {
			m.AUCNote = strings.TrimPrefix(err.Error(), "evaluation: ")
		}
		for _, t := range []string{"Low", "Mid", "High"} {
			m.AtTiers = append(m.AtTiers, tierFigures(t, truth, ltiers))
		}
		rb, ece := evaluation.Calibration(ls, truth, 10)
		m.Reliability, m.ECE = rb, &ece
	}
	for _, d := range days {
		if dist != nil && len(d.scores) > 0 {
			if r, err := evaluation.PSI(*dist, d.scores, 0); err == nil {
				psi := r.PSI
				d.PSI = &psi
			}
		}
		m.Daily = append(m.Daily, d.MonitorDay)
	}
	return m
}
