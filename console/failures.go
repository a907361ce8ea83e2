package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker"
)

// DeadLetters is the dead-letter stream (broker.DLQ): the console lists it
// and replays through the same ReplayAll as radgate dlq replay.
type DeadLetters interface {
	List(ctx context.Context, stage string) ([]broker.DeadLetter, error)
	ReplayAll(ctx context.Context, seqs []uint64, keep bool) []broker.ReplayOutcome
}

// OutboxMessage is one stored HL7 message of the outbox, identifiers only.
type OutboxMessage struct {
	// Key is the outbox key (result id, "-r<N>[x]" for a revision), what
	// Resend takes.
	Key, OrderID, ControlID, Destination string
	// State is "acknowledged", "refused", "not acknowledged" or "stored";
	// Failed is set for the two that need an operator.
	State     string
	Failed    bool
	Attempts  int
	LastError string
	StoredAt  time.Time
}

// Outbox is the HL7 outbox (hl7v2.Outbox, adapted by service): Resend
// re-sends one message as radgate hl7 resend does, to its recorded
// destination.
type Outbox interface {
	ListOutbox(ctx context.Context) ([]OutboxMessage, error)
	ResendOutbox(ctx context.Context, key string) (OutboxMessage, error)
}

// Action is an operator's action (or a view of patient data) as it is
// audited: who, what to which entities, and how it ended.
type Action struct {
	Subject string
	Roles   []string
	// Kind: "dlq-replay", "hl7-resend", "phi-view", …
	Kind string
	// Entities are "<kind>/<id>": "dlq/7", "hl7-outbox/<key>",
	// "order/<order id>" — identifiers, never patient data.
	Entities []string
	// Outcome: "done", "partial" or "failed"; Detail in words.
	Outcome, Detail string
	At              time.Time
}

// Auditor records actions (service writes them as FHIR AuditEvents) and
// returns the record's reference ("AuditEvent/…").
type Auditor interface {
	AuditAction(ctx context.Context, a Action) (string, error)
}

// failuresLimit is how many rows each table shows unless ?limit= says.
const failuresLimit = 100

// dlqRow is a dead letter of the failures page.
type dlqRow struct {
	broker.DeadLetter
	Facility string
}

// failures serves GET /console/failures: the DLQ and the HL7 outbox.
func (c *Console) failures(w http.ResponseWriter, r *http.Request) {
	limit := failuresLimit
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 1000 {
		limit = n
	}
	allHL7 := r.URL.Query().Get("hl7") == "all"
	data := map[string]any{"Limit": limit, "AllHL7": allHL7, "HasDLQ": c.o.DLQ != nil, "HasOutbox": c.o.Outbox != nil,
		"Operator": userFrom(r).Has(httpauth.RoleOperator)}
	if c.o.DLQ != nil {
		dls, err := c.o.DLQ.List(r.Context(), "")
		if err != nil {
			c.log.Error("console DLQ list failed", "error", err)
			data["DLQErr"] = err.Error()
		}
		data["DLQTotal"] = len(dls)
		slices.Reverse(dls) // newest first
		dls = dls[:min(len(dls), limit)]
		facility := map[string]string{}
		rows := make([]dlqRow, 0, len(dls))
		for _, dl := range dls {
			rows = append(rows, dlqRow{DeadLetter: dl, Facility: c.facilityOf(r.Context(), dl.OrderID, facility)})
		}
		data["DLQ"] = rows
	}
	if c.o.Outbox != nil {
		msgs, err := c.o.Outbox.ListOutbox(r.Context())
		if err != nil {
			c.log.Error("console HL7 outbox list failed", "error", err)
			data["OutboxErr"] = err.Error()
		}
		if !allHL7 {
			msgs = slices.DeleteFunc(msgs, func(m OutboxMessage) bool { return !m.Failed })
		}
		data["OutboxTotal"] = len(msgs)
		slices.Reverse(msgs)
		data["Outbox"] = msgs[:min(len(msgs), limit)]
	}
	c.render(w, r, http.StatusOK, "failures", data)
}

// facilityOf is an order's facility from the order store ("" when unknown),
// remembered in seen.
func (c *Console) facilityOf(ctx context.Context, orderID string, seen map[string]string) string {
	if orderID == "" || c.o.Order == nil {
		return ""
	}
	if f, ok := seen[orderID]; ok {
		return f
	}
	st, err := c.o.Order.Status(ctx, orderID)
	f := ""
	if err == nil {
		f = cmp.Or(st.FacilityID, st.Facility)
	}
	seen[orderID] = f
	return f
}

