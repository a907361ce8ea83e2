package dicomcs

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The raw values of testdata/jp-charset (see its README), as the files
// hold them.
const (
	esc = "\x1b"
	// jp-ir87-kanji.dcm, \ISO 2022 IR 87
	ir87Name        = "Tanaka^Ichiro=" + esc + "$BEDCf" + esc + "(B^" + esc + "$B0lO:" + esc + "(B=" + esc + "$B$?$J$+" + esc + "(B^" + esc + "$B$$$A$m$&" + esc + "(B"
	ir87Institution = esc + "$B5~ETI\\N)0e2JBg3XImB0IB1!" + esc + "(B" // 府 is 0x49 0x5C
	ir87Study       = esc + "$B6;It#X@~" + esc + "(B"
	// jp-ir13-ir87-katakana.dcm, ISO 2022 IR 13\ISO 2022 IR 87
	ir13Name        = "\xd4\xcf\xc0\xde^\xc0\xdb\xb3=" + esc + "$B;3ED" + esc + "(J^" + esc + "$BB@O:" + esc + "(J=" + esc + "$B$d$^$@" + esc + "(J^" + esc + "$B$?$m$&" + esc + "(J"
	ir13Institution = esc + "$BDE;3Cf1{IB1!" + esc + "(J"
	ir13Study       = esc + "$B6;It" + esc + "(JX" + esc + "$B@~" + esc + "(J " + esc + "$B@5LL" + esc + "(J"
)

func mustParse(t *testing.T, v string) Set {
	t.Helper()
	s, err := Parse(v)
	if err != nil {
		t.Fatalf("Parse(%q): %v", v, err)
	}
	return s
}

func TestDecodeSamples(t *testing.T) {
	for _, c := range []struct {
		name, cs, vr, raw string
		want              []string
	}{
		{"IR 87 name", `\ISO 2022 IR 87`, "PN", ir87Name, []string{"Tanaka^Ichiro=田中^一郎=たなか^いちろう"}},
		{"IR 87 institution, 0x5C second byte", `\ISO 2022 IR 87`, "LO", ir87Institution + " ", []string{"京都府立医科大学附属病院"}},
		{"IR 87 study", `\ISO 2022 IR 87`, "LO", ir87Study, []string{"胸部Ｘ線"}},
		{"IR 13 + IR 87 name", `ISO 2022 IR 13\ISO 2022 IR 87`, "PN", ir13Name, []string{"ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"}},
		{"IR 13 + IR 87 institution", `ISO 2022 IR 13\ISO 2022 IR 87`, "LO", ir13Institution, []string{"津山中央病院"}},
		{"IR 13 + IR 87 study, Romaji between", `ISO 2022 IR 13\ISO 2022 IR 87`, "LO", ir13Study, []string{"胸部X線 正面"}},
		{"UTF-8", "ISO_IR 192", "PN", "Sato^Hanako=佐藤^花子=さとう^はなこ ", []string{"Sato^Hanako=佐藤^花子=さとう^はなこ"}},
		{"UTF-8 two values", "ISO_IR 192", "LO", `遠隔\画像`, []string{"遠隔", "画像"}},
		{"default", "", "LO", "CHEST PA\\LAT ", []string{"CHEST PA", "LAT"}},
		{"Latin-1", "ISO_IR 100", "PN", "M\xfcller^Ren\xe9", []string{"Müller^René"}},
		{"ISO_IR 13 single byte", "ISO_IR 13", "PN", "\xd4\xcf\xc0\xde^\xc0\xdb\xb3", []string{"ﾔﾏﾀﾞ^ﾀﾛｳ"}},
		{"JIS X 0212", `\ISO 2022 IR 159`, "LO", esc + "$(D0!" + esc + "(B", []string{"丂"}},
		// PS3.5 H.3.1: the example of ISO 2022 IR 87 with ESC ) I.
		{"G1 katakana by escape", `\ISO 2022 IR 13\ISO 2022 IR 87`, "PN", esc + ")I\xd4\xcf\xc0\xde", []string{"ﾔﾏﾀﾞ"}},
		{"two values, kanji 0x5C in the first", `\ISO 2022 IR 87`, "LO", ir87Institution + `\B`, []string{"京都府立医科大学附属病院", "B"}},
		// Text VRs: 0x5C is a character, leading spaces kept.
		{"LT keeps backslash", `\ISO 2022 IR 87`, "LT", ` a\b`, []string{` a\b`}},
		// Latin-1 in ISO 2022 by ESC - A.
		{"ISO 2022 IR 100 by escape", `\ISO 2022 IR 100`, "LO", esc + "-A\xe9", []string{"é"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, c.cs).Decode([]byte(c.raw), c.vr)
			if !slices.Equal(got, c.want) {
				t.Errorf("Decode = %q, want %q", got, c.want)
			}
		})
	}
}

