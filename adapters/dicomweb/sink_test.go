package dicomweb

import (
	"bytes"
	"context"
	"crypto/rand"
	"image"
	"image/png"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

const sinkDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

var sinkEngine = radgate.EngineInfo{
	ID: "cxr-pneumonia-densenet121", Name: "Chest radiograph pneumonia finding, DenseNet-121 + CAM",
	Version: "1.0.0", Disclaimer: sinkDisclaimer,
	Finding: radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"},
}

func TestSinkOptionsValidate(t *testing.T) {
	require.NoError(t, SinkOptions{SC: true}.Validate())
	require.NoError(t, SinkOptions{SR: true, SCWhenUnmarked: "none"}.Validate())
	require.Error(t, SinkOptions{}.Validate())
	err := SinkOptions{SC: true, SCWhenUnmarked: "sometimes"}.Validate()
	require.ErrorContains(t, err, `sc_when_unmarked "sometimes"`)
}

// A result that was not scored stores nothing: no request at all (the
// client points at a closed port).
func TestSinkIgnoresUnscoredResults(t *testing.T) {
	c, err := New(Options{BaseURL: "http://127.0.0.1:1/dicom-web", Timeout: time.Second})
	require.NoError(t, err)
	s := NewSink(c, SinkOptions{SC: true, SR: true})
	for _, o := range []radgate.Outcome{radgate.OutcomeNotApplicable, radgate.OutcomeFailed} {
		rec, err := s.Deliver(t.Context(), radgate.Result{ID: "x", Outcome: o, Reason: "not a chest radiograph"})
		require.NoError(t, err)
		require.Equal(t, radgate.Receipt{}, rec)
	}
	// A scored result without the scored instance's UIDs is refused, permanently.
	_, err = s.Deliver(t.Context(), radgate.Result{ID: "x", Outcome: radgate.OutcomeScored})
	require.Error(t, err)
	require.False(t, radgate.IsTransient(err))
	// The PACS unreachable: transient.
	_, err = s.Deliver(t.Context(), radgate.Result{ID: "x", Outcome: radgate.OutcomeScored,
		StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5"})
	require.True(t, radgate.IsTransient(err), "%v", err)
}

// reUID replaces uid in file with a variant of the same length whose last
// 16 digits are random, so the copy is a new study/series/instance (the
// SOP Instance UID also in the file meta information).
func reUID(t *testing.T, file []byte, uid string) ([]byte, string) {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(9e15))
	require.NoError(t, err)
	digits := []byte(big.NewInt(0).Add(n, big.NewInt(1e15)).String()) // 16 digits, no leading zero
	out := []byte(uid)
	for i, j := len(out)-1, len(digits)-1; i >= 0 && j >= 0; i-- {
		if out[i] == '.' {
			continue
		}
		out[i] = digits[j]
		j--
	}
	// a component must not start with 0 unless it is "0"
	s := strings.Split(string(out), ".")
	for i, c := range s {
		if len(c) > 1 && c[0] == '0' {
			s[i] = "1" + c[1:]
		}
	}
	repl := strings.Join(s, ".")
	require.Len(t, repl, len(uid))
	require.Positive(t, bytes.Count(file, []byte(uid)), "uid %s in the file", uid)
	return bytes.ReplaceAll(file, []byte(uid), []byte(repl)), repl
}

// newAccession replaces the accession number in file with a random one of
// the same length starting with "K", so that no other test's search by
// accession number finds the copy.
func newAccession(t *testing.T, file []byte, acc string) ([]byte, string) {
	t.Helper()
	require.GreaterOrEqual(t, len(acc), 4)
	b := make([]byte, len(acc)-1)
	_, err := rand.Read(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	repl := "K" + string(b)
	return bytes.ReplaceAll(file, []byte(acc), []byte(repl)), repl
}

func sinkHeatmap(t *testing.T, src []byte) []byte {
	t.Helper()
	img, err := inference.Decode(src)
	require.NoError(t, err)
	const n = 7
	cam := make([]float32, n*n)
	cam[5*n+1], cam[5*n+2], cam[4*n+1] = 1, 0.6, 0.5
	p, _, _, err := inference.RenderHeatmap(img, inference.Result{
		Marked: true, CAM: cam, CAMWidth: n, CAMHeight: n,
		Crop: image.Rect(0, 0, img.Width, img.Height), SourceWidth: img.Width, SourceHeight: img.Height,
	}, inference.HeatmapOptions{})
	require.NoError(t, err)
	return p
}

func dcmtk(t *testing.T, name string, data []byte, args ...string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " (DCMTK) not on PATH: install it with testenv/setup.sh"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, data, 0o600))
	out, err := exec.Command(p, append(args, f)...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
	return string(out)
}

func dsString(t *testing.T, ds dicom.Dataset, tg tag.Tag) string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err, "%v", tg)
	return strings.TrimRight(strings.Join(dicom.MustGetStrings(e.Value), `\`), " \x00")
}

// scPicture returns the SC's pixels as an image.
func scPicture(t *testing.T, ds dicom.Dataset) *image.RGBA {
	t.Helper()
	w, h := dicom.MustGetInts(mustFind(t, ds, tag.Columns).Value)[0], dicom.MustGetInts(mustFind(t, ds, tag.Rows).Value)[0]
	nd := dicom.MustGetPixelDataInfo(mustFind(t, ds, tag.PixelData).Value).Frames[0].NativeData
	raw, ok := nd.RawDataSlice().([]uint8)
	require.True(t, ok)
	require.GreaterOrEqual(t, len(raw), 3*w*h)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = raw[3*i], raw[3*i+1], raw[3*i+2], 255
	}
	return img
}

func mustFind(t *testing.T, ds dicom.Dataset, tg tag.Tag) *dicom.Element {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err, "%v", tg)
	return e
}

// colourPixels counts clearly coloured pixels in the top rows of img (the
// image part, above the text band: the yellow disclaimer is below).
func colourPixels(img *image.RGBA, rows int) int {
	n := 0
	for i := 0; i < rows*img.Stride; i += 4 {
		r, g, b := int(img.Pix[i]), int(img.Pix[i+1]), int(img.Pix[i+2])
		if max(r, g, b)-min(r, g, b) > 40 {
			n++
		}
	}
	return n
}

func TestOrthancSinkDeliver(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	src, study := reUID(t, orig, meta.StudyInstanceUID)
	src, series := reUID(t, src, meta.SeriesInstanceUID)
	src, sop := reUID(t, src, meta.SOPInstanceUID)
	src, accession := newAccession(t, src, meta.AccessionNumber)
	_, err = c.Store(t.Context(), src)
	require.NoError(t, err)

	pdf := []byte("%PDF-1.4\n% radgate sink test\n%%EOF\n")
	sink := NewSink(c, SinkOptions{SC: true, SR: true, PDF: func(_ context.Context, r radgate.Result) ([]byte, error) {
		return pdf, nil
	}})
	base := radgate.Result{
		Engine: sinkEngine, Outcome: radgate.OutcomeScored,
		StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop,
		ScoredAt: time.Now().UTC(),
	}
	marked, unmarked := base, base
	marked.ID, marked.Probability, marked.Tier, marked.Marked = "sink-marked-"+study, 0.873, "High", true
	marked.HeatmapPNG = sinkHeatmap(t, src)
	unmarked.ID, unmarked.Probability, unmarked.Tier = "sink-unmarked-"+study, 0.214, "Low"

	for _, r := range []radgate.Result{marked, unmarked} {
		rec, err := sink.Deliver(t.Context(), r)
		require.NoError(t, err)
		u := derived.UIDsFor(r.ID, 1)
		require.Equal(t, "studies/"+study+"/series/"+u.SRSeries+"/instances/"+u.SR, rec.Report)
		if r.Marked {
			path := func(se, sop string) string { return "studies/" + study + "/series/" + se + "/instances/" + sop }
			require.Equal(t, []radgate.DeliveredObject{
				{Kind: "PDF", Ref: path(u.PDFSeries, u.PDF), UID: u.PDF},
				{Kind: "SC", Ref: path(u.SCSeries, u.SC), UID: u.SC},
				{Kind: "SR", Ref: path(u.SRSeries, u.SR), UID: u.SR},
			}, rec.Objects, "the receipt lists every object stored")
		}
	}
	// A result that was not scored stores nothing.
	rec, err := sink.Deliver(t.Context(), radgate.Result{ID: "sink-na-" + study, Outcome: radgate.OutcomeNotApplicable,
		StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop})
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, rec)

	for _, tc := range []struct {
		r      radgate.Result
		marked bool
	}{{marked, true}, {unmarked, false}} {
		u := derived.UIDsFor(tc.r.ID, 1)
		t.Run(tc.r.ID[:strings.LastIndexByte(tc.r.ID[:len(tc.r.ID)-len(study)], '-')], func(t *testing.T) {
			// The Secondary Capture, read back.
			scBytes, err := c.RetrieveInstance(t.Context(), study, u.SCSeries, u.SC)
			require.NoError(t, err)
			sc, err := dicom.Parse(bytes.NewReader(scBytes), int64(len(scBytes)), nil)
			require.NoError(t, err)
			for tg, want := range map[tag.Tag]string{
				tag.SOPClassUID: derived.SOPClassSecondaryCapture, tag.SOPInstanceUID: u.SC,
				tag.SeriesInstanceUID: u.SCSeries, tag.StudyInstanceUID: study,
				tag.ImageType: `DERIVED\SECONDARY`, tag.BurnedInAnnotation: "YES", tag.ConversionType: "WSD",
				tag.Manufacturer: "radgate", tag.PatientName: "Covid0000", tag.AccessionNumber: accession,
				tag.SeriesDescription: derived.SCSeriesDescription, tag.PhotometricInterpretation: "RGB",
			} {
				require.Equal(t, want, dsString(t, sc, tg), "%v", tg)
			}
			d := dcmtk(t, "dcmdump", scBytes)
			testenv.Dciodvfy(t, "SC read back from Orthanc", scBytes)
			require.Contains(t, d, "(0008,1155) UI ["+sop+"]", "Source Image Sequence names the source")
			require.Contains(t, d, "(0008,1155) UI ["+study+"]", "Referenced Study Sequence names the study")
			img := scPicture(t, sc)
			picRows := img.Bounds().Dy() * 3 / 4
			if tc.marked {
				require.Greater(t, colourPixels(img, picRows), 1000, "the heatmap overlay is there")
				f := filepath.Join(t.TempDir(), "sc-marked.png")
				if dir := os.Getenv("RADGATE_SC_PREVIEW_DIR"); dir != "" {
					f = filepath.Join(dir, "sc-marked-from-orthanc.png")
				}
				out, err := os.Create(f)
				require.NoError(t, err)
				require.NoError(t, png.Encode(out, img))
				require.NoError(t, out.Close())
			} else {
				require.Zero(t, colourPixels(img, picRows), "no overlay below the marking threshold")
			}

			// The SR, read back.
			srBytes, err := c.RetrieveInstance(t.Context(), study, u.SRSeries, u.SR)
			require.NoError(t, err)
			sr, err := dicom.Parse(bytes.NewReader(srBytes), int64(len(srBytes)), nil)
			require.NoError(t, err)
			require.Equal(t, derived.SOPClassComprehensive3DSR, dsString(t, sr, tag.SOPClassUID))
			require.Equal(t, "COMPLETE", dsString(t, sr, tag.CompletionFlag))
			require.Equal(t, "UNVERIFIED", dsString(t, sr, tag.VerificationFlag))
			require.Equal(t, study, dsString(t, sr, tag.StudyInstanceUID))
			tree := dcmtk(t, "dsrdump", srBytes, "+Pl", "+Pc", "+Pu")
			testenv.Dciodvfy(t, "SR read back from Orthanc", srBytes)
			conf := map[bool]string{true: "87.3", false: "21.4"}[tc.marked]
			tier := map[bool]string{true: `(high,99RADGATE,"High")`, false: `(low,99RADGATE,"Low")`}[tc.marked]
			for _, want := range []string{
				`<CONTAINER:(126000,DCM,"Imaging Measurement Report")=SEPARATE>`,
				`<contains NUM:(confidence,99RADGATE,"AI confidence")="` + conf + `" (%,UCUM,"percent")>`,
				`<contains CODE:(confidence-tier,99RADGATE,"AI confidence tier")=` + tier + `>`,
				`<contains CODE:(121071,DCM,"Finding")=(233604007,SCT,"Pneumonia")>`,
				`<has concept mod TEXT:(111001,DCM,"Algorithm Name")="` + sinkEngine.Name + `">`,
				`<has concept mod TEXT:(111003,DCM,"Algorithm Version")="1.0.0">`,
				sop, sinkDisclaimer, derived.DisclaimerHeadline,
			} {
				require.Contains(t, tree, want)
			}

			// The Encapsulated PDF.
			pdfBytes, err := c.RetrieveInstance(t.Context(), study, u.PDFSeries, u.PDF)
			require.NoError(t, err)
			require.Contains(t, dcmtk(t, "dcmdump", pdfBytes), "EncapsulatedPDFStorage")
			testenv.Dciodvfy(t, "Encapsulated PDF read back from Orthanc", pdfBytes)
		})
	}

	// Delivering both again leaves one instance of each object.
	for _, r := range []radgate.Result{marked, unmarked} {
		_, err := sink.Deliver(t.Context(), r)
		require.NoError(t, err)
	}
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, s := range st.Series {
		counts[s.SeriesInstanceUID] = len(s.Instances)
	}
	want := map[string]int{series: 1}
	for _, r := range []radgate.Result{marked, unmarked} {
		u := derived.UIDsFor(r.ID, 1)
		want[u.SCSeries], want[u.SRSeries], want[u.PDFSeries] = 1, 1, 1
	}
	require.Equal(t, want, counts)
}

// With sc_when_unmarked "none" an unmarked result stores the SR alone.
func TestOrthancSinkNoSCWhenUnmarked(t *testing.T) {
	pacs := testenv.Orthanc(t)
	c := orthancClient(t, pacs.Password)
	orig, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	meta, err := inference.ReadHeader(orig)
	require.NoError(t, err)
	src, study := reUID(t, orig, meta.StudyInstanceUID)
	src, series := reUID(t, src, meta.SeriesInstanceUID)
	src, sop := reUID(t, src, meta.SOPInstanceUID)
	src, accession := newAccession(t, src, meta.AccessionNumber)
	_, err = c.Store(t.Context(), src)
	require.NoError(t, err)

	r := radgate.Result{ID: "sink-none-" + study, Engine: sinkEngine, Outcome: radgate.OutcomeScored,
		Probability: 0.31, Tier: "Mid", StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop}
	rec, err := NewSink(c, SinkOptions{SC: true, SR: true, SCWhenUnmarked: derived.SCUnmarkedNone}).Deliver(t.Context(), r)
	require.NoError(t, err)
	u := derived.UIDsFor(r.ID, 1)
	require.Equal(t, "studies/"+study+"/series/"+u.SRSeries+"/instances/"+u.SR, rec.Report)
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	require.Len(t, st.Series, 2, "the source and the SR, no SC")
	require.Equal(t, accession, st.AccessionNumber)
}

// With parametric_map a marked result's CAM is stored as a Parametric Map
// next to the SR: read back by WADO-RS it is the object derived built, it
// passes dciodvfy, and a redelivery stores nothing new. An unmarked result
// (no CAM) stores no map.
func TestOrthancSinkParametricMap(t *testing.T) {
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

	cam := make([]float32, 49)
	cam[5*7+1], cam[5*7+2], cam[4*7+1] = 1, 0.6, 0.5
	base := radgate.Result{Engine: sinkEngine, Outcome: radgate.OutcomeScored,
		StudyInstanceUID: study, SeriesInstanceUID: series, SOPInstanceUID: sop, ScoredAt: time.Now().UTC()}
	marked, unmarked := base, base
	marked.ID, marked.Probability, marked.Tier, marked.Marked = "sink-pm-marked-"+study, 0.873, "High", true
	marked.HeatmapPNG = sinkHeatmap(t, src)
	marked.CAM = &radgate.CAM{Values: cam, Width: 7, Height: 7, X1: meta.Columns, Y1: meta.Rows,
		SourceWidth: meta.Columns, SourceHeight: meta.Rows}
	unmarked.ID, unmarked.Probability, unmarked.Tier = "sink-pm-unmarked-"+study, 0.214, "Low"

	sink := NewSink(c, SinkOptions{SR: true, ParametricMap: true})
	for _, r := range []radgate.Result{marked, unmarked} {
		rec, err := sink.Deliver(t.Context(), r)
		require.NoError(t, err)
		u := derived.UIDsFor(r.ID, 1)
		require.Equal(t, "studies/"+study+"/series/"+u.SRSeries+"/instances/"+u.SR, rec.Report)
	}

	u := derived.UIDsFor(marked.ID, 1)
	pm, err := c.RetrieveInstance(t.Context(), study, u.PMSeries, u.PM)
	require.NoError(t, err)
	iod, _ := testenv.Dciodvfy(t, "Parametric Map read back from Orthanc", pm)
	require.Equal(t, "ParametricMap", iod)
	in := derived.FromResult(marked)
	want, err := derived.ParametricMap(src, in)
	require.NoError(t, err)
	frame := func(b []byte) any {
		ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil)
		require.NoError(t, err)
		require.Equal(t, derived.SOPClassParametricMap, dsString(t, ds, tag.SOPClassUID))
		require.Equal(t, study, dsString(t, ds, tag.StudyInstanceUID))
		require.Equal(t, "CAM", dsString(t, ds, tag.ContentLabel))
		info := dicom.MustGetPixelDataInfo(mustFind(t, ds, tag.PixelData).Value)
		require.Len(t, info.Frames, 1)
		return info.Frames[0].NativeData.RawDataSlice()
	}
	require.Equal(t, frame(want), frame(pm), "the map as built")
	require.Contains(t, dcmtk(t, "dcmdump", pm), "(0008,1155) UI ["+sop+"]", "the Derivation Image Sequence names the source")

	// Redelivery: nothing new. The unmarked result: SR only, no map.
	for _, r := range []radgate.Result{marked, unmarked} {
		_, err := sink.Deliver(t.Context(), r)
		require.NoError(t, err)
	}
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: study})
	require.NoError(t, err)
	counts := map[string]int{}
	for _, s := range st.Series {
		counts[s.SeriesInstanceUID] = len(s.Instances)
	}
	uu := derived.UIDsFor(unmarked.ID, 1)
	require.Equal(t, map[string]int{series: 1, u.SRSeries: 1, u.PMSeries: 1, uu.SRSeries: 1}, counts)

	// parametric_map alone is something to store.
	require.NoError(t, SinkOptions{ParametricMap: true}.Validate())
}
