package hl7v2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// canonical is what Encode(Parse(x)) must give: line ends made "\r", blank
// segments dropped, a final "\r".
func canonical(x string) string {
	var out []string
	for _, l := range strings.FieldsFunc(x, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if strings.Trim(l, " \t") != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r") + "\r"
}

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func mustParse(t testing.TB, s string) *Message {
	t.Helper()
	m, err := ParseString(s)
	require.NoError(t, err)
	return m
}

func TestParseGet(t *testing.T) {
	m := mustParse(t, readFixture(t, "orm_o01.hl7"))
	require.Equal(t, DefaultDelimiters, m.Delimiters())
	require.Len(t, m.All(), 6)
	for path, want := range map[string]string{
		"MSH-1":        "|",
		"MSH-2":        `^~\&`,
		"MSH-3":        "RIS",
		"MSH-9":        "ORM",
		"MSH-9-2":      "O01",
		"MSH.9.3":      "ORM_O01",
		"PID-3":        "MRN12345",
		"PID-3-4":      "HOSP",
		"PID-3-4-2":    "1.2.3.4.9",
		"PID-3(1)-4-3": "ISO",
		"PID-3(2)":     "998877",
		"PID-3(2)-5":   "NI",
		"PID-3(3)":     "",
		"PID-99":       "",
		"OBR-13":       "Cough & fever",
		"OBR-18":       "ACC-778899",
		"OBR-24":       "CR",
		"ZDS-1":        "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
		"ZDS-1-4":      "DICOM",
		"NTE-1":        "",
		"OBR(2)-1":     "",
		"bad path":     "",
		"PID-0":        "",
		"PID-3(0)":     "",
	} {
		require.Equal(t, want, m.Get(path), path)
	}
	require.Equal(t, `MRN12345^^^HOSP&1.2.3.4.9&ISO^MR~998877^^^NATID^NI`, m.GetRaw("PID-3"))
	require.Equal(t, `998877^^^NATID^NI`, m.GetRaw("PID-3(2)"))
	require.Equal(t, `HOSP&1.2.3.4.9&ISO`, m.GetRaw("PID-3-4"))
	require.Equal(t, `Cough \T\ fever`, m.GetRaw("OBR-13"))
	require.Equal(t, "PV1|1|O", m.GetRaw("PV1"))
	require.Equal(t, 2, m.Count("PID-3"))
	require.Equal(t, 0, m.Count("PID-4"))
	require.Equal(t, 1, m.Count("OBR"))
	require.Equal(t, 0, m.Count("OBX"))

	require.Equal(t, MessageType{Code: "ORM", Trigger: "O01", Structure: "ORM_O01"}, m.Type())
	require.Equal(t, "ORM^O01^ORM_O01", m.Type().String())
	require.Equal(t, "ORM0001", m.ControlID())
	require.Equal(t, "2.5.1", m.Version())
	require.Equal(t, "P", m.ProcessingID())
	require.Equal(t, HD{Namespace: "RIS"}, m.SendingApplication())
	require.Equal(t, HD{Namespace: "HOSP"}, m.SendingFacility())
	require.Equal(t, HD{Namespace: "RADGATE"}, m.ReceivingApplication())
	require.Equal(t, HD{Namespace: "HOSP"}, m.ReceivingFacility())
	ts, err := m.Time()
	require.NoError(t, err)
	require.Equal(t, "2024-01-31T13:25:03Z", ts.UTC().Format("2006-01-02T15:04:05Z07:00"))

	pid := m.Segment("PID")
	require.Equal(t, "PID", pid.Name())
	require.Equal(t, "Doe", pid.Get("5-1"))
	require.Equal(t, "NATID", pid.Value(3, 2, 4, 1))
	require.Equal(t, 8, pid.Len())
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]string{
		"orm fixture (\\n)":           readFixture(t, "orm_o01.hl7"),
		"omi fixture (\\n)":           readFixture(t, "omi_o23.hl7"),
		"\\r\\n and blank lines":      "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\r\n\r\nPID|1||X\r\n  \r\nPV1\r\n",
		"no final terminator":         "MSH|^~\\&|A\rPID|1",
		"escapes kept verbatim":       "MSH|^~\\&|A\rOBX|1|FT|x||a\\.br\\b\\X0D0A\\c\\H\\bold\\N\\\\Zlocal\\\\E\\|||",
		"empty fields and components": "MSH|^~\\&||||\rPID|||^^^&&~~^|||\rZZ1",
		"truncation character":        "MSH|^~\\&#|A|B|||20240101||ADT^A01|1|P|2.7\rPID|1||ID\\P\\1#",
		"other delimiters":            "MSH$%@*&$RIS$HOSP$$$20240101$$ORM%O01$X1$P$2.5.1\rPID$1$$A%B@C%D&E&F$",
		"unescaped trailing escape":   "MSH|^~\\&|A\rNTE|1||ends with \\",
		"second MSH (batch-like)":     "MSH|^~\\&|A\rMSH|^~\\&|B\rMSH|",
		"segment without fields":      "MSH|^~\\&\rPV1\rZDS|",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, in)
			require.Equal(t, canonical(in), string(m.Encode()))
			again := mustParse(t, m.String())
			require.Equal(t, m.String(), again.String())
		})
	}
}

