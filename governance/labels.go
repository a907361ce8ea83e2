package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// Label is a radiologist's verdict stored against one AI result.
type Label struct {
	ResultID string `json:"result_id"`
	OrderID  string `json:"order_id"`
	Facility string `json:"facility"`
	Route    string `json:"route,omitempty"`
	Engine   string `json:"engine"`
	Version  string `json:"version"`
	// Probability and Tier are the result's as labelled.
	Probability *float64        `json:"probability,omitempty"`
	Tier        string          `json:"tier,omitempty"`
	InScope     bool            `json:"in_scope"`
	Verdict     radgate.Verdict `json:"verdict"`
	// Digest identifies the verdict's content (ReceivedAt aside): the same
	// digest again is a redelivery.
	Digest     string `json:"digest"`
	RecordedAt string `json:"recorded_at"`
}

// Labels is the radgate.VerdictRecorder of a Governance: give it to the
// verdict intakes.
type Labels struct{ g *Governance }

var _ radgate.VerdictRecorder = Labels{}

// Labels returns g's verdict recorder.
func (g *Governance) Labels() Labels { return Labels{g} }

func labelKey(facility, engine, orderID, source, readID string) string {
	return "l." + broker.Token(facility) + "." + broker.Token(engine) + "." + broker.Token(orderID) + "." +
		broker.Token(source) + "." + hash(readID)
}

// Record implements radgate.VerdictRecorder: it matches v to the scored
// results of its order (by order id, accession with or without its system,
// or Study Instance UID; one engine or all), and stores one label per
// result × (Source, ReadID), each a single write: a redelivered verdict
// finds its labels already there (Duplicate), a different verdict of the
// same read replaces them (Replaced, the earlier kept in the key's
// history). A crash between the labels of two engines loses nothing: the
// sender's retry writes the missing one and finds the other a duplicate.
func (l Labels) Record(ctx context.Context, v radgate.Verdict) (radgate.VerdictReceipt, error) {
	g := l.g
	var rc radgate.VerdictReceipt
	if err := checkVerdict(v); err != nil {
		return rc, err
	}
	orderID, what, err := g.orderOf(ctx, v)
	if err != nil {
		return rc, err
	}
	scores, err := g.scoresOf(ctx, orderID)
	if err != nil {
		return rc, err
	}
	if len(scores) == 0 {
		return rc, fmt.Errorf("%w: %s has no engine result yet (not scored)", radgate.ErrUnknownResult, what)
	}
	engines := make([]string, 0, len(scores))
	for e := range scores {
		engines = append(engines, e)
	}
	sort.Strings(engines)
	if v.Engine != "" {
		if _, ok := scores[v.Engine]; !ok {
			return rc, fmt.Errorf("%w: engine %q has no result for %s (engines: %s)", radgate.ErrUnknownResult, v.Engine, what, strings.Join(engines, ", "))
		}
		engines = []string{v.Engine}
	}
	var scored []Score
	var why []string
	for _, e := range engines {
		s := scores[e]
		if s.Outcome != radgate.OutcomeScored {
			why = append(why, fmt.Sprintf("engine %s: %s (%s)", e, s.Outcome, cmpOr(s.OutOfScope, "no score")))
			continue
		}
		scored = append(scored, s)
	}
	if len(scored) == 0 {
		return rc, fmt.Errorf("%w: %s was not scored: %s", radgate.ErrUnknownResult, what, strings.Join(why, "; "))
	}
	digest := verdictDigest(v)
	rc.OrderID, rc.Duplicate = orderID, true
	for _, s := range scored {
		lb := Label{ResultID: s.ResultID, OrderID: s.OrderID, Facility: s.Facility, Route: s.Route, Engine: s.Engine, Version: s.Version,
			Probability: s.Probability, Tier: s.Tier, InScope: s.InScope, Verdict: v, Digest: digest,
			RecordedAt: g.o.Now().UTC().Format(time.RFC3339Nano)}
		dup, replaced, err := g.putLabel(ctx, labelKey(s.Facility, s.Engine, s.OrderID, v.Source, v.ReadID), lb)
		if err != nil {
			return rc, err
		}
		rc.Engines = append(rc.Engines, s.Engine)
		rc.Duplicate = rc.Duplicate && dup
		rc.Replaced = rc.Replaced || replaced
	}
	g.log.Info("verdict recorded", "order", orderID, "source", v.Source, "engines", strings.Join(rc.Engines, ","),
		"finding", v.Finding, "duplicate", rc.Duplicate, "replaced", rc.Replaced)
	return rc, nil
}

