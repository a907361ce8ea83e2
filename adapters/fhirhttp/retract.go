package fhirhttp

import (
	"cmp"
	"context"
	"fmt"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// Codes of a retraction's Provenance.
var (
	// activityNullify is Provenance.activity: v3-DataOperation NULLIFY.
	activityNullify = map[string]any{"coding": []any{map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "NULLIFY", "display": "nullify"}},
		"text": "result retracted"}
	// agentAssembler is Provenance.agent.type, as on the result's own
	// Provenance.
	agentAssembler = map[string]any{"coding": []any{map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler", "display": "Assembler"}}}
)

// RetractionProvenanceID is the id of the Provenance that records the
// retraction of result id (written with PUT, once).
func RetractionProvenanceID(resultID string) string {
	return fhir.ProvenanceID(resultID) + "-retracted"
}

// retract withdraws result r at this server, in one transaction: its
// report (DiagnosticReport, or the Task of a result that was not scored)
// and the report's Observations and Media become entered-in-error, the
// order's radiologist read Task, when still open, is cancelled, and a
// Provenance (activity v3-DataOperation NULLIFY, agent the engine's
// Device, reason r.RetractReason) records it. The report's update is
// guarded by its version (If-Match), so of two concurrent retractions one
// writes and the other finds the work done. A report already entered in
// error is left alone, and a result never written here is nothing to
// withdraw: both succeed without writing.
func (s *Sink) retract(ctx context.Context, r radgate.Result) (radgate.Receipt, error) {
	for attempt := 1; ; attempt++ {
		ref, err := s.retractOnce(ctx, r)
		if isConflict(err) && attempt < maxConflicts {
			s.log.Info("report changed while retracting; reading it again", "result_id", r.ID, "attempt", attempt)
			continue
		}
		if err != nil {
			s.log.Warn("result not retracted", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
				"transient", radgate.IsTransient(err), "error", err)
			return radgate.Receipt{}, fmt.Errorf("retracting result %s: %w", r.ID, err)
		}
		return radgate.Receipt{Report: ref}, nil
	}
}

func (s *Sink) retractOnce(ctx context.Context, r radgate.Result) (string, error) {
	id := fhir.ResultIdentifier(r.ID)
	var report *stored
	for _, typ := range []string{"DiagnosticReport", "Task"} {
		st, err := s.findOne(ctx, typ, id)
		if err != nil {
			return "", err
		}
		if st != nil {
			report = st
			break
		}
	}
	if report == nil {
		s.log.Info("nothing to retract: the result was never written here", "result_id", r.ID, "order_id", r.Order.ID)
		return "", nil
	}
	if report.status == "entered-in-error" {
		s.log.Info("result already retracted", "result_id", r.ID, "report", report.ref)
		return report.ref, nil
	}
	reason := cmp.Or(r.RetractReason, "result retracted")
	doc := &txDoc{ResourceType: "Bundle", Type: "transaction"}
	targets := []string{report.ref}

	report.body["status"] = "entered-in-error"
	delete(report.body, "meta")
	e := &txEntry{Resource: report.body}
	e.putAt(report.ref, report.version)
	doc.Entry = append(doc.Entry, e)
	for _, ref := range append(report.refs("result", ""), report.refs("media", "link")...) {
		if err := s.addStatusUpdate(ctx, doc, ref, "entered-in-error", nil); err != nil {
			return "", err
		}
		targets = append(targets, ref)
	}
	if r.Order.ID != "" {
		task, err := s.findOne(ctx, "Task", fhir.Identifier{System: fhir.SystemReadRequest, Value: r.Order.ID})
		if err != nil {
			return "", err
		}
		if task != nil && openTask(task.status) {
			err := s.addStatusUpdate(ctx, doc, task.ref, "cancelled", func(t map[string]any) {
				t["statusReason"] = map[string]any{"text": reason}
			})
			if err != nil {
				return "", err
			}
			targets = append(targets, task.ref)
		}
	}

	agent := map[string]any{"display": "radgate"}
	if r.Engine.ID != "" && r.Engine.Disclaimer != "" {
		// The Device as the builders write it, looked up or created once.
		in := ResultInput(r)
		in.Reason = reason
		b, err := fhir.BuildTaskBundle(in, fhir.TaskFailed)
		if err != nil {
			return "", err
		}
		built, err := openTx(b)
		if err != nil {
			return "", err
		}
		if d := built.find("Device"); d != nil {
			ref, err := s.device(ctx, d.Resource)
			if err != nil {
				return "", err
			}
			agent = map[string]any{"reference": ref, "type": "Device", "display": r.Engine.Name + " " + r.Engine.Version}
		}
	}
	var target []any
	for _, t := range targets {
		target = append(target, map[string]any{"reference": t})
	}
	prov := map[string]any{
		"resourceType": "Provenance",
		"target":       target,
		"recorded":     s.now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"reason":       []any{map[string]any{"text": reason}},
		"activity":     activityNullify,
		"agent":        []any{map[string]any{"type": agentAssembler, "who": agent}},
	}
	pe := &txEntry{Resource: prov}
	pe.putAt("Provenance/"+RetractionProvenanceID(r.ID), "")
	doc.Entry = append(doc.Entry, pe)

	body, err := doc.marshal()
	if err != nil {
		return "", fmt.Errorf("writing the retraction: %w", err)
	}
	if _, err := s.Transaction(ctx, body); err != nil {
		return "", err
	}
	s.log.Info("result retracted", "result_id", r.ID, "order_id", r.Order.ID, "engine", r.Engine.ID,
		"report", report.ref, "resources", len(targets))
	return report.ref, nil
}

// openTask reports whether a Task of this status may still be worked on
// (and so is cancelled with its order's result).
func openTask(status string) bool {
	switch status {
	case "draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold":
		return true
	}
	return false
}
