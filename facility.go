package radgate

import (
	"net/netip"
	"strings"

	"github.com/radgate/radgate/config"
)

// Facilities resolves what an order, a study or a connection says about
// where it comes from to a configured facility (config.Facility). It is
// immutable once built and safe for concurrent use; a nil *Facilities
// resolves nothing.
type Facilities struct {
	byID   map[string]config.Facility
	byName map[string]string // folded name → id
	byAE   map[string]string
	nets   []facilityNet
}

type facilityNet struct {
	p  netip.Prefix
	id string
}

// NewFacilities indexes a checked facilities list (config.Load has
// validated it: names and networks are unambiguous).
func NewFacilities(list []config.Facility) *Facilities {
	f := &Facilities{byID: map[string]config.Facility{}, byName: map[string]string{}, byAE: map[string]string{}}
	for _, fac := range list {
		f.byID[fac.ID] = fac
		for _, n := range fac.Names() {
			f.byName[fold(n)] = fac.ID
		}
		for _, ae := range fac.AETitles {
			f.byAE[strings.TrimSpace(ae)] = fac.ID
		}
		for _, n := range fac.Networks {
			if p, err := netip.ParsePrefix(strings.TrimSpace(n)); err == nil {
				f.nets = append(f.nets, facilityNet{p.Masked(), fac.ID})
			}
		}
	}
	return f
}

func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Resolve returns the id of the facility that one of names (an order's
// organisation, an HL7 facility, a DICOM Institution Name, or an id) names,
// trying them in order; "" when none does.
func (f *Facilities) Resolve(names ...string) string {
	if f == nil {
		return ""
	}
	for _, n := range names {
		if id, ok := f.byName[fold(n)]; ok && n != "" {
			return id
		}
	}
	return ""
}

// ByAETitle returns the facility whose modalities call with ae, or "".
func (f *Facilities) ByAETitle(ae string) string {
	if f == nil {
		return ""
	}
	return f.byAE[strings.TrimSpace(ae)]
}

// ByAddress returns the facility whose networks hold addr, or "".
func (f *Facilities) ByAddress(addr netip.Addr) string {
	if f == nil {
		return ""
	}
	addr = addr.Unmap()
	for _, n := range f.nets {
		if n.p.Contains(addr) {
			return n.id
		}
	}
	return ""
}

// Get returns the facility with this id.
func (f *Facilities) Get(id string) (config.Facility, bool) {
	if f == nil {
		return config.Facility{}, false
	}
	fac, ok := f.byID[id]
	return fac, ok
}
