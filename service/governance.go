package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/pipeline"
	"github.com/radgate/radgate/routing"
)

// newGovernance builds engine governance on the topology: routes and engine
// versions are read from pipe when asked (set once the pipeline exists),
// engines' references from their manifests in reg, and every state change
// is written as a FHIR AuditEvent, every drift alert as a FHIR Flag, to the
// EHR's FHIR server (fhir.base_url) when one is configured.
func newGovernance(cfg config.Config, topo *broker.Topology, sec *security, pipe **pipeline.Pipeline, reg *inference.Registry,
	now func() time.Time, logger *slog.Logger) (*governance.Governance, error) {
	o := governance.Options{Topology: topo, Logger: logger, Now: now, Reference: engineReference(reg),
		Routes:  func() *routing.Set { return (*pipe).RouteSet() },
		Version: func(engine string) (string, bool) { return (*pipe).EngineVersion(engine) },
	}
	if cfg.FHIR.BaseURL != "" {
		c, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("fhir (audit of engine state changes): %w", err)
		}
		o.Audit = fhirAuditor{c: c, timeout: cfg.FHIR.Timeout.D()}
		o.Drift = fhirDrifter{c: c, timeout: cfg.FHIR.Timeout.D()}
	}
	return governance.New(o), nil
}

// fhirAuditor writes each engine state change as an AuditEvent, with PUT
// at an id derived from the change, so a retried write is one resource; and
// each console action (AuditAction, in console.go) with POST.
type fhirAuditor struct {
	c       *fhirhttp.Client
	timeout time.Duration
}

func (a fhirAuditor) AuditChange(ctx context.Context, c governance.Change) (string, error) {
	s := c.State
	at, _ := time.Parse(time.RFC3339Nano, s.At)
	ch := fhir.EngineStateChange{ID: fmt.Sprintf("radgate-engine-state-%d", c.LogSequence),
		Facility: s.Facility, Route: s.Route, Engine: s.Engine, Version: s.Version,
		From: string(s.Previous), To: string(s.Mode), By: s.By, Why: s.Why, At: at}
	if c.LogSequence == 0 {
		ch.ID = ""
	}
	if s.Evidence != nil {
		for _, chk := range s.Evidence.Checks {
			ch.Evidence = append(ch.Evidence, chk.Text)
		}
		ch.EvidenceJSON, _ = json.Marshal(s.Evidence)
	}
	for _, d := range s.Drift {
		ch.Evidence = append(ch.Evidence, "drift "+d.Rule+": "+d.Text)
	}
	if len(s.Drift) > 0 && ch.EvidenceJSON == nil {
		ch.EvidenceJSON, _ = json.Marshal(s.Drift)
	}
	b, err := fhir.EngineStateAuditEvent(ch)
	if err != nil {
		return "", err
	}
	return a.write(ctx, b, ch.ID != "")
}

// write stores an AuditEvent within the timeout: with PUT when it has an
// id of its own (withID), else with POST; it returns the reference.
func (a fhirAuditor) write(ctx context.Context, b []byte, withID bool) (string, error) {
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	if !withID {
		return a.c.Create(ctx, b, "")
	}
	return a.c.Update(ctx, b)
}

// engineStateHandler serves radgate engines state / activate / suspend:
//
//	GET  /engines/state[?facility=F&route=R]  every recorded engine state (any caller)
//	POST /engines/state                       a governance.ChangeRequest (facility,
//	                                          route, engine, mode, why); operator role only
//
// A POST is answered 200 with the governance.ChangeResult; 409 when the
// evaluation does not meet the route's minimums (error and evaluation in
// the body), 404 for an unknown route or engine, 400 for a bad request,
// 403 without the operator role, 503 when the store failed.
func engineStateHandler(gov *governance.Governance, logger *slog.Logger) http.Handler {
	log := logger.With("component", "governance-http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			states, err := gov.States(r.Context(), r.URL.Query().Get("facility"), r.URL.Query().Get("route"))
			if err != nil {
				log.Warn("listing engine states failed", "err", err)
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "engine states not readable now; retry"})
				return
			}
			if states == nil {
				states = []governance.State{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"states": states})
		case http.MethodPost:
			if !httpauth.Allowed(w, r, httpauth.RoleOperator) {
				return
			}
			var req governance.ChangeRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "a state change is a JSON object {facility, route, engine, mode, why}: " + err.Error()})
				return
			}
			p, _ := httpauth.PrincipalFrom(r.Context())
			req.By = p.Name
			req.Mode = radgate.EngineMode(strings.ToLower(string(req.Mode)))
			res, err := gov.Change(r.Context(), req)
			switch {
			case err == nil:
				writeJSON(w, http.StatusOK, res)
			case errors.Is(err, governance.ErrNotAccepted):
				writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "evaluation": res.Evaluation})
			case errors.Is(err, governance.ErrUnknown):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case errors.Is(err, governance.ErrBadRequest):
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			default:
				log.Warn("engine state change failed", "err", err)
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "engine state not changed: " + err.Error()})
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " not allowed on /engines/state (allowed: GET, POST)"})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // figures read "< minimum 0.80"
	_ = enc.Encode(v)
}

// verdictCodes is the verdict code table of both intakes: the built-in
// codes and the site's own (verdicts.codes in radgate.yaml).
func verdictCodes(cfg config.Config) fhir.VerdictCodes {
	t := slices.Clone(fhir.DefaultVerdictCodes)
	for _, c := range cfg.Verdicts.Codes {
		t = append(t, fhir.VerdictCode{System: c.System, Code: c.Code, Display: c.Display, Finding: c.Finding})
	}
	return t
}

// patientAges reads an order's Patient from the EHR's FHIR server for its
// age (pipeline.Options.PatientAge) when the image and the order gave none;
// nil without fhir.base_url.
func patientAges(cfg config.Config, sec *security, logger *slog.Logger) func(context.Context, string, time.Time) (*radgate.PatientAge, error) {
	if cfg.FHIR.BaseURL == "" {
		return nil
	}
	c, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir, Logger: logger})
	if err != nil {
		return nil // the fhir destination reports the same configuration error
	}
	timeout := cfg.FHIR.Timeout.D()
	return func(ctx context.Context, ref string, at time.Time) (*radgate.PatientAge, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return c.PatientAge(ctx, ref, at)
	}
}