func TestCustomDelimiters(t *testing.T) {
	t.Run("MSH$%@*&", func(t *testing.T) {
		m := mustParse(t, "MSH$%@*&$RIS$HOSP$$$20240101$$ORM%O01$X1$P$2.5.1\rPID$1$$A%B@C%D&E*F*x*S*y$")
		d := m.Delimiters()
		require.Equal(t, Delimiters{FieldSep: '$', ComponentSep: '%', RepetitionSep: '@', EscapeChar: '*', SubcomponentSep: '&'}, d)
		require.Equal(t, "$", m.Get("MSH-1"))
		require.Equal(t, "%@*&", m.Get("MSH-2"))
		require.Equal(t, MessageType{Code: "ORM", Trigger: "O01"}, m.Type())
		require.Equal(t, "X1", m.ControlID())
		require.Equal(t, "A", m.Get("PID-3"))
		require.Equal(t, "B", m.Get("PID-3-2"))
		require.Equal(t, "C", m.Get("PID-3(2)"))
		require.Equal(t, "D", m.Get("PID-3(2)-2-1"))
		require.Equal(t, "E$x%y", m.Get("PID-3(2)-2-2"), `*F* and *S* are the escapes with '*' as escape character`)
		require.Equal(t, "*F*", d.Escape("$"))
		require.NoError(t, m.Set("PID-5", "a|b^c$d%e"))
		require.Equal(t, "a|b^c*F*d*S*e", m.GetRaw("PID-5"), "'|' and '^' are plain text here")
		require.Equal(t, "a|b^c$d%e", m.Get("PID-5"))

		ack := NewACK(m, AA)
		require.True(t, strings.HasPrefix(ack.String(), "MSH$%@*&$"), "the ACK uses the message's delimiters: %q", ack.String())
		require.Equal(t, "X1", mustParse(t, ack.String()).Get("MSA-2"))
	})
	t.Run("truncation character", func(t *testing.T) {
		m := mustParse(t, "MSH|^~\\&#|A|B|||20240101||ADT^A01|1|P|2.7\rPID|1||ID\\P\\1")
		d := m.Delimiters()
		require.Equal(t, byte('#'), d.TruncationChar)
		require.Equal(t, "^~\\&#", d.EncodingCharacters())
		require.Equal(t, "ID#1", m.Get("PID-3"))
		require.Equal(t, `a\P\b`, d.Escape("a#b"))
		require.Equal(t, `a#b`, DefaultDelimiters.Escape("a#b"), "'#' is plain text without a truncation character")
		require.Equal(t, `a\P\b`, DefaultDelimiters.Unescape(`a\P\b`), "\\P\\ is kept as written without one")
	})
}

