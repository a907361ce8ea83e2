package hl7v2

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrMalformed is wrapped by every error Parse returns: the bytes are
	// not an HL7 v2 message (no MSH, bad encoding characters, a bad segment
	// ID). Permanent: answer AR.
	ErrMalformed = errors.New("malformed HL7 v2 message")
	// ErrFraming: the MLLP stream broke the framing (bytes outside a block,
	// a start block inside a message, an end block not followed by a
	// carriage return). The connection cannot be trusted after it.
	ErrFraming = errors.New("MLLP framing error")
	// ErrTooLarge: an MLLP block exceeds the configured maximum size.
	ErrTooLarge = errors.New("MLLP message exceeds the maximum size")
	// ErrAckTimeout: no acknowledgement arrived within the client's
	// AckTimeout. Client.Send wraps it in radgate.Transient.
	ErrAckTimeout = errors.New("timed out waiting for the HL7 acknowledgement")
	// ErrClosed: the client or server was closed.
	ErrClosed = errors.New("hl7v2: closed")
	// ErrRejected is matched (errors.Is) by an *AckError whose code is AR or
	// CR: the receiver rejected the message; resending it will not help.
	ErrRejected = errors.New("HL7 message rejected (AR)")
	// ErrApplicationError is matched by an *AckError whose code is AE or
	// CE: the receiver could not process the message.
	ErrApplicationError = errors.New("HL7 application error (AE)")
	// ErrUnsupportedMessage: a mapping function was given a message type it
	// does not map (OrderEvent wants ORM^O01 or OMI^O23).
	ErrUnsupportedMessage = errors.New("unsupported HL7 message type")
	// ErrOrderControl: an ORM/OMI whose ORC-1 is not a new, changed or
	// cancelled order (HD hold, RP replace, …; see OrderOptions.OrderEvents).
	// The message is valid; it just carries nothing radgate acts on.
	ErrOrderControl = errors.New("order control code is not a new, changed or cancelled order")
	// ErrInvalidResult: ORU was given a radgate.Result it cannot report
	// (no patient identifier, an unknown tier, a probability outside 0..1).
	ErrInvalidResult = errors.New("invalid result for ORU^R01")
)

// ErrorCode is an HL7 error code, table 0357 (ERR-3).
type ErrorCode int

// Codes of HL7 table 0357 (v2.5.1).
const (
	CodeSuccess                ErrorCode = 0
	CodeSegmentSequence        ErrorCode = 100
	CodeRequiredFieldMissing   ErrorCode = 101
	CodeDataTypeError          ErrorCode = 102
	CodeTableValueNotFound     ErrorCode = 103
	CodeUnsupportedMessageType ErrorCode = 200
	CodeUnsupportedEventCode   ErrorCode = 201
	CodeUnsupportedProcessing  ErrorCode = 202
	CodeUnsupportedVersion     ErrorCode = 203
	CodeUnknownKeyIdentifier   ErrorCode = 204
	CodeDuplicateKey           ErrorCode = 205
	CodeRecordLocked           ErrorCode = 206
	CodeInternalError          ErrorCode = 207
)

var codeText = map[ErrorCode]string{
	CodeSuccess:                "Message accepted",
	CodeSegmentSequence:        "Segment sequence error",
	CodeRequiredFieldMissing:   "Required field missing",
	CodeDataTypeError:          "Data type error",
	CodeTableValueNotFound:     "Table value not found",
	CodeUnsupportedMessageType: "Unsupported message type",
	CodeUnsupportedEventCode:   "Unsupported event code",
	CodeUnsupportedProcessing:  "Unsupported processing id",
	CodeUnsupportedVersion:     "Unsupported version id",
	CodeUnknownKeyIdentifier:   "Unknown key identifier",
	CodeDuplicateKey:           "Duplicate key identifier",
	CodeRecordLocked:           "Application record locked",
	CodeInternalError:          "Application internal error",
}

// Text is the code's description in table 0357 ("Required field missing").
func (c ErrorCode) Text() string {
	if t, ok := codeText[c]; ok {
		return t
	}
	return "Error " + strconv.Itoa(int(c))
}

// Severity is ERR-4, table 0516.
type Severity string

// Severities of table 0516.
const (
	SeverityError       Severity = "E"
	SeverityWarning     Severity = "W"
	SeverityInformation Severity = "I"
)

// Location is a position in a message, written as an ERR-2 (ERL) and as a
// path: Segment, then 1-based Seq (the segment's occurrence among segments
// of its ID), Field, Rep, Comp and Sub; zero means not narrowed down.
type Location struct {
	Segment string
	Seq     int
	Field   int
	Rep     int
	Comp    int
	Sub     int
}

