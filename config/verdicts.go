package config

import "fmt"

// Verdicts configures how radiologists' verdicts coming back are read
// (issue 14): the coded conclusions taken as a finding present or absent,
// beside the built-in SNOMED CT codes (fhir.DefaultVerdictCodes: 233604007
// pneumonia present; 373572006 clinical finding absent and 260413007 none,
// absent; radgate's own read-verdict codes).
type Verdicts struct {
	// Codes are the site's own codes, added to the built-in table and read
	// by both intakes: a FHIR DiagnosticReport.conclusionCode (System is
	// the code system URI) and an ORU's coded OBX-5 (System is the HL7
	// coding system name as sent in CWE-3, e.g. 99RIS, or a URI that name
	// maps to: SCT is SNOMED CT). Any other code is refused, never guessed.
	Codes []VerdictCode `yaml:"codes"`
}

// VerdictCode is one coded conclusion and the finding it states.
type VerdictCode struct {
	System  string `yaml:"system"`
	Code    string `yaml:"code"`
	Display string `yaml:"display"`
	// Finding is "present" or "absent".
	Finding string `yaml:"finding"`
}

func validateVerdicts(c *Config, bad func(path, msg string)) {
	seen := map[[2]string]int{}
	for i, v := range c.Verdicts.Codes {
		path := fmt.Sprintf("verdicts.codes.%d", i)
		if v.System == "" {
			bad(path+".system", "must be set (a code system URI, or the HL7 coding system name the RIS sends)")
		}
		if v.Code == "" {
			bad(path+".code", "must be set")
		}
		if v.Finding != "present" && v.Finding != "absent" {
			bad(path+".finding", fmt.Sprintf("must be present or absent, got %q", v.Finding))
		}
		k := [2]string{v.System, v.Code}
		if j, dup := seen[k]; dup && v.System != "" && v.Code != "" {
			bad(path+".code", fmt.Sprintf("code %s in system %s is listed twice (also verdicts.codes.%d)", v.Code, v.System, j))
		}
		seen[k] = i
	}
}
