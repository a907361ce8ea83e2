package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
)

// fakeDLQ holds dead letters; ReplayAll removes what it replays.
type fakeDLQ struct {
	mu       sync.Mutex
	dls      []broker.DeadLetter
	replayed []uint64
}

func (f *fakeDLQ) List(context.Context, string) ([]broker.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dls), nil
}

func (f *fakeDLQ) ReplayAll(_ context.Context, seqs []uint64, _ bool) []broker.ReplayOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []broker.ReplayOutcome
	for _, s := range seqs {
		i := slices.IndexFunc(f.dls, func(d broker.DeadLetter) bool { return d.Seq == s })
		if i < 0 {
			out = append(out, broker.ReplayOutcome{Seq: s, Err: broker.ErrDeadLetterNotFound})
			continue
		}
		dl := f.dls[i]
		f.dls = slices.Delete(f.dls, i, i+1)
		f.replayed = append(f.replayed, s)
		out = append(out, broker.ReplayOutcome{Seq: s, Replayed: broker.Replayed{DeadLetter: dl, Stream: "RADGATE_RESULTS", Seq: 40 + s, Removed: true}})
	}
	return out
}

type fakeOutbox struct {
	mu     sync.Mutex
	msgs   []OutboxMessage
	resent []string
}

func (f *fakeOutbox) ListOutbox(context.Context) ([]OutboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs), nil
}

func (f *fakeOutbox) ResendOutbox(_ context.Context, key string) (OutboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resent = append(f.resent, key)
	for i, m := range f.msgs {
		if m.Key == key {
			if m.Destination == "" {
				return m, errors.New("result " + key + ": no destination is recorded")
			}
			m.State, m.Failed, m.LastError = "acknowledged", false, ""
			m.Attempts++
			f.msgs[i] = m
			return m, nil
		}
	}
	return OutboxMessage{}, errors.New("no HL7 message stored for this result: " + key)
}

type fakeAuditor struct {
	mu      sync.Mutex
	actions []Action
}

func (f *fakeAuditor) AuditAction(_ context.Context, a Action) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, a)
	return "AuditEvent/ae-" + a.Kind, nil
}

type failuresEnv struct {
	*env
	dlq   *fakeDLQ
	ob    *fakeOutbox
	audit *fakeAuditor
}

func newFailuresEnv(t *testing.T, withAuditor bool) *failuresEnv {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("viewer-ann tok-viewer viewer\nops-olga tok-ops viewer,operator\n"), 0o600))
	a, err := httpauth.New(config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}, httpauth.Options{})
	require.NoError(t, err)
	o := order()
	o.FacilityID = "north-clinic"
	f := &fakeOrders{orders: []radgate.OrderStatus{o}}
	fe := &failuresEnv{
		dlq: &fakeDLQ{dls: []broker.DeadLetter{
			{Seq: 3, Time: now.Add(-2 * time.Hour), Stage: "inference", OrderID: "ffff00000000000000000001", Reason: `engine "x" is not loaded in this process`},
			{Seq: 7, Time: now.Add(-5 * time.Minute), Stage: "deliver-fhir", OrderID: o.ID, Attempts: 4,
				Reason: "delivering to fhir: FHIR server answered 422 Unprocessable Entity: error invalid"},
		}},
		ob: &fakeOutbox{msgs: []OutboxMessage{
			{Key: "res-ok", OrderID: o.ID, ControlID: "C1", Destination: "ris:2575", State: "acknowledged", Attempts: 1, StoredAt: now.Add(-time.Hour)},
			{Key: "res-bad-r2", OrderID: o.ID, ControlID: "C2", Destination: "ris:2575", State: "not acknowledged", Failed: true, Attempts: 3,
				LastError: "dial tcp ris:2575: connection refused", StoredAt: now.Add(-time.Minute)},
		}},
		audit: &fakeAuditor{},
	}
	opts := Options{Auth: a, Sessions: sessions(t), Orders: f, Order: f, Now: func() time.Time { return now },
		DLQ: fe.dlq, Outbox: fe.ob}
	if withAuditor {
		opts.Audit = fe.audit
	}
	con, err := New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	fe.env = &env{srv: srv, c: c, orders: f}
	return fe
}

