package hl7v2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// fakeIntake records accepted events; err, when set, is returned instead
// (from the failAt-th call on, 1-based; 0 means every call).
type fakeIntake struct {
	mu     sync.Mutex
	got    []radgate.OrderEvent
	err    error
	failAt int
	calls  int
}

func (f *fakeIntake) Accept(_ context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil && f.calls >= f.failAt {
		return radgate.OrderStatus{}, f.err
	}
	f.got = append(f.got, ev)
	key, err := radgate.OrderKey(ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	return radgate.OrderStatus{ID: radgate.OrderID(key), Key: key, State: radgate.StateReceived}, nil
}

func (f *fakeIntake) Status(context.Context, string) (radgate.OrderStatus, error) {
	return radgate.OrderStatus{}, radgate.ErrOrderNotFound
}

func intakeAck(t *testing.T, in radgate.Intake, msg *Message, logs *bytes.Buffer) Ack {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h := NewIntakeHandler(in, IntakeOptions{Order: OrderOptions{AccessionSystem: "http://hosp.example/acsn"}, Logger: logger})
	ack, err := ReadACK(h(t.Context(), msg))
	require.NoError(t, err)
	require.Equal(t, msg.ControlID(), ack.ControlID)
	return ack
}

func TestIntakeHandlerAcceptsOrders(t *testing.T) {
	in := &fakeIntake{}
	var logs bytes.Buffer
	a := intakeAck(t, in, mustParse(t, readFixture(t, "orm_o01.hl7")), &logs)
	require.Equal(t, AA, a.Code)
	require.Empty(t, a.Errors)
	require.Len(t, in.got, 1)
	require.Equal(t, &radgate.Identifier{System: "http://hosp.example/acsn", Value: "ACC-778899"}, in.got[0].Accession)
	require.Equal(t, Source, in.got[0].Source)
	id := radgate.OrderID("acsn|http://hosp.example/acsn|ACC-778899")
	require.Contains(t, logs.String(), id)
	require.Contains(t, logs.String(), "ORM0001")
	require.NotContains(t, logs.String(), "Doe")
	require.NotContains(t, logs.String(), "Jane")

	// Two ORC groups: two events, one ACK.
	in = &fakeIntake{}
	two := readFixture(t, "orm_o01.hl7") +
		"ORC|NW|PLC-1002\rOBR|2|PLC-1002||36643-5^XR Chest^LN" + strings.Repeat("|", 14) + "ACC-2\r"
	a = intakeAck(t, in, mustParse(t, two), nil)
	require.Equal(t, AA, a.Code, "%v", a.Errors)
	require.Len(t, in.got, 2)
	require.Equal(t, "ACC-2", in.got[1].Accession.Value)
}

func TestIntakeHandlerAnswersFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msg    func(t *testing.T) *Message
		in     *fakeIntake
		code   AckCode
		err    ErrorDetail
		stored int
	}{
		{
			name: "no accession number nor study UID",
			msg:  func(t *testing.T) *Message { return edit(t, "orm_o01.hl7", "OBR-18=", "-ZDS") },
			in:   &fakeIntake{}, code: AE,
			err: ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing, Severity: SeverityError,
				Message: "OBR-18: no accession number (nor a Study Instance UID in ZDS-1)"},
		},
		{
			name: "unsupported message type",
			msg:  func(t *testing.T) *Message { return edit(t, "orm_o01.hl7", "MSH-9=ADT^A01^ADT_A01") },
			in:   &fakeIntake{}, code: AR,
			err: ErrorDetail{Loc: Location{Segment: "MSH", Seq: 1, Field: 9}, Code: CodeUnsupportedMessageType, Severity: SeverityError,
				Message: `MSH-9: message type "ADT^A01": want ORM^O01 or OMI^O23`},
		},
		{
			name: "order control radgate does not act on",
			msg:  func(t *testing.T) *Message { return edit(t, "orm_o01.hl7", "ORC-1=HD") },
			in:   &fakeIntake{}, code: AR,
			err: ErrorDetail{Loc: Location{Segment: "ORC", Seq: 1, Field: 1}, Code: CodeUnsupportedEventCode, Severity: SeverityError,
				Message: `ORC-1: order control "HD" is not a new, changed or cancelled order (NW, XO, XX, SC, SN; CA, DC, OC, OD, CR, DR)`},
		},
		{
			name: "invalid per Accept",
			msg:  func(t *testing.T) *Message { return mustParse(t, readFixture(t, "orm_o01.hl7")) },
			in:   &fakeIntake{err: fmt.Errorf("%w: something", radgate.ErrInvalidOrder)}, code: AE,
			err: ErrorDetail{Code: CodeRequiredFieldMissing, Severity: SeverityError, Message: "invalid order: something"},
		},
		{
			name: "broker down",
			msg:  func(t *testing.T) *Message { return mustParse(t, readFixture(t, "orm_o01.hl7")) },
			in:   &fakeIntake{err: errors.New("publishing order x: nats: no responders available for request")}, code: AR,
			err: ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
				Message: "the order could not be stored now (temporary failure, not the message's content); send the message again later"},
		},
		{
			name: "store times out after the first of two orders",
			msg: func(t *testing.T) *Message {
				return mustParse(t, readFixture(t, "orm_o01.hl7")+"ORC|NW|PLC-1002\rOBR|2|PLC-1002||36643-5^XR Chest^LN"+strings.Repeat("|", 14)+"ACC-2\r")
			},
			in: &fakeIntake{err: context.DeadlineExceeded, failAt: 2}, code: AR, stored: 1,
		},
		{
			name: "control character in the accession number",
			msg:  func(t *testing.T) *Message { return edit(t, "orm_o01.hl7", `OBR-18=ACC\X1C0D\1`) },
			in:   &fakeIntake{}, code: AE,
			err: ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeDataTypeError, Severity: SeverityError,
				Message: "OBR-18: contains the control character U+001C at character 4"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			a := intakeAck(t, tc.in, tc.msg(t), &logs)
			require.Equal(t, tc.code, a.Code)
			require.Len(t, a.Errors, 1)
			if tc.err != (ErrorDetail{}) {
				require.Equal(t, tc.err, a.Errors[0])
			}
			require.Len(t, tc.in.got, tc.stored)
			require.NotContains(t, logs.String(), "Doe")
		})
	}
}

