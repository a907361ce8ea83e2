package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
)

// Score is one engine result recorded for measurement: what labels are
// joined to. The latest revision of an order × engine replaces the last.
type Score struct {
	ResultID string `json:"result_id"`
	OrderID  string `json:"order_id"`
	Facility string `json:"facility"`
	// Route is the route whose acceptance minimums govern the engine (the
	// first matched route otherwise).
	Route    string `json:"route,omitempty"`
	Engine   string `json:"engine"`
	Version  string `json:"version"`
	Revision int    `json:"revision"`
	// Accession and StudyInstanceUID identify the study (for matching
	// verdicts; never a patient's name).
	Accession        *radgate.Identifier `json:"accession,omitempty"`
	StudyInstanceUID string              `json:"study_instance_uid,omitempty"`
	Outcome          radgate.Outcome     `json:"outcome"`
	Probability      *float64            `json:"probability,omitempty"`
	Tier             string              `json:"tier,omitempty"`
	// InScope is false for a study outside the engine's intended use;
	// OutOfScope then says why (the result's reason).
	InScope    bool               `json:"in_scope"`
	OutOfScope string             `json:"out_of_scope,omitempty"`
	Mode       radgate.EngineMode `json:"mode"`
	ScoredAt   string             `json:"scored_at"`
	// RecordedAt is when governance recorded it (its clock, Options.Now):
	// what live monitoring's windows and days count by.
	RecordedAt string `json:"recorded_at,omitempty"`
	// Modality and Manufacturer are the scored image's; AgeBand the
	// patient's age band (AgeBand), never the age itself: the input mix
	// live monitoring reports.
	Modality     string `json:"modality,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	AgeBand      string `json:"age_band,omitempty"`
}

// monitorKey is a copy of a facility × engine's score under a prefix of
// both: live monitoring lists one facility × engine's results with a
// subject filter ("m.<facility>.<engine>.*") instead of reading every
// order's record ("r.<order>.<engine>" leads with the order).
func monitorKey(facility, engine, orderID string) string {
	return "m." + broker.Token(facility) + "." + broker.Token(engine) + "." + broker.Token(orderID)
}

// Age bands of the input mix.
const (
	AgeBandInfant  = "<1"
	AgeBandChild   = "1–5"
	AgeBandMinor   = "6–17"
	AgeBandAdult   = "18–64"
	AgeBandOlder   = "≥65"
	AgeBandUnknown = "unknown"
)

// AgeBands are the bands in order.
var AgeBands = []string{AgeBandInfant, AgeBandChild, AgeBandMinor, AgeBandAdult, AgeBandOlder, AgeBandUnknown}

// AgeBand is the band of an age in whole years (nil: unknown).
func AgeBand(a *radgate.PatientAge) string {
	switch {
	case a == nil:
		return AgeBandUnknown
	case a.Years < 1:
		return AgeBandInfant
	case a.Years <= 5:
		return AgeBandChild
	case a.Years <= 17:
		return AgeBandMinor
	case a.Years <= 64:
		return AgeBandAdult
	}
	return AgeBandOlder
}

func scoreKey(orderID, engine string) string {
	return "r." + broker.Token(orderID) + "." + broker.Token(engine)
}

// Index keys: an order by accession (with and without its system) and by
// Study Instance UID.
func accessionKey(system, value string) string {
	return "a." + hash(strings.TrimSpace(system)+"|"+strings.TrimSpace(value))
}
func accessionValueKey(value string) string { return "v." + hash(strings.TrimSpace(value)) }
func studyKey(uid string) string            { return "u." + hash(radgate.StripUIDPrefix(strings.TrimSpace(uid))) }

// Measure records an engine's result for measurement, whatever its mode
// and outcome: the order's indexes first, then the record, each an
// idempotent put, so a retry after a crash leaves one record.
func (g *Governance) Measure(ctx context.Context, r radgate.Result, mode radgate.EngineMode) error {
	st := r.Order
	if st.ID == "" || r.Engine.ID == "" || r.Engine.ID == radgate.RouterEngine {
		return nil
	}
	kv := g.o.Topology.Scores
	s := Score{ResultID: r.ID, OrderID: st.ID, Facility: facilityOf(st), Engine: r.Engine.ID, Version: r.Engine.Version,
		Revision: max(r.Revision, 1), Accession: st.Accession, StudyInstanceUID: st.StudyInstanceUID, Outcome: r.Outcome,
		InScope: r.Outcome == radgate.OutcomeScored, Mode: mode, ScoredAt: r.ScoredAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		RecordedAt: g.now()}
	age := st.Age
	if in := r.Input; in != nil {
		s.Modality, s.Manufacturer = in.Modality, in.Manufacturer
		if in.Age != nil {
			age = in.Age
		}
	}
	s.AgeBand = AgeBand(age)
	if s.StudyInstanceUID == "" {
		s.StudyInstanceUID = r.StudyInstanceUID
	}
	if st.Route != nil {
		if st.Route.Acceptance != nil {
			s.Route = st.Route.Acceptance.Route
		} else if len(st.Route.Routes) > 0 {
			s.Route = st.Route.Routes[0]
		}
	}
	switch r.Outcome {
	case radgate.OutcomeScored:
		p := r.Probability
		s.Probability, s.Tier = &p, r.Tier
		if r.OutOfScope != "" {
			s.InScope, s.OutOfScope = false, r.OutOfScope // scored in shadow although outside the intended use
		}
	case radgate.OutcomeNotApplicable:
		s.OutOfScope = r.Reason
	}
	var index []string
	if a := st.Accession; a != nil && strings.TrimSpace(a.Value) != "" {
		index = append(index, accessionKey(a.System, a.Value), accessionValueKey(a.Value))
	}
	if s.StudyInstanceUID != "" {
		index = append(index, studyKey(s.StudyInstanceUID))
	}
	for _, k := range index {
		if _, err := kv.Put(ctx, k, []byte(st.ID)); err != nil {
			return fmt.Errorf("indexing order %s for verdicts: %w", st.ID, err)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, scoreKey(st.ID, r.Engine.ID), b); err != nil {
		return fmt.Errorf("recording the result of engine %s for order %s: %w", r.Engine.ID, st.ID, err)
	}
	if _, err := kv.Put(ctx, monitorKey(s.Facility, s.Engine, st.ID), b); err != nil {
		return fmt.Errorf("indexing the result of engine %s for order %s for monitoring: %w", r.Engine.ID, st.ID, err)
	}
	return nil
}

// scoresOf returns the recorded results of an order, by engine.
func (g *Governance) scoresOf(ctx context.Context, orderID string) (map[string]Score, error) {
	kv := g.o.Topology.Scores
	lister, err := kv.ListKeysFiltered(ctx, "r."+broker.Token(orderID)+".*")
	if err != nil {
		return nil, fmt.Errorf("listing the results of order %s: %w", orderID, err)
	}
	out := map[string]Score{}
	for key := range lister.Keys() {
		var s Score
		if _, err := getJSON(ctx, kv, key, &s); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		out[s.Engine] = s
	}
	return out, nil
}

// lookup returns the order an index key names.
func (g *Governance) lookup(ctx context.Context, key string) (string, bool, error) {
	e, err := g.o.Topology.Scores.Get(ctx, key)
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the verdict index: %w", err)
	}
	return string(e.Value()), true, nil
}
