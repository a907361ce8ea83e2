package governance

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/evaluation"
)

// Evaluation is an engine measured on a facility's labelled cases,
// against a route's acceptance minimums. Each one is recorded in
// RADGATE_GOVERNANCE (LogSequence) before it is used.
type Evaluation struct {
	Key
	At         string             `json:"at"`
	Acceptance radgate.Acceptance `json:"acceptance"`
	// Labelled counts the results with a verdict of finding present
	// (Positives) or absent (Negatives), one per result whatever the
	// number of reads (the latest counts); Unlabelled those whose only
	// verdicts are free text.
	Labelled   int `json:"labelled"`
	Positives  int `json:"positives"`
	Negatives  int `json:"negatives"`
	Unlabelled int `json:"unlabelled"`
	// OutOfScope counts the labelled results of studies outside the
	// engine's intended use (scored only in shadow): left out, since an
	// active engine is never given them.
	OutOfScope int `json:"out_of_scope,omitempty"`
	// AUC with its DeLong 95 % interval; AUCNote says why there is none
	// (one class only, too few cases).
	AUC         *float64      `json:"auc,omitempty"`
	AUCCI       [2]float64    `json:"auc_ci_95"`
	AUCNote     string        `json:"auc_note,omitempty"`
	AtTiers     []TierFigures `json:"at_tiers"`
	Checks      []Check       `json:"checks"`
	Meets       bool          `json:"meets"`
	LogSequence uint64        `json:"log_sequence,omitempty"`
}

// TierFigures are the sensitivity and specificity when a case is called
// positive at or above Tier (its threshold).
type TierFigures struct {
	Tier        string  `json:"tier"`
	TP          int     `json:"tp"`
	FN          int     `json:"fn"`
	TN          int     `json:"tn"`
	FP          int     `json:"fp"`
	Sensitivity float64 `json:"sensitivity"`
	Specificity float64 `json:"specificity"`
}

// Check is one minimum against its figure.
type Check struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Minimum float64 `json:"minimum"`
	Met     bool    `json:"met"`
	// Text is the figure against its minimum, in words: "AUC 0.44 (95 %
	// CI 0.36–0.52): lower bound 0.36 < minimum 0.80".
	Text string `json:"text"`
}

// Failures are the texts of the checks not met.
func (e *Evaluation) Failures() []string {
	var out []string
	for _, c := range e.Checks {
		if !c.Met {
			out = append(out, c.Text)
		}
	}
	return out
}

// Evaluate measures k's engine version on k's facility against a, from the
// labels recorded so far, and records the evaluation.
func (g *Governance) Evaluate(ctx context.Context, k Key, a radgate.Acceptance) (*Evaluation, error) {
	kv := g.o.Topology.Labels
	lister, err := kv.ListKeysFiltered(ctx, "l."+broker.Token(k.Facility)+"."+broker.Token(k.Engine)+".>")
	if err != nil {
		return nil, fmt.Errorf("listing the labels of %s: %w", k, err)
	}
	// One label per result: the latest verdict with a finding wins.
	latest := map[string]Label{}
	unlabelled, outside := map[string]bool{}, map[string]bool{}
	for key := range lister.Keys() {
		var lb Label
		if _, err := getJSON(ctx, kv, key, &lb); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		if lb.Version != k.Version || lb.Probability == nil {
			continue
		}
		if !lb.InScope {
			outside[lb.ResultID] = true
			continue
		}
		if lb.Verdict.Finding == radgate.FindingUnlabelled {
			unlabelled[lb.ResultID] = true
			continue
		}
		if cur, ok := latest[lb.ResultID]; !ok || cur.RecordedAt < lb.RecordedAt {
			latest[lb.ResultID] = lb
		}
	}
	var scores []float64
	var labels []bool
	var tiers []string
	for id, lb := range latest {
		delete(unlabelled, id)
		scores = append(scores, *lb.Probability)
		labels = append(labels, lb.Verdict.Finding == radgate.FindingPresent)
		tiers = append(tiers, lb.Tier)
	}
	ev := figures(k, a, scores, labels, tiers)
	ev.Unlabelled, ev.OutOfScope = len(unlabelled), len(outside)
	ev.At = g.now()
	seq, err := g.logRecord(ctx, "evaluation."+k.token(), "evaluation."+k.token()+"."+ev.At, ev)
	if err != nil {
		return nil, err
	}
	ev.LogSequence = seq
	g.log.Info("engine evaluated", "facility", k.Facility, "route", k.Route, "engine", k.Engine, "version", k.Version,
		"labelled", ev.Labelled, "meets", ev.Meets, "evaluation", seq)
	return ev, nil
}

