package dicomweb

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDICOMJSONValues(t *testing.T) {
	ds, err := parseDatasets([]byte(`[{
		"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
		"00200013": {"vr": "IS", "Value": [7]},
		"00200011": {"vr": "IS", "Value": [" 12 "]},
		"00281050": {"vr": "DS", "Value": [40.5, null, 60]},
		"00080050": {"vr": "SH"},
		"0008103e": {"vr": "LO", "Value": ["view: PA\u0000"]},
		"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}, 5]},
		"00081150": {"vr": "UI", "InlineBinary": "AAAA"}
	}]`))
	require.NoError(t, err)
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, "Doe^Jane", d.str("00100010"))
	n, ok := d.integer(tagInstanceNumber)
	require.True(t, ok)
	require.Equal(t, 7, n)
	n, ok = d.integer(tagSeriesNumber)
	require.True(t, ok)
	require.Equal(t, 12, n)
	require.Equal(t, []string{"40.5", "", "60"}, d.values("00281050"))
	require.Empty(t, d.str(tagAccessionNumber), "an attribute with no Value is empty")
	require.Equal(t, "view: PA", d.str(tagSeriesDescription), "lowercase keys; padding trimmed")
	items := d.seq(tagReferencedSOPSequence)
	require.Len(t, items, 1, "a non-object item is skipped")
	require.Equal(t, "1.2.3", items[0].str(tagReferencedSOPInstance))
	require.Empty(t, d.str(tagReferencedSOPSequence), "a sequence has no string value")
	require.Nil(t, d.seq(tagSeriesDescription), "a string is not a sequence")
	require.Empty(t, d.str(tagReferencedSOPClass))
	_, ok = d.integer("00100010")
	require.False(t, ok)

	empty, err := parseDatasets([]byte(" \n"))
	require.NoError(t, err)
	require.Empty(t, empty)
	_, err = parseDatasets([]byte(`{"not": "an array"}`))
	require.Error(t, err)
}
