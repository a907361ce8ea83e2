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

// Replace swaps the whole list while lookups run (the race detector
// watching): a facility in both lists is always found, and once Replace
// returns its list is the one in use.
func TestFacilitiesReplaceWhileInUse(t *testing.T) {
	oldList := []config.Facility{{ID: "a", Name: "Site A", AETitles: []string{"AE_A"}}}
	newList := []config.Facility{{ID: "a", Name: "Site A", AETitles: []string{"AE_A2"}}, {ID: "b", Name: "Site B", AETitles: []string{"AE_B"}}}
	f := NewFacilities(oldList)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			if i%2 == 0 {
				f.Replace(newList)
			} else {
				f.Replace(oldList)
			}
		}
	}()
	for {
		select {
		case <-done:
			f.Replace(newList)
			if f.Resolve("Site B") != "b" || f.ByAETitle("AE_B") != "b" || f.ByAETitle("AE_A") != "" {
				t.Fatal("the last list replaced is not the one in use")
			}
			return
		default:
		}
		if f.Resolve("Site A") != "a" {
			t.Fatal("Site A, in both lists, does not resolve")
		}
		if _, ok := f.Get("a"); !ok {
			t.Fatal("facility a, in both lists, is missing")
		}
	}
}