func TestFailuresPageForAnOperator(t *testing.T) {
	e := newFailuresEnv(t, true)
	e.signIn(t, "tok-ops")
	r, body := e.get(t, "/console/failures")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, `href="/console/failures">Failures</a>`, "in the nav")
	// Newest first, with stage, order, facility (from the order store), age, attempts, reason.
	assert.Less(t, strings.Index(body, `value="7"`), strings.Index(body, `value="3"`), "newest first")
	assert.Contains(t, body, "deliver-fhir")
	assert.Contains(t, body, "north-clinic")
	assert.Contains(t, body, "5 min ago")
	assert.Contains(t, body, "<td>4</td>")
	assert.Contains(t, body, "422 Unprocessable Entity")
	assert.Contains(t, body, `name="seq" value="7"`)
	assert.Contains(t, body, `<button type="submit" name="one" value="7">Replay</button>`)
	assert.Contains(t, body, "Replay selected")
	// The outbox shows the failing message only, unless asked for all.
	assert.Contains(t, body, "res-bad-r2")
	assert.Contains(t, body, "connection refused")
	assert.NotContains(t, body, "res-ok")
	assert.Contains(t, body, "Re-send selected")
	assert.NotContains(t, body, "pat-secret-77", "no patient data")
	_, body = e.get(t, "/console/failures?hl7=all")
	assert.Contains(t, body, "res-ok")
	_, body = e.get(t, "/console/failures?limit=1")
	assert.Contains(t, body, "2 in the DLQ, the newest 1 shown")
	assert.NotContains(t, body, `value="3"`)
}

func TestFailuresViewerSeesNoActionsAndIsRefused(t *testing.T) {
	e := newFailuresEnv(t, true)
	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/failures")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "deliver-fhir", "a viewer sees the table")
	assert.Contains(t, body, "res-bad-r2")
	assert.NotContains(t, body, "<button type=\"submit\" name=\"one\"")
	assert.NotContains(t, body, "Replay selected")
	assert.NotContains(t, body, "Re-send selected")
	assert.NotContains(t, body, `type="checkbox"`)
	assert.NotContains(t, body, `action="/console/failures/`, "no action form at all")
	_, orders := e.get(t, "/console/orders")
	tok := csrf(t, orders) // the sign-out form's token: a valid CSRF token
	for _, p := range []string{"/console/failures/replay", "/console/failures/resend"} {
		for _, form := range []url.Values{
			{"csrf": {tok}, "one": {"7"}},
			{"csrf": {tok}, "one": {"res-bad-r2"}, "confirm": {"yes"}},
			{"csrf": {tok}, "seq": {"7"}, "key": {"res-bad-r2"}, "confirm": {"yes"}},
		} {
			r, body := e.post(t, p, form)
			assert.Equal(t, http.StatusForbidden, r.StatusCode, p)
			assert.Contains(t, body, "need the operator role", p)
		}
	}
	assert.Empty(t, e.dlq.replayed)
	assert.Empty(t, e.ob.resent)
	assert.Empty(t, e.audit.actions)
}

func TestFailuresActionsNeedCSRF(t *testing.T) {
	e := newFailuresEnv(t, true)
	e.signIn(t, "tok-ops")
	for _, p := range []string{"/console/failures/replay", "/console/failures/resend"} {
		r, _ := e.post(t, p, url.Values{"seq": {"7"}, "key": {"res-bad-r2"}, "confirm": {"yes"}})
		assert.Equal(t, http.StatusForbidden, r.StatusCode, p)
		r, _ = e.post(t, p, url.Values{"csrf": {strings.Repeat("a", 64)}, "seq": {"7"}, "key": {"res-bad-r2"}, "confirm": {"yes"}})
		assert.Equal(t, http.StatusForbidden, r.StatusCode, p)
	}
	assert.Empty(t, e.dlq.replayed)
	assert.Empty(t, e.ob.resent)
}

