package hl7v2

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Paths
//
// Message.Get and friends address a value with a path in the usual HL7
// notation, every index 1-based:
//
//	PID           the first PID segment
//	OBX(2)        the second OBX segment
//	PID-3         field 3 (Get: its first repetition's first component)
//	PID-3(2)      the second repetition of field 3
//	PID-3-4       component 4 of the first repetition of field 3
//	PID-3(2)-4-2  subcomponent 2 of component 4 of the second repetition
//
// "." may stand for "-" ("PID.3.1"). Segment methods take the same path
// without the segment ("3(2)-4-2").

// maxIndex bounds the indexes Set accepts, so a typo cannot allocate
// millions of empty fields.
const maxIndex = 1000

// pos addresses part of a segment. field is ≥ 1; rep, comp and sub are 0
// when the path does not name them.
type pos struct{ field, rep, comp, sub int }

var errPath = errors.New("invalid HL7 path")

// parsePath splits "SEG(occ)-F(rep)-C-S".
func parsePath(p string) (name string, occ int, at pos, err error) {
	if len(p) < 3 || !validSegmentName(p[:3]) {
		return "", 0, pos{}, fmt.Errorf("%w %q: want a segment ID such as PID first", errPath, p)
	}
	name, rest := p[:3], p[3:]
	occ = 1
	if strings.HasPrefix(rest, "(") {
		n, r, ok := index(rest)
		if !ok {
			return "", 0, pos{}, fmt.Errorf("%w %q: bad segment occurrence", errPath, p)
		}
		occ, rest = n, r
	}
	if rest == "" {
		return name, occ, pos{}, nil
	}
	if rest[0] != '-' && rest[0] != '.' {
		return "", 0, pos{}, fmt.Errorf("%w %q: want '-' after the segment", errPath, p)
	}
	at, err = parseRel(rest[1:])
	if err != nil {
		return "", 0, pos{}, fmt.Errorf("%w %q: %v", errPath, p, err)
	}
	return name, occ, at, nil
}

// parseRel parses "F(rep)-C-S" (a path within a segment).
func parseRel(p string) (pos, error) {
	parts := strings.FieldsFunc(p, func(r rune) bool { return r == '-' || r == '.' })
	if len(parts) == 0 || len(parts) > 3 || strings.Count(p, "-")+strings.Count(p, ".") != len(parts)-1 {
		return pos{}, errors.New("want field[(repetition)][-component[-subcomponent]]")
	}
	var at pos
	f := parts[0]
	if i := strings.IndexByte(f, '('); i >= 0 {
		n, r, ok := index(f[i:])
		if !ok || r != "" {
			return pos{}, errors.New("bad repetition")
		}
		at.rep, f = n, f[:i]
	}
	var ok bool
	if at.field, ok = number(f); !ok {
		return pos{}, fmt.Errorf("bad field number %q", f)
	}
	if len(parts) > 1 {
		if at.comp, ok = number(parts[1]); !ok {
			return pos{}, fmt.Errorf("bad component number %q", parts[1])
		}
	}
	if len(parts) > 2 {
		if at.sub, ok = number(parts[2]); !ok {
			return pos{}, fmt.Errorf("bad subcomponent number %q", parts[2])
		}
	}
	return at, nil
}

// index reads "(n)" at the start of s.
func index(s string) (n int, rest string, ok bool) {
	end := strings.IndexByte(s, ')')
	if end < 0 || s[0] != '(' {
		return 0, "", false
	}
	n, ok = number(s[1:end])
	return n, s[end+1:], ok
}

// number parses a positive index of at most six digits.
func number(s string) (int, bool) {
	if s == "" || len(s) > 6 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	return n, n > 0
}

// Get returns the unescaped value at path ("PID-3-1"), or "" when the
// message has no such segment or value. A path that stops short of a
// subcomponent means the first one: Get("PID-3") is PID-3(1)-1-1. MSH-1
// and MSH-2 are returned as they are (the delimiters). An invalid path
// yields "".
func (m *Message) Get(path string) string {
	s, at, ok := m.resolve(path)
	if !ok || at.field == 0 {
		return ""
	}
	return s.value(at)
}