// operator refuses (403) a POST by a principal without the operator role.
func (c *Console) operator(w http.ResponseWriter, r *http.Request) bool {
	u := userFrom(r)
	if u.Has(httpauth.RoleOperator) {
		return true
	}
	c.log.Info("console action refused: not an operator", "path", r.URL.Path, "subject", u.Name)
	c.message(w, r, http.StatusForbidden, "Forbidden",
		"Replaying and re-sending need the operator role; you have: "+u.RoleList()+".")
	return false
}

// selected is what a form chose: the row button's value alone ("one"),
// else the ticked boxes (name).
func selected(r *http.Request, name string) []string {
	if one := strings.TrimSpace(r.PostFormValue("one")); one != "" {
		return []string{one}
	}
	var out []string
	for _, v := range r.PostForm[name] {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// outcomeRow is one entry of a confirmation or outcome page.
type outcomeRow struct {
	ID, Stage, OrderID, What string
	Err                      string
	Done                     bool
}

// replay serves POST /console/failures/replay: without confirm=yes it
// renders what will be replayed; with it, it replays (broker.DLQ.ReplayAll),
// audits and renders the outcome per dead letter.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	if !c.operator(w, r) {
		return
	}
	if c.o.DLQ == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Replay", "This radgate has no dead-letter stream.")
		return
	}
	var seqs []uint64
	for _, s := range selected(r, "seq") {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			c.message(w, r, http.StatusBadRequest, "Replay", fmt.Sprintf("%q is not a dead-letter id.", s))
			return
		}
		seqs = append(seqs, n)
	}
	if len(seqs) == 0 {
		c.message(w, r, http.StatusBadRequest, "Replay", "No dead letter was selected.")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		dls, err := c.o.DLQ.List(r.Context(), "")
		if err != nil {
			c.message(w, r, http.StatusServiceUnavailable, "Replay", "The dead letters could not be read: "+err.Error())
			return
		}
		rows := make([]outcomeRow, 0, len(seqs))
		for _, seq := range seqs {
			row := outcomeRow{ID: strconv.FormatUint(seq, 10), Err: "not in the DLQ (replayed or removed already)"}
			if i := slices.IndexFunc(dls, func(d broker.DeadLetter) bool { return d.Seq == seq }); i >= 0 {
				row = outcomeRow{ID: row.ID, Stage: dls[i].Stage, OrderID: dls[i].OrderID, What: dls[i].Reason}
			}
			rows = append(rows, row)
		}
		c.render(w, r, http.StatusOK, "failures_confirm", map[string]any{"Kind": "replay", "Action": "/console/failures/replay",
			"Field": "seq", "Rows": rows})
		return
	}
	u := userFrom(r)
	outs := c.o.DLQ.ReplayAll(r.Context(), seqs, false)
	rows := make([]outcomeRow, 0, len(outs))
	var entities []string
	failed := 0
	for _, o := range outs {
		dl := o.Replayed.DeadLetter
		row := outcomeRow{ID: strconv.FormatUint(o.Seq, 10), Stage: dl.Stage, OrderID: dl.OrderID, Done: o.Err == nil}
		if o.Replayed.Stream != "" {
			row.What = o.Replayed.Describe(false)
		}
		if o.Err != nil {
			failed++
			row.Err = o.Err.Error()
		}
		rows = append(rows, row)
		entities = append(entities, "dlq/"+row.ID)
		if dl.OrderID != "" && !slices.Contains(entities, "order/"+dl.OrderID) {
			entities = append(entities, "order/"+dl.OrderID)
		}
	}
	ref, auditErr := c.audit(r.Context(), u, "dlq-replay", entities, len(outs), failed)
	c.render(w, r, http.StatusOK, "failures_outcome", map[string]any{"Kind": "replay", "Rows": rows, "Failed": failed,
		"Audit": ref, "AuditErr": auditErr, "NoAuditor": c.o.Audit == nil})
}

// resendParallel is how many HL7 messages a re-send sends at a time.
const resendParallel = 8

