package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AckCode is MSA-1, HL7 table 0008.
type AckCode string

// Acknowledgement codes. Original mode uses AA, AE and AR; the C codes are
// enhanced mode's commit acknowledgements, which Client treats like their
// A twins.
const (
	// AA: application accept — the message was processed (for radgate: the
	// order is durably published).
	AA AckCode = "AA"
	// AE: application error — the message could not be processed; it may
	// succeed if sent again (or after a fix at the sender).
	AE AckCode = "AE"
	// AR: application reject — the message is unacceptable (malformed,
	// unsupported type or version); sending it again will not help.
	AR AckCode = "AR"
	CA AckCode = "CA"
	CE AckCode = "CE"
	CR AckCode = "CR"
)

// Accepted reports whether c is AA or CA.
func (c AckCode) Accepted() bool { return c == AA || c == CA }

// ErrorDetail is one ERR segment (v2.5.1).
type ErrorDetail struct {
	// Loc is ERR-2, written segment^sequence^field^repetition^component^
	// subcomponent (zero parts left out).
	Loc Location
	// Code is ERR-3, table 0357.
	Code ErrorCode
	// Severity is ERR-4; empty means E.
	Severity Severity
	// Message is ERR-8, the user message.
	Message string
}

// String writes "PID-3: text (101 Required field missing)".
func (d ErrorDetail) String() string {
	s := d.Message
	if p := d.Loc.String(); p != "" && !strings.HasPrefix(s, p+":") {
		s = p + ": " + s
	}
	return fmt.Sprintf("%s (%d %s)", s, int(d.Code), d.Code.Text())
}

// ACKOptions tune NewACKWith.
type ACKOptions struct {
	// SendingApplication and SendingFacility go into the ACK's MSH-3 and
	// MSH-4; by default they are the original's MSH-5 and MSH-6.
	SendingApplication HD
	SendingFacility    HD
	// ControlID is the ACK's MSH-10; empty means NewControlID().
	ControlID string
	// Time is MSH-7; zero means now.
	Time time.Time
	// Text goes into MSA-3 (deprecated in v2.5.1, still read by many
	// systems); by default the first error's message for AE and AR.
	Text string
}

// NewACK builds the original-mode acknowledgement of orig: MSH with the
// original's delimiters, applications and facilities swapped, MSH-9
// ACK^<trigger>^ACK, the original's processing id and version; MSA-1 code,
// MSA-2 the original's control id; one ERR per detail. orig may be a
// message that only its header could be read from (see ParseHeader); nil
// gives an ACK with default delimiters and an empty MSA-2.
func NewACK(orig *Message, code AckCode, details ...ErrorDetail) *Message {
	return NewACKWith(orig, ACKOptions{}, code, details...)
}

// NewACKWith is NewACK with options.
func NewACKWith(orig *Message, opts ACKOptions, code AckCode, details ...ErrorDetail) *Message {
	d := DefaultDelimiters
	if orig != nil {
		d = orig.d
	}
	ack, err := New(d)
	if err != nil { // orig's delimiters were validated by Parse
		ack, _ = New(DefaultDelimiters)
	}
	h := Header{Time: opts.Time, ControlID: opts.ControlID, Type: MessageType{Code: "ACK", Structure: "ACK"},
		SendingApplication: opts.SendingApplication, SendingFacility: opts.SendingFacility}
	var ctrl string
	if orig != nil {
		if h.SendingApplication.IsZero() {
			h.SendingApplication = orig.ReceivingApplication()
		}
		if h.SendingFacility.IsZero() {
			h.SendingFacility = orig.ReceivingFacility()
		}
		h.ReceivingApplication, h.ReceivingFacility = orig.SendingApplication(), orig.SendingFacility()
		h.Type.Trigger = orig.Type().Trigger
		h.ProcessingID, h.Version = orig.ProcessingID(), orig.Version()
		ctrl = orig.ControlID()
	}
	_ = ack.SetHeader(h)
	msa := ack.AddSegment("MSA")
	text := opts.Text
	if text == "" && code != AA && code != CA && len(details) > 0 {
		text = details[0].String()
	}
	_ = msa.SetComponents(1, string(code))
	_ = msa.SetComponents(2, ctrl)
	if text != "" {
		_ = msa.SetComponents(3, truncate(text, 80))
	}
	for _, det := range details {
		e := ack.AddSegment("ERR")
		e.setLocation(det.Loc)
		code := det.Code
		if code == CodeSuccess && det.Message != "" && det.Severity != SeverityInformation {
			code = CodeInternalError
		}
		_ = e.SetComponents(3, strconv.Itoa(int(code)), code.Text(), "HL70357")
		sev := det.Severity
		if sev == "" {
			sev = SeverityError
		}
		_ = e.SetComponents(4, string(sev))
		if det.Message != "" {
			_ = e.SetComponents(8, det.Message)
		}
	}
	return ack
}

