package dicomweb

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/report"
)

// seriesCounts returns how many instances the PACS lists per series of
// the study.
func seriesCounts(t *testing.T, c *Client, study string) map[string]int {
	t.Helper()
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, s := range st.Series {
		counts[s.SeriesInstanceUID] = len(s.Instances)
	}
	return counts
}

// A result delivered final, then amended (revision 2), then retracted, each
// twice: the PACS ends up with both revisions' objects and two IOCM
// rejection notes — the first rejecting revision 1's SC, SR, PDF and
// Parametric Map, the second revision 2's SC, SR and PDF — read back by
// WADO-RS with their title and references, and dciodvfy finds no error in
// them. Revision 2's SR names revision 1's as its predecessor and states
// the images scored and skipped. Orthanc stores the notes as any instance
// and does not act on them.
func TestOrthancSinkLifecycle(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	src, study := reUID(t, orig, meta.StudyInstanceUID)
	src, series := reUID(t, src, meta.SeriesInstanceUID)
	src, sop := reUID(t, src, meta.SOPInstanceUID)
	src, _ = newAccession(t, src, meta.AccessionNumber)
	_, err = c.Store(t.Context(), src)
	require.NoError(t, err)

	sink := NewSink(c, SinkOptions{SC: true, SR: true, ParametricMap: true,
		PDF: func(_ context.Context, r radgate.Result) ([]byte, error) { return report.PDF(report.Input{Result: r}) }})
	cam := make([]float32, 49)
	cam[5*7+1], cam[5*7+2], cam[4*7+1] = 1, 0.6, 0.5
	lateral := radgate.ImageNote{SeriesInstanceUID: series, SOPInstanceUID: randomUID(t), View: "LL", Reason: "lateral view; engine takes PA/AP"}
	final := radgate.Result{ID: "sink-life-" + study, Engine: sinkEngine, Outcome: radgate.OutcomeScored,
		Probability: 0.873, Tier: "High", Marked: true, HeatmapPNG: sinkHeatmap(t, src),
		CAM:              &radgate.CAM{Values: cam, Width: 7, Height: 7, X1: meta.Columns, Y1: meta.Rows, SourceWidth: meta.Columns, SourceHeight: meta.Rows},
		StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop, ScoredAt: time.Now().UTC(),
		Revision: 1, Status: radgate.ResultFinal,
		Images: []radgate.ImageNote{{SeriesInstanceUID: series, SOPInstanceUID: sop, Scored: true}},
	}
	amended := final
	amended.Revision, amended.Status = 2, radgate.ResultAmended
	amended.Probability, amended.Tier, amended.Marked, amended.HeatmapPNG, amended.CAM = 0.42, "Mid", false, nil, nil
	amended.Images = append(slices.Clone(final.Images), lateral)
	retracted := amended
	retracted.Status, retracted.RetractReason = radgate.ResultRetracted, "order cancelled: FHIR ServiceRequest status revoked"

	u1, u2 := derived.UIDsFor(final.ID, 1), derived.UIDsFor(final.ID, 2)
	path := func(series, sop string) string { return "studies/" + study + "/series/" + series + "/instances/" + sop }
	for _, step := range []struct {
		r      radgate.Result
		report string
		counts map[string]int
	}{
		{final, path(u1.SRSeries, u1.SR), map[string]int{series: 1, u1.SCSeries: 1, u1.SRSeries: 1, u1.PDFSeries: 1, u1.PMSeries: 1}},
		{amended, path(u2.SRSeries, u2.SR), map[string]int{series: 1, u1.SCSeries: 2, u1.SRSeries: 2, u1.PDFSeries: 2, u1.PMSeries: 1, u1.KOSSeries: 1}},
		{retracted, path(u2.KOSSeries, u2.KOS), map[string]int{series: 1, u1.SCSeries: 2, u1.SRSeries: 2, u1.PDFSeries: 2, u1.PMSeries: 1, u1.KOSSeries: 2}},
	} {
		for range 2 { // idempotent: the second delivery stores nothing new
			rec, err := sink.Deliver(t.Context(), step.r)
			require.NoError(t, err, "%s", step.r.Status)
			require.Equal(t, step.report, rec.Report, "%s", step.r.Status)
			require.Equal(t, step.counts, seriesCounts(t, c, study), "%s", step.r.Status)
		}
	}

	// Revision 2's SR amends revision 1's and notes the lateral.
	sr2, err := c.RetrieveInstance(t.Context(), study, u2.SRSeries, u2.SR)
	require.NoError(t, err)
	testenv.Dciodvfy(t, "SR revision 2 read back from Orthanc", sr2)
	pred := dcmtk(t, "dcmdump", sr2)
	pred = pred[strings.Index(pred, "(0040,a360)"):]
	require.Contains(t, pred, "(0008,1155) UI ["+u1.SR+"]", "Predecessor Documents Sequence names revision 1's SR")
	tree := dcmtk(t, "dsrdump", sr2, "+Pl", "+Pc", "+Pu")
	require.Contains(t, tree, `="Images scored: 1 of 2.">`)
	require.Contains(t, tree, `="Not scored: `+lateral.SOPInstanceUID+` (view LL): lateral view; engine takes PA/AP">`)

	// The rejection notes, read back.
	for _, tc := range []struct {
		rev      int
		note     string
		want     []string
		not      []string
		describe string
	}{
		{1, u1.KOS, []string{u1.SC, u1.SR, u1.PDF, u1.PM}, []string{u2.SC, u2.SR, u2.PDF},
			"AI result " + final.ID + " revision 1 superseded by revision 2."},
		{2, u2.KOS, []string{u2.SC, u2.SR, u2.PDF}, []string{u1.SC, u1.SR, u1.PDF, u1.PM},
			"AI result " + final.ID + " revision 2 withdrawn: order cancelled: FHIR ServiceRequest status revoked."},
	} {
		note, err := c.RetrieveInstance(t.Context(), study, u1.KOSSeries, tc.note)
		require.NoError(t, err)
		iod, _ := testenv.Dciodvfy(t, "rejection note read back from Orthanc", note)
		require.Equal(t, "KeyObjectSelectionDocument", iod)
		tree := dcmtk(t, "dsrdump", note, "+Pl", "+Pc", "+Pu")
		require.Contains(t, tree, "Key Object Selection Document")
		require.Contains(t, tree, `<CONTAINER:(113037,DCM,"Rejected for Patient Safety Reasons")=SEPARATE>`)
		require.Contains(t, tree, `<contains TEXT:(113012,DCM,"Key Object Description")="`+tc.describe+`">`)
		d := dcmtk(t, "dcmdump", note)
		require.Contains(t, d, "(0020,000d) UI ["+study+"]")
		require.Contains(t, d, "(0008,0060) CS [KO]")
		ev := d[strings.Index(d, "(0040,a375)"):]
		for _, uid := range tc.want {
			require.Contains(t, tree, `"`+uid+`")>`, "content item referencing %s", uid)
			require.Contains(t, ev, "(0008,1155) UI ["+uid+"]", "evidence referencing %s", uid)
		}
		for _, uid := range tc.not {
			require.NotContains(t, d, uid)
		}
	}
}

