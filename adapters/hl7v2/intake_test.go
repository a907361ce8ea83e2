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
			name: "cancel order control",
			msg:  func(t *testing.T) *Message { return edit(t, "orm_o01.hl7", "ORC-1=CA") },
			in:   &fakeIntake{}, code: AR,
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
