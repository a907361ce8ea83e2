package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/console"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/pipeline"
)

// withConsole serves the operator console at /console/ beside intake (the
// authenticated mux): the console authenticates by its own session
// cookie, signed in with the same authenticator.
func withConsole(ctx context.Context, cfg config.Config, sec *security, topo *broker.Topology, pipe *pipeline.Pipeline,
	logger *slog.Logger, intake http.Handler, parts consoleParts) (http.Handler, error) {
	o := console.Options{Auth: sec.auth, SessionTTL: cfg.Console.SessionTTL.D(), TLS: sec.tls != nil, Order: pipe, Orders: pipe, Logger: logger}
	if !sec.auth.Open() {
		kv, err := broker.EnsureConsoleSessions(ctx, topo.JS, o.SessionTTL)
		if err != nil {
			return nil, err
		}
		o.Sessions = kv
	}
	// Routes, engines and usage (issue 15 slice E).
	o.Routes, o.Governance, o.Usage = parts.routes, parts.gov, parts.usage
	o.Engines = func() []console.EngineInfo { return engineInfos(parts.engines) }
	// Failures (issue 15 slice D): the DLQ and the HL7 outbox, replayed and
	// re-sent by the same code as radgate dlq / hl7; each action audited on
	// the EHR's FHIR server when there is one (else in the log only).
	o.DLQ = broker.NewDLQ(topo.JS)
	o.Outbox = hl7Outbox{js: topo.JS, timeout: hl7ResendTimeout}
	if cfg.FHIR.BaseURL != "" {
		fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: cfg.FHIR.BaseURL, HTTPClient: sec.fhir, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("fhir (audit of console actions): %w", err)
		}
		o.Audit = fhirAuditor{c: fc, timeout: cfg.FHIR.Timeout.D()}
	}
	// Health page and live updates (issue 15 slice H): the peers as
	// `radgate check --connect` reaches them, at most every 10 s, 5 s
	// each; the stage queues, the last hour and the order changes from the
	// pipeline; open streams end when serve shuts the listener down.
	probes := append(peerProbes(cfg, sec, parts.reg, parts.pacs, topo.JS, logger), peerProbe{
		"nats: radgate's own connection (JetStream)", func(context.Context) error {
			if st := topo.JS.Conn().Status(); st != nats.CONNECTED {
				return fmt.Errorf("NATS connection %s", st)
			}
			return nil
		}})
	o.Peers = console.CachePeers(consolePeers(probes), 10*time.Second, 5*time.Second)
	o.Health, o.Changes, o.Done = pipe, pipe, parts.done
	// The order page (issue 15 slice C): heatmap thumbnails from the
	// pipeline's object store, links into each destination that has a URL.
	o.Pictures, o.Destinations = topo.Heatmaps, consoleLinks(cfg)
	if o.Audit != nil {
		audit := o.Audit
		o.AuditPHIView = func(ctx context.Context, subject, orderID string) {
			ref, err := audit.AuditAction(ctx, console.Action{Subject: subject, Kind: "phi-view", Entities: []string{"order/" + orderID},
				Outcome: "done", Detail: "order page with patient data shown", At: time.Now()})
			if err != nil {
				logger.Warn("console PHI view not audited on the FHIR server", "order", orderID, "subject", subject, "error", err)
				return
			}
			logger.Info("console PHI view audited", "order", orderID, "subject", subject, "audit", ref)
		}
	}
	// OIDC sign-in (issue 15 slice O): the client secret from its
	// environment variable, read now so that a missing one stops serve.
	if oc := cfg.Console.OIDC; oc.Enabled() && !sec.auth.Open() {
		secret, err := config.Secret(oc.ClientSecretEnv, "")
		if err != nil {
			return nil, fmt.Errorf("console.oidc.client_secret_env: %w", err)
		}
		if o.OIDC, err = console.NewOIDC(console.OIDCConfig{Issuer: oc.Issuer, ClientID: oc.ClientID, ClientSecret: secret,
			RedirectURL: oc.RedirectURL, Scopes: oc.ScopeList(), RolesClaim: cfg.OIDCRolesClaim()}); err != nil {
			return nil, err
		}
	}
	c, err := console.New(o)
	if err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle("/console/", c)
	root.Handle("/", intake)
	return root, nil
}

// consoleParts are the components the console's pages read besides the
// pipeline.
type consoleParts struct {
	routes  *routeReloader
	gov     *governance.Governance
	usage   *billing.UsageMeter
	engines *inference.Registry
	// Health (slice H): the destination types (for the peer probes), the
	// PACS client, and done, closed when serve shuts its listener down.
	reg  *radgate.Registry
	pacs *dicomweb.Client
	done <-chan struct{}
}