// Status errors, and retractions with nothing to reject: no note.
func TestSinkStatuses(t *testing.T) {
	closed, err := New(Options{BaseURL: "http://127.0.0.1:1/dicom-web", Timeout: time.Second})
	require.NoError(t, err)
	s := NewSink(closed, SinkOptions{SR: true})
	base := radgate.Result{ID: "status-1", Engine: sinkEngine, Outcome: radgate.OutcomeScored, Probability: 0.5, Tier: "Mid"}

	r := base
	r.Status, r.Revision = radgate.ResultAmended, 1
	_, err = s.Deliver(t.Context(), r)
	require.ErrorContains(t, err, "amended result has revision 1")
	require.False(t, radgate.IsTransient(err))

	r.Status = "withdrawn"
	_, err = s.Deliver(t.Context(), r)
	require.ErrorContains(t, err, `unknown result status "withdrawn"`)
	require.False(t, radgate.IsTransient(err))

	// A retraction of a result that names no study: nothing was stored,
	// nothing is asked of the PACS (the port is closed).
	r.Status = radgate.ResultRetracted
	rec, err := s.Deliver(t.Context(), r)
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)

	// A retraction of a result the PACS holds nothing of stores nothing.
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	src, study := reUID(t, orig, meta.StudyInstanceUID)
	src, _ = reUID(t, src, meta.SOPInstanceUID)
	src, _ = newAccession(t, src, meta.AccessionNumber)
	_, err = c.Store(t.Context(), src)
	require.NoError(t, err)
	r = base
	r.ID, r.Status, r.Revision, r.StudyInstanceUID = "status-none-"+study, radgate.ResultRetracted, 3, study
	rec, err = NewSink(c, SinkOptions{SR: true}).Deliver(t.Context(), r)
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)
	require.Len(t, seriesCounts(t, c, study), 1, "only the source")
	// Not scored and retracted: the same.
	r.Outcome, r.StudyInstanceUID, r.Order.StudyInstanceUID = radgate.OutcomeNotApplicable, "", "urn:oid:"+study
	rec, err = NewSink(c, SinkOptions{SR: true}).Deliver(t.Context(), r)
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)
	require.Len(t, seriesCounts(t, c, study), 1)
}
