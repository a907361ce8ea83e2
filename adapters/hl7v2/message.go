package hl7v2

import (
	"bytes"
	"fmt"
	"strings"
)

// Message is a parsed or built HL7 v2 message: an ordered list of segments,
// the first of which is MSH.
//
// Values are stored in wire form (escaped, as they travel), so Encode gives
// back exactly what Parse read, escape sequences included; Get and Value
// unescape, Set escapes, and GetRaw and SetRaw work on the wire form. A
// Message is not safe for concurrent modification.
type Message struct {
	d    Delimiters
	segs []*Segment
}

// Segment is one segment of a Message. Field numbers, repetitions,
// components and subcomponents are 1-based, as HL7 writes them (PID-3 is
// field 3 of PID). In MSH (and BHS, FHS) field 1 is the field separator and
// field 2 the encoding characters; they cannot be set.
type Segment struct {
	name   string
	header bool
	fields []field // fields[i] is field i+1
	d      *Delimiters
}

// Wire-form structure of a field: repetitions of components of
// subcomponents. nil or empty slices stand for one empty value.
type (
	comp  []string
	rep   []comp
	field []rep
)

// Segment IDs whose field 1 is the field separator and field 2 the
// encoding characters.
func isHeaderName(name string) bool { return name == "MSH" || name == "BHS" || name == "FHS" }

// New starts a message with the given delimiters (DefaultDelimiters when
// d is the zero value): a lone MSH holding MSH-1 and MSH-2, to be filled in
// with Set or SetHeader.
func New(d Delimiters) (*Message, error) {
	if d == (Delimiters{}) {
		d = DefaultDelimiters
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("hl7v2: %w", err)
	}
	m := &Message{d: d}
	m.AddSegment("MSH")
	return m, nil
}

func leaf(s string) field { return field{rep{comp{s}}} }

// Parse reads one message. Segments may end with "\r" (the standard),
// "\n" or "\r\n"; blank segments are skipped. The delimiters come from
// MSH-1 and MSH-2. Errors wrap ErrMalformed and are *Error values naming the
// segment or field at fault. Parse never panics.
func Parse(data []byte) (*Message, error) { return ParseString(string(data)) }

// ParseString is Parse for a string.
func ParseString(s string) (*Message, error) {
	lines := splitSegments(s)
	if len(lines) == 0 {
		return nil, &Error{Code: CodeSegmentSequence, Msg: "empty message: no MSH segment", Err: ErrMalformed}
	}
	d, err := headerDelimiters(lines[0])
	if err != nil {
		return nil, err
	}
	m := &Message{d: d, segs: make([]*Segment, 0, len(lines))}
	for i, line := range lines {
		seg, err := m.parseSegment(line, i+1)
		if err != nil {
			return nil, err
		}
		m.segs = append(m.segs, seg)
	}
	return m, nil
}

// splitSegments splits on "\r", "\n" and "\r\n", dropping blank segments
// (empty, or only spaces and tabs).
func splitSegments(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		var line string
		if i < 0 {
			line, s = s, ""
		} else {
			line, s = s[:i], s[i+1:]
		}
		if strings.Trim(line, " \t") != "" {
			out = append(out, line)
		}
	}
	return out
}

