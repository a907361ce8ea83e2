package derived

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// validValue reports why v is not a valid single value of vr (PS3.5 6.2),
// or "" when it is. The derived objects copy a source attribute only when
// its value is valid: a strict receiver refuses an object carrying, say, a
// Patient's Birth Date that is not a date, and the source's mistakes must
// not become ours.
func validValue(vr, v string) string {
	if !utf8.ValidString(v) {
		return "not valid text"
	}
	if n, ok := maxLen[vr]; ok && utf8.RuneCountInString(v) > n {
		return fmt.Sprintf("longer than the %d characters of %s", n, vr)
	}
	switch vr {
	case "DA":
		return validDA(v)
	case "TM":
		return validTM(v)
	case "DT":
		return validDT(v)
	case "AS":
		if len(v) != 4 || !digits(v[:3]) || !strings.ContainsRune("DWMY", rune(v[3])) {
			return "not nnnD, nnnW, nnnM or nnnY"
		}
	case "UI":
		return validUI(v)
	case "CS":
		for _, r := range v {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_') {
				return "a character other than A-Z, 0-9, space or underscore"
			}
		}
	case "PN":
		return validPN(v)
	case "SH", "LO":
		if bad := control(v, false); bad != "" {
			return bad
		}
		if strings.Contains(v, `\`) {
			return `a backslash (more than one value)`
		}
	case "ST", "LT", "UT":
		return control(v, true)
	}
	return ""
}

// control reports a control character other than ESC (and, in text, CR,
// LF, FF and TAB).
func control(v string, text bool) string {
	for _, r := range v {
		if r >= 0x20 && r != 0x7f || r == 0x1b {
			continue
		}
		if text && (r == '\r' || r == '\n' || r == '\f' || r == '\t') {
			continue
		}
		return fmt.Sprintf("control character %U", r)
	}
	return ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func validDA(v string) string {
	if len(v) != 8 || !digits(v) {
		return "not YYYYMMDD"
	}
	if _, err := time.Parse("20060102", v); err != nil {
		return "not a calendar date"
	}
	return ""
}

// validTM accepts HH, HHMM, HHMMSS and HHMMSS.F{1,6} (PS3.5 Table 6.2-1;
// 60 seconds for a leap second).
func validTM(v string) string {
	const bad = "not HHMMSS.FFFFFF"
	whole, frac, hasFrac := strings.Cut(v, ".")
	if hasFrac && (len(whole) != 6 || len(frac) < 1 || len(frac) > 6 || !digits(frac)) {
		return bad
	}
	if !digits(whole) || len(whole)%2 != 0 || len(whole) > 6 {
		return bad
	}
	limits := []int{23, 59, 60}
	for i := 0; i < len(whole); i += 2 {
		if n, _ := strconv.Atoi(whole[i : i+2]); n > limits[i/2] {
			return bad
		}
	}
	return ""
}

// validDT accepts YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX].
func validDT(v string) string {
	const bad = "not YYYYMMDDHHMMSS.FFFFFF&ZZXX"
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		z := v[i+1:]
		if len(z) != 4 || !digits(z) {
			return bad
		}
		v = v[:i]
	}
	whole, frac, hasFrac := strings.Cut(v, ".")
	if !digits(whole) || len(whole) < 4 || len(whole) > 14 || len(whole)%2 != 0 {
		return bad
	}
	if hasFrac && (len(whole) != 14 || len(frac) < 1 || len(frac) > 6 || !digits(frac)) {
		return bad
	}
	if len(whole) >= 8 {
		if validDA(whole[:8]) != "" {
			return bad
		}
	} else if len(whole) == 6 {
		if m, _ := strconv.Atoi(whole[4:6]); m < 1 || m > 12 {
			return bad
		}
	}
	if len(whole) > 8 && validTM(whole[8:]) != "" {
		return bad
	}
	return ""
}

// validUI: at most 64 characters, components of digits separated by dots,
// none empty, none with a leading zero (PS3.5 9.1).
func validUI(v string) string {
	if v == "" {
		return "empty"
	}
	if len(v) > 64 {
		return "longer than 64 characters"
	}
	for _, c := range strings.Split(v, ".") {
		if !digits(c) {
			return "not digits separated by dots"
		}
		if len(c) > 1 && c[0] == '0' {
			return "a component with a leading zero"
		}
	}
	return ""
}

// validPN: at most three component groups of at most five components,
// each group at most 64 characters, no backslash, no control character
// but ESC.
func validPN(v string) string {
	if bad := control(v, false); bad != "" {
		return bad
	}
	if strings.Contains(v, `\`) {
		return "a backslash (more than one value)"
	}
	groups := strings.Split(v, "=")
	if len(groups) > 3 {
		return "more than three component groups"
	}
	for _, g := range groups {
		if utf8.RuneCountInString(g) > 64 {
			return "a component group longer than 64 characters"
		}
		if strings.Count(g, "^") > 4 {
			return "more than five components"
		}
	}
	return ""
}
