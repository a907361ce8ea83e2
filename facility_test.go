package radgate

import (
	"net/netip"
	"testing"

	"github.com/radgate/radgate/config"
)

func TestFacilitiesResolve(t *testing.T) {
	f := NewFacilities([]config.Facility{
		{ID: "general-hospital", Name: "General Hospital", FHIROrganizations: []string{"Organization/gh"},
			HL7Facilities: []string{"GENHOSP"}, InstitutionNames: []string{"GENERAL HOSP"},
			AETitles: []string{"GH_CR1"}, Networks: []string{"10.1.0.0/16"}},
		{ID: "st-mary", Name: "St Mary's", Networks: []string{"192.0.2.0/24"}},
	})
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"Organization/gh"}, "general-hospital"},
		{[]string{" genhosp "}, "general-hospital"},
		{[]string{"", "General Hosp"}, "general-hospital"},
		{[]string{"st-mary"}, "st-mary"},
		{[]string{"Unknown", "ST MARY'S"}, "st-mary"},
		{[]string{"Unknown"}, ""},
		{nil, ""},
	} {
		if got := f.Resolve(tc.names...); got != tc.want {
			t.Errorf("Resolve(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
	if got := f.ByAETitle("GH_CR1"); got != "general-hospital" {
		t.Errorf("ByAETitle = %q", got)
	}
	if got := f.ByAETitle("OTHER"); got != "" {
		t.Errorf("ByAETitle(OTHER) = %q", got)
	}
	for addr, want := range map[string]string{"10.1.2.3": "general-hospital", "::ffff:10.1.2.3": "general-hospital",
		"192.0.2.9": "st-mary", "127.0.0.1": ""} {
		if got := f.ByAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("ByAddress(%s) = %q, want %q", addr, got, want)
		}
	}
	var none *Facilities
	if none.Resolve("x") != "" || none.ByAETitle("x") != "" {
		t.Error("a nil directory resolves nothing")
	}
}