// putLabel stores lb at key unless the same verdict is there already.
func (g *Governance) putLabel(ctx context.Context, key string, lb Label) (dup, replaced bool, err error) {
	kv := g.o.Topology.Labels
	b, err := json.Marshal(lb)
	if err != nil {
		return false, false, err
	}
	for {
		var old Label
		rev, err := getJSON(ctx, kv, key, &old)
		switch {
		case isNotFound(err):
			if _, err := kv.Create(ctx, key, b); errors.Is(err, jetstream.ErrKeyExists) {
				continue
			} else if err != nil {
				return false, false, fmt.Errorf("storing the label of result %s: %w", lb.ResultID, err)
			}
			return false, false, nil
		case err != nil:
			return false, false, err
		case old.Digest == lb.Digest:
			return true, false, nil
		}
		if _, err := kv.Update(ctx, key, b, rev); err != nil {
			if broker.IsWrongSequence(err) {
				continue
			}
			return false, false, fmt.Errorf("replacing the label of result %s: %w", lb.ResultID, err)
		}
		return false, true, nil
	}
}

// orderOf finds the order a verdict is about, and words it for messages.
func (g *Governance) orderOf(ctx context.Context, v radgate.Verdict) (string, string, error) {
	if v.OrderID != "" {
		return v.OrderID, "order " + v.OrderID, nil
	}
	type try struct{ key, what string }
	var tries []try
	if a := v.Accession; a != nil && strings.TrimSpace(a.Value) != "" {
		what := fmt.Sprintf("accession %q", a.Value)
		if a.System != "" {
			tries = append(tries, try{accessionKey(a.System, a.Value), what})
		}
		tries = append(tries, try{accessionValueKey(a.Value), what})
	}
	if v.StudyInstanceUID != "" {
		tries = append(tries, try{studyKey(v.StudyInstanceUID), "Study Instance UID " + v.StudyInstanceUID})
	}
	var names []string
	for _, t := range tries {
		id, ok, err := g.lookup(ctx, t.key)
		if err != nil {
			return "", "", err
		}
		if ok {
			return id, "order " + id, nil
		}
		if !slices.Contains(names, t.what) {
			names = append(names, t.what)
		}
	}
	return "", "", fmt.Errorf("%w: no engine result for %s", radgate.ErrUnknownResult, strings.Join(names, " or "))
}

func checkVerdict(v radgate.Verdict) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", radgate.ErrInvalidVerdict, fmt.Sprintf(format, args...))
	}
	switch v.Source {
	case radgate.SourceFHIR, radgate.SourceHL7v2, radgate.SourceTask:
	default:
		return bad("unknown source %q (known: fhir, hl7v2, task)", v.Source)
	}
	if strings.TrimSpace(v.ReadID) == "" {
		return bad("no read id (the report's id, the ORU's filler order number or the Task's id)")
	}
	switch v.Finding {
	case radgate.FindingPresent, radgate.FindingAbsent, radgate.FindingUnlabelled:
	default:
		return bad("unknown finding %q (known: present, absent, unlabelled)", v.Finding)
	}
	switch v.Agreement {
	case "", radgate.AgreementAgree, radgate.AgreementDisagree:
	default:
		return bad("unknown agreement %q (known: agree, disagree)", v.Agreement)
	}
	if v.OrderID == "" && v.StudyInstanceUID == "" && (v.Accession == nil || strings.TrimSpace(v.Accession.Value) == "") {
		return bad("names no order: neither accession number, Study Instance UID nor order id")
	}
	return nil
}

// verdictDigest is the verdict's content without ReceivedAt.
func verdictDigest(v radgate.Verdict) string {
	v.ReceivedAt = time.Time{}
	b, _ := json.Marshal(v)
	return hash(string(b))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