// outboxKey is what an outbox key looks like (a result id, maybe -r<N>[x]).
var outboxKey = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// resend serves POST /console/failures/resend: the HL7 twin of replay, one
// try per message to its recorded destination (as radgate hl7 resend).
func (c *Console) resend(w http.ResponseWriter, r *http.Request) {
	if !c.operator(w, r) {
		return
	}
	if c.o.Outbox == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Re-send", "This radgate has no HL7 outbox.")
		return
	}
	keys := selected(r, "key")
	for _, k := range keys {
		if !outboxKey.MatchString(k) {
			c.message(w, r, http.StatusBadRequest, "Re-send", fmt.Sprintf("%q is not an HL7 outbox key.", k))
			return
		}
	}
	if len(keys) == 0 {
		c.message(w, r, http.StatusBadRequest, "Re-send", "No HL7 message was selected.")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		msgs, err := c.o.Outbox.ListOutbox(r.Context())
		if err != nil {
			c.message(w, r, http.StatusServiceUnavailable, "Re-send", "The HL7 outbox could not be read: "+err.Error())
			return
		}
		rows := make([]outcomeRow, 0, len(keys))
		for _, k := range keys {
			row := outcomeRow{ID: k, Err: "not in the HL7 outbox"}
			if i := slices.IndexFunc(msgs, func(m OutboxMessage) bool { return m.Key == k }); i >= 0 {
				m := msgs[i]
				row = outcomeRow{ID: k, Stage: m.State, OrderID: m.OrderID, What: "MSH-10 " + m.ControlID + " to " + cmp.Or(m.Destination, "—")}
				if m.Destination == "" {
					row.Err = "no destination is recorded"
				}
			}
			rows = append(rows, row)
		}
		c.render(w, r, http.StatusOK, "failures_confirm", map[string]any{"Kind": "re-send", "Action": "/console/failures/resend",
			"Field": "key", "Rows": rows})
		return
	}
	u := userFrom(r)
	rows := make([]outcomeRow, 0, len(keys))
	var entities []string
	failed := 0
	type sent struct {
		m   OutboxMessage
		err error
	}
	// One try each, several at a time: a RIS that does not answer costs
	// its timeout once, not once per message.
	res := make([]sent, len(keys))
	sem := make(chan struct{}, resendParallel)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := c.o.Outbox.ResendOutbox(r.Context(), k)
			res[i] = sent{m, err}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		m, err := res[i].m, res[i].err
		row := outcomeRow{ID: k, Stage: m.State, OrderID: m.OrderID, Done: err == nil}
		if err != nil {
			failed++
			row.Err = err.Error()
		} else {
			row.What = fmt.Sprintf("MSH-10 %s re-sent to %s: %s", m.ControlID, m.Destination, m.State)
		}
		rows = append(rows, row)
		entities = append(entities, "hl7-outbox/"+k)
		if m.OrderID != "" && !slices.Contains(entities, "order/"+m.OrderID) {
			entities = append(entities, "order/"+m.OrderID)
		}
	}
	ref, auditErr := c.audit(r.Context(), u, "hl7-resend", entities, len(keys), failed)
	c.render(w, r, http.StatusOK, "failures_outcome", map[string]any{"Kind": "re-send", "Rows": rows, "Failed": failed,
		"Audit": ref, "AuditErr": auditErr, "NoAuditor": c.o.Audit == nil})
}

// audit logs an action with who did it and what to, and records it with
// the Auditor when there is one; it returns the record's reference and,
// when writing it failed, why.
func (c *Console) audit(ctx context.Context, u user, kind string, entities []string, n, failed int) (string, string) {
	a := Action{Subject: u.Name, Kind: kind, Entities: entities, At: c.o.Now(), Outcome: "done",
		Detail: fmt.Sprintf("%d of %d done", n-failed, n)}
	for _, r := range u.Roles {
		a.Roles = append(a.Roles, string(r))
	}
	switch {
	case failed == n:
		a.Outcome = "failed"
	case failed > 0:
		a.Outcome = "partial"
	}
	ref, errText := "", ""
	if c.o.Audit != nil {
		var err error
		// The action is done: its record is written even if the browser left.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if ref, err = c.o.Audit.AuditAction(actx, a); err != nil {
			errText = err.Error()
			c.log.Warn("console action not audited", "subject", a.Subject, "kind", kind, "entities", entities, "error", err)
		}
	}
	c.log.Info("console action", "subject", a.Subject, "kind", kind, "entities", entities, "outcome", a.Outcome,
		"detail", a.Detail, "audit", ref)
	return ref, errText
}
