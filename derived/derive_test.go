package derived

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Derive builds what the set asks for, in the order PDF, Parametric Map,
// SC, SR, each as its own builder writes it; what the result has none of
// (no map, no SC below the threshold with sc_when_unmarked none) is left out.
func TestDerive(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	pdf := []byte("%PDF-1.4\n% derive test\n%%EOF\n")
	in := testInput("derive-1", 0.91, true)
	in.HeatmapPNG = Heatmap(t, src)
	in.CAM = testCAM(1024, 1024)

	all, err := Derive(src, in, Set{SC: true, SR: true, ParametricMap: true, PDF: pdf})
	require.NoError(t, err)
	u := in.UIDs()
	var got []ObjectRef
	for _, o := range all {
		got = append(got, o.Ref())
	}
	require.Equal(t, []ObjectRef{
		{u.PDFSeries, SOPClassEncapsulatedPDF, u.PDF},
		{u.PMSeries, SOPClassParametricMap, u.PM},
		{u.SCSeries, SOPClassSecondaryCapture, u.SC},
		{u.SRSeries, SOPClassComprehensive3DSR, u.SR},
	}, got)
	for i, build := range []func() ([]byte, error){
		func() ([]byte, error) { return EncapsulatedPDF(src, in, pdf) },
		func() ([]byte, error) { return ParametricMap(src, in) },
		func() ([]byte, error) { return SecondaryCapture(src, in) },
		func() ([]byte, error) { return StructuredReport(src, in) },
	} {
		want, err := build()
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, all[i].File), "object %d as its builder writes it", i)
	}

	unmarked := testInput("derive-2", 0.12, false)
	unmarked.SCWhenUnmarked = SCUnmarkedNone
	some, err := Derive(src, unmarked, Set{SC: true, SR: true, ParametricMap: true})
	require.NoError(t, err)
	require.Len(t, some, 1)
	require.Equal(t, SOPClassComprehensive3DSR, some[0].SOPClassUID)

	none, err := Derive(src, in, Set{})
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = Derive(src, in, Set{PDF: []byte{}})
	require.ErrorIs(t, err, ErrInput, "an empty PDF is no PDF")
	_, err = Derive([]byte("not dicom"), in, Set{SR: true})
	require.ErrorIs(t, err, ErrSource)
}