// The trap of the README: a reader that splits on 0x5C first breaks 府.
func TestDecodeDoesNotSplitInsideKanji(t *testing.T) {
	raw := []byte(ir87Institution)
	if !strings.Contains(string(raw), `\`) {
		t.Fatal("the sample lost its 0x5C")
	}
	got := mustParse(t, `\ISO 2022 IR 87`).Decode(raw, "LO")
	if len(got) != 1 || got[0] != "京都府立医科大学附属病院" {
		t.Fatalf("Decode = %q", got)
	}
	// '^' (0x5E) and '=' (0x3D) as second bytes inside a PN group: や is
	// 0x24 0x64, ま 0x24 0x5E.
	pn := SplitPN(mustParse(t, `ISO 2022 IR 13\ISO 2022 IR 87`).DecodeString([]byte(ir13Name), "PN"))
	if pn.Phonetic.Family != "やまだ" || pn.Phonetic.Given != "たろう" || pn.Ideographic.Family != "山田" || pn.Alphabetic.Given != "ﾀﾛｳ" {
		t.Fatalf("SplitPN = %+v", pn)
	}
}

func TestDecodeResetsAtDelimiters(t *testing.T) {
	s := mustParse(t, `ISO 2022 IR 13\ISO 2022 IR 87`)
	// An encoder that went back to the initial set by the delimiter alone
	// (no ESC ( J): value 2 and the next group start in the initial state,
	// where 0xB1 is half-width katakana.
	got := s.Decode([]byte("\xb1\\\xb2"), "LO")
	if !slices.Equal(got, []string{"ｱ", "ｲ"}) {
		t.Errorf("Decode = %q", got)
	}
	// A G1 designated within a value ends with it.
	s = mustParse(t, `\ISO 2022 IR 100\ISO 2022 IR 13`)
	got = s.Decode([]byte(esc+")I\xb1=\xe9"), "PN")
	if !slices.Equal(got, []string{"ｱ=\uFFFD"}) {
		t.Errorf("Decode = %q", got)
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, c := range []struct{ cs, raw, want string }{
		{`\ISO 2022 IR 87`, esc + "$B5", "\uFFFD"},                           // half a character
		{`\ISO 2022 IR 87`, esc + "$B\x7f\x7f" + esc + "(B", "\uFFFD\uFFFD"}, // DEL in a two-byte set: reset, each replaced
		{`\ISO 2022 IR 87`, esc + "%G", "\uFFFD"},                            // unknown escape
		{`\ISO 2022 IR 87`, "\xe9", "\uFFFD"},                                // no G1
		{"ISO_IR 192", "\xff", "\uFFFD"},
		{"", "\xe9", "\uFFFD"},
		{`\ISO 2022 IR 87`, esc + "$B\x74\x7e" + esc + "(B", "\uFFFD"}, // unassigned in JIS X 0208
	} {
		got := mustParse(t, c.cs).DecodeString([]byte(c.raw), "LO")
		if got != c.want {
			t.Errorf("%q in %q: Decode = %q, want %q", c.raw, c.cs, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	s, err := Parse("GB18030")
	if err == nil || !strings.Contains(err.Error(), "GB18030") {
		t.Fatalf("Parse(GB18030) = %v, want an error naming it", err)
	}
	if got := s.DecodeString([]byte("AB\xc4\xe3"), "LO"); got != "AB\uFFFD\uFFFD" {
		t.Errorf("unknown set decodes %q", got)
	}
	if s := mustParse(t, "ISO_IR 192 "); !s.IsUTF8() || s.String() != "ISO_IR 192" {
		t.Errorf("Parse(ISO_IR 192) = %+v", s)
	}
	if s := mustParse(t, `\ISO 2022 IR 87`); s.String() != `\ISO 2022 IR 87` {
		t.Errorf("String = %q", s.String())
	}
}

func TestSplitPN(t *testing.T) {
	p := SplitPN("Tanaka^Ichiro=田中^一郎=たなか^いちろう")
	if p.Alphabetic != (NameGroup{Family: "Tanaka", Given: "Ichiro"}) || p.Ideographic.Family != "田中" || p.Phonetic.Given != "いちろう" {
		t.Fatalf("SplitPN = %+v", p)
	}
	if p.String() != "Tanaka^Ichiro=田中^一郎=たなか^いちろう" {
		t.Errorf("String = %q", p.String())
	}
	codes := ""
	for _, g := range SplitPN("=山田^太郎").Groups() {
		codes += g.Code
	}
	if codes != "I" {
		t.Errorf("Groups of an ideographic-only name: %q", codes)
	}
}

func TestEncodeIR87(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"田中^一郎", esc + "$BEDCf" + esc + "(B^" + esc + "$B0lO:" + esc + "(B"},
		{"京都府立医科大学附属病院", ir87Institution},
		{"ﾔﾏﾀﾞ", esc + "$B%d%^%@" + esc + "(B"}, // widened: ヤマダ
		{"ABC", "ABC"},
	} {
		got, n := EncodeIR87(c.in)
		if string(got) != c.want || n != 0 {
			t.Errorf("EncodeIR87(%q) = %q (%d substituted), want %q", c.in, got, n, c.want)
		}
	}
	// Round trip through the decoder, the 0x5C trap included.
	for _, in := range []string{"京都府立医科大学附属病院", "田中^一郎=たなか^いちろう", "胸部Ｘ線 正面"} {
		enc, _ := EncodeIR87(in)
		if got := mustParse(t, `\ISO 2022 IR 87`).DecodeString(enc, "PN"); got != in {
			t.Errorf("round trip of %q: %q", in, got)
		}
	}
	got, n := EncodeIR87("😀")
	if n != 1 || string(got) != esc+"$B\"."+esc+"(B" {
		t.Errorf("EncodeIR87(emoji) = %q, %d", got, n)
	}
}

func TestEncodeIR13(t *testing.T) {
	got, n := EncodeIR13("ヤマダ^たろう")
	if string(got) != "\xd4\xcf\xc0\xde^\xc0\xdb\xb3" || n != 0 {
		t.Errorf("EncodeIR13 = %q, %d", got, n)
	}
	if got := mustParse(t, "ISO_IR 13").DecodeString(got, "PN"); got != "ﾔﾏﾀﾞ^ﾀﾛｳ" {
		t.Errorf("decoded back: %q", got)
	}
	if _, n := EncodeIR13("山田"); n != 2 {
		t.Errorf("kanji substituted: %d, want 2", n)
	}
}

func FuzzDecodeText(f *testing.F) {
	for _, s := range []string{ir87Name, ir87Institution, ir13Name, ir13Study, "Sato^Hanako=佐藤", esc + "$(D0!", esc + "-A\xe9", esc + ")I\xb1"} {
		f.Add([]byte(s), uint8(0), uint8(1))
	}
	sets := []string{"", `\ISO 2022 IR 87`, `ISO 2022 IR 13\ISO 2022 IR 87`, "ISO_IR 192", "ISO_IR 13",
		"ISO_IR 100", `\ISO 2022 IR 159`, `ISO 2022 IR 100\ISO 2022 IR 87\ISO 2022 IR 13`, "GB18030"}
	vrs := []string{"PN", "LO", "SH", "LT", "ST", "UT", "UC"}
	f.Fuzz(func(t *testing.T, raw []byte, cs, vr uint8) {
		s, _ := Parse(sets[int(cs)%len(sets)])
		v := vrs[int(vr)%len(vrs)]
		vals := s.Decode(raw, v)
		if len(vals) == 0 {
			t.Fatal("no value")
		}
		for _, x := range vals {
			if !utf8.ValidString(x) {
				t.Fatalf("invalid UTF-8 %q", x)
			}
		}
		if singleValued(v) && len(vals) != 1 {
			t.Fatalf("%s decoded into %d values", v, len(vals))
		}
		// Every value decodes to text the IR 87 encoder writes back and
		// the decoder reads again the same, unless it had to substitute.
		for _, x := range vals {
			if strings.ContainsAny(x, "\\\x1b") || strings.ContainsFunc(x, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				continue
			}
			enc, n := EncodeIR87(x)
			if n > 0 || strings.ContainsFunc(x, isHalfWidthKana) || strings.ContainsAny(x, "¥‾—−") {
				continue
			}
			if back := mustParse(t, `\ISO 2022 IR 87`).DecodeString(enc, "LO"); back != strings.TrimLeft(x, " ") {
				t.Fatalf("round trip of %q: %q", x, back)
			}
		}
	})
}
