package dicomcs

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Japanese encodings for receivers that do not read UTF-8 (an HL7 v2 RIS
// with MSH-18 ISO IR87 or ISO IR13). radgate's DICOM objects are written in
// UTF-8 (ISO_IR 192), so these are the only encoders.

// Substitute replaces a character that EncodeIR87 cannot represent: the
// geta mark 〓 (JIS X 0208 0x222E), what Japanese systems print for one.
const Substitute = '〓'

// EncodeIR87 encodes s as ISO 2022 with ASCII in G0 and JIS X 0208 invoked
// by ESC $ B, back to ASCII by ESC ( B before every ASCII character (so
// every delimiter and control character is read in ASCII) and at the end:
// what HL7 v2 calls ISO IR87 and DICOM ISO 2022 IR 87 with value 1 ISO
// 2022 IR 6. Half-width katakana become full-width (JIS X 0208 has no
// half-width forms; ﾀﾞ becomes ダ). It returns how many characters were
// not representable and became Substitute.
func EncodeIR87(s string) ([]byte, int) {
	s = widenKatakana(s)
	out := make([]byte, 0, len(s)+8)
	kanji := false
	subst := 0
	enc := japanese.EUCJP.NewEncoder()
	var buf [8]byte
	for _, r := range s {
		if r < utf8.RuneSelf {
			if kanji {
				out = append(out, 0x1B, '(', 'B')
				kanji = false
			}
			out = append(out, byte(r))
			continue
		}
		b, ok := jis0208Of(enc, r, buf[:0])
		if !ok {
			b, _ = jis0208Of(enc, Substitute, buf[:0])
			subst++
		}
		if !kanji {
			out = append(out, 0x1B, '$', 'B')
			kanji = true
		}
		out = append(out, b...)
	}
	if kanji {
		out = append(out, 0x1B, '(', 'B')
	}
	return out, subst
}

// jis0208Of appends r's JIS X 0208 code (two bytes, 0x21–0x7E each) to dst.
func jis0208Of(enc interface {
	String(string) (string, error)
}, r rune, dst []byte) ([]byte, bool) {
	switch r {
	case '—': // EM DASH: JIS X 0208's dash is mapped to U+2015 by the tables
		r = '―'
	case '−': // MINUS SIGN
		r = '－'
	}
	e, err := enc.String(string(r))
	if err != nil || len(e) != 2 || e[0] < 0xA1 || e[1] < 0xA1 {
		return dst, false
	}
	return append(dst, e[0]&0x7F, e[1]&0x7F), true
}

// widenKatakana turns half-width katakana (U+FF61–U+FF9F) into their
// full-width forms, voiced marks composed (NFKC on those runs only).
func widenKatakana(s string) string {
	if !strings.ContainsFunc(s, isHalfWidthKana) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexFunc(s, isHalfWidthKana)
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexFunc(s, func(r rune) bool { return !isHalfWidthKana(r) })
		if j < 0 {
			j = len(s)
		}
		b.WriteString(norm.NFKC.String(s[:j]))
		s = s[j:]
	}
	return b.String()
}

func isHalfWidthKana(r rune) bool { return r >= 0xFF61 && r <= 0xFF9F }

// EncodeIR13 encodes s as ASCII with JIS X 0201 katakana in the upper half
// (0xA1–0xDF, G1), what HL7 v2 calls ISO IR13: hiragana and full-width
// katakana become half-width katakana (ダ becomes ﾀﾞ); any other character
// (a kanji) becomes '?'. It returns how many characters did.
func EncodeIR13(s string) ([]byte, int) {
	out := make([]byte, 0, len(s))
	subst := 0
	for _, r := range norm.NFD.String(s) {
		switch {
		case r < utf8.RuneSelf:
			out = append(out, byte(r))
			continue
		case r >= 0x3041 && r <= 0x3096: // hiragana → katakana
			r += 0x60
		case r == 0x3099: // combining voiced mark
			r = 0xFF9E
		case r == 0x309A: // combining semi-voiced mark
			r = 0xFF9F
		}
		if !isHalfWidthKana(r) {
			r, _ = utf8.DecodeRuneInString(width.Narrow.String(string(r)))
		}
		if isHalfWidthKana(r) {
			out = append(out, byte(0xA1+r-0xFF61))
			continue
		}
		out = append(out, '?')
		subst++
	}
	return out, subst
}