// lifecycleIntake keeps orders by key as radgate's intake does for the
// HL7 adapter's purposes: a cancellation of an unknown order is
// radgate.ErrUnknownOrder, of a cancelled one a no-op; an update of a
// cancelled order is radgate.ErrOrderCancelled.
type lifecycleIntake struct {
	mu     sync.Mutex
	orders map[string]*radgate.OrderStatus
	got    []radgate.OrderEvent
	// cancelAgainErr, when set, is returned for the cancellation of a
	// cancelled order (instead of nil).
	cancelAgainErr error
}

func (l *lifecycleIntake) Accept(_ context.Context, ev radgate.OrderEvent) (radgate.OrderStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key, err := radgate.OrderKey(ev)
	if err != nil {
		return radgate.OrderStatus{}, err
	}
	id := radgate.OrderID(key)
	if l.orders == nil {
		l.orders = map[string]*radgate.OrderStatus{}
	}
	st := l.orders[key]
	switch {
	case ev.Action == radgate.ActionCancel && st == nil:
		return radgate.OrderStatus{}, fmt.Errorf("cancelling order %s: %w", id, radgate.ErrUnknownOrder)
	case ev.Action == radgate.ActionCancel && st.Cancelled != nil:
		return *st, l.cancelAgainErr
	case ev.Action == radgate.ActionCancel:
		st.State, st.Cancelled = radgate.StateCancelled, &radgate.Cancellation{Source: ev.Source, Reason: ev.Reason}
	case st != nil && st.Cancelled != nil:
		return *st, fmt.Errorf("order %s: %w (%s)", id, radgate.ErrOrderCancelled, st.Cancelled.Reason)
	case st == nil:
		st = &radgate.OrderStatus{ID: id, Key: key, State: radgate.StateReceived}
		l.orders[key] = st
	}
	if ev.StudyComplete {
		st.Study = &radgate.StudyObservation{Complete: true}
	}
	l.got = append(l.got, ev)
	return *st, nil
}

func (l *lifecycleIntake) Status(_ context.Context, id string) (radgate.OrderStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.orders {
		if st.ID == id {
			return *st, nil
		}
	}
	return radgate.OrderStatus{}, radgate.ErrOrderNotFound
}

