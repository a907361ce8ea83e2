package config

import (
	"strings"
	"testing"
)

func TestFacilitiesValidation(t *testing.T) {
	good := `facilities:
  - id: general-hospital
    name: General Hospital
    hl7_facilities: [GENHOSP]
    institution_names: [GENERAL HOSP]
    ae_titles: [GH_CR1]
    networks: [10.1.0.0/16]
  - id: st-mary
    networks: [10.2.0.0/16]
`
	cfg, err := Load("radgate.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Facilities) != 2 || cfg.Facilities[0].HL7Facilities[0] != "GENHOSP" {
		t.Fatalf("facilities: %+v", cfg.Facilities)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"facilities:\n  - id: General\n", `radgate.yaml:2:9: facilities.0.id: "General" is not a facility id`},
		{"facilities:\n  - id: a\n  - id: a\n", `radgate.yaml:3:9: facilities.1.id: facility "a" is defined twice (also facilities.0)`},
		{"facilities:\n  - id: a\n    hl7_facilities: [X]\n  - id: b\n    institution_names: [x]\n", `radgate.yaml:4:5: facilities.1: "x" names both facility "a" and facility "b"`},
		{"facilities:\n  - id: a\n    networks: [10.0.0.0/8]\n  - id: b\n    networks: [10.1.0.0/16]\n", `radgate.yaml:5:15: facilities.1.networks: 10.1.0.0/16 overlaps 10.0.0.0/8 of facility "a"`},
		{"facilities:\n  - id: a\n    networks: [10.1.0.0]\n", `facilities.0.networks: "10.1.0.0" is not a network in CIDR notation`},
		{"facilities:\n  - id: a\n    ae_titles: [THIS_AE_TITLE_IS_TOO_LONG]\n", `is not an AE title (1 to 16 characters)`},
		{"facilities:\n  - id: a\n    aetitles: [X]\n", `radgate.yaml:3:5: unknown key "aetitles" in facilities[0] (known: id, name, fhir_organizations`},
	} {
		_, err := Load("radgate.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
