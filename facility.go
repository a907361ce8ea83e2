package radgate

import (
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/radgate/radgate/config"
)

// Facilities resolves what an order, a study or a connection says about
// where it comes from to a configured facility (config.Facility). It is
// safe for concurrent use; Replace swaps in another list at once, so each
// lookup sees one whole list. A nil *Facilities resolves nothing.
type Facilities struct {
	idx atomic.Pointer[facilityIndex]
}

type facilityIndex struct {
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
	f := &Facilities{}
	f.Replace(list)
	return f
}

// Replace puts a checked facilities list in place of the one in use (radgate
// serve on SIGHUP: a site added without a restart).
func (f *Facilities) Replace(list []config.Facility) {
	x := &facilityIndex{byID: map[string]config.Facility{}, byName: map[string]string{}, byAE: map[string]string{}}
	for _, fac := range list {
		x.byID[fac.ID] = fac
		for _, n := range fac.Names() {
			x.byName[fold(n)] = fac.ID
		}
		for _, ae := range fac.AETitles {
			x.byAE[strings.TrimSpace(ae)] = fac.ID
		}
		for _, n := range fac.Networks {
			if p, err := netip.ParsePrefix(strings.TrimSpace(n)); err == nil {
				x.nets = append(x.nets, facilityNet{p.Masked(), fac.ID})
			}
		}
	}
	f.idx.Store(x)
}

// index is the list in use; nil for a nil *Facilities.
func (f *Facilities) index() *facilityIndex {
	if f == nil {
		return nil
	}
	return f.idx.Load()
}

func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Resolve returns the id of the facility that one of names (an order's
// organisation, an HL7 facility, a DICOM Institution Name, or an id) names,
// trying them in order; "" when none does.
func (f *Facilities) Resolve(names ...string) string {
	x := f.index()
	if x == nil {
		return ""
	}
	for _, n := range names {
		if id, ok := x.byName[fold(n)]; ok && n != "" {
			return id
		}
	}
	return ""
}

// ByAETitle returns the facility whose modalities call with ae, or "".
func (f *Facilities) ByAETitle(ae string) string {
	x := f.index()
	if x == nil {
		return ""
	}
	return x.byAE[strings.TrimSpace(ae)]
}

// ByAddress returns the facility whose networks hold addr, or "".
func (f *Facilities) ByAddress(addr netip.Addr) string {
	x := f.index()
	if x == nil {
		return ""
	}
	addr = addr.Unmap()
	for _, n := range x.nets {
		if n.p.Contains(addr) {
			return n.id
		}
	}
	return ""
}

// Get returns the facility with this id.
func (f *Facilities) Get(id string) (config.Facility, bool) {
	x := f.index()
	if x == nil {
		return config.Facility{}, false
	}
	fac, ok := x.byID[id]
	return fac, ok
}
