package derived

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

const testDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

func testInput(id string, p float64, marked bool) Input {
	tier := "Low"
	switch {
	case p >= 0.7:
		tier = "High"
	case p >= 0.3:
		tier = "Mid"
	}
	return Input{
		ResultID: id,
		Engine: radgate.EngineInfo{
			ID: "cxr-pneumonia-densenet121", Name: "Chest radiograph pneumonia finding, DenseNet-121 + CAM",
			Version: "1.0.0", Disclaimer: testDisclaimer,
			Finding: radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"},
		},
		Probability: p, Tier: tier, Marked: marked,
		Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata("cxr-dicom", name))
	require.NoError(t, err)
	return b
}

// Heatmap renders a real heatmap PNG (inference.RenderHeatmap) over the
// decoded source with a synthetic CAM peaking in the right lower zone.
func Heatmap(t testing.TB, src []byte) []byte {
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

// tool returns the path of a DCMTK tool; missing, it skips the test, or
// fails it under RADGATE_REQUIRE_PEERS=1.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " (DCMTK) not on PATH: install it with testenv/setup.sh"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Dump runs a DCMTK dump tool (dcmdump, dsrdump) on data and returns what
// it printed; the tool must exit 0.
func Dump(t testing.TB, name string, data []byte, args ...string) string {
	t.Helper()
	p := tool(t, name)
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, data, 0o600))
	out, err := exec.Command(p, append(args, f)...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
	return string(out)
}

func parse(t testing.TB, data []byte) dicom.Dataset {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil)
	require.NoError(t, err)
	return ds
}

