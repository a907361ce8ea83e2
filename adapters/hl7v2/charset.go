package hl7v2

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/radgate/radgate/dicomcs"
)

// Character sets an ORU^R01 is sent in (config: destination key charset),
// as MSH-18 (HL7 table 0211) names them. radgate builds and keeps every
// message in UTF-8 (the outbox holds that form); the conversion is made on
// the wire (Message.Wire), by what MSH-18 declares.
const (
	// CharsetUTF8 (the default): MSH-18 "UNICODE UTF-8" whenever the
	// message holds non-ASCII text, else empty (ASCII).
	CharsetUTF8 = "UNICODE UTF-8"
	// CharsetIR87: ASCII with JIS X 0208 kanji and kana by ISO 2022 escape
	// sequences (ESC $ B … ESC ( B), MSH-18 "~ISO IR87" (first repetition
	// empty: ASCII is the default set), as JAHIS systems read it.
	// Half-width katakana are sent full-width; a character JIS X 0208
	// lacks is sent as 〓.
	CharsetIR87 = "ISO IR87"
	// CharsetIR13: ASCII with JIS X 0201 half-width katakana in the upper
	// half (0xA1–0xDF), MSH-18 "~ISO IR13": kana become half-width
	// katakana, any other character (a kanji) '?'.
	CharsetIR13 = "ISO IR13"
)

// CheckCharset reports whether v is a charset an ORU can be sent in (""
// is CharsetUTF8).
func CheckCharset(v string) error {
	switch v {
	case "", CharsetUTF8, CharsetIR87, CharsetIR13:
		return nil
	}
	return fmt.Errorf("charset %q is not %q, %q or %q", v, CharsetUTF8, CharsetIR87, CharsetIR13)
}

// declareCharset sets MSH-18 for cs (see the Charset constants); "" is
// CharsetUTF8.
func declareCharset(m *Message, cs string) error {
	switch cs {
	case "", CharsetUTF8:
		if m.nonASCII() {
			return m.msh().SetComponents(18, CharsetUTF8)
		}
		return m.msh().SetRaw("18", "")
	case CharsetIR87, CharsetIR13:
		return m.msh().SetRaw("18", string(m.d.RepetitionSep)+cs)
	}
	return CheckCharset(cs)
}

func (m *Message) nonASCII() bool {
	for _, s := range m.segs {
		str := s.String()
		for i := 0; i < len(str); i++ {
			if str[i] >= utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

// wireCharset is the ISO 2022 set MSH-18 declares beyond the default, or
// "" (UTF-8 or ASCII: sent as built).
func (m *Message) wireCharset() string {
	s := m.msh()
	if s == nil {
		return ""
	}
	for r := 1; r <= s.Reps(18); r++ {
		switch v := strings.TrimSpace(s.Value(18, r, 1, 1)); v {
		case CharsetIR87, CharsetIR13:
			return v
		}
	}
	return ""
}

// Wire returns the message as sent: Encode, converted to the character set
// MSH-18 declares (ISO IR87: JIS X 0208 by escape sequences; ISO IR13: JIS
// X 0201 katakana), and how many characters that set could not hold and
// were substituted (〓 or '?').
func (m *Message) Wire() ([]byte, int) {
	b := m.Encode()
	switch m.wireCharset() {
	case CharsetIR87:
		return dicomcs.EncodeIR87(string(b))
	case CharsetIR13:
		return dicomcs.EncodeIR13(string(b))
	}
	return b, 0
}

// jisReceived is how a received ISO 2022 message is read: ASCII at the
// start of every segment, JIS X 0208, JIS X 0212 and JIS X 0201 katakana
// by their escape sequences.
var jisReceived, _ = dicomcs.Parse(`ISO 2022 IR 6\ISO 2022 IR 87\ISO 2022 IR 159\ISO 2022 IR 13`)

// FromWire converts a received message to the UTF-8 radgate parses, by
// what its MSH-18 declares: ISO IR87 or ISO IR159 (escape sequences: a
// JIS X 0208 byte pair may hold '|', '^', '~', '\' or '&', so the message
// is decoded before it is split into fields) or ISO IR13 (bytes
// 0xA1–0xDF are half-width katakana). Anything else is returned as it is.
// Bytes that do not decode become U+FFFD.
func FromWire(raw []byte) []byte {
	hdr, err := ParseHeader(raw)
	if err != nil || hdr == nil {
		return raw
	}
	jis, kana := false, false
	s := hdr.msh()
	for r := 1; s != nil && r <= s.Reps(18); r++ {
		switch strings.TrimSpace(s.Value(18, r, 1, 1)) {
		case CharsetIR87, "ISO IR159":
			jis = true
		case CharsetIR13:
			kana = true
		}
	}
	switch {
	case jis:
		return []byte(jisReceived.DecodeString(raw, "LT"))
	case kana:
		var b strings.Builder
		for _, c := range raw {
			if c >= 0xA1 && c <= 0xDF {
				b.WriteRune(0xFF61 + rune(c-0xA1))
			} else {
				b.WriteByte(c)
			}
		}
		return []byte(b.String())
	}
	return raw
}