func TestReplayConfirmThenOutcomeAndAudit(t *testing.T) {
	e := newFailuresEnv(t, true)
	e.signIn(t, "tok-ops")
	_, page := e.get(t, "/console/failures")
	tok := csrf(t, page)

	// Selected boxes: the confirmation lists exactly them, replays nothing.
	r, body := e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {"7", "3", "99"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "Confirm replay")
	assert.Contains(t, body, `name="seq" value="7"`)
	assert.Contains(t, body, `name="seq" value="3"`)
	assert.Contains(t, body, `name="seq" value="99"`)
	assert.Contains(t, body, "not in the DLQ")
	assert.Contains(t, body, `name="confirm" value="yes"`)
	assert.Equal(t, tok, csrf(t, body), "the confirmation form carries the CSRF token")
	assert.Contains(t, body, "Replay 3</button>")
	assert.Empty(t, e.dlq.replayed, "nothing replayed before the confirmation")

	// A row's button: that one alone, even with boxes ticked.
	_, body = e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {"3"}, "one": {"7"}})
	assert.Contains(t, body, `name="seq" value="7"`)
	assert.NotContains(t, body, `name="seq" value="3"`)

	// Confirmed: replayed, outcome per entry, audited with the subject.
	r, body = e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {"7", "99"}, "confirm": {"yes"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, []uint64{7}, e.dlq.replayed)
	assert.Contains(t, body, "1 of 2 not done")
	assert.Contains(t, body, "replayed dead letter 7 (deliver-fhir, order "+order().ID+")")
	assert.Contains(t, body, "removed from the DLQ")
	assert.Contains(t, body, "dead letter not found")
	assert.Contains(t, body, "Recorded as <code>AuditEvent/ae-dlq-replay</code>")
	require.Len(t, e.audit.actions, 1)
	a := e.audit.actions[0]
	assert.Equal(t, "ops-olga", a.Subject)
	assert.Equal(t, []string{"viewer", "operator"}, a.Roles)
	assert.Equal(t, "dlq-replay", a.Kind)
	assert.Equal(t, []string{"dlq/7", "order/" + order().ID, "dlq/99"}, a.Entities)
	assert.Equal(t, "partial", a.Outcome)
	assert.Equal(t, now, a.At)

	// Submitted again (a double click, a reload): nothing is replayed twice.
	_, body = e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {"7"}, "confirm": {"yes"}})
	assert.Equal(t, []uint64{7}, e.dlq.replayed)
	assert.Contains(t, body, "1 of 1 not done")

	r, _ = e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}, "seq": {"seven"}})
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
	r, _ = e.post(t, "/console/failures/replay", url.Values{"csrf": {tok}})
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
}

func TestResendConfirmThenOutcomeWithoutAuditor(t *testing.T) {
	e := newFailuresEnv(t, false)
	e.signIn(t, "tok-ops")
	_, page := e.get(t, "/console/failures")
	tok := csrf(t, page)
	r, body := e.post(t, "/console/failures/resend", url.Values{"csrf": {tok}, "one": {"res-bad-r2"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body, "Confirm re-send")
	assert.Contains(t, body, `name="key" value="res-bad-r2"`)
	assert.Contains(t, body, "MSH-10 C2 to ris:2575")
	assert.Empty(t, e.ob.resent)

	r, body = e.post(t, "/console/failures/resend", url.Values{"csrf": {tok}, "key": {"res-bad-r2"}, "confirm": {"yes"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, []string{"res-bad-r2"}, e.ob.resent)
	assert.Contains(t, body, "Re-send: done")
	assert.Contains(t, body, "MSH-10 C2 re-sent to ris:2575: acknowledged")
	assert.Contains(t, body, "no FHIR server is configured for audit records")

	r, _ = e.post(t, "/console/failures/resend", url.Values{"csrf": {tok}, "key": {"../etc"}})
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
}
