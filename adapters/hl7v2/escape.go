package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// Delimiters are a message's encoding characters: MSH-1 (FieldSep) and MSH-2
// (ComponentSep, RepetitionSep, EscapeChar, SubcomponentSep and, from v2.7,
// TruncationChar).
// Parse takes them from the message; nothing in this package assumes the
// usual "|^~\&".
type Delimiters struct {
	FieldSep        byte
	ComponentSep    byte
	RepetitionSep   byte
	EscapeChar      byte
	SubcomponentSep byte
	// TruncationChar is the v2.7 truncation character (MSH-2's fifth
	// character, usually '#'), or 0 when MSH-2 has four characters.
	TruncationChar byte
}

// DefaultDelimiters are the encoding characters HL7 recommends, "|^~\&",
// without a truncation character. Builders in this package use them.
var DefaultDelimiters = Delimiters{FieldSep: '|', ComponentSep: '^', RepetitionSep: '~', EscapeChar: '\\', SubcomponentSep: '&'}

// EncodingCharacters returns MSH-2 for d: component, repetition, escape and
// subcomponent characters, then the truncation character if any.
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.ComponentSep, d.RepetitionSep, d.EscapeChar, d.SubcomponentSep}
	if d.TruncationChar != 0 {
		b = append(b, d.TruncationChar)
	}
	return string(b)
}

// Validate reports whether d can delimit a message: every character
// printable ASCII punctuation (no letters, digits, spaces or control
// characters) and no character used twice.
func (d Delimiters) Validate() error {
	all := []struct {
		name string
		c    byte
	}{{"field separator", d.FieldSep}, {"component separator", d.ComponentSep}, {"repetition separator", d.RepetitionSep},
		{"escape character", d.EscapeChar}, {"subcomponent separator", d.SubcomponentSep}}
	if d.TruncationChar != 0 {
		all = append(all, struct {
			name string
			c    byte
		}{"truncation character", d.TruncationChar})
	}
	for i, a := range all {
		if !validDelimiter(a.c) {
			return fmt.Errorf("invalid %s %s: must be printable ASCII punctuation", a.name, quoteByte(a.c))
		}
		for _, b := range all[:i] {
			if b.c == a.c {
				return fmt.Errorf("%s and %s are both %s", b.name, a.name, quoteByte(a.c))
			}
		}
	}
	return nil
}

func validDelimiter(c byte) bool {
	switch {
	case c <= ' ' || c >= 0x7f:
		return false
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return false
	}
	return true
}

func quoteByte(c byte) string { return strconv.QuoteRune(rune(c)) }

// isDelim reports whether c is one of d's characters.
func (d Delimiters) isDelim(c byte) bool {
	return c == d.FieldSep || c == d.ComponentSep || c == d.RepetitionSep || c == d.EscapeChar ||
		c == d.SubcomponentSep || (d.TruncationChar != 0 && c == d.TruncationChar)
}

// Escape returns s in wire form for a field of any text type: delimiters
// become \F\ \S\ \T\ \R\ \E\ (and \P\ for the truncation character), and
// carriage returns and line feeds, which would end the segment, become
// \X0D\ and \X0A\. Use EscapeFT for formatted text, where line breaks
// become \.br\.
func (d Delimiters) Escape(s string) string { return d.escape(s, false) }

// EscapeFT is Escape for FT (formatted text) values: each line break ("\r\n",
// "\n" or "\r") becomes the formatting command \.br\.
func (d Delimiters) EscapeFT(s string) string { return d.escape(s, true) }

func (d Delimiters) escape(s string, ft bool) string {
	need := false
	for i := 0; i < len(s); i++ {
		if d.isDelim(s[i]) || s[i] == '\r' || s[i] == '\n' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	e := string(d.EscapeChar)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == d.EscapeChar:
			b.WriteString(e + "E" + e)
		case c == d.FieldSep:
			b.WriteString(e + "F" + e)
		case c == d.ComponentSep:
			b.WriteString(e + "S" + e)
		case c == d.SubcomponentSep:
			b.WriteString(e + "T" + e)
		case c == d.RepetitionSep:
			b.WriteString(e + "R" + e)
		case d.TruncationChar != 0 && c == d.TruncationChar:
			b.WriteString(e + "P" + e)
		case ft && (c == '\r' || c == '\n'):
			if c == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			b.WriteString(e + ".br" + e)
		case c == '\r':
			b.WriteString(e + "X0D" + e)
		case c == '\n':
			b.WriteString(e + "X0A" + e)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape returns the text a wire-form value stands for. It resolves the
// delimiter escapes (\F\ \S\ \T\ \R\ \E\ \P\), hexadecimal data (\Xhh…\),
// and the formatting commands of FT: \.br\ becomes "\n", \.sp n\ n line
// breaks, \.sk n\ n spaces; other formatting commands, highlighting (\H\
// \N\) and character set switches (\C…\ \M…\) are dropped. Anything it does
// not recognise — a locally defined \Z…\ escape, an escape character
// without a closing one, malformed hex — is kept as written.
func (d Delimiters) Unescape(s string) string {
	if d.EscapeChar == 0 || strings.IndexByte(s, d.EscapeChar) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != d.EscapeChar {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], d.EscapeChar)
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		seq := s[i+1 : i+1+end]
		if out, ok := d.resolve(seq); ok {
			b.WriteString(out)
		} else {
			b.WriteString(s[i : i+2+end])
		}
		i += end + 2
	}
	return b.String()
}

// resolve returns what the escape sequence seq (without its escape
// characters) stands for, or false to keep it as written.
func (d Delimiters) resolve(seq string) (string, bool) {
	switch seq {
	case "F":
		return string(d.FieldSep), true
	case "S":
		return string(d.ComponentSep), true
	case "T":
		return string(d.SubcomponentSep), true
	case "R":
		return string(d.RepetitionSep), true
	case "E":
		return string(d.EscapeChar), true
	case "P":
		if d.TruncationChar != 0 {
			return string(d.TruncationChar), true
		}
		return "", false
	case "H", "N":
		return "", true
	}
	if seq == "" {
		return "", false
	}
	switch seq[0] {
	case 'X':
		hex := seq[1:]
		if len(hex) == 0 || len(hex)%2 != 0 {
			return "", false
		}
		out := make([]byte, len(hex)/2)
		for j := range out {
			v, err := strconv.ParseUint(hex[2*j:2*j+2], 16, 8)
			if err != nil {
				return "", false
			}
			out[j] = byte(v)
		}
		return string(out), true
	case 'C', 'M':
		return "", true
	case '.':
		cmd, arg, _ := strings.Cut(seq[1:], " ")
		if len(cmd) > 2 {
			// ".sp2", ".sk+3": the argument may follow without a space.
			cmd, arg = cmd[:2], cmd[2:]+arg
		}
		switch cmd {
		case "br":
			return "\n", true
		case "sp", "sk":
			n := 1
			if a := strings.TrimPrefix(strings.TrimSpace(arg), "+"); a != "" {
				v, err := strconv.Atoi(a)
				if err != nil || v < 0 {
					return "", false
				}
				n = min(v, 100)
			}
			if cmd == "sp" {
				return strings.Repeat("\n", n), true
			}
			return strings.Repeat(" ", n), true
		case "in", "ti", "fi", "nf", "ce":
			return "", true
		}
	}
	return "", false
}
