package inference

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A FOR PROCESSING DX (raw detector data, 14 of 16 bits, no VOI) decodes
// with the full stored-bit range, as the model card's rule says, and carries
// a warning; with a window it uses the window and still warns; a FOR
// PRESENTATION image gets no warning.
func TestDecodeForProcessing(t *testing.T) {
	vals := []uint16{0, 1000, 8191, 16383}
	base := append(imageAttrs(2, 2, 16, 14, 0, "MONOCHROME2"), tBytes(0x7FE0, 0x0010, "OW", words16(vals...)))
	intent := func(s string) tElem { return tStr(0x0008, 0x0068, "CS", s) }
	window := []tElem{tStr(0x0028, 0x1050, "DS", "8192"), tStr(0x0028, 0x1051, "DS", "16384")}

	cases := []struct {
		name    string
		elems   []tElem
		voi     string
		warning string
	}{
		{"intent, no VOI", replaceAttr(base, intent("FOR PROCESSING")), "stored range 0..16383",
			"FOR PROCESSING image: scored with the stored-bit range, not a display rendering"},
		{"SOP class only", replaceAttr(base, tStr(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.1.1.1")), "stored range 0..16383",
			"FOR PROCESSING image: scored with the stored-bit range, not a display rendering"},
		{"intent, windowed", append(replaceAttr(base, intent("FOR PROCESSING")), window...), "window 8192/16384 (LINEAR)",
			"FOR PROCESSING image: scored with its VOI on raw detector data, not a display rendering"},
		{"for presentation", replaceAttr(base, intent("FOR PRESENTATION")), "stored range 0..16383", ""},
		{"no intent", base, "stored range 0..16383", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := buildDICOM(TSExplicitVRLittleEndian, tc.elems...)
			img, err := Decode(data)
			require.NoError(t, err)
			require.Equal(t, tc.voi, img.VOI)
			require.Equal(t, tc.warning, img.Meta.IntentWarning())
			if tc.voi == "stored range 0..16383" {
				for i, v := range vals {
					require.InDelta(t, float64(v)/16383, img.Plane()[i], 1e-6)
				}
			}
			hdr, err := ReadHeader(data)
			require.NoError(t, err)
			require.Equal(t, tc.warning, hdr.IntentWarning())
		})
	}
}

// The engine's declaration check carries the FOR PROCESSING warning, so
// `radgate score` shows it beside the score.
func TestManifestCheckWarnsForProcessing(t *testing.T) {
	m := loadTestManifest(t, DefaultEngineID)
	meta := &Meta{Modality: "DX", BodyPartExamined: "CHEST", Rows: 1024, Columns: 1024, PresentationIntentType: "FOR PROCESSING",
		Age: Age{Known: true, Years: 3, Text: "3 y"}}
	require.Equal(t, meta.IntentWarning(), m.Check(meta))
	require.NotEmpty(t, meta.IntentWarning())
	meta.PresentationIntentType = "FOR PRESENTATION"
	require.Empty(t, m.Check(meta))
}
