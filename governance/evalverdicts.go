package governance

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/evaluation"
)

// VerdictEngine is an engine to evaluate on a facility's verdicts.
type VerdictEngine struct {
	ID string
	// Version is the model version whose results are taken; "" takes the
	// only version labelled at the facility (several are refused, naming
	// them).
	Version string
	// Options are the engine's tier cut-offs (its manifest's thresholds).
	Options evaluation.Options
}

// VerdictQuery asks for the labelled results of engines at a facility.
type VerdictQuery struct {
	// Facility is the facility id (as radgate.yaml names it) or, for an
	// order of no configured facility, the name the order gave.
	Facility string
	Engines  []VerdictEngine
	// IncludeOutOfScope takes results outside the engine's intended use
	// (scored in shadow and recorded out of scope) too.
	IncludeOutOfScope bool
}

// VerdictSet is what came back at a facility, as evaluation.Summarize
// takes it: one case per order (File is the order id) with its latest
// verdict of a finding, and per engine its score where it scored that
// order and a reader labelled it.
type VerdictSet struct {
	Facility string
	Cases    []evaluation.Case
	Scores   []evaluation.Scores
	// Versions are the model versions evaluated, by engine (as Scores).
	Versions []string
	// Unlabelled counts the orders whose only verdicts are free text;
	// OutOfScope those left out as outside the intended use. Neither is
	// among Cases.
	Unlabelled, OutOfScope int
}

// Summarize evaluates each engine and compares every two on the cases
// both scored (evaluation.Summarize: the paired DeLong test).
func (s *VerdictSet) Summarize() (*evaluation.Summary, error) {
	if len(s.Cases) == 0 {
		return nil, fmt.Errorf("no labelled result at facility %q (%d with free text only, %d out of scope left out)", s.Facility, s.Unlabelled, s.OutOfScope)
	}
	return evaluation.Summarize(s.Cases, s.Scores)
}

// Title heads the table `radgate eval --from-verdicts` prints.
func (s *VerdictSet) Title() string {
	var ev []string
	for i, sc := range s.Scores {
		ev = append(ev, sc.Name+" "+s.Versions[i])
	}
	return fmt.Sprintf("verdicts at facility %q (%s; %d with free text only, %d out of scope left out)",
		s.Facility, strings.Join(ev, ", "), s.Unlabelled, s.OutOfScope)
}

// FromVerdicts reads the labels recorded at q.Facility for q.Engines: per
// engine and order the latest verdict with a finding (one per result,
// whatever the number of reads), skipping results out of scope unless
// q.IncludeOutOfScope. An order's truth is its latest verdict across the
// engines. It records nothing.
func (g *Governance) FromVerdicts(ctx context.Context, q VerdictQuery) (*VerdictSet, error) {
	if q.Facility == "" || len(q.Engines) == 0 {
		return nil, fmt.Errorf("%w: a facility and at least one engine are needed", ErrBadRequest)
	}
	set := &VerdictSet{Facility: q.Facility}
	perEngine := make([]map[string]Label, len(q.Engines))
	unlabelled, outside := map[string]bool{}, map[string]bool{}
	for i, e := range q.Engines {
		labels, err := g.labelsOf(ctx, q.Facility, e.ID)
		if err != nil {
			return nil, err
		}
		version, err := pickVersion(q.Facility, e, labels)
		if err != nil {
			return nil, err
		}
		set.Versions = append(set.Versions, version)
		latest := map[string]Label{}
		for _, lb := range labels {
			switch {
			case lb.Version != version || lb.Probability == nil:
				continue
			case lb.Verdict.Finding == radgate.FindingUnlabelled:
				unlabelled[lb.OrderID] = true
				continue
			case !lb.InScope && !q.IncludeOutOfScope:
				outside[lb.OrderID] = true
				continue
			}
			if cur, ok := latest[lb.OrderID]; !ok || cur.RecordedAt < lb.RecordedAt {
				latest[lb.OrderID] = lb
			}
		}
		perEngine[i] = latest
	}
	// The truth of each order: its latest verdict across the engines.
	truth := map[string]Label{}
	for _, latest := range perEngine {
		for id, lb := range latest {
			if cur, ok := truth[id]; !ok || cur.RecordedAt < lb.RecordedAt {
				truth[id] = lb
			}
		}
	}
	orders := make([]string, 0, len(truth))
	for id := range truth {
		orders = append(orders, id)
		delete(unlabelled, id)
		delete(outside, id)
	}
	sort.Strings(orders)
	for _, id := range orders {
		set.Cases = append(set.Cases, evaluation.Case{File: id, Positive: truth[id].Verdict.Finding == radgate.FindingPresent})
	}
	for i, e := range q.Engines {
		sc := evaluation.Scores{Name: e.ID, Prob: make([]float64, len(orders)), Scored: make([]bool, len(orders)), Options: e.Options}
		for j, id := range orders {
			if lb, ok := perEngine[i][id]; ok {
				sc.Prob[j], sc.Scored[j] = *lb.Probability, true
			}
		}
		set.Scores = append(set.Scores, sc)
	}
	set.Unlabelled, set.OutOfScope = len(unlabelled), len(outside)
	return set, nil
}

// labelsOf reads every label of engine at facility.
func (g *Governance) labelsOf(ctx context.Context, facility, engine string) ([]Label, error) {
	kv := g.o.Topology.Labels
	lister, err := kv.ListKeysFiltered(ctx, "l."+broker.Token(facility)+"."+broker.Token(engine)+".>")
	if err != nil {
		return nil, fmt.Errorf("listing the labels of engine %s at facility %q: %w", engine, facility, err)
	}
	var out []Label
	for key := range lister.Keys() {
		var lb Label
		if _, err := getJSON(ctx, kv, key, &lb); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		out = append(out, lb)
	}
	return out, nil
}

// pickVersion is e.Version, or the only version labels has.
func pickVersion(facility string, e VerdictEngine, labels []Label) (string, error) {
	if e.Version != "" {
		return e.Version, nil
	}
	seen := map[string]bool{}
	var versions []string
	for _, lb := range labels {
		if !seen[lb.Version] {
			seen[lb.Version] = true
			versions = append(versions, lb.Version)
		}
	}
	sort.Strings(versions)
	switch len(versions) {
	case 0:
		return "", fmt.Errorf("%w: engine %s has no labelled result at facility %q", ErrUnknown, e.ID, facility)
	case 1:
		return versions[0], nil
	}
	return "", fmt.Errorf("%w: engine %s has labelled results of versions %s at facility %q: name one (--engine %s@VERSION)",
		ErrBadRequest, e.ID, strings.Join(versions, ", "), facility, e.ID)
}
