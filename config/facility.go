package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Facility is one hospital or site radgate serves, with every identifier
// that names it in the protocols it speaks. Routes (facility:), usage
// (billing per facility), intake allow-lists and, later, engine governance
// and the console all use its ID.
type Facility struct {
	// ID is the facility's stable identifier in radgate: lower-case letters,
	// digits, '-' and '_' (e.g. general-hospital). Usage is counted under it.
	ID string `yaml:"id"`
	// Name is how people call it (shown in reports and the console).
	Name string `yaml:"name"`
	// FHIROrganizations are how a FHIR order names it: the requester's
	// Organization or Location reference ("Organization/gh"), or its
	// display text, as the EHR sends them.
	FHIROrganizations []string `yaml:"fhir_organizations"`
	// HL7Facilities are the MSH-4 (sending facility) and ORC-21 (ordering
	// facility) values of its RIS and EHR.
	HL7Facilities []string `yaml:"hl7_facilities"`
	// InstitutionNames are the DICOM Institution Name (0008,0080) values
	// its modalities write.
	InstitutionNames []string `yaml:"institution_names"`
	// AETitles are the calling AE titles of its modalities and PACS (DICOM
	// networking).
	AETitles []string `yaml:"ae_titles"`
	// Networks are the source networks (CIDR) its systems connect from;
	// intakes that check sources (MLLP, DICOM) accept these.
	Networks []string `yaml:"networks"`
	// Edge says whether the facility is a site with its own edge (issue
	// 16: a radgate in role edge, a leaf node of the hub). Unset: it is —
	// a hub serve, and radgate sites sources, make the hub's RADGATE_JOBS
	// source its edge's jobs. false: its orders reach the hub another way
	// (a radgate in role all on the hub's NATS), and no source is declared
	// for it.
	Edge *bool `yaml:"edge"`
}

// HasEdge reports whether the facility is a site with its own edge
// (Edge unset or true).
func (f Facility) HasEdge() bool { return f.Edge == nil || *f.Edge }

// EdgeFacilities are the ids of the facilities that are sites with their
// own edge (Facility.HasEdge), in the order listed: the edges the hub's
// RADGATE_JOBS sources.
func (c Config) EdgeFacilities() []string {
	var ids []string
	for _, f := range c.Facilities {
		if f.HasEdge() {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// Names lists every name the facility goes by in an order or a study
// (FHIR organisation, HL7 facility, Institution Name), its ID and Name
// included.
func (f Facility) Names() []string {
	out := []string{f.ID}
	if f.Name != "" {
		out = append(out, f.Name)
	}
	out = append(out, f.FHIROrganizations...)
	out = append(out, f.HL7Facilities...)
	return append(out, f.InstitutionNames...)
}

var facilityIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validateFacilities checks the facilities list: ids well formed and
// unique, networks that parse, and no name, AE title or network claimed by
// two facilities (an order must resolve to one facility or none).
func validateFacilities(c *Config, bad func(path, msg string)) {
	ids := map[string]int{}
	names := map[string]string{} // folded name → facility id
	aes := map[string]string{}
	var nets []struct {
		p  netip.Prefix
		id string
	}
	for i, f := range c.Facilities {
		path := fmt.Sprintf("facilities.%d", i)
		if !facilityIDRE.MatchString(f.ID) {
			bad(path+".id", fmt.Sprintf("%q is not a facility id: lower-case letters, digits, '-' and '_', starting with a letter or digit", f.ID))
			continue
		}
		if j, dup := ids[f.ID]; dup {
			bad(path+".id", fmt.Sprintf("facility %q is defined twice (also facilities.%d)", f.ID, j))
			continue
		}
		ids[f.ID] = i
		for _, n := range f.Names() {
			k := strings.ToLower(strings.TrimSpace(n))
			if k == "" {
				bad(path, fmt.Sprintf("facility %q has an empty name", f.ID))
				continue
			}
			if other, dup := names[k]; dup && other != f.ID {
				bad(path, fmt.Sprintf("%q names both facility %q and facility %q", n, other, f.ID))
			}
			names[k] = f.ID
		}
		for _, ae := range f.AETitles {
			if ae = strings.TrimSpace(ae); ae == "" || len(ae) > 16 {
				bad(path+".ae_titles", fmt.Sprintf("%q is not an AE title (1 to 16 characters)", ae))
				continue
			}
			if other, dup := aes[ae]; dup && other != f.ID {
				bad(path+".ae_titles", fmt.Sprintf("AE title %q belongs to both facility %q and facility %q", ae, other, f.ID))
			}
			aes[ae] = f.ID
		}
		for _, n := range f.Networks {
			p, err := netip.ParsePrefix(strings.TrimSpace(n))
			if err != nil {
				bad(path+".networks", fmt.Sprintf("%q is not a network in CIDR notation (e.g. 10.1.0.0/16)", n))
				continue
			}
			p = p.Masked()
			for _, o := range nets {
				if o.id != f.ID && o.p.Overlaps(p) {
					bad(path+".networks", fmt.Sprintf("%s overlaps %s of facility %q", p, o.p, o.id))
				}
			}
			nets = append(nets, struct {
				p  netip.Prefix
				id string
			}{p, f.ID})
		}
	}
}