// String writes l as a path Get understands: "PID-3", "OBX(2)-5",
// "PID-3(2)-4-2". A repetition or occurrence of 1 is left out.
func (l Location) String() string {
	if l.Segment == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.Seq > 1 {
		fmt.Fprintf(&b, "(%d)", l.Seq)
	}
	if l.Field > 0 {
		fmt.Fprintf(&b, "-%d", l.Field)
		if l.Rep > 1 {
			fmt.Fprintf(&b, "(%d)", l.Rep)
		}
		if l.Comp > 0 {
			fmt.Fprintf(&b, "-%d", l.Comp)
			if l.Sub > 0 {
				fmt.Fprintf(&b, "-%d", l.Sub)
			}
		}
	}
	return b.String()
}

// Error is a problem at a known place in a message: malformed input found
// by Parse (it wraps ErrMalformed) or a missing or invalid value found by a
// mapping function (OrderEvent's wrap radgate.ErrInvalidOrder). NewACK
// turns it into an ERR segment; ErrorDetailOf extracts it from a chain.
//
// The message never quotes patient data, so it may be logged and sent back
// to the peer in ERR-8.
type Error struct {
	// Loc is where the problem is; Loc.Segment is empty when the segment
	// itself could not be identified (Line says which one it was).
	Loc Location
	// Line is the 1-based index of the segment in the message, when known.
	Line int
	Code ErrorCode
	Msg  string
	// Err is the sentinel the error wraps (ErrMalformed,
	// radgate.ErrInvalidOrder, …).
	Err error
}

func (e *Error) Error() string {
	if p := e.Loc.String(); p != "" {
		return p + ": " + e.Msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("segment %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Detail returns the ERR segment content for e (severity error).
func (e *Error) Detail() ErrorDetail {
	return ErrorDetail{Loc: e.Loc, Code: e.Code, Severity: SeverityError, Message: e.Error()}
}

// ErrorDetailOf returns the ERR content for err: the *Error's location and
// code when err wraps one, else code 207 (application internal error) with
// err's text.
func ErrorDetailOf(err error) ErrorDetail {
	var e *Error
	if errors.As(err, &e) {
		d := e.Detail()
		d.Message = err.Error()
		return d
	}
	return ErrorDetail{Code: CodeInternalError, Severity: SeverityError, Message: err.Error()}
}

// AckError is an acknowledgement other than AA/CA, as Client.Send returns
// it. It matches ErrRejected (AR, CR) or ErrApplicationError (AE, CE) with
// errors.Is.
type AckError struct {
	// Code is MSA-1.
	Code AckCode
	// ControlID is the control id of the message that was acknowledged.
	ControlID string
	// Text is MSA-3, when the receiver wrote one.
	Text string
	// Errors are the ACK's ERR segments.
	Errors []ErrorDetail
	// Attempts is how many times the message was sent.
	Attempts int
}

func (e *AckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HL7 acknowledgement %s for message %q", e.Code, e.ControlID)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	var parts []string
	for _, d := range e.Errors {
		parts = append(parts, d.String())
	}
	// MSA-3 often repeats the first error (NewACK writes it so): show it
	// only when it says something else.
	if e.Text != "" && (len(parts) == 0 || !strings.HasPrefix(parts[0], e.Text)) {
		parts = append([]string{e.Text}, parts...)
	}
	if len(parts) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(parts, "; "))
	}
	return b.String()
}

// Is matches ErrRejected for AR/CR and ErrApplicationError for AE/CE.
func (e *AckError) Is(target error) bool {
	switch target {
	case ErrRejected:
		return e.Code == AR || e.Code == CR
	case ErrApplicationError:
		return e.Code == AE || e.Code == CE
	}
	return false
}

// Retryable reports whether sending the same message again may succeed
// (HL7 Table 0008 with Table 0357's codes): AE and CE say the content was
// wrong, so no — unless the only reason given is a locked record (206),
// which clears by itself; AR and CR say the receiver refused it for a
// reason unrelated to the content: yes when that reason is an application
// internal error (207), a locked record or not given, no when it is one
// resending cannot change (an unsupported message type, event, processing
// id or version, an unknown key: 200–205).
func (e *AckError) Retryable() bool {
	transient := func(c ErrorCode) bool { return c == CodeRecordLocked || c == CodeInternalError }
	switch e.Code {
	case AE, CE:
		if len(e.Errors) == 0 {
			return false
		}
		for _, d := range e.Errors {
			if d.Code != CodeRecordLocked {
				return false
			}
		}
		return true
	case AR, CR:
		for _, d := range e.Errors {
			if d.Code != 0 && !transient(d.Code) {
				return false
			}
		}
		return true
	}
	return false
}
