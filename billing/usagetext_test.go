package billing

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteUsage(t *testing.T) {
	rows := []UsageRow{{Facility: "north", Engine: "cxr", Analyses: 3}, {Facility: "south, annex", Engine: "cxr", Analyses: 4}}
	var b bytes.Buffer
	require.NoError(t, WriteUsage(&b, "2026-11", rows, UsageCSV))
	require.Equal(t, "month,facility,engine,analyses\n2026-11,north,cxr,3\n2026-11,\"south, annex\",cxr,4\n", b.String())

	b.Reset()
	require.NoError(t, WriteUsage(&b, "2026-11", rows, UsageJSON))
	require.Equal(t, `{"month":"2026-11","facility":"north","engine":"cxr","analyses":3}`+"\n"+
		`{"month":"2026-11","facility":"south, annex","engine":"cxr","analyses":4}`+"\n", b.String())

	b.Reset()
	require.NoError(t, WriteUsage(&b, "2026-11", rows, UsageTable))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 4)
	require.Regexp(t, `^MONTH\s+FACILITY\s+ENGINE\s+ANALYSES$`, lines[0])
	require.Regexp(t, `^2026-11\s+all\s+all\s+7$`, lines[3], "closed by the total")

	b.Reset()
	require.NoError(t, WriteUsage(&b, "2026-12", nil, UsageTable))
	require.Regexp(t, `2026-12\s+all\s+all\s+0\n$`, b.String())
}

func TestOfFacility(t *testing.T) {
	rows := []UsageRow{{Facility: "a", Engine: "e", Analyses: 1}, {Facility: "b", Engine: "e", Analyses: 2}, {Facility: "a", Engine: "f", Analyses: 3}}
	if got := OfFacility(rows, ""); len(got) != 3 {
		t.Errorf("no filter: %v", got)
	}
	if got := OfFacility(rows, "a"); len(got) != 2 || got[0].Engine != "e" || got[1].Engine != "f" {
		t.Errorf("facility a: %v", got)
	}
	if got := OfFacility(rows, "z"); len(got) != 0 {
		t.Errorf("facility z: %v", got)
	}
}