// figures computes an evaluation from labelled scores and their tiers.
func figures(k Key, a radgate.Acceptance, scores []float64, labels []bool, tiers []string) *Evaluation {
	ev := &Evaluation{Key: k, Acceptance: a, Labelled: len(scores)}
	for _, l := range labels {
		if l {
			ev.Positives++
		} else {
			ev.Negatives++
		}
	}
	est, err := evaluation.DeLong(scores, labels)
	if err == nil {
		auc := est.AUC
		ev.AUC, ev.AUCCI = &auc, est.CI
	} else {
		ev.AUCNote = strings.TrimPrefix(err.Error(), "evaluation: ")
	}
	at := []string{"Mid", "High"}
	if a.SensitivityAt == "Low" {
		at = append([]string{"Low"}, at...)
	}
	for _, t := range at {
		ev.AtTiers = append(ev.AtTiers, tierFigures(t, labels, tiers))
	}
	ev.Meets = true
	add := func(c Check) {
		ev.Checks = append(ev.Checks, c)
		ev.Meets = ev.Meets && c.Met
	}
	add(Check{Name: "min_cases", Value: float64(ev.Labelled), Minimum: float64(a.MinCases), Met: ev.Labelled >= a.MinCases,
		Text: fmt.Sprintf("labelled cases %d (%d with the finding, %d without) %s minimum %d", ev.Labelled, ev.Positives, ev.Negatives,
			cmpWord(ev.Labelled >= a.MinCases), a.MinCases)})
	if a.AUCLower95 > 0 {
		c := Check{Name: "auc_lower_95", Minimum: a.AUCLower95}
		if ev.AUC == nil {
			c.Text = fmt.Sprintf("AUC not measurable (%s): minimum lower bound %s", ev.AUCNote, f2(a.AUCLower95))
		} else {
			c.Value, c.Met = ev.AUCCI[0], ev.AUCCI[0] >= a.AUCLower95
			c.Text = fmt.Sprintf("AUC %s (95 %% CI %s–%s): lower bound %s %s minimum %s", f2(*ev.AUC), f2(ev.AUCCI[0]), f2(ev.AUCCI[1]),
				f2(ev.AUCCI[0]), cmpWord(c.Met), f2(a.AUCLower95))
		}
		add(c)
	}
	if a.MinSensitivity > 0 || a.MinSpecificity > 0 {
		tf := tierFigures(a.SensitivityAt, labels, tiers)
		if a.MinSensitivity > 0 {
			ok := tf.TP+tf.FN > 0 && tf.Sensitivity >= a.MinSensitivity
			add(Check{Name: "min_sensitivity", Value: tf.Sensitivity, Minimum: a.MinSensitivity, Met: ok,
				Text: fmt.Sprintf("sensitivity at %s %s (%d/%d) %s minimum %s", a.SensitivityAt, f2(tf.Sensitivity), tf.TP, tf.TP+tf.FN, cmpWord(ok), f2(a.MinSensitivity))})
		}
		if a.MinSpecificity > 0 {
			ok := tf.TN+tf.FP > 0 && tf.Specificity >= a.MinSpecificity
			add(Check{Name: "min_specificity", Value: tf.Specificity, Minimum: a.MinSpecificity, Met: ok,
				Text: fmt.Sprintf("specificity at %s %s (%d/%d) %s minimum %s", a.SensitivityAt, f2(tf.Specificity), tf.TN, tf.TN+tf.FP, cmpWord(ok), f2(a.MinSpecificity))})
		}
	}
	return ev
}

// tierFigures calls a case positive when its tier is at or above tier.
func tierFigures(tier string, labels []bool, tiers []string) TierFigures {
	tf := TierFigures{Tier: tier}
	from := radgate.TierRank(tier)
	for i, l := range labels {
		called := radgate.TierRank(tiers[i]) >= from
		switch {
		case l && called:
			tf.TP++
		case l:
			tf.FN++
		case called:
			tf.FP++
		default:
			tf.TN++
		}
	}
	if tf.TP+tf.FN > 0 {
		tf.Sensitivity = float64(tf.TP) / float64(tf.TP+tf.FN)
	}
	if tf.TN+tf.FP > 0 {
		tf.Specificity = float64(tf.TN) / float64(tf.TN+tf.FP)
	}
	return tf
}

func cmpWord(met bool) string {
	if met {
		return "≥"
	}
	return "<"
}

func f2(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// WriteEvaluation writes an evaluation for a person: the counts, the AUC,
// the figures at each tier, then each minimum against its figure.
func WriteEvaluation(w io.Writer, ev *Evaluation) error {
	var b strings.Builder
	fmt.Fprintf(&b, "evaluation of engine %s version %s on facility %q (route %s), %s\n", ev.Engine, ev.Version, ev.Facility, ev.Route, ev.At)
	fmt.Fprintf(&b, "  labelled cases: %d (%d with the finding, %d without); %d with free text only\n", ev.Labelled, ev.Positives, ev.Negatives, ev.Unlabelled)
	if ev.OutOfScope > 0 {
		fmt.Fprintf(&b, "  left out: %d labelled studies outside the engine's intended use (scored in shadow only)\n", ev.OutOfScope)
	}
	if ev.AUC != nil {
		fmt.Fprintf(&b, "  AUC %s (95 %% CI %s–%s, DeLong)\n", f2(*ev.AUC), f2(ev.AUCCI[0]), f2(ev.AUCCI[1]))
	} else {
		fmt.Fprintf(&b, "  AUC not measurable: %s\n", ev.AUCNote)
	}
	for _, t := range ev.AtTiers {
		fmt.Fprintf(&b, "  at tier %s: sensitivity %s (%d/%d), specificity %s (%d/%d)\n", t.Tier, f2(t.Sensitivity), t.TP, t.TP+t.FN,
			f2(t.Specificity), t.TN, t.TN+t.FP)
	}
	for _, c := range ev.Checks {
		mark := "met"
		if !c.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(&b, "  %-7s %s\n", mark, c.Text)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
