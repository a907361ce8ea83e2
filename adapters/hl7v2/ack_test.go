package hl7v2

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/stretchr/testify/require"
)

var fixedTime = time.Date(2024, 1, 31, 14, 30, 0, 0, time.UTC)

func TestNewACK(t *testing.T) {
	orig := mustParse(t, readFixture(t, "orm_o01.hl7"))
	opts := ACKOptions{Time: fixedTime, ControlID: "ACK1"}

	t.Run("AA", func(t *testing.T) {
		ack := NewACKWith(orig, opts, AA)
		require.Equal(t, "MSH|^~\\&|RADGATE|HOSP|RIS|HOSP|20240131143000+0000||ACK^O01^ACK|ACK1|P|2.5.1\rMSA|AA|ORM0001\r", ack.String())
	})
	t.Run("AE with ERR", func(t *testing.T) {
		ack := NewACKWith(orig, opts, AE, ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing, Message: "OBR-18: no accession number"})
		require.Equal(t, "MSH|^~\\&|RADGATE|HOSP|RIS|HOSP|20240131143000+0000||ACK^O01^ACK|ACK1|P|2.5.1\r"+
			"MSA|AE|ORM0001|OBR-18: no accession number (101 Required field missing)\r"+
			"ERR||OBR^1^18|101^Required field missing^HL70357|E||||OBR-18: no accession number\r", ack.String())
	})
	t.Run("AR from a parse error, escaping the text", func(t *testing.T) {
		_, err := ParseString("MSH|^~\\&|A|B|C|D|x||ORM^O01|C9|P|2.5.1\rP|D|1")
		require.Error(t, err)
		hdr, herr := ParseHeader([]byte("MSH|^~\\&|A|B|C|D|x||ORM^O01|C9|P|2.5.1\rP|D|1"))
		require.NoError(t, herr)
		ack := NewACKWith(hdr, ACKOptions{Time: fixedTime, ControlID: "ACK2", Text: "custom | text"}, AR, ErrorDetailOf(err),
			ErrorDetail{Loc: Location{Segment: "PID", Seq: 2, Field: 3, Rep: 2, Comp: 4, Sub: 1}, Code: CodeDataTypeError, Severity: SeverityWarning, Message: "a^b"})
		require.Equal(t, "MSH|^~\\&|C|D|A|B|20240131143000+0000||ACK^O01^ACK|ACK2|P|2.5.1\r"+
			"MSA|AR|C9|custom \\F\\ text\r"+
			"ERR|||100^Segment sequence error^HL70357|E||||segment 2: invalid segment ID \"P\": want three capital letters or digits, starting with a letter\r"+
			"ERR||PID^2^3^2^4^1|102^Data type error^HL70357|W||||a\\S\\b\r", ack.String())

		got, err := ReadACK(mustParse(t, ack.String()))
		require.NoError(t, err)
		require.Equal(t, AR, got.Code)
		require.Equal(t, "C9", got.ControlID)
		require.Equal(t, "custom | text", got.Text)
		require.Len(t, got.Errors, 2)
		require.Equal(t, ErrorDetail{Code: CodeSegmentSequence, Severity: SeverityError,
			Message: `segment 2: invalid segment ID "P": want three capital letters or digits, starting with a letter`}, got.Errors[0])
		require.Equal(t, ErrorDetail{Loc: Location{Segment: "PID", Seq: 2, Field: 3, Rep: 2, Comp: 4, Sub: 1}, Code: CodeDataTypeError,
			Severity: SeverityWarning, Message: "a^b"}, got.Errors[1])
	})
	t.Run("nil original", func(t *testing.T) {
		ack := NewACKWith(nil, opts, AR, ErrorDetail{Code: CodeInternalError, Message: "unreadable"})
		require.Equal(t, "MSH|^~\\&|||||20240131143000+0000||ACK^^ACK|ACK1|P|2.5.1\rMSA|AR||unreadable (207 Application internal error)\r"+
			"ERR|||207^Application internal error^HL70357|E||||unreadable\r", ack.String())
	})
	t.Run("generated control id and time", func(t *testing.T) {
		ack := NewACK(orig, AA)
		require.Len(t, ack.ControlID(), 20)
		require.NotEqual(t, ack.ControlID(), NewACK(orig, AA).ControlID())
		ts, err := ack.Time()
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), ts, 5*time.Second)
	})
}

