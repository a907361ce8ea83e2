package hl7v2

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// MessageType is MSH-9: message code, trigger event and message structure.
type MessageType struct {
	Code      string // MSH-9-1, "ORM"
	Trigger   string // MSH-9-2, "O01"
	Structure string // MSH-9-3, "ORM_O01" (often absent before v2.4)
}

// String writes "ORM^O01" (with the structure when present).
func (t MessageType) String() string {
	s := t.Code
	if t.Trigger != "" || t.Structure != "" {
		s += "^" + t.Trigger
	}
	if t.Structure != "" {
		s += "^" + t.Structure
	}
	return s
}

// Is reports whether the type is code^trigger.
func (t MessageType) Is(code, trigger string) bool { return t.Code == code && t.Trigger == trigger }

// HD is a hierarchic designator: an application or facility (MSH-3 to
// MSH-6), or an assigning authority (CX-4, EI-2..4).
type HD struct {
	Namespace       string
	UniversalID     string
	UniversalIDType string // ISO, UUID, DNS, URI, …
}

// String writes the HD's components joined by "^" (unescaped), trailing
// empty ones dropped.
func (h HD) String() string {
	return strings.TrimRight(h.Namespace+"^"+h.UniversalID+"^"+h.UniversalIDType, "^")
}

// IsZero reports whether h holds nothing.
func (h HD) IsZero() bool { return h == HD{} }

func (s *Segment) hd(field int) HD {
	if s == nil {
		return HD{}
	}
	return HD{Namespace: s.Value(field, 1, 1, 1), UniversalID: s.Value(field, 1, 2, 1), UniversalIDType: s.Value(field, 1, 3, 1)}
}

func (m *Message) msh() *Segment {
	if len(m.segs) == 0 || m.segs[0].name != "MSH" {
		return nil
	}
	return m.segs[0]
}

func (m *Message) mshValue(field, comp int) string {
	s := m.msh()
	if s == nil {
		return ""
	}
	return s.Value(field, 1, comp, 1)
}

// Type returns MSH-9.
func (m *Message) Type() MessageType {
	return MessageType{Code: m.mshValue(9, 1), Trigger: m.mshValue(9, 2), Structure: m.mshValue(9, 3)}
}

// ControlID returns MSH-10, the message control id an ACK's MSA-2 echoes.
func (m *Message) ControlID() string { return m.mshValue(10, 1) }

// ProcessingID returns MSH-11-1 (P production, T training, D debugging).
func (m *Message) ProcessingID() string { return m.mshValue(11, 1) }

// Version returns MSH-12-1 ("2.5.1").
func (m *Message) Version() string { return m.mshValue(12, 1) }

// Charset returns MSH-18 (first repetition), "" meaning ASCII.
func (m *Message) Charset() string { return m.mshValue(18, 1) }

// SendingApplication returns MSH-3.
func (m *Message) SendingApplication() HD { return m.msh().hd(3) }

// SendingFacility returns MSH-4.
func (m *Message) SendingFacility() HD { return m.msh().hd(4) }

// ReceivingApplication returns MSH-5.
func (m *Message) ReceivingApplication() HD { return m.msh().hd(5) }

// ReceivingFacility returns MSH-6.
func (m *Message) ReceivingFacility() HD { return m.msh().hd(6) }

// Time returns MSH-7, the time the message was created.
func (m *Message) Time() (time.Time, error) {
	t, err := ParseTime(m.mshValue(7, 1))
	if err != nil {
		return time.Time{}, fmt.Errorf("MSH-7: %w", err)
	}
	return t, nil
}

// Header is what SetHeader writes into MSH.
type Header struct {
	SendingApplication   HD
	SendingFacility      HD
	ReceivingApplication HD
	ReceivingFacility    HD
	// Time is MSH-7; zero means now.
	Time time.Time
	Type MessageType
	// ControlID is MSH-10; empty means NewControlID().
	ControlID string
	// ProcessingID is MSH-11; empty means "P".
	ProcessingID string
	// Version is MSH-12; empty means "2.5.1".
	Version string
}

// SetHeader fills MSH-3 to MSH-12 from h.
func (m *Message) SetHeader(h Header) error {
	msh := m.msh()
	if msh == nil {
		return fmt.Errorf("hl7v2: the message has no MSH")
	}
	if h.Time.IsZero() {
		h.Time = time.Now()
	}
	if h.ControlID == "" {
		h.ControlID = NewControlID()
	}
	if h.ProcessingID == "" {
		h.ProcessingID = "P"
	}
	if h.Version == "" {
		h.Version = "2.5.1"
	}
	sets := []struct {
		f    int
		vals []string
	}{
		{3, hdParts(h.SendingApplication)}, {4, hdParts(h.SendingFacility)},
		{5, hdParts(h.ReceivingApplication)}, {6, hdParts(h.ReceivingFacility)},
		{7, []string{FormatTime(h.Time)}},
		{9, []string{h.Type.Code, h.Type.Trigger, h.Type.Structure}},
		{10, []string{h.ControlID}}, {11, []string{h.ProcessingID}}, {12, []string{h.Version}},
	}
	for _, s := range sets {
		if err := msh.SetComponents(s.f, s.vals...); err != nil {
			return err
		}
	}
	return nil
}

func hdParts(h HD) []string { return []string{h.Namespace, h.UniversalID, h.UniversalIDType} }

// NewControlID returns a fresh message control id: 20 hex digits (MSH-10
// is at most 20 characters in v2.5.1).
func NewControlID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// FormatTime writes t as an HL7 timestamp with seconds and zone offset,
// "20240131142503+0100".
func FormatTime(t time.Time) string { return t.Format("20060102150405-0700") }

// ParseTime reads an HL7 DTM/TS: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]]
// with an optional +/-ZZZZ offset (UTC when absent). Only the first
// component of a TS is read ("20240131^S" reads as 2024-01-31).
func ParseTime(s string) (time.Time, error) {
	s, _, _ = strings.Cut(s, "^")
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty timestamp")
	}
	zone := ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		s, zone = s[:i], s[i:]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
	}
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok || (frac != "" && len(s) != 14) || len(frac) > 4 {
		return time.Time{}, fmt.Errorf("timestamp %q: want YYYY[MM[DD[HH[MM[SS[.SSSS]]]]]][+/-ZZZZ]", s)
	}
	value := s
	if frac != "" {
		layout += "." + strings.Repeat("0", len(frac))
		value += "." + frac
	}
	if zone != "" {
		if len(zone) != 5 {
			return time.Time{}, fmt.Errorf("timestamp zone %q: want +/-ZZZZ", zone)
		}
		layout += "-0700"
		value += zone
	}
	t, err := time.Parse(layout, value)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t, nil
}
