package radgate

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		max         int
		want        string // "" = accepted
	}{
		{"plain", "RGS0012", 0, ""},
		{"unicode letters", "受付-0012", 0, ""},
		{"inner space", "A 12", 0, ""},
		{"ESC", "AB\x1bC", 0, "control character U+001B at character 3"},
		{"NUL", "\x00", 0, "control character U+0000 at character 1"},
		{"vertical tab", "A\x0b", 0, "control character U+000B"},
		{"line feed", "A\nB", 0, "control character U+000A"},
		{"DEL", "A\x7f", 0, "control character U+007F"},
		{"C1", "A\u0085", 0, "control character U+0085"},
		{"bad UTF-8", "A\xff", 0, "not valid UTF-8"},
		{"empty", "", 0, "is empty"},
		{"blank", "   ", 0, "is empty"},
		{"64 is fine", strings.Repeat("x", 64), 0, ""},
		{"65 is not", strings.Repeat("x", 65), 0, "65 characters long; at most 64"},
		{"10 kB", strings.Repeat("x", 10_000), 0, "10000 characters long"},
		{"own max", "abcdef", 5, "6 characters long; at most 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckIdentifier("OBR-18", tc.value, tc.max)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "OBR-18") {
				t.Fatalf("got %v, want an error naming OBR-18 with %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidOrder) {
				t.Fatalf("%v does not wrap ErrInvalidOrder", err)
			}
			if len(tc.value) > 3 && strings.Contains(err.Error(), tc.value) {
				t.Fatalf("the error repeats the value: %v", err)
			}
		})
	}
}

func TestCheckUID(t *testing.T) {
	for uid, want := range map[string]string{
		"1.2.840.10008.1.1":      "",
		"2.25.1":                 "",
		"1.2.0.3":                "",
		"":                       "is empty",
		"1.2.03":                 "leading zero",
		"1..2":                   "empty component",
		"1.2.":                   "empty component",
		"1.2.a":                  "not a digit or a dot",
		"urn:oid:1.2":            "not a digit or a dot",
		strings.Repeat("1.", 33): "characters long",
		"1.2.840\x00":            "not a digit or a dot",
	} {
		err := CheckUID("ImagingStudy.identifier", uid)
		if want == "" {
			if err != nil {
				t.Errorf("%q refused: %v", uid, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidOrder) {
			t.Errorf("%q: got %v, want %q", uid, err, want)
		}
	}
}

func FuzzCheckIdentifier(f *testing.F) {
	for _, s := range []string{"RGS0012", "A\x1bB", "\x00", strings.Repeat("x", 65), "受付", "\xff\xfe", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckIdentifier("field", s, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalidOrder) || !strings.Contains(err.Error(), "field") {
				t.Fatalf("error %v does not name the field or wrap ErrInvalidOrder", err)
			}
			return
		}
		// Accepted: valid UTF-8, no controls, not blank, within the bound.
		if !strings.ContainsFunc(s, func(r rune) bool { return r != ' ' }) || len([]rune(s)) > MaxIdentifierLength {
			t.Fatalf("accepted %q", s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd {
				t.Fatalf("accepted %q with %U", s, r)
			}
		}
	})
}