func TestErrorDetailOf(t *testing.T) {
	e := &Error{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing, Msg: "no accession number", Err: radgate.ErrInvalidOrder}
	wrapped := fmt.Errorf("mapping order: %w", e)
	require.Equal(t, ErrorDetail{Loc: e.Loc, Code: CodeRequiredFieldMissing, Severity: SeverityError, Message: "mapping order: OBR-18: no accession number"}, ErrorDetailOf(wrapped))
	require.Equal(t, ErrorDetail{Code: CodeInternalError, Severity: SeverityError, Message: "boom"}, ErrorDetailOf(errors.New("boom")))
	require.Equal(t, "OBR(2)-18-1-3", Location{Segment: "OBR", Seq: 2, Field: 18, Comp: 1, Sub: 3}.String())
	require.Equal(t, "PID-3(2)", Location{Segment: "PID", Seq: 1, Field: 3, Rep: 2}.String())
	require.Equal(t, "Error 999", ErrorCode(999).Text())
}

func TestReadACK(t *testing.T) {
	_, err := ReadACK(mustParse(t, "MSH|^~\\&|A\r"))
	require.EqualError(t, err, "MSA: acknowledgement without an MSA segment")
	_, err = ReadACK(mustParse(t, "MSH|^~\\&|A\rMSA|OK|1\r"))
	require.EqualError(t, err, `MSA-1: acknowledgement code "OK" is not one of AA, AE, AR, CA, CE, CR`)
	// A v2.3 receiver's ERR-1 (ELD).
	a, err := ReadACK(mustParse(t, "MSH|^~\\&|A\rMSA|AE|1|bad\rERR|PID^1^3^101&Required field missing\r"))
	require.NoError(t, err)
	require.Equal(t, "Required field missing", a.Errors[0].Message)

	ae := &AckError{Code: AE, ControlID: "C1", Text: "bad", Attempts: 3, Errors: []ErrorDetail{{Loc: Location{Segment: "PID", Field: 3}, Code: 101, Message: "no id"}}}
	require.EqualError(t, ae, `HL7 acknowledgement AE for message "C1" after 3 attempts: bad; PID-3: no id (101 Required field missing)`)
	require.ErrorIs(t, ae, ErrApplicationError)
	require.NotErrorIs(t, ae, ErrRejected)
	require.ErrorIs(t, &AckError{Code: CR}, ErrRejected)
}

func TestAckErrorRetryable(t *testing.T) {
	e := func(code AckCode, codes ...ErrorCode) *AckError {
		a := &AckError{Code: code}
		for _, c := range codes {
			a.Errors = append(a.Errors, ErrorDetail{Code: c})
		}
		return a
	}
	for _, tc := range []struct {
		ack  *AckError
		want bool
	}{
		{e(AE), false},
		{e(AE, CodeRequiredFieldMissing), false},
		{e(AE, CodeInternalError), false},
		{e(AE, CodeRecordLocked), true},
		{e(CE, CodeRecordLocked, CodeDataTypeError), false},
		{e(AR), true},
		{e(AR, CodeInternalError), true},
		{e(CR, CodeRecordLocked), true},
		{e(AR, CodeUnsupportedMessageType), false},
		{e(AR, CodeInternalError, CodeUnsupportedMessageType), false},
	} {
		if got := tc.ack.Retryable(); got != tc.want {
			t.Errorf("%s %v: Retryable() = %v, want %v", tc.ack.Code, tc.ack.Errors, got, tc.want)
		}
	}
}