func str(t testing.TB, ds dicom.Dataset, tg tag.Tag) string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err, "%v", tg)
	return strings.TrimRight(strings.Join(dicom.MustGetStrings(e.Value), `\`), " \x00")
}

func TestUIDsAreDeterministicAndValid(t *testing.T) {
	a, b := UIDsFor("r1", 1), UIDsFor("r1", 1)
	require.Equal(t, a, b)
	c := UIDsFor("r2", 1)
	uidRE := regexp.MustCompile(`^2\.25\.[1-9][0-9]{0,38}$`)
	seen := map[string]bool{}
	for _, u := range []string{a.SC, a.SCSeries, a.SR, a.SRSeries, a.PDF, a.PDFSeries, c.SC, c.SR} {
		require.Regexp(t, uidRE, u)
		require.LessOrEqual(t, len(u), 64)
		require.False(t, seen[u], "duplicate %s", u)
		seen[u] = true
	}
}

func TestSecondaryCaptureMarked(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	in := testInput("sc-marked", 0.873, true)
	in.HeatmapPNG = Heatmap(t, src)
	out, err := SecondaryCapture(src, in)
	require.NoError(t, err)

	ds := parse(t, out)
	u := UIDsFor("sc-marked", 1)
	srcMeta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	require.Equal(t, SOPClassSecondaryCapture, str(t, ds, tag.SOPClassUID))
	require.Equal(t, u.SC, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, u.SC, str(t, ds, tag.MediaStorageSOPInstanceUID))
	require.Equal(t, u.SCSeries, str(t, ds, tag.SeriesInstanceUID))
	require.Equal(t, srcMeta.StudyInstanceUID, str(t, ds, tag.StudyInstanceUID))
	require.Equal(t, srcMeta.AccessionNumber, str(t, ds, tag.AccessionNumber))
	require.Equal(t, "Covid0000", str(t, ds, tag.PatientName))
	require.Equal(t, `DERIVED\SECONDARY`, str(t, ds, tag.ImageType))
	require.Equal(t, "YES", str(t, ds, tag.BurnedInAnnotation))
	require.Equal(t, "WSD", str(t, ds, tag.ConversionType))
	require.Equal(t, "radgate", str(t, ds, tag.Manufacturer))
	require.Equal(t, "RGB", str(t, ds, tag.PhotometricInterpretation))

	d := Dump(t, "dcmdump", out, "-M")
	for _, want := range []string{
		"(0008,0016) UI =SecondaryCaptureImageStorage",
		"(0008,0008) CS [DERIVED\\SECONDARY]",
		"(0028,0301) CS [YES]",
		"(0008,0064) CS [WSD]",
		"(0008,0070) LO [radgate]",
		"(0008,103e) LO [" + SCSeriesDescription + "]",
		"(0020,000d) UI [" + srcMeta.StudyInstanceUID + "]",
		"(0008,1155) UI [" + srcMeta.SOPInstanceUID + "]",
		"(0008,2112) SQ (Sequence with undefined length",
		"(0008,1110) SQ (Sequence with undefined length",
		"(0028,0004) CS [RGB]",
		"(0028,0002) US 3",
	} {
		require.Contains(t, d, want)
	}
	// The heatmap: the image holds colour, not only grey.
	require.True(t, hasColour(t, ds), "a marked SC shows the coloured overlay")
	iod, _ := testenv.Dciodvfy(t, "marked SC", out)
	require.Equal(t, "SCImage", iod)

	// The same result builds the same bytes.
	again, err := SecondaryCapture(src, in)
	require.NoError(t, err)
	require.Equal(t, out, again)
}

func TestSecondaryCaptureUnmarked(t *testing.T) {
	src := readTestdata(t, "cr-chest-mono1-10bit-explicit-le.dcm") // 440×440: scaled up
	in := testInput("sc-unmarked", 0.21, false)

	out, err := SecondaryCapture(src, in)
	require.NoError(t, err)
	ds := parse(t, out)
	require.False(t, hasColour(t, ds), "an unmarked SC is grey (with white text)")
	cols := ints(t, ds, tag.Columns)
	rows := ints(t, ds, tag.Rows)
	require.Equal(t, MinSCWidth, cols)
	require.Greater(t, rows, MinSCWidth, "the radiograph, scaled to 1024, plus the text band")
	require.Contains(t, str(t, ds, tag.DerivationDescription), "Windowed source image")
	testenv.Dciodvfy(t, "unmarked SC (image)", out)

	in.SCWhenUnmarked = SCUnmarkedText
	out, err = SecondaryCapture(src, in)
	require.NoError(t, err)
	ds = parse(t, out)
	require.Less(t, ints(t, ds, tag.Rows), 400, "text only: the band alone")
	Dump(t, "dcmdump", out)
	testenv.Dciodvfy(t, "unmarked SC (text)", out)

	in.SCWhenUnmarked = SCUnmarkedNone
	_, err = SecondaryCapture(src, in)
	require.ErrorIs(t, err, ErrNoSecondaryCapture)
}

// TestSecondaryCaptureEverySource builds an SR, an Encapsulated PDF and a
// Parametric Map from every test source, and an SC from every one the
// decoder reads; dcmdump reads them and dciodvfy finds no error in any,
// although 13 of the 15 sources have errors of their own (Patient's Age
// "62", dates with dots, missing Type 2 attributes).
func TestSecondaryCaptureEverySource(t *testing.T) {
	files, err := filepath.Glob(testenv.Testdata("cxr-dicom", "*.dcm"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			meta, err := inference.ReadHeader(src)
			require.NoError(t, err)
			in := testInput("every-"+filepath.Base(f), 0.4, false)
			out, err := StructuredReport(src, in)
			require.NoError(t, err)
			require.Contains(t, Dump(t, "dcmdump", out), meta.SOPInstanceUID)
			testenv.Dciodvfy(t, "SR", out)
			out, err = EncapsulatedPDF(src, in, []byte("%PDF-1.4\n%%EOF\n"))
			require.NoError(t, err)
			testenv.Dciodvfy(t, "Encapsulated PDF", out)
			marked := in
			marked.Marked, marked.CAM = true, testCAM(meta.Columns, meta.Rows)
			out, err = ParametricMap(src, marked)
			require.NoError(t, err)
			testenv.Dciodvfy(t, "Parametric Map", out)
			if !inference.Decodable(meta.TransferSyntaxUID) {
				return
			}
			out, err = SecondaryCapture(src, in)
			require.NoError(t, err)
			require.Contains(t, Dump(t, "dcmdump", out), "(0028,0301) CS [YES]")
			testenv.Dciodvfy(t, "SC", out)
		})
	}
}

func TestBadInput(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	for name, mod := range map[string]func(*Input){
		"no id":             func(in *Input) { in.ResultID = "" },
		"probability":       func(in *Input) { in.Probability = 1.5 },
		"tier":              func(in *Input) { in.Tier = "Very high" },
		"no disclaimer":     func(in *Input) { in.Engine.Disclaimer = " " },
		"marked, no PNG":    func(in *Input) { in.Marked = true },
		"marked, bad PNG":   func(in *Input) { in.Marked, in.HeatmapPNG = true, []byte("not a png") },
		"sc_when_unmarked":  func(in *Input) { in.SCWhenUnmarked = "maybe" },
		"unknown code sys.": func(in *Input) { in.Engine.Finding.System = "urn:example" },
	} {
		t.Run(name, func(t *testing.T) {
			in := testInput("bad", 0.6, false)
			mod(&in)
			_, err := SecondaryCapture(src, in)
			require.ErrorIs(t, err, ErrInput)
		})
	}
	_, err := SecondaryCapture([]byte("nope"), testInput("bad", 0.6, false))
	require.ErrorIs(t, err, ErrSource)
	_, err = StructuredReport(src[:300], testInput("bad", 0.6, false))
	require.ErrorIs(t, err, ErrSource)
}

func TestStructuredReport(t *testing.T) {
	src := readTestdata(t, "cr-chest-pa-jpeg-baseline.dcm")
	meta, err := inference.ReadHeader(src)
	require.NoError(t, err)
	in := testInput("sr-1", 0.873, true)
	out, err := StructuredReport(src, in)
	require.NoError(t, err)

	ds := parse(t, out)
	u := UIDsFor("sr-1", 1)
	require.Equal(t, SOPClassComprehensive3DSR, str(t, ds, tag.SOPClassUID))
	require.Equal(t, u.SR, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, "COMPLETE", str(t, ds, tag.CompletionFlag))
	require.Equal(t, "UNVERIFIED", str(t, ds, tag.VerificationFlag))
	require.Equal(t, meta.StudyInstanceUID, str(t, ds, tag.StudyInstanceUID))

	d := Dump(t, "dsrdump", out, "+Pl", "+Pc", "+Pu")
	for _, want := range []string{
		"Comprehensive 3D SR Document",
		"UNVERIFIED",
		`<CONTAINER:(126000,DCM,"Imaging Measurement Report")=SEPARATE>`,
		`<contains NUM:(confidence,99RADGATE,"AI confidence")="87.3" (%,UCUM,"percent")>`,
		`<has concept mod TEXT:(111001,DCM,"Algorithm Name")="Chest radiograph pneumonia finding, DenseNet-121 + CAM">`,
		`<has concept mod TEXT:(111003,DCM,"Algorithm Version")="1.0.0">`,
		`<contains CODE:(121071,DCM,"Finding")=(233604007,SCT,"Pneumonia")>`,
		`<contains CODE:(confidence-tier,99RADGATE,"AI confidence tier")=(high,99RADGATE,"High")>`,
		`<has obs context TEXT:(121014,DCM,"Device Observer Manufacturer")="radgate">`,
		meta.SOPInstanceUID,
	} {
		require.Contains(t, d, want)
	}
	// The disclaimer, word for word.
	require.Contains(t, d, testDisclaimer)
	require.Contains(t, d, DisclaimerHeadline)
	iod, _ := testenv.Dciodvfy(t, "SR", out)
	require.Equal(t, "Comprehensive3DSR", iod)
}

func ints(t testing.TB, ds dicom.Dataset, tg tag.Tag) int {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err)
	return dicom.MustGetInts(e.Value)[0]
}

// SCImage returns the SC's pixels as an image.
func SCImage(t testing.TB, ds dicom.Dataset) *image.RGBA {
	t.Helper()
	w, h := ints(t, ds, tag.Columns), ints(t, ds, tag.Rows)
	e, err := ds.FindElementByTag(tag.PixelData)
	require.NoError(t, err)
	info := dicom.MustGetPixelDataInfo(e.Value)
	require.NotEmpty(t, info.Frames)
	nd := info.Frames[0].NativeData
	require.Equal(t, 3, nd.SamplesPerPixel())
	raw, ok := nd.RawDataSlice().([]uint8)
	require.True(t, ok, "8-bit samples")
	require.GreaterOrEqual(t, len(raw), w*h*3)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = raw[3*i], raw[3*i+1], raw[3*i+2], 255
	}
	return out
}

func hasColour(t testing.TB, ds dicom.Dataset) bool {
	img := SCImage(t, ds)
	for i := 0; i < len(img.Pix); i += 4 {
		r, g, b := int(img.Pix[i]), int(img.Pix[i+1]), int(img.Pix[i+2])
		if abs(r-g) > 40 || abs(g-b) > 40 {
			// yellow disclaimer text is coloured too: look above the band only
			y := (i / 4) / img.Bounds().Dx()
			if y < img.Bounds().Dy()*2/3 {
				return true
			}
		}
	}
	return false
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestWritePreviewPNG writes the SC's pixels as PNGs — to
// $RADGATE_SC_PREVIEW_DIR when set, for a person to look at — and checks
// that each is the picture with the text band below it.
func TestWritePreviewPNG(t *testing.T) {
	dir := os.Getenv("RADGATE_SC_PREVIEW_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	in := testInput("preview", 0.873, true)
	in.HeatmapPNG = Heatmap(t, src)
	out, err := SecondaryCapture(src, in)
	require.NoError(t, err)
	write := func(name string, sc []byte) {
		f, err := os.Create(filepath.Join(dir, name))
		require.NoError(t, err)
		defer f.Close()
		img := SCImage(t, parse(t, sc))
		require.NoError(t, png.Encode(f, img))
		b := img.Bounds()
		require.Greater(t, b.Dy(), b.Dx()/2, "%s: a picture, not only text", name)
		// The last rows are the text band: black with some lit text pixels.
		lit := 0
		for y := b.Max.Y - b.Dy()/10; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if r, _, _, _ := img.At(x, y).RGBA(); r > 0x8000 {
					lit++
				}
			}
		}
		require.Positive(t, lit, "%s: burned-in text at the bottom", name)
	}
	write("sc-marked.png", out)
	small := readTestdata(t, "cr-chest-mono1-10bit-explicit-le.dcm")
	out, err = SecondaryCapture(small, testInput("preview-unmarked", 0.214, false))
	require.NoError(t, err)
	write("sc-unmarked.png", out)
}

func TestEncapsulatedPDF(t *testing.T) {
	src := readTestdata(t, "dx-chest-implicit-le-8bit.dcm")
	doc := []byte("%PDF-1.4\n% radgate test\n%%EOF\n") // odd length: padded
	out, err := EncapsulatedPDF(src, testInput("pdf-1", 0.5, true), doc)
	require.NoError(t, err)
	ds := parse(t, out)
	require.Equal(t, SOPClassEncapsulatedPDF, str(t, ds, tag.SOPClassUID))
	require.Equal(t, UIDsFor("pdf-1", 1).PDF, str(t, ds, tag.SOPInstanceUID))
	require.Equal(t, "application/pdf", str(t, ds, tag.MIMETypeOfEncapsulatedDocument))
	e, err := ds.FindElementByTag(tag.EncapsulatedDocument)
	require.NoError(t, err)
	require.Equal(t, doc, bytes.TrimRight(e.Value.GetValue().([]byte), "\x00"))
	d := Dump(t, "dcmdump", out)
	require.Contains(t, d, "EncapsulatedPDFStorage")
	require.Contains(t, d, "(0042,0012) LO [application/pdf]")
	iod, _ := testenv.Dciodvfy(t, "Encapsulated PDF", out)
	require.Equal(t, "EncapsulatedPDF", iod)

	_, err = EncapsulatedPDF(src, testInput("pdf-1", 0.5, true), []byte("<html>"))
	require.ErrorIs(t, err, ErrInput)
}
