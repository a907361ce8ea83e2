package config

import (
	"strings"
	"testing"
)

func TestVerdictCodesValidation(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte("verdicts:\n  codes:\n    - {system: 99RIS, code: PNEU-NEG, display: No pneumonia, finding: absent}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Verdicts.Codes; len(got) != 1 || got[0].System != "99RIS" || got[0].Finding != "absent" {
		t.Fatalf("verdicts.codes: %+v", got)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"verdicts:\n  codes:\n    - {system: 99RIS, code: X, finding: maybe}\n", `radgate.yaml:3:41: verdicts.codes.0.finding: must be present or absent, got "maybe"`},
		{"verdicts:\n  codes:\n    - {code: X, finding: absent}\n", `verdicts.codes.0.system: must be set`},
		{"verdicts:\n  codes:\n    - {system: S, code: X, finding: absent}\n    - {system: S, code: X, finding: present}\n", `radgate.yaml:4:25: verdicts.codes.1.code: code X in system S is listed twice (also verdicts.codes.0)`},
		{"verdicts:\n  code: []\n", `unknown key "code"`},
	} {
		_, err := Load("radgate.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
