package derived

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// testCAM is a 7×7 CAM over the whole w×h image, peaking at cell (1, 5)
// (column, row): the right lower zone of a PA radiograph.
func testCAM(w, h int) *radgate.CAM {
	const n = 7
	cam := make([]float32, n*n)
	cam[5*n+1], cam[5*n+2], cam[4*n+1] = 2, 1.2, 1 // peak 2: normalised to 1
	cam[0] = -3                                    // negative: 0
	return &radgate.CAM{Values: cam, Width: n, Height: n, X1: w, Y1: h, SourceWidth: w, SourceHeight: h}
}

// invalidSource is dx-chest-implicit-le-8bit.dcm (Patient's Age "81", not
// nnnY) with a Patient's Birth Date "UNKNOWN" that is not a date, inserted
// before Patient's Sex.
func invalidSource(t *testing.T) []byte {
	t.Helper()
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	sex := []byte{0x10, 0x00, 0x40, 0x00, 0x02, 0x00, 0x00, 0x00, 'M', ' '}
	i := bytes.Index(src, sex)
	require.Positive(t, i, "Patient's Sex in the implicit VR header")
	birth := append([]byte{0x10, 0x00, 0x30, 0x00, 0x08, 0x00, 0x00, 0x00}, "UNKNOWN "...)
	out := append(append(append([]byte{}, src[:i]...), birth...), src[i:]...)
	d := Dump(t, "dcmdump", out)
	require.Contains(t, d, "(0010,0030) DA [UNKNOWN]")
	require.Contains(t, d, "(0010,1010) AS [81]")
	return out
}

// A source whose Patient's Birth Date and Age are invalid gives objects
// with the Birth Date empty (Type 2), no Age (Type 3), the valid values
// copied, and a log line per dropped attribute naming its tag and keyword,
// never its value. Every object passes dciodvfy.
func TestInvalidSourceValuesAreNotCopied(t *testing.T) {
	src := invalidSource(t)
	var logs bytes.Buffer
	in := testInput("invalid-source", 0.873, true)
	in.HeatmapPNG = Heatmap(t, src)
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	in.CAM = testCAM(meta.Columns, meta.Rows)
	// Without the time: a timestamp may hold "81", the invalid age below.
	in.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))

	build := map[string]func() ([]byte, error){
		"SC":             func() ([]byte, error) { return SecondaryCapture(src, in) },
		"SR":             func() ([]byte, error) { return StructuredReport(src, in) },
		"PDF":            func() ([]byte, error) { return EncapsulatedPDF(src, in, []byte("%PDF-1.4\n%%EOF\n")) },
		"Parametric Map": func() ([]byte, error) { return ParametricMap(src, in) },
	}
	for what, f := range build {
		t.Run(what, func(t *testing.T) {
			logs.Reset()
			out, err := f()
			require.NoError(t, err)
			ds := parse(t, out)
			require.Equal(t, "", str(t, ds, tag.PatientBirthDate), "Type 2: present, empty")
			_, err = ds.FindElementByTag(tag.PatientAge)
			require.Error(t, err, "Type 3: left out")
			require.Equal(t, "M", str(t, ds, tag.PatientSex))
			require.Equal(t, "Covid0000", str(t, ds, tag.PatientID))
			testenv.Dciodvfy(t, what+" of a source with invalid values", out)

			l := logs.String()
			require.Contains(t, l, "tag=(0010,0030) keyword=PatientBirthDate")
			require.Contains(t, l, "tag=(0010,1010) keyword=PatientAge")
			require.Contains(t, l, "result=invalid-source")
			require.NotContains(t, l, "UNKNOWN", "never the value")
			require.NotContains(t, l, "81")
			require.NotContains(t, l, "Covid0000")
			require.Equal(t, 2, strings.Count(l, "source attribute not copied"), l)
		})
	}
}

// A source whose SOP Instance UID is invalid (a component with a leading
// zero) gives no object: every reference to it would be invalid. The error
// names the attribute.
func TestInvalidSourceUID(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	i := strings.LastIndexByte(meta.SOPInstanceUID, '.')
	require.Greater(t, len(meta.SOPInstanceUID)-i, 2)
	bad := meta.SOPInstanceUID[:i+1] + "0" + meta.SOPInstanceUID[i+2:]
	src = bytes.ReplaceAll(src, []byte(meta.SOPInstanceUID), []byte(bad))
	_, err = StructuredReport(src, testInput("bad-uid", 0.5, false))
	require.ErrorIs(t, err, ErrSource)
	require.ErrorContains(t, err, "SOP Instance UID (0008,0018) is invalid: a component with a leading zero")
}