// headerDelimiters reads MSH-1 and MSH-2 from the first segment.
func headerDelimiters(line string) (Delimiters, error) {
	bad := func(field int, code ErrorCode, format string, args ...any) error {
		return &Error{Loc: Location{Segment: "MSH", Seq: 1, Field: field}, Line: 1, Code: code,
			Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
	}
	if !strings.HasPrefix(line, "MSH") {
		start := quotePrefix(line, 3)
		if len(line) >= 3 && validSegmentName(line[:3]) {
			start = fmt.Sprintf("%q", line[:3])
		}
		return Delimiters{}, &Error{Line: 1, Code: CodeSegmentSequence, Err: ErrMalformed,
			Msg: fmt.Sprintf("message does not start with an MSH segment (it starts with %s)", start)}
	}
	if len(line) < 4 {
		return Delimiters{}, bad(1, CodeRequiredFieldMissing, "missing field separator")
	}
	var d Delimiters
	d.FieldSep = line[3]
	if !validDelimiter(d.FieldSep) {
		return Delimiters{}, bad(1, CodeDataTypeError, "invalid field separator %s: must be printable ASCII punctuation", quoteByte(d.FieldSep))
	}
	enc := line[4:]
	if i := strings.IndexByte(enc, d.FieldSep); i >= 0 {
		enc = enc[:i]
	}
	switch len(enc) {
	case 4, 5:
	case 0:
		return Delimiters{}, bad(2, CodeRequiredFieldMissing, "missing encoding characters")
	default:
		return Delimiters{}, bad(2, CodeDataTypeError, "encoding characters %s: want 4 characters (component, repetition, escape, subcomponent) or 5 (and truncation), got %d",
			quotePrefix(enc, 8), len(enc))
	}
	d.ComponentSep, d.RepetitionSep, d.EscapeChar, d.SubcomponentSep = enc[0], enc[1], enc[2], enc[3]
	if len(enc) == 5 {
		d.TruncationChar = enc[4]
	}
	if err := d.Validate(); err != nil {
		return Delimiters{}, bad(2, CodeDataTypeError, "encoding characters %q: %v", enc, err)
	}
	return d, nil
}

// quotePrefix quotes at most n bytes of s, marking a cut with "…".
func quotePrefix(s string, n int) string {
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", s[:n])
}

func validSegmentName(name string) bool {
	if len(name) != 3 || name[0] < 'A' || name[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		c := name[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func (m *Message) parseSegment(line string, lineNo int) (*Segment, error) {
	d := &m.d
	name := line
	if i := strings.IndexByte(line, d.FieldSep); i >= 0 {
		name = line[:i]
	}
	if !validSegmentName(name) {
		return nil, &Error{Line: lineNo, Code: CodeSegmentSequence, Err: ErrMalformed,
			Msg: fmt.Sprintf("invalid segment ID %s: want three capital letters or digits, starting with a letter", quotePrefix(name, 4))}
	}
	seg := &Segment{name: name, d: d}
	rest := line[len(name):]
	if rest == "" {
		return seg, nil
	}
	rest = rest[1:] // the field separator
	if isHeaderName(name) {
		seg.header = true
		enc := rest
		if i := strings.IndexByte(rest, d.FieldSep); i >= 0 {
			enc, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		seg.fields = append(seg.fields, leaf(string(d.FieldSep)), leaf(enc))
		if rest == "" {
			return seg, nil
		}
		rest = rest[1:]
	}
	for _, f := range strings.Split(rest, string(d.FieldSep)) {
		seg.fields = append(seg.fields, splitField(f, d))
	}
	return seg, nil
}

func splitField(s string, d *Delimiters) field {
	if s == "" {
		return nil
	}
	reps := strings.Split(s, string(d.RepetitionSep))
	f := make(field, len(reps))
	for i, r := range reps {
		f[i] = splitRep(r, d)
	}
	return f
}

func splitRep(s string, d *Delimiters) rep {
	if s == "" {
		return nil
	}
	comps := strings.Split(s, string(d.ComponentSep))
	r := make(rep, len(comps))
	for i, c := range comps {
		r[i] = splitComp(c, d)
	}
	return r
}

func splitComp(s string, d *Delimiters) comp {
	if s == "" {
		return nil
	}
	return strings.Split(s, string(d.SubcomponentSep))
}

// Encode writes the message in wire form: every segment ends with "\r".
// For a parsed message, Encode(Parse(x)) is x with its line ends made
// "\r" and blank segments removed.
func (m *Message) Encode() []byte {
	var b bytes.Buffer
	for _, s := range m.segs {
		s.encode(&b)
		b.WriteByte('\r')
	}
	return b.Bytes()
}

// String returns Encode as a string.
func (m *Message) String() string { return string(m.Encode()) }

func (s *Segment) encode(b *bytes.Buffer) {
	d := s.delims()
	b.WriteString(s.name)
	for i, f := range s.fields {
		if s.header && i < 2 {
			// MSH-1 is the separator itself; MSH-2 follows it directly.
			if i == 1 {
				b.WriteString(f.raw(d))
			} else {
				b.WriteByte(d.FieldSep)
			}
			continue
		}
		b.WriteByte(d.FieldSep)
		b.WriteString(f.raw(d))
	}
}

func (s *Segment) delims() *Delimiters {
	if s.d == nil {
		return &DefaultDelimiters
	}
	return s.d
}

func (f field) raw(d *Delimiters) string {
	switch len(f) {
	case 0:
		return ""
	case 1:
		return f[0].raw(d)
	}
	parts := make([]string, len(f))
	for i, r := range f {
		parts[i] = r.raw(d)
	}
	return strings.Join(parts, string(d.RepetitionSep))
}

func (r rep) raw(d *Delimiters) string {
	switch len(r) {
	case 0:
		return ""
	case 1:
		return r[0].raw(d)
	}
	parts := make([]string, len(r))
	for i, c := range r {
		parts[i] = c.raw(d)
	}
	return strings.Join(parts, string(d.ComponentSep))
}

func (c comp) raw(d *Delimiters) string {
	switch len(c) {
	case 0:
		return ""
	case 1:
		return c[0]
	}
	return strings.Join(c, string(d.SubcomponentSep))
}

// Delimiters returns the message's encoding characters.
func (m *Message) Delimiters() Delimiters { return m.d }

// All returns every segment, in order. The slice is the message's own:
// do not modify it (use AddSegment and RemoveSegments).
func (m *Message) All() []*Segment { return m.segs }

// Segments returns the segments with the given ID, in order.
func (m *Message) Segments(name string) []*Segment {
	var out []*Segment
	for _, s := range m.segs {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// Segment returns the first segment with the given ID, or nil.
func (m *Message) Segment(name string) *Segment { return m.nth(name, 1) }

// nth returns the n-th (1-based) segment with the given ID, or nil.
func (m *Message) nth(name string, n int) *Segment {
	for _, s := range m.segs {
		if s.name == name {
			if n--; n == 0 {
				return s
			}
		}
	}
	return nil
}

// AddSegment appends an empty segment and returns it. The ID must be three
// capital letters or digits starting with a letter: AddSegment panics
// otherwise, as it is always a constant in the caller's code.
func (m *Message) AddSegment(name string) *Segment {
	if !validSegmentName(name) {
		panic(fmt.Sprintf("hl7v2: AddSegment: invalid segment ID %q", name))
	}
	s := &Segment{name: name, d: &m.d}
	if isHeaderName(name) {
		s.header = true
		s.fields = []field{leaf(string(m.d.FieldSep)), leaf(m.d.EncodingCharacters())}
	}
	m.segs = append(m.segs, s)
	return s
}

// RemoveSegments removes every segment with the given ID except the first
// MSH, and returns how many it removed.
func (m *Message) RemoveSegments(name string) int {
	kept := m.segs[:0]
	n := 0
	for i, s := range m.segs {
		if s.name == name && i > 0 {
			n++
			continue
		}
		kept = append(kept, s)
	}
	clear(m.segs[len(kept):])
	m.segs = kept
	return n
}

// Name returns the segment ID ("PID").
func (s *Segment) Name() string { return s.name }

// Len returns the number of fields the segment holds (its last field's
// number).
func (s *Segment) Len() int { return len(s.fields) }

// String returns the segment in wire form, without a terminator.
func (s *Segment) String() string {
	var b bytes.Buffer
	s.encode(&b)
	return b.String()
}
