package hl7v2

import (
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// HL7 v2 coding system names (table 0396) radgate writes for its own code
// systems. v2 names a coding system with a short ID, FHIR with a URI; these
// are radgate's IDs for its two FHIR code systems. (Table 0396 reserves
// "99zzz" for local systems; a readable name was preferred, as the RIS
// shows it.)
const (
	// CodingSystemTier is the v2 name of rfhir.CodeSystemTier
	// (https://radgate.dev/fhir/CodeSystem/ai-confidence-tier): codes
	// low, mid, high.
	CodingSystemTier = "RADGATE-TIER"
	// CodingSystemRadgate is the v2 name of rfhir.CodeSystemRadgate: the
	// observation identifiers of radgate's OBX segments.
	CodingSystemRadgate = "RADGATE"
	// IdentifierNamespace is the assigning authority radgate writes on its
	// own identifiers (the result id in OBR-20, the engine in OBX-18).
	IdentifierNamespace = "RADGATE"
)

// codingSystems maps table 0396 names to FHIR code system URIs.
var codingSystems = map[string]string{
	"LN":                fhir.SystemLOINC,
	"SCT":               fhir.SystemSNOMED,
	"SNM":               fhir.SystemSNOMED,
	"UCUM":              fhir.SystemUCUM,
	"DCM":               "http://dicom.nema.org/resources/ontology/DCM",
	"C4":                "http://www.ama-assn.org/go/cpt",
	"CPT4":              "http://www.ama-assn.org/go/cpt",
	"I10":               "http://hl7.org/fhir/sid/icd-10",
	"I9C":               "http://hl7.org/fhir/sid/icd-9-cm",
	"RADLEX":            "http://radlex.org",
	CodingSystemTier:    fhir.CodeSystemTier,
	CodingSystemRadgate: fhir.CodeSystemRadgate,
}

var codingSystemNames = func() map[string]string {
	m := map[string]string{}
	for name, uri := range codingSystems {
		if _, dup := m[uri]; !dup || len(name) < len(m[uri]) {
			m[uri] = name
		}
	}
	m[fhir.SystemSNOMED] = "SCT"
	m["http://www.ama-assn.org/go/cpt"] = "C4"
	return m
}()

// CodingSystemURI returns the FHIR URI of a v2 coding system name: the
// table above, "HL7nnnn" as http://terminology.hl7.org/CodeSystem/v2-nnnn,
// anything else (a local "99xxx" name) unchanged.
func CodingSystemURI(name string) string {
	name = strings.TrimSpace(name)
	if uri, ok := codingSystems[strings.ToUpper(name)]; ok {
		return uri
	}
	if n, ok := strings.CutPrefix(strings.ToUpper(name), "HL7"); ok && len(n) == 4 && isDigits(n) {
		return "http://terminology.hl7.org/CodeSystem/v2-" + n
	}
	return name
}

// CodingSystemName is the reverse of CodingSystemURI.
func CodingSystemName(uri string) string {
	if name, ok := codingSystemNames[uri]; ok {
		return name
	}
	if n, ok := strings.CutPrefix(uri, "http://terminology.hl7.org/CodeSystem/v2-"); ok && len(n) == 4 && isDigits(n) {
		return "HL7" + n
	}
	return uri
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Authorities maps assigning authorities to identifier systems. v2 names
// the issuer of an identifier with an HD (namespace^universal ID^type),
// FHIR with a system URI. An HD with an ISO OID becomes "urn:oid:<oid>", a
// UUID "urn:uuid:<uuid>", a URI itself; a namespace alone is looked up in
// this map (namespace → system) and otherwise used as the system verbatim.
type Authorities map[string]string

// System returns the identifier system of an assigning authority.
func (a Authorities) System(h HD) string {
	uid := strings.TrimSpace(h.UniversalID)
	switch strings.ToUpper(strings.TrimSpace(h.UniversalIDType)) {
	case "ISO":
		if uid != "" {
			return "urn:oid:" + uid
		}
	case "UUID":
		if uid != "" {
			return "urn:uuid:" + strings.ToLower(uid)
		}
	case "URI", "URL":
		if uid != "" {
			return uid
		}
	}
	if ns := strings.TrimSpace(h.Namespace); ns != "" {
		if sys, ok := a[ns]; ok {
			return sys
		}
		return ns
	}
	if uid != "" && validUID(uid) {
		return "urn:oid:" + uid
	}
	return uid
}

// HD returns the assigning authority of an identifier system (the reverse
// of System).
func (a Authorities) HD(system string) HD {
	for ns, sys := range a {
		if sys == system {
			return HD{Namespace: ns}
		}
	}
	switch {
	case system == "":
		return HD{}
	case strings.HasPrefix(system, "urn:oid:"):
		return HD{UniversalID: strings.TrimPrefix(system, "urn:oid:"), UniversalIDType: "ISO"}
	case strings.HasPrefix(system, "urn:uuid:"):
		return HD{UniversalID: strings.TrimPrefix(system, "urn:uuid:"), UniversalIDType: "UUID"}
	case strings.Contains(system, ":"):
		return HD{UniversalID: system, UniversalIDType: "URI"}
	}
	return HD{Namespace: system}
}

// validUID reports whether s is a DICOM UID: digits and dots, at most 64
// characters, no empty component, no leading zero in a component.
func validUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || !isDigits(part) || (len(part) > 1 && part[0] == '0') {
			return false
		}
	}
	return true
}

// toCoding turns a CWE triplet into a radgate.Coding.
func toCoding(code, text, system string) radgate.Coding {
	return radgate.Coding{System: CodingSystemURI(system), Code: code, Display: text}
}