func TestValidValue(t *testing.T) {
	for _, c := range []struct {
		vr, v string
		ok    bool
	}{
		{"DA", "19620304", true}, {"DA", "1962.03.04", false}, {"DA", "19621304", false}, {"DA", "UNKNOWN", false},
		{"DA", "20240230", false},
		{"TM", "112207", true}, {"TM", "1122", true}, {"TM", "11", true}, {"TM", "112207.123456", true},
		{"TM", "11:22:07", false}, {"TM", "246000", false}, {"TM", "112207.", false}, {"TM", "112", false},
		{"DT", "20260304050607.5+0100", true}, {"DT", "2026", true}, {"DT", "20261304", false}, {"DT", "2026-03-04", false},
		{"AS", "062Y", true}, {"AS", "62", false}, {"AS", "062y", false}, {"AS", "06Y", false},
		{"UI", "1.2.840.10008.1.2", true}, {"UI", "1.2.03", false}, {"UI", "1..2", false}, {"UI", "1.2.a", false},
		{"UI", strings.Repeat("1", 65), false},
		{"CS", "CHEST", true}, {"CS", "ORIGINAL_1 X", true}, {"CS", "chest", false}, {"CS", "A-B", false},
		{"CS", strings.Repeat("A", 17), false},
		{"PN", "Doe^John^^^", true}, {"PN", "Doe^John=ドウ^ジョン", true}, {"PN", `Doe\Roe`, false},
		{"PN", "a=b=c=d", false}, {"PN", "a^b^c^d^e^f", false}, {"PN", strings.Repeat("x", 65), false},
		{"LO", "Covid0000", true}, {"LO", "tab\there", false}, {"LO", strings.Repeat("x", 65), false},
		{"SH", "RGS0012", true}, {"SH", strings.Repeat("x", 17), false}, {"SH", `a\b`, false},
		{"LO", "bad \xff utf-8", false},
	} {
		why := validValue(c.vr, c.v)
		require.Equal(t, c.ok, why == "", "%s %q: %s", c.vr, c.v, why)
	}
}