// TestIntakeHandlerCancellation: the intake's answers to cancellations and
// to updates of cancelled orders.
func TestIntakeHandlerCancellation(t *testing.T) {
	in := &lifecycleIntake{}
	var logs bytes.Buffer
	ack := func(m *Message) Ack { t.Helper(); return intakeAck(t, in, m, &logs) }

	// Cancelling an order radgate never received: AE 204, naming the order
	// by its identifiers, at the field its key came from.
	a := ack(edit(t, "orm_o01.hl7", "ORC-1=CA"))
	require.Equal(t, AE, a.Code)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
		Message: "no such order: accession ACC-778899, placer order PLC-1001, filler order FIL-2002"}}, a.Errors)
	a = ack(edit(t, "omi_o23.hl7", "ORC-1=CA", "ORC-3=", "OBR-3="))
	require.Equal(t, AE, a.Code)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "IPC", Seq: 1, Field: 1}, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
		Message: "no such order: accession ACC-778899, placer order PLC-1001"}}, a.Errors)
	a = ack(edit(t, "orm_o01.hl7", "ORC-1=CA", "OBR-18=", "ORC-2=", "OBR-2=", "ORC-3=", "OBR-3=FIL-9"))
	require.Equal(t, AE, a.Code)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "ZDS", Seq: 1, Field: 1}, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
		Message: "no such order: Study Instance UID 1.2.840.113619.2.55.3.604688119.969.1268071029.320, filler order FIL-9"}}, a.Errors)
	require.Empty(t, in.got)

	// The order, then its cancellation: AA, an event with the cancel action.
	require.Equal(t, AA, ack(mustParse(t, readFixture(t, "orm_o01.hl7"))).Code)
	a = ack(edit(t, "orm_o01.hl7", "ORC-1=CA", "MSH-10=ORM0002"))
	require.Equal(t, AA, a.Code, "%v", a.Errors)
	require.Len(t, in.got, 2)
	require.Equal(t, radgate.ActionCancel, in.got[1].Action)
	require.Equal(t, "HL7 ORC-1 CA", in.got[1].Reason)

	// Cancelled again (the intake returns nil): AA.
	require.Equal(t, AA, ack(edit(t, "orm_o01.hl7", "ORC-1=OC", "MSH-10=ORM0003")).Code)
	// An intake that answers ErrOrderCancelled to it: AA all the same.
	in.cancelAgainErr = fmt.Errorf("order x: %w", radgate.ErrOrderCancelled)
	require.Equal(t, AA, ack(edit(t, "orm_o01.hl7", "ORC-1=DC", "MSH-10=ORM0004")).Code)

	// An update of the cancelled order: AE with the intake's error text and
	// the order's identifiers.
	a = ack(edit(t, "orm_o01.hl7", "ORC-1=XO", "MSH-10=ORM0005"))
	require.Equal(t, AE, a.Code)
	id := radgate.OrderID("acsn|http://hosp.example/acsn|ACC-778899")
	require.Equal(t, []ErrorDetail{{Code: CodeInternalError, Severity: SeverityError,
		Message: "order " + id + ": order cancelled (HL7 ORC-1 CA) (accession ACC-778899, placer order PLC-1001, filler order FIL-2002)"}}, a.Errors)

	require.Contains(t, logs.String(), id)
	require.NotContains(t, logs.String(), "Doe")
	require.NotContains(t, logs.String(), "Jane")
}

// TestIntakeKeepsTheOrderMessageNotTheCancellation: the MSH and PID kept
// for the ORU's PID-5 are the order's; a cancellation does not replace
// them.
func TestIntakeKeepsTheOrderMessageNotTheCancellation(t *testing.T) {
	js := embeddedJS(t)
	rec := NewReceived(js)
	in := &lifecycleIntake{}
	h := NewIntakeHandler(in, IntakeOptions{Received: rec})
	send := func(m *Message) AckCode {
		a, err := ReadACK(h(t.Context(), m))
		require.NoError(t, err)
		return a.Code
	}
	require.Equal(t, AA, send(mustParse(t, readFixture(t, "orm_o01.hl7"))))
	require.Equal(t, AA, send(edit(t, "orm_o01.hl7", "ORC-1=CA", "MSH-10=CANCEL-1", "PID-5=Other^Name")))
	id := radgate.OrderID("acsn||ACC-778899")
	kept, err := rec.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, "ORM0001", kept.ControlID())
	require.Equal(t, "Doe", kept.Get("PID-5-1"))
}
