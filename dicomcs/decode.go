package dicomcs

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// singleValued VRs: 0x5C is a character there, not a value delimiter
// (PS3.5 6.2).
func singleValued(vr string) bool {
	switch vr {
	case "LT", "ST", "UT", "UR":
		return true
	}
	return false
}

// textVR reports VRs whose leading spaces are significant.
func textVR(vr string) bool {
	switch vr {
	case "LT", "ST", "UT":
		return true
	}
	return false
}

// Decode decodes the raw value field of an element of the given VR into
// its values (one for LT, ST, UT, UR), each trimmed of its padding
// (trailing spaces and NULs; leading spaces too but for LT, ST and UT). A
// Person Name keeps its '=' and '^' delimiters: use SplitPN. Bytes that
// do not decode become U+FFFD.
func (s Set) Decode(raw []byte, vr string) []string {
	var vals []string
	if s.utf8 {
		vals = s.decodeUTF8(raw, vr)
	} else {
		vals = s.decode2022(raw, vr)
	}
	for i, v := range vals {
		v = strings.TrimRight(v, " \x00")
		if !textVR(vr) {
			v = strings.TrimLeft(v, " ")
		}
		vals[i] = v
	}
	return vals
}

// DecodeString is Decode's values joined with '\' (one string for a
// single-valued attribute).
func (s Set) DecodeString(raw []byte, vr string) string {
	return strings.Join(s.Decode(raw, vr), `\`)
}

func (s Set) decodeUTF8(raw []byte, vr string) []string {
	var parts [][]byte
	if singleValued(vr) {
		parts = [][]byte{raw}
	} else {
		for p := range strings.SplitSeq(string(raw), `\`) {
			parts = append(parts, []byte(p))
		}
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = validUTF8(p)
	}
	return out
}

// validUTF8 replaces each invalid byte of p with U+FFFD.
func validUTF8(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	var b strings.Builder
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		b.WriteRune(r) // RuneError for an invalid byte
		p = p[n:]
	}
	return b.String()
}

// decoder is the ISO 2022 state machine over one value field.
type decoder struct {
	s      Set
	vr     string
	g0, g1 graphic
	g1cm   *charmap.Charmap
	out    []string
	cur    strings.Builder
	pairs  []byte // a run of two-byte characters, as EUC-JP
}

func (s Set) decode2022(raw []byte, vr string) []string {
	d := &decoder{s: s, vr: vr}
	d.reset()
	for i := 0; i < len(raw); {
		i += d.step(raw[i:])
	}
	d.flush()
	d.out = append(d.out, d.cur.String())
	return d.out
}

// reset returns to the initial state: G0 and G1 of value 1 of (0008,0005).
func (d *decoder) reset() {
	d.g0, d.g1, d.g1cm = d.s.init.g0, d.s.init.g1, d.s.init.latin
}

// step decodes what starts b and returns how many bytes it took.
func (d *decoder) step(b []byte) int {
	c := b[0]
	if c == 0x1B {
		d.flush()
		if d.s.iso2022 {
			if n := d.escape(b); n > 0 {
				return n
			}
		}
		// Not a sequence we know: one replacement character for the ESC,
		// its intermediate bytes and final byte.
		n := 1
		for n < len(b) && b[n] >= 0x20 && b[n] <= 0x2F {
			n++
		}
		if n < len(b) && b[n] >= 0x30 && b[n] <= 0x7E {
			n++
		}
		d.cur.WriteRune(utf8.RuneError)
		return n
	}
	if c < 0x80 && d.g0.twoByte() {
		if c > 0x20 && c < 0x7F {
			if len(b) >= 2 && b[1] > 0x20 && b[1] < 0x7F {
				if d.g0 == jis0212 {
					d.pairs = append(d.pairs, 0x8F)
				}
				d.pairs = append(d.pairs, c|0x80, b[1]|0x80)
				return 2
			}
			d.flush()
			d.cur.WriteRune(utf8.RuneError)
			return 1
		}
		// A space or control character in a two-byte set: the encoder
		// should have gone back to the initial set first (PS3.5
		// 6.1.2.5.3); take it as that.
		d.flush()
		d.reset()
		return d.single(c)
	}
	d.flush()
	if c < 0x80 {
		return d.single(c)
	}
	switch d.g1 {
	case jisKatakana:
		if c >= 0xA1 && c <= 0xDF {
			d.cur.WriteRune(0xFF61 + rune(c-0xA1))
			return 1
		}
	case latin:
		if r := d.g1cm.DecodeByte(c); c >= 0xA0 && r != utf8.RuneError {
			d.cur.WriteRune(r)
			return 1
		}
	}
	d.cur.WriteRune(utf8.RuneError)
	return 1
}

// single decodes a byte below 0x80 in a single-byte G0, where '\' ends a
// value (not in LT, ST, UT, UR), '^' and '=' delimit a Person Name's
// components and groups, and control characters end a line: each resets
// the state.
func (d *decoder) single(c byte) int {
	switch {
	case c == '\\' && !singleValued(d.vr):
		d.out = append(d.out, d.cur.String())
		d.cur.Reset()
		d.reset()
		return 1
	case (c == '^' || c == '=') && d.vr == "PN", c < 0x20:
		d.cur.WriteByte(c)
		d.reset()
		return 1
	}
	if d.g0 == jisRoman {
		switch c {
		case 0x5C:
			d.cur.WriteRune('¥')
			return 1
		case 0x7E:
			d.cur.WriteRune('‾')
			return 1
		}
	}
	if c == 0x7F {
		d.cur.WriteRune(utf8.RuneError)
		return 1
	}
	d.cur.WriteByte(c)
	return 1
}

// flush decodes the pending run of two-byte characters.
func (d *decoder) flush() {
	if len(d.pairs) == 0 {
		return
	}
	out, err := japanese.EUCJP.NewDecoder().Bytes(d.pairs)
	if err != nil {
		// The decoder replaces what it cannot map; an error here would be
		// a bug in it. Never lose the characters' count: one U+FFFD each.
		out = []byte(strings.Repeat(string(utf8.RuneError), len(d.pairs)/2))
	}
	d.cur.Write(out)
	d.pairs = d.pairs[:0]
}

// escape designates the set an escape sequence names; it returns the
// sequence's length, or 0 for one it does not know.
func (d *decoder) escape(b []byte) int {
	has := func(seq string) bool { return len(b) >= len(seq) && string(b[:len(seq)]) == seq }
	switch {
	case has("\x1b(B"):
		d.g0 = ascii
		return 3
	case has("\x1b(J"):
		d.g0 = jisRoman
		return 3
	case has("\x1b)I"):
		d.g1 = jisKatakana
		return 3
	case has("\x1b$B"), has("\x1b$@"):
		d.g0 = jis0208
		return 3
	case has("\x1b$(D"):
		d.g0 = jis0212
		return 4
	case len(b) >= 3 && b[1] == '-':
		for _, l := range latinSets {
			if b[2] == l.final {
				d.g1, d.g1cm = latin, l.cm
				return 3
			}
		}
	}
	return 0
}

// PersonName is a decoded Person Name value: its alphabetic, ideographic
// and phonetic component groups (PS3.5 6.2.1), each split into family,
// given, middle, prefix and suffix.
type PersonName struct {
	Alphabetic, Ideographic, Phonetic NameGroup
}

// NameGroup is one component group of a Person Name.
type NameGroup struct {
	Family, Given, Middle, Prefix, Suffix string
}

// IsZero reports an empty group.
func (g NameGroup) IsZero() bool { return g == NameGroup{} }

// String is the group in DICOM form ("Yamada^Tarou"), trailing empty
// components left out.
func (g NameGroup) String() string {
	return strings.TrimRight(strings.Join([]string{g.Family, g.Given, g.Middle, g.Prefix, g.Suffix}, "^"), "^")
}

// CodedGroup is a component group with its XPN name representation code
// (HL7 table 4000: A alphabetic, I ideographic, P phonetic).
type CodedGroup struct {
	Code string
	NameGroup
}

// Groups are the non-empty groups in DICOM order, with their codes.
func (p PersonName) Groups() []CodedGroup {
	var out []CodedGroup
	for _, g := range []CodedGroup{{"A", p.Alphabetic}, {"I", p.Ideographic}, {"P", p.Phonetic}} {
		if !g.IsZero() {
			out = append(out, g)
		}
	}
	return out
}

// IsZero reports a name with no component.
func (p PersonName) IsZero() bool { return p == PersonName{} }

// String is the name in DICOM form ("Yamada^Tarou=山田^太郎=やまだ^たろう").
func (p PersonName) String() string {
	return strings.TrimRight(p.Alphabetic.String()+"="+p.Ideographic.String()+"="+p.Phonetic.String(), "=")
}

// SplitPN splits one decoded Person Name value (from Decode with VR "PN")
// into its groups and components.
func SplitPN(v string) PersonName {
	var p PersonName
	groups := strings.SplitN(v, "=", 3)
	for i, dst := range []*NameGroup{&p.Alphabetic, &p.Ideographic, &p.Phonetic} {
		if i >= len(groups) {
			break
		}
		c := strings.SplitN(groups[i], "^", 5)
		for j, f := range []*string{&dst.Family, &dst.Given, &dst.Middle, &dst.Prefix, &dst.Suffix} {
			if j < len(c) {
				*f = strings.TrimSpace(c[j])
			}
		}
	}
	return p
}