// setLocation writes ERR-2 (ERL): segment^sequence^field^rep^comp^sub.
func (s *Segment) setLocation(l Location) {
	if l.Segment == "" {
		return
	}
	parts := []string{l.Segment, strconv.Itoa(max(l.Seq, 1))}
	if l.Field > 0 {
		parts = append(parts, strconv.Itoa(l.Field))
		if l.Comp > 0 || l.Rep > 0 {
			parts = append(parts, strconv.Itoa(max(l.Rep, 1)))
		}
		if l.Comp > 0 {
			parts = append(parts, strconv.Itoa(l.Comp))
			if l.Sub > 0 {
				parts = append(parts, strconv.Itoa(l.Sub))
			}
		}
	}
	_ = s.SetComponents(2, parts...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a UTF-8 boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Ack is what an acknowledgement says, as ReadACK reads it.
type Ack struct {
	Code AckCode
	// ControlID is MSA-2: the control id of the acknowledged message.
	ControlID string
	// Text is MSA-3.
	Text   string
	Errors []ErrorDetail
}

// ReadACK reads MSA and ERR from an acknowledgement. It fails when there is
// no MSA or MSA-1 is not a code of table 0008.
func ReadACK(m *Message) (Ack, error) {
	msa := m.Segment("MSA")
	if msa == nil {
		return Ack{}, &Error{Loc: Location{Segment: "MSA"}, Code: CodeSegmentSequence, Msg: "acknowledgement without an MSA segment", Err: ErrMalformed}
	}
	a := Ack{Code: AckCode(strings.TrimSpace(msa.Value(1, 1, 1, 1))), ControlID: msa.Value(2, 1, 1, 1), Text: msa.Value(3, 1, 1, 1)}
	switch a.Code {
	case AA, AE, AR, CA, CE, CR:
	default:
		return Ack{}, &Error{Loc: Location{Segment: "MSA", Seq: 1, Field: 1}, Code: CodeTableValueNotFound,
			Msg: fmt.Sprintf("acknowledgement code %s is not one of AA, AE, AR, CA, CE, CR", quotePrefix(string(a.Code), 4)), Err: ErrMalformed}
	}
	for _, e := range m.Segments("ERR") {
		det := ErrorDetail{Severity: Severity(e.Value(4, 1, 1, 1)), Message: e.Value(8, 1, 1, 1)}
		det.Loc.Segment = e.Value(2, 1, 1, 1)
		det.Loc.Seq, _ = strconv.Atoi(e.Value(2, 1, 2, 1))
		det.Loc.Field, _ = strconv.Atoi(e.Value(2, 1, 3, 1))
		if det.Loc.Rep, _ = strconv.Atoi(e.Value(2, 1, 4, 1)); det.Loc.Rep == 1 {
			det.Loc.Rep = 0 // the first repetition is the default
		}
		det.Loc.Comp, _ = strconv.Atoi(e.Value(2, 1, 5, 1))
		det.Loc.Sub, _ = strconv.Atoi(e.Value(2, 1, 6, 1))
		c, _ := strconv.Atoi(e.Value(3, 1, 1, 1))
		det.Code = ErrorCode(c)
		if det.Message == "" {
			// v2.3/2.4 receivers write ERR-1 (ELD): segment^seq^field^code&text.
			det.Message = e.Value(3, 1, 2, 1)
			if det.Message == "" {
				det.Message = e.Value(1, 1, 4, 2)
			}
		}
		a.Errors = append(a.Errors, det)
	}
	return a, nil
}

// ParseHeader reads only the first segment of data, the MSH, for
// answering a message Parse refused: NewACK needs the delimiters, the
// control id and the applications. It fails when the MSH itself is
// malformed.
func ParseHeader(data []byte) (*Message, error) {
	s := string(data)
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break
		}
		if strings.Trim(s[:i], " \t") != "" {
			s = s[:i]
			break
		}
		s = s[i+1:]
	}
	return ParseString(s)
}