func TestEscapes(t *testing.T) {
	d := DefaultDelimiters
	for _, c := range []struct{ wire, text string }{
		{`\F\`, "|"},
		{`\S\`, "^"},
		{`\T\`, "&"},
		{`\R\`, "~"},
		{`\E\`, `\`},
		{`a\X0D0A\b`, "a\r\nb"},
		{`\X41424344\`, "ABCD"},
		{`line 1\.br\line 2`, "line 1\nline 2"},
		{`a\.sp 2\b`, "a\n\nb"},
		{`a\.sp\b`, "a\nb"},
		{`a\.sk 3\b`, "a   b"},
		{`\.in +4\a\.ti -2\\.fi\\.nf\\.ce\b`, "ab"},
		{`\H\bold\N\`, "bold"},
		{`\C2842\x\M2442\`, "x"},
		{`\Zlocal\`, `\Zlocal\`},
		{`\X4\`, `\X4\`},
		{`\XZZ\`, `\XZZ\`},
		{`no end \`, `no end \`},
		{`\\`, `\\`},
		{`\.sp x\`, `\.sp x\`},
		{``, ``},
	} {
		require.Equal(t, c.text, d.Unescape(c.wire), "Unescape(%q)", c.wire)
	}
	require.Equal(t, `a\F\b\S\c\T\d\R\e\E\f\X0D\\X0A\g`, d.Escape("a|b^c&d~e\\f\r\ng"))
	require.Equal(t, `1\.br\2\.br\3\.br\4 \F\`, d.EscapeFT("1\r\n2\n3\r4 |"))
	require.Equal(t, "plain", d.Escape("plain"))
	for _, s := range []string{"", "a|b^c&d~e\\f\r\ng", `\F\ literal`, "ünïcødé|", "\x00\x7f"} {
		require.Equal(t, s, d.Unescape(d.Escape(s)), "round trip of %q", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "empty message: no MSH segment"},
		{"only blank lines", "\r\n \n\t\r", "empty message: no MSH segment"},
		{"no MSH", "PID|1||X\r", `segment 1: message does not start with an MSH segment (it starts with "PID")`},
		{"leading garbage", "xMSH|^~\\&", `segment 1: message does not start with an MSH segment (it starts with "xMS"…)`},
		{"MSH alone", "MSH", "MSH-1: missing field separator"},
		{"letter as field separator", "MSHA^~\\&A", `MSH-1: invalid field separator 'A': must be printable ASCII punctuation`},
		{"space as field separator", "MSH ^~\\& x", `MSH-1: invalid field separator ' ': must be printable ASCII punctuation`},
		{"no encoding characters", "MSH||A", "MSH-2: missing encoding characters"},
		{"three encoding characters", "MSH|^~\\|A", `MSH-2: encoding characters "^~\\": want 4 characters (component, repetition, escape, subcomponent) or 5 (and truncation), got 3`},
		{"six encoding characters", "MSH|^~\\&#!|A", `MSH-2: encoding characters "^~\\&#!": want 4 characters (component, repetition, escape, subcomponent) or 5 (and truncation), got 6`},
		{"duplicate encoding character", "MSH|^~^&|A", `MSH-2: encoding characters "^~^&": component separator and escape character are both '^'`},
		{"letter as encoding character", "MSH|^~\\a|A", `MSH-2: encoding characters "^~\\a": invalid subcomponent separator 'a': must be printable ASCII punctuation`},
		{"lowercase segment", "MSH|^~\\&|A\rpid|1", `segment 2: invalid segment ID "pid": want three capital letters or digits, starting with a letter`},
		{"long segment ID", "MSH|^~\\&|A\rPIDX|1", `segment 2: invalid segment ID "PIDX": want three capital letters or digits, starting with a letter`},
		{"field separator first", "MSH|^~\\&|A\n|PID", `segment 2: invalid segment ID "": want three capital letters or digits, starting with a letter`},
		{"patient data is not quoted", "MSH|^~\\&|A\rJohn Smith 1970", `segment 2: invalid segment ID "John"…: want three capital letters or digits, starting with a letter`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseString(c.in)
			require.Nil(t, m)
			require.EqualError(t, err, c.want)
			require.ErrorIs(t, err, ErrMalformed)
			var e *Error
			require.True(t, errors.As(err, &e))
		})
	}
}

func TestSet(t *testing.T) {
	m, err := New(Delimiters{})
	require.NoError(t, err)
	require.NoError(t, m.SetHeader(Header{SendingApplication: HD{Namespace: "RADGATE"}, ReceivingFacility: HD{Namespace: "H", UniversalID: "1.2.3", UniversalIDType: "ISO"},
		Type: MessageType{Code: "ADT", Trigger: "A08"}, ControlID: "C1"}))
	pid := m.AddSegment("PID")
	require.NoError(t, m.Set("PID-3-1", "ID|1"))
	require.NoError(t, m.Set("PID-3-4-2", "1.2.3"))
	require.NoError(t, m.Set("PID-3(2)-1", "X"))
	require.NoError(t, pid.Set("5", "a^b"))
	require.NoError(t, m.SetRaw("PID-7", "A^B&C~D"))
	require.Equal(t, `ID\F\1^^^&1.2.3~X`, m.GetRaw("PID-3"))
	require.Equal(t, `a\S\b`, m.GetRaw("PID-5"))
	require.Equal(t, "C", m.Get("PID-7-2-2"))
	require.Equal(t, "D", m.Get("PID-7(2)"))
	require.NoError(t, m.Set("PID-7", "plain"), "a field-level Set replaces the whole field")
	require.Equal(t, "plain", m.GetRaw("PID-7"))
	require.NoError(t, m.SetRaw("PID-7(2)-2", "x&y"))
	require.Equal(t, "plain~^x&y", m.GetRaw("PID-7"))

	require.EqualError(t, m.Set("MSH-1", "#"), "hl7v2: set MSH-1: MSH-1 and MSH-2 hold the delimiters and cannot be set")
	require.EqualError(t, m.Set("MSH-2", "#"), "hl7v2: set MSH-2: MSH-1 and MSH-2 hold the delimiters and cannot be set")
	require.EqualError(t, m.Set("OBX-1", "1"), "hl7v2: set OBX-1: the message has no segment OBX")
	require.EqualError(t, m.Set("PID-1001", "1"), "hl7v2: set PID-1001: index out of range 1..1000")
	require.EqualError(t, m.SetRaw("PID-3-1", "a^b"), `hl7v2: set PID-3-1: raw component value holds '^', which cannot appear at that level (escape it)`)
	require.EqualError(t, m.SetRaw("PID-3", "a|b"), `hl7v2: set PID-3: raw field value holds '|', which cannot appear at that level (escape it)`)
	require.EqualError(t, m.SetRaw("PID-3", "a\rb"), `hl7v2: set PID-3: raw field value holds '\r', which cannot appear at that level (escape it)`)
	require.ErrorIs(t, m.Set("PID", "x"), errPath)
	require.ErrorIs(t, m.Set("PID-x", "x"), errPath)
	require.ErrorIs(t, m.Set("PID-3--1", "x"), errPath)

	m.AddSegment("NTE")
	m.AddSegment("NTE")
	require.Equal(t, 2, m.RemoveSegments("NTE"))
	require.Equal(t, 0, m.RemoveSegments("MSH"), "the first MSH stays")
	require.PanicsWithValue(t, `hl7v2: AddSegment: invalid segment ID "pid"`, func() { m.AddSegment("pid") })

	back := mustParse(t, m.String())
	require.Equal(t, m.String(), back.String())
	require.Equal(t, "ADT^A08", back.Type().String())
	require.Equal(t, "C1", back.ControlID())
	require.Equal(t, "2.5.1", back.Version())
	require.Equal(t, "P", back.ProcessingID())
	require.Equal(t, HD{Namespace: "H", UniversalID: "1.2.3", UniversalIDType: "ISO"}, back.ReceivingFacility())
	require.Equal(t, "ID|1", back.Get("PID-3"))

	_, err = New(Delimiters{FieldSep: '|', ComponentSep: '|', RepetitionSep: '~', EscapeChar: '\\', SubcomponentSep: '&'})
	require.EqualError(t, err, "hl7v2: field separator and component separator are both '|'")
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]string{
		"2024":                     "2024-01-01T00:00:00Z",
		"20240131":                 "2024-01-31T00:00:00Z",
		"202401311425":             "2024-01-31T14:25:00Z",
		"20240131142503+0100":      "2024-01-31T13:25:03Z",
		"20240131142503.1234-0500": "2024-01-31T19:25:03.1234Z",
		"20240131^D":               "2024-01-31T00:00:00Z",
	} {
		got, err := ParseTime(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got.UTC().Format("2006-01-02T15:04:05.9999Z07:00"), in)
	}
	for _, in := range []string{"", "2024013", "20241331", "20240131+01", "2024.5", "abcd"} {
		_, err := ParseTime(in)
		require.Error(t, err, in)
	}
	ts, _ := ParseTime("20240131142503+0100")
	require.Equal(t, "20240131142503+0100", FormatTime(ts))
}
