package derived

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// Revision 1 (and 0) keeps the UIDs radgate gave before revisions existed
// (the values below are what UIDsFor(id) returned then), so results
// already stored stay recognised; revision 2 and later get new SOP
// Instance UIDs in the same series.
func TestUIDsForRevisions(t *testing.T) {
	const id = "r-7c1e9a0b42d5"
	before := UIDs{
		SCSeries:           "2.25.317129412761584668660088034955637622018",
		SC:                 "2.25.1261030510803549881301444726734053937",
		SRSeries:           "2.25.225212605020352827165173330633948829821",
		SR:                 "2.25.236893813927062520698430396178406505267",
		PDFSeries:          "2.25.226528917624450788902010609753935298776",
		PDF:                "2.25.110691008682599942304158533565248210418",
		PMSeries:           "2.25.219946923650000627370342359455767981532",
		PM:                 "2.25.165177652373202300638649450654475389634",
		PMFrameOfReference: "2.25.337635926397940698100489106398690510818",
		PMDimensions:       "2.25.73877794272822068096521209906240536773",
	}
	for _, rev := range []int{0, 1} {
		u := UIDsFor(id, rev)
		require.NotEmpty(t, u.KOS)
		require.NotEmpty(t, u.KOSSeries)
		u.KOS, u.KOSSeries = "", ""
		require.Equal(t, before, u, "revision %d", rev)
	}
	require.Equal(t, UIDsFor(id, 0), UIDsFor(id, 1))

	uidRE := regexp.MustCompile(`^2\.25\.[1-9][0-9]{0,38}$`)
	seen := map[string]string{}
	for rev := 1; rev <= 3; rev++ {
		u := UIDsFor(id, rev)
		require.Equal(t, u, UIDsFor(id, rev), "deterministic")
		require.Equal(t, before.SCSeries, u.SCSeries, "series stay per result")
		require.Equal(t, before.SRSeries, u.SRSeries)
		require.Equal(t, before.PDFSeries, u.PDFSeries)
		require.Equal(t, before.PMSeries, u.PMSeries)
		require.Equal(t, UIDsFor(id, 1).KOSSeries, u.KOSSeries)
		for _, v := range []string{u.SC, u.SR, u.PDF, u.PM, u.KOS} {
			require.Regexp(t, uidRE, v)
			require.Empty(t, seen[v], "%s repeats %s", v, seen[v])
			seen[v] = id
		}
	}
	// Another result's revision 1 never meets this one's revision 2.
	require.NotEqual(t, UIDsFor(id, 2).SC, UIDsFor(id+"/sc#r2", 1).SC)
}

func imageNotes(study string) []radgate.ImageNote {
	return []radgate.ImageNote{
		{SeriesInstanceUID: study + ".1", SOPInstanceUID: study + ".1.1", View: "PA", Scored: true},
		{SeriesInstanceUID: study + ".1", SOPInstanceUID: study + ".1.2", View: "LL", Reason: "lateral view; engine takes PA/AP"},
	}
}

