// Package dicomcs decodes and encodes DICOM text by its Specific Character
// Set (0008,0005), PS3.5 6.1 and Annexes H (Japanese) and I: the default
// repertoire (ISO_IR 6), the ISO 8859 sets, UTF-8 (ISO_IR 192), JIS X 0201
// (ISO_IR 13: Romaji and half-width katakana) and the ISO 2022 code
// extensions with escape sequences — JIS X 0208 (ISO 2022 IR 87) and JIS X
// 0212 (ISO 2022 IR 159) in G0, JIS X 0201 katakana in G1, the ISO 8859
// sets in G1.
//
// The DICOM library radgate parses with splits a value on 0x5C before it
// decodes it and maps IR 13 to Shift_JIS: a kanji whose second byte is 0x5C
// (府 is 0x49 0x5C in JIS X 0208) breaks, and G1 katakana is lost. Decode
// works on the raw value field instead: it runs the ISO 2022 state machine
// over the bytes and treats 0x5C as the value delimiter (and '^', '=' in a
// Person Name as component and group delimiters) only while a single-byte
// set is in G0, resetting to the initial state at each (PS3.5 6.1.2.5.3).
//
// The JIS X 0208 and 0212 tables are golang.org/x/text's (through its
// EUC-JP codec); the state machine is this package's. Invalid bytes decode
// to U+FFFD; nothing panics.
//
// The package is a leaf: it imports nothing of radgate's, so inference
// (Meta.InstitutionName), derived (the copied patient and study text) and
// adapters/hl7v2 (MSH-18 ISO IR87 / ISO IR13) share one implementation.
package dicomcs

import (
	"fmt"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// UTF8 is the Specific Character Set radgate writes (ISO_IR 192): every
// Unicode string is representable, radgate's own text included.
const UTF8 = "ISO_IR 192"

// graphic is a character set that can be designated to G0 or G1.
type graphic uint8

const (
	none        graphic = iota
	ascii               // ISO 646 IRV (ISO-IR 6), G0
	jisRoman            // JIS X 0201 Romaji (ISO-IR 14), G0
	jisKatakana         // JIS X 0201 katakana (ISO-IR 13), G1: 0xA1–0xDF
	jis0208             // JIS X 0208 (ISO-IR 87), G0, two bytes
	jis0212             // JIS X 0212 (ISO-IR 159), G0, two bytes
	latin               // an ISO 8859 upper half, G1 (Set.latin, or the one designated)
)

// twoByte reports a two-byte G0 set: 0x5C, '^' and '=' are then halves of
// characters, never delimiters.
func (g graphic) twoByte() bool { return g == jis0208 || g == jis0212 }

// term is what one defined term of (0008,0005) sets up.
type term struct {
	g0, g1 graphic
	latin  *charmap.Charmap // for g1 == latin
}

// single-byte defined terms (value 1, or ISO 2022 G1 sets); the ISO 8859
// ones also name their G1 escape's final byte.
var latinSets = []struct {
	ir    string
	final byte
	cm    *charmap.Charmap
}{
	{"100", 'A', charmap.ISO8859_1},
	{"101", 'B', charmap.ISO8859_2},
	{"109", 'C', charmap.ISO8859_3},
	{"110", 'D', charmap.ISO8859_4},
	{"144", 'L', charmap.ISO8859_5},
	{"127", 'G', charmap.ISO8859_6},
	{"126", 'F', charmap.ISO8859_7},
	{"138", 'H', charmap.ISO8859_8},
	{"148", 'M', charmap.ISO8859_9},
	{"203", 'b', charmap.ISO8859_15},
}

// Set is a parsed Specific Character Set. The zero Set is the default
// repertoire (ISO_IR 6).
type Set struct {
	value   string // (0008,0005) as given, normalised
	utf8    bool   // ISO_IR 192
	iso2022 bool   // a "ISO 2022 …" term: escape sequences are honoured
	init    term   // G0 and G1 at the start of a value
	// unknown: a term this package does not decode; bytes outside ASCII
	// decode to U+FFFD.
	unknown bool
}

// Parse reads the value of Specific Character Set (0008,0005): its defined
// terms separated by '\' ("\ISO 2022 IR 87", "ISO 2022 IR 13\ISO 2022 IR
// 87", "ISO_IR 192"). An empty value is the default repertoire. A term this
// package does not know (GB18030, say) is an error; the Set returned with
// it still decodes ASCII and gives U+FFFD for every other byte.
//
// Decoding is lenient about code extensions: with any ISO 2022 term, every
// escape sequence the package knows is honoured, declared or not (a
// "\ISO 2022 IR 87" value that uses ESC ) I still shows its katakana).
func Parse(value string) (Set, error) {
	vals := strings.Split(strings.TrimRight(value, " \x00"), `\`)
	for i := range vals {
		vals[i] = strings.TrimSpace(strings.TrimRight(vals[i], "\x00"))
	}
	s := Set{value: strings.Join(vals, `\`), init: term{g0: ascii}}
	if s.value == "" {
		return s, nil
	}
	var unknown []string
	for i, v := range vals {
		if strings.HasPrefix(v, "ISO 2022 ") {
			s.iso2022 = true
		}
		switch {
		case v == "ISO_IR 192":
			s.utf8 = true
		case v == "" || v == "ISO_IR 6" || v == "ISO 2022 IR 6":
		case v == "ISO_IR 13" || v == "ISO 2022 IR 13":
			if i == 0 {
				s.init = term{g0: jisRoman, g1: jisKatakana}
			}
		case v == "ISO 2022 IR 87" || v == "ISO 2022 IR 159":
			// Multi-byte sets come only by escape sequence.
		default:
			cm := latinOf(v)
			if cm == nil {
				unknown = append(unknown, v)
				continue
			}
			if i == 0 {
				s.init = term{g0: ascii, g1: latin, latin: cm}
			}
		}
	}
	if len(unknown) > 0 {
		s.unknown = true
		return s, fmt.Errorf("dicomcs: Specific Character Set %q: %s not supported (supported: ISO_IR 6, ISO_IR 13, ISO_IR 192, the ISO 8859 sets, ISO 2022 IR 6/13/87/159 and the ISO 2022 ISO 8859 sets)",
			s.value, strings.Join(unknown, ", "))
	}
	return s, nil
}

// latinOf is the ISO 8859 charmap of "ISO_IR nnn" or "ISO 2022 IR nnn".
func latinOf(v string) *charmap.Charmap {
	ir, ok := strings.CutPrefix(v, "ISO_IR ")
	if !ok {
		ir, ok = strings.CutPrefix(v, "ISO 2022 IR ")
	}
	if !ok {
		return nil
	}
	for _, l := range latinSets {
		if l.ir == ir {
			return l.cm
		}
	}
	return nil
}

// String is the (0008,0005) value the Set was parsed from, normalised.
func (s Set) String() string { return s.value }

// IsUTF8 reports ISO_IR 192.
func (s Set) IsUTF8() bool { return s.utf8 }