// engineInfos is the engines page's view of the models directory: each
// manifest and its model card (MODEL_CARD.md beside it, when there is one).
func engineInfos(reg *inference.Registry) []console.EngineInfo {
	if reg == nil {
		return nil
	}
	var out []console.EngineInfo
	for _, m := range reg.Manifests() {
		e := console.EngineInfo{ID: m.ID, Name: m.Name, Version: m.Version, Modalities: m.Modalities, BodyParts: m.BodyParts,
			Views: m.Views, TierMid: m.Thresholds.TierMid, TierHigh: m.Thresholds.TierHigh, Mark: m.Thresholds.Mark,
			IntendedUse: m.IntendedUse, Finding: fmt.Sprintf("%s (%s %s)", m.Finding.Display, m.Finding.System, m.Finding.Code)}
		a := m.Accepts
		if a.MinRows > 0 || a.MinColumns > 0 {
			e.Accepts = append(e.Accepts, fmt.Sprintf("at least %d × %d pixels", a.MinRows, a.MinColumns))
		}
		if r := a.PixelSpacingMM; r != nil {
			e.Accepts = append(e.Accepts, fmt.Sprintf("pixel spacing %g–%g mm", r.Min, r.Max))
		}
		if r := a.AgeYears; r != nil {
			e.Accepts = append(e.Accepts, "age_years "+r.String())
		}
		for _, s := range []struct {
			name string
			m    *inference.SplitMetrics
		}{{"validation", m.Metrics.Validation}, {"test", m.Metrics.Test}} {
			if s.m != nil {
				e.Metrics = append(e.Metrics, fmt.Sprintf("%s: AUC %.4f, sensitivity %.3f, specificity %.3f, ECE %.3f (n=%d, %s)",
					s.name, s.m.AUC, s.m.Sensitivity, s.m.Specificity, s.m.ECE, s.m.N, s.m.Dataset))
			}
		}
		if b, err := os.ReadFile(filepath.Join(m.Dir, "MODEL_CARD.md")); err == nil {
			e.Card = string(b)
		}
		out = append(out, e)
	}
	return out
}

// AuditAction writes a console action as an AuditEvent (POST: each action
// is its own event) and returns its reference.
func (a fhirAuditor) AuditAction(ctx context.Context, act console.Action) (string, error) {
	b, err := fhir.ConsoleAuditEvent(fhir.ConsoleAction{Subject: act.Subject, Roles: act.Roles, Kind: act.Kind,
		Entities: act.Entities, Outcome: act.Outcome, Detail: act.Detail, At: act.At})
	if err != nil {
		return "", err
	}
	return a.write(ctx, b, false)
}

// hl7ResendTimeout is how long a console re-send waits for the connection
// and the ACK (radgate hl7 resend --timeout; shorter, a browser waits).
const hl7ResendTimeout = 10 * time.Second

// hl7Outbox is the HL7 outbox as the console sees it: opened on each use
// (the bucket appears with the first HL7 result), re-sent through
// hl7v2.Outbox.ResendTo as radgate hl7 resend does.
type hl7Outbox struct {
	js      jetstream.JetStream
	timeout time.Duration
}

// open returns the outbox, nil when no HL7 message was ever stored.
func (h hl7Outbox) open(ctx context.Context) (*hl7v2.Outbox, error) {
	if _, err := h.js.ObjectStore(ctx, hl7v2.BucketOutbox); errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	return hl7v2.OpenOutbox(ctx, h.js, false)
}

func (h hl7Outbox) ListOutbox(ctx context.Context) ([]console.OutboxMessage, error) {
	ob, err := h.open(ctx)
	if ob == nil || err != nil {
		return nil, err
	}
	msgs, err := ob.List(ctx)
	out := make([]console.OutboxMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, outboxMessage(m))
	}
	return out, err
}

func (h hl7Outbox) ResendOutbox(ctx context.Context, key string) (console.OutboxMessage, error) {
	ob, err := h.open(ctx)
	if err != nil {
		return console.OutboxMessage{}, err
	}
	if ob == nil {
		return console.OutboxMessage{}, fmt.Errorf("%w: %s (no HL7 message has been stored yet)", hl7v2.ErrNotStored, key)
	}
	m, addr, err := ob.ResendTo(ctx, key, "", h.timeout)
	if err != nil && m.ResultID != "" {
		err = fmt.Errorf("re-sending %s (MSH-10 %s) to %s: %w", key, m.ControlID, addr, err)
	}
	return outboxMessage(m), err
}

func outboxMessage(m hl7v2.StoredMessage) console.OutboxMessage {
	return console.OutboxMessage{Key: m.Key(), OrderID: m.OrderID, ControlID: m.ControlID, Destination: m.Destination,
		State: m.State(), Failed: m.Failed(), Attempts: m.Attempts, LastError: m.Problem(), StoredAt: m.StoredAt}
}

// consoleLinks says where each destination's objects open on the order
// page: the FHIR base or DICOMweb root, without any credentials in it.
func consoleLinks(cfg config.Config) map[string]console.DestinationLink {
	out := map[string]console.DestinationLink{}
	for _, name := range cfg.DestinationNames() {
		d := builtinDestination(cfg)
		if name != config.BuiltinDestination {
			d = cfg.Destinations[name]
		}
		link := console.DestinationLink{Type: d.Type}
		if u, err := url.Parse(d.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && (d.Type == "fhir" || d.Type == "dicomweb") {
			u.User = nil
			link.URL = u.String()
		}
		out[name] = link
	}
	return out
}