// Revision 2's SR amends revision 1's: the Predecessor Documents Sequence
// names it, the flags stay COMPLETE / UNVERIFIED, dciodvfy finds no error.
// Both state the images scored and the one skipped.
func TestStructuredReportRevision(t *testing.T) {
	src := readTestdata(t, "cr-chest-pa-jpeg-baseline.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	in := testInput("sr-rev", 0.62, true)
	in.Images = imageNotes(meta.StudyInstanceUID)
	first, err := StructuredReport(src, in)
	require.NoError(t, err)
	require.NotContains(t, Dump(t, "dcmdump", first), "(0040,a360)", "revision 1 has no predecessor")

	in.Revision = 2
	in.Caveats = []string{"patient age unknown: engine e's intended use is 1–5 y (accepts.age_years); the result was not checked against it"}
	second, err := StructuredReport(src, in)
	require.NoError(t, err)
	ds := parse(t, second)
	u1, u2 := UIDsFor("sr-rev", 1), UIDsFor("sr-rev", 2)
	require.Equal(t, u2.SR, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, u1.SRSeries, str(t, ds, tag.SeriesInstanceUID))
	require.Equal(t, "2", str(t, ds, tag.InstanceNumber))
	require.Equal(t, "COMPLETE", str(t, ds, tag.CompletionFlag))
	require.Equal(t, "UNVERIFIED", str(t, ds, tag.VerificationFlag))

	d := Dump(t, "dcmdump", second)
	pred := topLevel(d, "(0040,a360)")
	for _, want := range []string{
		"(0020,000d) UI [" + meta.StudyInstanceUID + "]",
		"(0020,000e) UI [" + u1.SRSeries + "]",
		"(0008,1150) UI =Comprehensive3DSRStorage",
		"(0008,1155) UI [" + u1.SR + "]",
	} {
		require.Contains(t, pred, want, "Predecessor Documents Sequence")
	}
	iod, _ := testenv.Dciodvfy(t, "SR revision 2", second)
	require.Equal(t, "Comprehensive3DSR", iod)

	for _, sr := range [][]byte{first, second} {
		tree := Dump(t, "dsrdump", sr, "+Pl", "+Pc", "+Pu")
		require.Contains(t, tree, `<contains TEXT:(images-scored,99RADGATE,"Images scored")="Images scored: 1 of 2.">`)
		require.Contains(t, tree, `<contains TEXT:(image-not-scored,99RADGATE,"Image not scored")="Not scored: `+meta.StudyInstanceUID+`.1.2 (view LL): lateral view; engine takes PA/AP">`)
		testenv.Dciodvfy(t, "SR with image notes", sr)
	}
	tree := Dump(t, "dsrdump", second, "+Pl", "+Pc", "+Pu")
	require.Contains(t, tree, `<contains TEXT:(caveat,99RADGATE,"Caveat")="patient age unknown: engine e's intended use is 1–5 y (accepts.age_years); the result was not checked against it">`)
	require.NotContains(t, Dump(t, "dsrdump", first, "+Pl", "+Pc", "+Pu"), "Caveat", "a result without caveats has none")
	// The other derived objects of revision 2 are new instances too.
	out, err := EncapsulatedPDF(src, in, []byte("%PDF-1.4\n%%EOF\n"))
	require.NoError(t, err)
	require.Equal(t, u2.PDF, str(t, parse(t, out), tag.SOPInstanceUID))
	require.Equal(t, "2", str(t, parse(t, out), tag.InstanceNumber))
}

// The IOCM rejection note of revision 1's objects: a Key Object Selection
// Document titled "Rejected for Patient Safety Reasons" that references
// each object as IMAGE or COMPOSITE and in the evidence sequence; dciodvfy
// finds no error; the same rejection builds the same bytes.
func TestRejectionNote(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	u := UIDsFor("kos-1", 1)
	objects := []ObjectRef{
		{u.SCSeries, SOPClassSecondaryCapture, u.SC},
		{u.SRSeries, SOPClassComprehensive3DSR, u.SR},
		{u.PDFSeries, SOPClassEncapsulatedPDF, u.PDF},
		{u.PMSeries, SOPClassParametricMap, u.PM},
	}
	rej := Rejection{Revision: 1, Objects: objects, Description: "AI result kos-1 revision 1 superseded by revision 2"}
	in := testInput("kos-1", 0.5, false)
	out, err := RejectionNote(src, in, rej)
	require.NoError(t, err)

	ds := parse(t, out)
	require.Equal(t, SOPClassKeyObjectSelection, str(t, ds, tag.SOPClassUID))
	require.Equal(t, u.KOS, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, u.KOSSeries, str(t, ds, tag.SeriesInstanceUID))
	require.Equal(t, "KO", str(t, ds, tag.Modality))
	require.Equal(t, meta.StudyInstanceUID, str(t, ds, tag.StudyInstanceUID))
	require.NotEqual(t, u.KOS, UIDsFor("kos-1", 2).KOS)

	tree := Dump(t, "dsrdump", out, "+Pl", "+Pc", "+Pu")
	require.Contains(t, tree, "Key Object Selection Document")
	require.Contains(t, tree, `<CONTAINER:(113037,DCM,"Rejected for Patient Safety Reasons")=SEPARATE>`)
	require.Contains(t, tree, `<contains TEXT:(113012,DCM,"Key Object Description")="`+rej.Description+`">`)
	require.Contains(t, tree, `<contains IMAGE:=(SC image,"`+u.SC+`")>`)
	require.Contains(t, tree, `<contains COMPOSITE:=(Comprehensive3DSRStorage,"`+u.SR+`")>`)
	require.Contains(t, tree, `<contains COMPOSITE:=(EncapsulatedPDFStorage,"`+u.PDF+`")>`)
	require.Contains(t, tree, `<contains IMAGE:=(PM image,"`+u.PM+`")>`)
	d := Dump(t, "dcmdump", out)
	ev := topLevel(d, "(0040,a375)")
	for _, o := range objects {
		require.Contains(t, ev, "(0020,000e) UI ["+o.SeriesInstanceUID+"]")
		require.Contains(t, ev, "(0008,1155) UI ["+o.SOPInstanceUID+"]")
	}
	iod, _ := testenv.Dciodvfy(t, "rejection note", out)
	require.Equal(t, "KeyObjectSelectionDocument", iod)

	again, err := RejectionNote(src, in, rej)
	require.NoError(t, err)
	require.Equal(t, out, again)

	// The note can copy patient and study from a rejected object (the
	// source may be gone): the SR it rejects.
	sr, err := StructuredReport(src, in)
	require.NoError(t, err)
	fromSR, err := RejectionNote(sr, in, rej)
	require.NoError(t, err)
	require.Equal(t, meta.StudyInstanceUID, str(t, parse(t, fromSR), tag.StudyInstanceUID))
	testenv.Dciodvfy(t, "rejection note from the SR", fromSR)

	for name, bad := range map[string]func(*Input, *Rejection){
		"no objects": func(_ *Input, r *Rejection) { r.Objects = nil },
		"bad uid": func(_ *Input, r *Rejection) {
			r.Objects = []ObjectRef{{u.SCSeries, SOPClassSecondaryCapture, "1.2.03"}}
		},
		"no result":   func(in *Input, _ *Rejection) { in.ResultID = " " },
		"no engine":   func(in *Input, _ *Rejection) { in.Engine.ID, in.Engine.Name = "", "" },
		"empty class": func(_ *Input, r *Rejection) { r.Objects = []ObjectRef{{u.SCSeries, "", u.SC}} },
	} {
		t.Run(name, func(t *testing.T) {
			in, r := in, rej
			bad(&in, &r)
			_, err := RejectionNote(src, in, r)
			require.ErrorIs(t, err, ErrInput)
		})
	}
}

// topLevel returns the lines of dcmdump output d from the top-level
// element t up to the next top-level element.
func topLevel(d, t string) string {
	i := strings.Index(d, "\n"+t)
	if i < 0 {
		return ""
	}
	rest := d[i+1:]
	if j := strings.Index(rest, "\n("); j >= 0 {
		return rest[:j]
	}
	return rest
}
