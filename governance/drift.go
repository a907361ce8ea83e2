package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/routing"
)

// Drift rules (DriftAlert.Rule).
const (
	// DriftDisagreement: the daily disagreement rate above the upper bound
	// of its reference's 95 % interval on the rule's consecutive days.
	DriftDisagreement = "disagreement"
	// DriftPSI: the PSI of the window's scores above psi_max.
	DriftPSI = "psi"
)

// MinPSIScores is the least number of scores in the window the PSI rule
// needs: with fewer, one score moves a 10-bin PSI by more than the
// thresholds themselves.
const MinPSIScores = 30

// ByDriftRule is who a suspension by a drift rule's auto_suspend is by.
const ByDriftRule = "radgate drift rule"

// DriftNotifier is told of each drift alert when it is raised (once per
// alert, whichever radgate process raises it).
type DriftNotifier interface {
	// DriftRaised writes the alert outside radgate (a FHIR Flag) and
	// returns where it is.
	DriftRaised(ctx context.Context, a DriftAlert) (string, error)
}

// DriftAlert is one drift rule on one engine standing, as last checked.
type DriftAlert struct {
	Key
	Rule string `json:"rule"`
	// Firing: the rule holds now.
	Firing bool `json:"firing"`
	// Text is the figures against the rule, in words.
	Text string `json:"text"`
	// ReferenceRate and ReferenceSource are the disagreement rule's
	// reference and where it came from.
	ReferenceRate   float64 `json:"reference_rate,omitempty"`
	ReferenceSource string  `json:"reference_source,omitempty"`
	// Since is the first day of the run (disagreement) or the window's
	// start (psi); Value the PSI or the last day's disagreement rate.
	Since string  `json:"since,omitempty"`
	Value float64 `json:"value"`
	// RaisedAt is when the alert was raised (kept while it fires); Flag
	// where the DriftNotifier wrote it; Suspended whether auto_suspend
	// suspended the engine.
	RaisedAt  string `json:"raised_at,omitempty"`
	Flag      string `json:"flag,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
}

// DriftFindings applies rule to one engine standing's records at now
// (pure): the disagreement rule over the daily series of the last
// 4 × disagreement_days days (days with fewer than min_daily_labels
// labelled results skipped, as evaluation.DisagreementRule skips days
// without labels), the PSI rule over the scores of the last psi_window
// (at least MinPSIScores of them). refRate is the reference disagreement
// rate, refSource where it came from.
func DriftFindings(rule routing.Drift, k Key, scores []Score, labels []Label, ref EngineReference, refRate float64, refSource string, now time.Time) ([]DriftAlert, error) {
	var out []DriftAlert
	now = now.UTC()
	if rule.DisagreementDays > 0 {
		from := startOfDay(now).AddDate(0, 0, -(4*rule.DisagreementDays - 1))
		m := Figures(k.Facility, k.Engine, k.Version, nil, labels, ref, from, now)
		minDaily := max(rule.MinDailyLabels, 1)
		var days []evaluation.DailyCount
		for _, d := range m.Daily {
			t, _ := time.Parse(time.DateOnly, d.Day)
			c := evaluation.DailyCount{Day: t, Labelled: d.Labelled, Disagreeing: d.Disagreeing}
			if c.Labelled < minDaily {
				c.Labelled, c.Disagreeing = 0, 0
			}
			days = append(days, c)
		}
		res, err := evaluation.DisagreementRule{ReferenceRate: refRate, Days: rule.DisagreementDays}.Check(days)
		if err != nil {
			return nil, fmt.Errorf("drift rule of %s: %w", k, err)
		}
		a := DriftAlert{Key: k, Rule: DriftDisagreement, Firing: res.Holds, ReferenceRate: refRate, ReferenceSource: refSource}
		var last *evaluation.DayCheck
		for i := range res.Days {
			if !res.Days[i].Skipped {
				last = &res.Days[i]
			}
		}
		switch {
		case last == nil:
			a.Text = fmt.Sprintf("no day with %d or more labelled results in the last %d days", minDaily, 4*rule.DisagreementDays)
		case res.Holds:
			a.Since, a.Value = res.Since.Format(time.DateOnly), last.Interval.Rate
			a.Text = fmt.Sprintf("disagreement above the upper bound of its reference's 95 %% interval (reference %s, %s) on %d consecutive days with labels since %s (last day %s: %d of %d, %s > %s)",
				f2(refRate), refSource, last.Run, a.Since, last.Day.Format(time.DateOnly), last.Disagreeing, last.Labelled, f2(last.Interval.Rate), f2(last.Bound))
		default:
			a.Value = last.Interval.Rate
			a.Text = fmt.Sprintf("disagreement above its reference's bound on %d consecutive days with labels, rule %d (reference %s, %s; last day %s: %d of %d, bound %s)",
				last.Run, rule.DisagreementDays, f2(refRate), refSource, last.Day.Format(time.DateOnly), last.Disagreeing, last.Labelled, f2(last.Bound))
		}
		out = append(out, a)
	}
	if rule.PSIMax > 0 {
		from := now.Add(-rule.PSIWindow)
		m := Figures(k.Facility, k.Engine, k.Version, scores, nil, ref, from, now)
		a := DriftAlert{Key: k, Rule: DriftPSI, Since: from.Format(time.RFC3339)}
		switch {
		case m.Reference == nil:
			a.Text = "no reference distribution in the engine's manifest: PSI not measured"
		case m.Scored < MinPSIScores:
			a.Text = fmt.Sprintf("%d scores in the last %s, PSI needs %d", m.Scored, rule.PSIWindow, MinPSIScores)
		default:
			a.Value = m.PSI.PSI
			a.Firing = m.PSI.PSI > rule.PSIMax
			a.Text = fmt.Sprintf("PSI %.3f of %d scores in the last %s against the reference (%s, n %d) %s psi_max %s",
				m.PSI.PSI, m.Scored, rule.PSIWindow, m.Reference.Dataset, m.Reference.N, map[bool]string{true: ">", false: "≤"}[a.Firing], f2(rule.PSIMax))
		}
		out = append(out, a)
	}
	return out, nil
}

// referenceRate is the disagreement rate the rule compares with: the
// engine's disagreement on the labels of the facility's acceptance
// evaluation (those recorded up to it) when the state rests on one, else
// 1 − the manifest's validation accuracy.
func referenceRate(st State, labels []Label, ref EngineReference) (float64, string, error) {
	if ev := st.Evidence; ev != nil && ev.Labelled > 0 {
		var before []Label
		for _, lb := range labels {
			if lb.RecordedAt <= ev.At {
				before = append(before, lb)
			}
		}
		n, d := 0, 0
		for _, lb := range latestLabels(before, st.Version) {
			if dis, ok := lb.disagrees(cmpOrF(ref.Mark, 0.5)); ok {
				n++
				if dis {
					d++
				}
			}
		}
		if n > 0 {
			return float64(d) / float64(n), fmt.Sprintf("the facility's acceptance evaluation of %s, %d of %d labelled", ev.At, d, n), nil
		}
	}
	if ref.ValidationAccuracy > 0 && ref.ValidationAccuracy <= 1 {
		return 1 - ref.ValidationAccuracy, fmt.Sprintf("1 − the manifest's validation accuracy %.4f", ref.ValidationAccuracy), nil
	}
	return 0, "", errors.New("no reference disagreement rate: no acceptance evaluation and no validation accuracy in the manifest")
}

func cmpOrF(a, b float64) float64 {
	if a != 0 {
		return a
	}
	return b
}

// driftMemo keeps CheckDrift cheap when nothing changed.
type driftMemo struct {
	mu     sync.Mutex
	mark   string
	alerts []DriftAlert
}

// CheckDrift applies every route's drift rule to the engine standings on
// it (the version loaded now) and returns each rule's alert, firing or
// not. A rule that starts firing is raised once, whichever process sees it
// first (its record is created in radgate_engine_state): logged as a
// warning, told to Options.Drift (the FHIR Flag), and with auto_suspend
// the engine is suspended through Change (by ByDriftRule, the alerts as
// evidence). An alert that keeps firing is not raised again (an engine
// activated again while its old run still holds stays active until the
// rule clears and fires anew). When neither the records, the routes nor
// the hour changed since the last check it returns the last answer
// without reading them.
func (g *Governance) CheckDrift(ctx context.Context) ([]DriftAlert, error) {
	if g.o.Routes == nil || g.o.Version == nil {
		return nil, errors.New("governance: CheckDrift needs Options.Routes and Options.Version")
	}
	mark, err := g.driftMark(ctx)
	if err != nil {
		return nil, err
	}
	g.drift.mu.Lock()
	defer g.drift.mu.Unlock()
	if mark == g.drift.mark {
		return g.drift.alerts, nil
	}
	set := g.o.Routes()
	var out []DriftAlert
	for _, route := range set.Routes() {
		rule, ok := set.Drift(route)
		if !ok {
			continue
		}
		states, err := g.States(ctx, "", route)
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			if v, ok := g.o.Version(st.Engine); !ok || v != st.Version {
				continue
			}
			as, err := g.checkStanding(ctx, rule, st)
			if err != nil {
				return nil, err
			}
			out = append(out, as...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key.token() < out[j].Key.token() })
	// The mark is read again: a record written meanwhile is checked next time.
	g.drift.mark, g.drift.alerts = mark, out
	return out, nil
}

// driftMark changes whenever a result, label or state is recorded, the
// routes are reloaded, and every hour (the PSI window moves).
func (g *Governance) driftMark(ctx context.Context) (string, error) {
	var b strings.Builder
	b.WriteString(g.o.Now().UTC().Truncate(time.Hour).Format(time.RFC3339) + " " + g.o.Routes().Digest())
	for _, kv := range []jetstream.KeyValue{g.o.Topology.Scores, g.o.Topology.Labels, g.o.Topology.EngineState} {
		st, err := kv.Status(ctx)
		if err != nil {
			return "", fmt.Errorf("reading bucket %s: %w", kv.Bucket(), err)
		}
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			fmt.Fprintf(&b, " %d", bs.StreamInfo().State.LastSeq)
		} else {
			fmt.Fprintf(&b, " %d/%d", st.Values(), st.Bytes())
		}
	}
	return b.String(), nil
}

func driftKey(k Key, rule string) string { return "d." + k.token() + "." + rule }

// checkStanding applies rule to one standing and raises or clears its
// alerts.
func (g *Governance) checkStanding(ctx context.Context, rule routing.Drift, st State) ([]DriftAlert, error) {
	k := st.Key
	scores, labels, err := g.records(ctx, k.Facility, k.Engine)
	if err != nil {
		return nil, err
	}
	var ref EngineReference
	if g.o.Reference != nil {
		ref, _ = g.o.Reference(k.Engine)
	}
	rate, source, rerr := 0.0, "", error(nil)
	if rule.DisagreementDays > 0 {
		if rate, source, rerr = referenceRate(st, labels, ref); rerr != nil {
			g.log.Warn("drift rule not checked", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "err", rerr)
			rule.DisagreementDays = 0
		}
	}
	alerts, err := DriftFindings(rule, k, scores, labels, ref, rate, source, g.o.Now())
	if err != nil {
		return nil, err
	}
	var raised []DriftAlert
	for i := range alerts {
		a := &alerts[i]
		var old DriftAlert
		rev, err := getJSON(ctx, g.o.Topology.EngineState, driftKey(k, a.Rule), &old)
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		known := err == nil
		switch {
		case a.Firing && known && old.Firing:
			a.RaisedAt, a.Flag, a.Suspended = old.RaisedAt, old.Flag, old.Suspended
			continue
		case !a.Firing && (!known || !old.Firing):
			continue
		}
		if a.Firing {
			a.RaisedAt = g.now()
		}
		b, _ := json.Marshal(a)
		if known {
			_, err = g.o.Topology.EngineState.Update(ctx, driftKey(k, a.Rule), b, rev)
		} else {
			_, err = g.o.Topology.EngineState.Create(ctx, driftKey(k, a.Rule), b)
		}
		if err != nil {
			// Another process recorded it first: it raises or clears it.
			g.log.Info("drift alert recorded by another process", "facility", k.Facility, "engine", k.Engine, "rule", a.Rule, "err", err)
			continue
		}
		if !a.Firing {
			g.log.Info("drift alert cleared", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "version", k.Version, "rule", a.Rule)
			continue
		}
		g.log.Warn("drift alert raised", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "version", k.Version,
			"rule", a.Rule, "figures", a.Text, "auto_suspend", rule.AutoSuspend)
		raised = append(raised, *a)
	}
	if len(raised) == 0 {
		return alerts, nil
	}
	suspended := false
	if rule.AutoSuspend && st.Mode != radgate.EngineSuspended {
		var why []string
		for _, a := range raised {
			why = append(why, a.Rule+": "+a.Text)
		}
		res, err := g.change(ctx, ChangeRequest{Facility: k.Facility, Route: k.Route, Engine: k.Engine, Mode: radgate.EngineSuspended,
			By: ByDriftRule, Why: "drift alert: " + strings.Join(why, "; ")}, raised)
		if err != nil {
			g.log.Error("drift alert raised but the engine was not suspended", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "err", err)
		} else {
			suspended = !res.Unchanged
		}
	}
	isRaised := map[string]bool{}
	for _, a := range raised {
		isRaised[a.Rule] = true
	}
	for i := range alerts {
		a := &alerts[i]
		if !isRaised[a.Rule] {
			continue
		}
		a.Suspended = suspended
		if n := g.o.Drift; n != nil {
			ref, err := n.DriftRaised(ctx, *a)
			if err != nil {
				g.log.Error("drift alert raised but not written", "facility", k.Facility, "engine", k.Engine, "rule", a.Rule, "err", err)
			}
			a.Flag = ref
		}
		g.saveAlert(ctx, k, *a)
	}
	return alerts, nil
}

// saveAlert records where the alert was written and what it did.
func (g *Governance) saveAlert(ctx context.Context, k Key, a DriftAlert) {
	var old DriftAlert
	rev, err := getJSON(ctx, g.o.Topology.EngineState, driftKey(k, a.Rule), &old)
	if err != nil {
		return
	}
	b, _ := json.Marshal(a)
	if _, err := g.o.Topology.EngineState.Update(ctx, driftKey(k, a.Rule), b, rev); err != nil {
		g.log.Warn("drift alert's flag not recorded", "facility", k.Facility, "engine", k.Engine, "rule", a.Rule, "err", err)
	}
}