// GetRaw returns the wire-form (escaped) text at path: a whole field with
// its repetitions for "PID-3", one repetition for "PID-3(1)", a component
// with its subcomponents for "PID-3-4", a whole segment for "PID".
func (m *Message) GetRaw(path string) string {
	s, at, ok := m.resolve(path)
	if !ok {
		return ""
	}
	if at.field == 0 {
		return s.String()
	}
	return s.raw(at)
}

// Count returns the number of segments for a segment path ("OBX") or the
// number of repetitions of a field ("PID-3"; 0 when the field is empty).
func (m *Message) Count(path string) int {
	name, occ, at, err := parsePath(path)
	if err != nil {
		return 0
	}
	if at.field == 0 {
		return len(m.Segments(name))
	}
	s := m.nth(name, occ)
	if s == nil {
		return 0
	}
	return s.Reps(at.field)
}

// Set escapes value and stores it at path, replacing what was there: the
// whole field for "PID-3" (dropping its repetitions and components), one
// repetition for "PID-3(2)", one component for "PID-3-1", one
// subcomponent for "PID-3-4-2". Missing fields, repetitions and components
// are added; the segment must exist (see AddSegment).
func (m *Message) Set(path, value string) error {
	return m.SetRaw(path, m.d.Escape(value))
}

// SetRaw stores wire-form text at path: at field level it may hold
// repetition, component and subcomponent separators, at component level
// only subcomponent separators. It never holds a field separator or a line
// break.
func (m *Message) SetRaw(path, raw string) error {
	name, occ, at, err := parsePath(path)
	if err != nil {
		return err
	}
	if at.field == 0 {
		return fmt.Errorf("%w %q: name a field", errPath, path)
	}
	s := m.nth(name, occ)
	if s == nil {
		return fmt.Errorf("hl7v2: set %s: the message has no segment %s", path, Location{Segment: name, Seq: occ})
	}
	return s.setRaw(at, raw)
}

func (m *Message) resolve(path string) (*Segment, pos, bool) {
	name, occ, at, err := parsePath(path)
	if err != nil {
		return nil, pos{}, false
	}
	s := m.nth(name, occ)
	return s, at, s != nil
}

// Get returns the unescaped value at a path within the segment ("3-1"),
// like Message.Get.
func (s *Segment) Get(path string) string {
	at, err := parseRel(path)
	if err != nil {
		return ""
	}
	return s.value(at)
}

// GetRaw returns the wire-form text at a path within the segment, like
// Message.GetRaw.
func (s *Segment) GetRaw(path string) string {
	at, err := parseRel(path)
	if err != nil {
		return ""
	}
	return s.raw(at)
}

// Set escapes value and stores it at a path within the segment, like
// Message.Set.
func (s *Segment) Set(path, value string) error {
	return s.SetRaw(path, s.delims().Escape(value))
}

// SetRaw stores wire-form text at a path within the segment, like
// Message.SetRaw.
func (s *Segment) SetRaw(path, raw string) error {
	at, err := parseRel(path)
	if err != nil {
		return fmt.Errorf("%w %q: %v", errPath, path, err)
	}
	return s.setRaw(at, raw)
}

// Value returns the unescaped value of field, repetition, component and
// subcomponent (1-based; 0 counts as 1), or "" when absent.
func (s *Segment) Value(field, rep, comp, sub int) string {
	return s.value(pos{field: field, rep: rep, comp: comp, sub: sub})
}

// Reps returns the number of repetitions of a field, 0 when it is empty.
func (s *Segment) Reps(fieldNo int) int {
	f := s.fieldAt(fieldNo)
	if f.raw(s.delims()) == "" {
		return 0
	}
	return max(len(f), 1)
}