// The SR is a Comprehensive 3D SR declaring TID 1500, and every object
// names the algorithm in its Contributing Equipment Sequence (IHE AI
// Results) with a Device UID that changes with the model version.
func TestAIResultsIdentification(t *testing.T) {
	src := readTestdata(t, "cr-chest-pa-jpeg-baseline.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	in := testInput("air-1", 0.873, true)
	in.HeatmapPNG = Heatmap(t, src)
	in.CAM = testCAM(meta.Columns, meta.Rows)

	sr, err := StructuredReport(src, in)
	require.NoError(t, err)
	tree := Dump(t, "dsrdump", sr, "+Pl", "+Pc", "+Pu", "+Pt")
	for _, want := range []string{
		"Comprehensive 3D SR Document",
		`<CONTAINER:(126000,DCM,"Imaging Measurement Report")=SEPARATE>`,
		"# TID 1500 (DCMR, 1.2.840.10008.8.1.1)",
		`<contains CONTAINER:(125007,DCM,"Measurement Group")=SEPARATE>`,
		`<contains NUM:(confidence,99RADGATE,"AI confidence")="87.3" (%,UCUM,"percent")>`,
		`<has concept mod TEXT:(111001,DCM,"Algorithm Name")="Chest radiograph pneumonia finding, DenseNet-121 + CAM">`,
		`<has concept mod TEXT:(111003,DCM,"Algorithm Version")="1.0.0">`,
		`<contains CODE:(confidence-tier,99RADGATE,"AI confidence tier")=(high,99RADGATE,"High")>`,
		`<contains CONTAINER:(C0034375,UMLS,"Qualitative Evaluations")=SEPARATE>`,
		`<has obs context UIDREF:(121012,DCM,"Device Observer UID")="` + in.DeviceUID() + `">`,
	} {
		require.Contains(t, tree, want)
	}

	sc, err := SecondaryCapture(src, in)
	require.NoError(t, err)
	pdf, err := EncapsulatedPDF(src, in, []byte("%PDF-1.4\n%%EOF\n"))
	require.NoError(t, err)
	pm, err := ParametricMap(src, in)
	require.NoError(t, err)
	for what, obj := range map[string][]byte{"SR": sr, "SC": sc, "PDF": pdf, "Parametric Map": pm} {
		ds := parse(t, obj)
		e, err := ds.FindElementByTag(tag.ContributingEquipmentSequence)
		require.NoError(t, err, what)
		items := e.Value.GetValue().([]*dicom.SequenceItemValue)
		require.Len(t, items, 1, what)
		item := dicom.Dataset{Elements: items[0].GetValue().([]*dicom.Element)}
		require.Equal(t, "radgate", str(t, item, tag.Manufacturer), what)
		require.Equal(t, in.Engine.Name, str(t, item, tag.ManufacturerModelName), what)
		require.Equal(t, "1.0.0", str(t, item, tag.SoftwareVersions), what)
		require.Equal(t, in.DeviceUID(), str(t, item, tag.DeviceUID), what)
		d := Dump(t, "dcmdump", obj)
		require.Contains(t, d, "(0008,0100) SH [1630]", what)
		require.Contains(t, d, "(0008,0102) SH [99IHE]", what)
		require.Contains(t, d, "(0008,0104) LO [Processing Algorithm]", what)
	}

	v2 := in
	v2.Engine.Version = "1.1.0"
	require.NotEqual(t, in.DeviceUID(), v2.DeviceUID(), "a new model version is a new device")
	other := testInput("other-result", 0.1, false)
	require.Equal(t, in.DeviceUID(), other.DeviceUID(), "one device per engine × version")
	require.Regexp(t, `^2\.25\.[1-9][0-9]{0,38}$`, in.DeviceUID())
}

func TestParametricMap(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	in := testInput("pm-1", 0.873, true)
	in.CAM = testCAM(meta.Columns, meta.Rows)
	out, err := ParametricMap(src, in)
	require.NoError(t, err)
	iod, _ := testenv.Dciodvfy(t, "Parametric Map", out)
	require.Equal(t, "ParametricMap", iod)

	ds := parse(t, out)
	u := UIDsFor("pm-1", 1)
	require.Equal(t, SOPClassParametricMap, str(t, ds, tag.SOPClassUID))
	require.Equal(t, u.PM, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, u.PMSeries, str(t, ds, tag.SeriesInstanceUID))
	require.Equal(t, meta.StudyInstanceUID, str(t, ds, tag.StudyInstanceUID))
	require.Equal(t, u.PMFrameOfReference, str(t, ds, tag.FrameOfReferenceUID), "the source has none: the map's own")
	require.Equal(t, meta.Rows, ints(t, ds, tag.Rows))
	require.Equal(t, meta.Columns, ints(t, ds, tag.Columns))
	require.Equal(t, 16, ints(t, ds, tag.BitsAllocated))

	d := Dump(t, "dcmdump", out)
	for _, want := range []string{
		"=ParametricMapStorage",
		`(0008,0008) CS [DERIVED\PRIMARY\PROJECTION\QUANTITY]`,
		"(0040,9096) SQ", // Real World Value Mapping
		"(0040,9225) FD 1.5259",
		"(0008,9124) SQ", // Derivation Image
		"(0008,1155) UI [" + meta.SOPInstanceUID + "]",
		"(0008,0100) SH [121322]",
		"(0020,0032) DS [0\\0\\0]",
		"(0020,0037) DS [1\\0\\0\\0\\1\\0]",
		"(0028,0030) DS [",
	} {
		require.Contains(t, d, want)
	}

	// The pixels: 65535 at the centre of the peak cell (column 1, row 5 of
	// 7), lower away from it, 0 in the corner cell whose value was negative.
	e, err := ds.FindElementByTag(tag.PixelData)
	require.NoError(t, err)
	info := dicom.MustGetPixelDataInfo(e.Value)
	var raw []byte
	if info.IntentionallyUnprocessed {
		raw = info.UnprocessedValueData
	} else {
		nd := info.Frames[0].NativeData
		w16, ok := nd.RawDataSlice().([]uint16)
		require.True(t, ok)
		raw = make([]byte, 2*len(w16))
		for i, v := range w16 {
			binary.LittleEndian.PutUint16(raw[2*i:], v)
		}
	}
	W, H := meta.Columns, meta.Rows
	at := func(x, y int) uint16 { return binary.LittleEndian.Uint16(raw[2*(y*W+x):]) }
	cx := func(cell int) int { return (2*cell + 1) * W / 14 }
	cy := func(cell int) int { return (2*cell + 1) * H / 14 }
	require.InDelta(t, 65535, int(at(cx(1), cy(5))), 800)
	require.Less(t, int(at(cx(4), cy(5))), 100)
	require.Zero(t, at(0, 0))
	require.Greater(t, int(at(cx(2), cy(5))), 30000, "cell (2,5): 1.2 / 2")

	// The same result builds the same bytes; no CAM: no map; a CAM for
	// another image: refused.
	again, err := ParametricMap(src, in)
	require.NoError(t, err)
	require.Equal(t, out, again)
	in.CAM = nil
	_, err = ParametricMap(src, in)
	require.ErrorIs(t, err, ErrNoParametricMap)
	in.CAM = testCAM(W+1, H)
	_, err = ParametricMap(src, in)
	require.ErrorIs(t, err, ErrInput)
}