// SetComponents sets a field to one repetition made of the given
// components, each escaped; trailing empty components are dropped.
func (s *Segment) SetComponents(fieldNo int, components ...string) error {
	d := s.delims()
	for len(components) > 0 && components[len(components)-1] == "" {
		components = components[:len(components)-1]
	}
	parts := make([]string, len(components))
	for i, c := range components {
		parts[i] = d.Escape(c)
	}
	return s.setRaw(pos{field: fieldNo}, strings.Join(parts, string(d.ComponentSep)))
}

func (s *Segment) fieldAt(n int) field {
	if n < 1 || n > len(s.fields) {
		return nil
	}
	return s.fields[n-1]
}

func (s *Segment) raw(at pos) string {
	if at.field < 1 {
		return ""
	}
	d := s.delims()
	f := s.fieldAt(at.field)
	if s.header && at.field <= 2 {
		return f.raw(d)
	}
	if at.rep == 0 && at.comp == 0 {
		return f.raw(d)
	}
	r := at1(f, max(at.rep, 1))
	if at.comp == 0 {
		return r.raw(d)
	}
	c := at1(r, at.comp)
	if at.sub == 0 {
		return c.raw(d)
	}
	return at1(c, at.sub)
}

func (s *Segment) value(at pos) string {
	if s.header && (at.field == 1 || at.field == 2) {
		return s.raw(pos{field: at.field})
	}
	at.rep, at.comp, at.sub = max(at.rep, 1), max(at.comp, 1), max(at.sub, 1)
	return s.delims().Unescape(s.raw(at))
}

// at1 returns element i (1-based) of a slice, or the zero value.
func at1[T any](xs []T, i int) T {
	var zero T
	if i < 1 || i > len(xs) {
		return zero
	}
	return xs[i-1]
}

// grow returns xs with at least n elements.
func grow[T any](xs []T, n int) []T {
	for len(xs) < n {
		var zero T
		xs = append(xs, zero)
	}
	return xs
}

func (s *Segment) setRaw(at pos, raw string) error {
	where := Location{Segment: s.name, Field: at.field, Rep: at.rep, Comp: at.comp, Sub: at.sub}
	if at.field < 1 || at.field > maxIndex || at.rep > maxIndex || at.comp > maxIndex || at.sub > maxIndex {
		return fmt.Errorf("hl7v2: set %s: index out of range 1..%d", where, maxIndex)
	}
	if s.header && at.field <= 2 {
		return fmt.Errorf("hl7v2: set %s: %s-1 and %s-2 hold the delimiters and cannot be set", where, s.name, s.name)
	}
	d := s.delims()
	forbidden := []byte{d.FieldSep, '\r', '\n'}
	level := "field"
	switch {
	case at.rep == 0 && at.comp == 0:
	case at.comp == 0:
		forbidden, level = append(forbidden, d.RepetitionSep), "repetition"
	case at.sub == 0:
		forbidden, level = append(forbidden, d.RepetitionSep, d.ComponentSep), "component"
	default:
		forbidden, level = append(forbidden, d.RepetitionSep, d.ComponentSep, d.SubcomponentSep), "subcomponent"
	}
	if i := strings.IndexAny(raw, string(forbidden)); i >= 0 {
		return fmt.Errorf("hl7v2: set %s: raw %s value holds %s, which cannot appear at that level (escape it)", where, level, quoteByte(raw[i]))
	}
	s.fields = grow(s.fields, at.field)
	f := &s.fields[at.field-1]
	if at.rep == 0 && at.comp == 0 {
		*f = splitField(raw, d)
		return nil
	}
	*f = grow(*f, max(at.rep, 1))
	r := &(*f)[max(at.rep, 1)-1]
	if at.comp == 0 {
		*r = splitRep(raw, d)
		return nil
	}
	*r = grow(*r, at.comp)
	c := &(*r)[at.comp-1]
	if at.sub == 0 {
		*c = splitComp(raw, d)
		return nil
	}
	*c = grow(*c, at.sub)
	(*c)[at.sub-1] = raw
	return nil
}
