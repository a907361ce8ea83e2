package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/internal/testenv"
)

// -report.out DIR writes the test reports there (to look at them).
var outDir = flag.String("report.out", "", "write the generated PDFs to this folder")

const testDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not " +
	"determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

// radiograph draws a synthetic chest-like grey picture; with heat, a red
// blob over the right lower zone, as a CAM overlay would be.
func radiograph(t testing.TB, w, h int, heat bool) []byte {
	t.Helper()
	var img image.Image
	grey := func(x, y int) uint8 {
		fx, fy := float64(x)/float64(w)-0.5, float64(y)/float64(h)-0.5
		v := 200.0
		for _, cx := range []float64{-0.2, 0.2} { // the lungs are dark
			d := math.Hypot((fx-cx)/0.17, (fy-0.02)/0.36)
			if d < 1 {
				v -= 150 * (1 - d*d)
			}
		}
		return uint8(max(0, min(255, v)))
	}
	if heat {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g := float64(grey(x, y))
				fx, fy := float64(x)/float64(w)-0.3, float64(y)/float64(h)-0.65
				a := math.Max(0, 1-math.Hypot(fx, fy)/0.18) * 0.7
				m.Set(x, y, color.RGBA{uint8(g*(1-a) + 255*a), uint8(g * (1 - a)), uint8(g * (1 - a)), 255})
			}
		}
		img = m
	} else {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				m.SetGray(x, y, color.Gray{Y: grey(x, y)})
			}
		}
		img = m
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func testResult(t testing.TB, marked bool) radgate.Result {
	r := radgate.Result{
		ID: "r-7c1e9a0b42d5",
		Order: radgate.OrderStatus{
			ID:               "o-5d2e",
			Accession:        &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-PDF-0001"},
			StudyInstanceUID: "urn:oid:1.2.826.0.1.3680043.8.498.77",
			ServiceRequest:   &radgate.Reference{Reference: "ServiceRequest/sr-1"},
			ImagingStudy:     &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:dicom:uid", Value: "urn:oid:1.2.826.0.1.3680043.8.498.77"}},
			Patient:          &radgate.Reference{Reference: "Patient/p-1", Display: "Zyxwa Pdfpatient"},
		},
		Engine: radgate.EngineInfo{
			ID: "cxr-pneumonia-densenet121", Name: "CXR pneumonia DenseNet-121", Version: "1.0.0",
			Disclaimer: testDisclaimer,
			Finding:    radgate.Coding{System: "http://snomed.info/sct", Code: "233604007", Display: "Pneumonia"},
		},
		Outcome:           radgate.OutcomeScored,
		Probability:       0.2345,
		Tier:              "Low",
		SeriesInstanceUID: "1.2.826.0.1.3680043.8.498.77.1",
		SOPInstanceUID:    "1.2.826.0.1.3680043.8.498.77.1.1",
		ScoredAt:          time.Date(2026, 3, 4, 9, 30, 15, 0, time.UTC),
	}
	if marked {
		r.Probability, r.Tier, r.Marked = 0.8765, "High", true
		r.HeatmapPNG = radiograph(t, 224, 224, true)
	}
	return r
}

// poppler runs a poppler-utils tool, skipping (failing under the project's
// test command) when it is not installed.
func poppler(t *testing.T, tool string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		msg := tool + " is missing (install poppler-utils: testenv/setup.sh)"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	require.NoError(t, err, "%s: %s", tool, out)
	return string(out)
}

func writePDF(t *testing.T, name string, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	if *outDir != "" {
		dir = *outDir
	}
	p := filepath.Join(dir, name+".pdf")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

var spaces = regexp.MustCompile(`\s+`)

func TestPDFContent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     Input
		tier   string
		conf   string
		marked bool
	}{
		{"marked", Input{Result: testResult(t, true)}, "High", "87.7 %", true},
		{"thumbnail", Input{Result: testResult(t, false), Thumbnail: radiograph(t, 180, 220, false)}, "Low", "23.5 %", false},
		{"no image", Input{Result: testResult(t, false)}, "Low", "23.5 %", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := PDF(tc.in)
			require.NoError(t, err)
			require.True(t, bytes.HasPrefix(b, []byte("%PDF-")))
			file := writePDF(t, strings.ReplaceAll(tc.name, " ", "-"), b)

			info := poppler(t, "pdfinfo", file)
			require.Regexp(t, `(?m)^Pages:\s+1$`, info)
			require.Contains(t, info, Title, "the document title, UTF-8")

			text := poppler(t, "pdftotext", "-enc", "UTF-8", file, "-")
			flat := spaces.ReplaceAllString(text, " ")
			require.Contains(t, flat, Title, "— renders as itself")
			require.Contains(t, flat, tc.conf)
			require.Contains(t, flat, "Tier: "+tc.tier)
			require.Contains(t, flat, testDisclaimer, "the disclaimer, word for word")
			require.Contains(t, flat, "1.0.0")
			require.Contains(t, flat, "CXR pneumonia DenseNet-121")
			require.Contains(t, flat, "ACC-PDF-0001")
			require.Contains(t, flat, "1.2.826.0.1.3680043.8.498.77", "the study UID, without urn:oid:")
			require.Contains(t, flat, "1.2.826.0.1.3680043.8.498.77.1.1")
			require.Contains(t, flat, "ServiceRequest/sr-1")
			require.Contains(t, flat, "r-7c1e9a0b42d5")
			require.Contains(t, flat, "2026-03-04 09:30:15 UTC")
			require.Contains(t, flat, "High ≥ 65 %", "≥ renders as itself")
			require.Contains(t, flat, "Pneumonia: AI confidence "+strings.TrimSuffix(tc.conf, " %")+" % (tier "+tc.tier+")",
				"the FHIR conclusion sentence")
			require.NotContains(t, flat, "Zyxwa", "no patient name")
			require.NotContains(t, flat, "Patient/p-1", "no patient reference either")
			if tc.marked {
				require.Contains(t, flat, "marked on the attached heatmap")
				require.Contains(t, flat, "Region of interest: marked")
			} else {
				require.Contains(t, flat, "Region of interest: not marked")
			}
			if tc.name == "no image" {
				require.Contains(t, flat, "No image")
			}
		})
	}
}

func TestPDFDeterministic(t *testing.T) {
	in := Input{Result: testResult(t, true)}
	first, err := PDF(in)
	require.NoError(t, err)
	for range 5 {
		again, err := PDF(in)
		require.NoError(t, err)
		require.True(t, bytes.Equal(first, again), "the same input gives the same bytes")
	}
	in.Result.Probability = 0.91
	other, err := PDF(in)
	require.NoError(t, err)
	require.False(t, bytes.Equal(first, other), "another confidence, another document")
}

func TestPDFUnicodeInValues(t *testing.T) {
	r := testResult(t, false)
	r.Engine.Name = "Pneumonia µ-net — Zürich"
	r.Engine.Disclaimer = "Décision: aide seulement — pas un diagnostic (≥ 50 % ≠ malade)."
	b, err := PDF(Input{Result: r})
	require.NoError(t, err)
	text := poppler(t, "pdftotext", "-enc", "UTF-8", writePDF(t, "unicode", b), "-")
	flat := spaces.ReplaceAllString(text, " ")
	require.Contains(t, flat, "Pneumonia µ-net — Zürich")
	require.Contains(t, flat, r.Engine.Disclaimer)
}

func TestPDFBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(in *Input)
		want string
	}{
		{"not scored", func(in *Input) { in.Result.Outcome = radgate.OutcomeNotApplicable }, `Result.Outcome: "not-applicable"`},
		{"no id", func(in *Input) { in.Result.ID = "" }, "Result.ID: empty"},
		{"tier", func(in *Input) { in.Result.Tier = "Extreme" }, `"Extreme" is not Low, Mid or High`},
		{"probability", func(in *Input) { in.Result.Probability = 1.5 }, "1.5 is outside 0..1"},
		{"no disclaimer", func(in *Input) { in.Result.Engine.Disclaimer = " " }, "Disclaimer: empty"},
		{"marked without heatmap", func(in *Input) { in.Result.Marked, in.Result.HeatmapPNG = true, nil }, "HeatmapPNG: empty"},
		{"heatmap not a PNG", func(in *Input) { in.Result.Marked, in.Result.HeatmapPNG = true, []byte("GIF89a") }, "HeatmapPNG: not a PNG"},
		{"thumbnail not a PNG", func(in *Input) { in.Thumbnail = []byte{0xff, 0xd8} }, "Thumbnail: not a PNG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Result: testResult(t, false)}
			tc.edit(&in)
			_, err := PDF(in)
			require.ErrorIs(t, err, ErrInvalidInput)
			require.ErrorContains(t, err, tc.want)
			if in.Result.ID != "" {
				require.ErrorContains(t, err, in.Result.ID, "names the result")
			}
		})
	}
}

func TestPDF16BitThumbnail(t *testing.T) {
	img := image.NewGray16(image.Rect(0, 0, 64, 80))
	for y := range 80 {
		for x := range 64 {
			img.SetGray16(x, y, color.Gray16{Y: uint16(x * y * 12)})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	b, err := PDF(Input{Result: testResult(t, false), Thumbnail: buf.Bytes()})
	require.NoError(t, err, "fpdf reads no 16-bit PNG: it is converted first")
	require.True(t, bytes.HasPrefix(b, []byte("%PDF-")))
}

// The report states how many images were scored and lists the skipped ones
// with their view and reason; a long list is cut to one page. A result
// without image notes has no such section.
func TestPDFImages(t *testing.T) {
	const study = "1.2.826.0.1.3680043.8.498.77"
	r := testResult(t, false)
	r.Revision = 2
	r.Images = []radgate.ImageNote{
		{SeriesInstanceUID: study + ".1", SOPInstanceUID: study + ".1.1", View: "PA", Scored: true},
		{SeriesInstanceUID: study + ".2", SOPInstanceUID: study + ".2.1", View: "LL", Reason: "lateral view; engine takes PA/AP"},
		{SeriesInstanceUID: study + ".3", SOPInstanceUID: study + ".3.1", Reason: "matrix 200×200 below the engine's 224"},
	}
	b, err := PDF(Input{Result: r})
	require.NoError(t, err)
	file := writePDF(t, "images", b)
	require.Regexp(t, `(?m)^Pages:\s+1$`, poppler(t, "pdfinfo", file))
	flat := spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", file, "-"), " ")
	require.Contains(t, flat, "Images scored: 1 of 3.")
	require.Contains(t, flat, "Not scored: "+study+".2.1 (view LL): lateral view; engine takes PA/AP")
	require.Contains(t, flat, "Not scored: "+study+".3.1: matrix 200×200 below the engine's 224")
	require.NotContains(t, flat, "Not scored: "+study+".1.1")
	require.Contains(t, flat, "Result revision 2 (amends revision 1)")
	require.NotContains(t, flat, "Zyxwa", "no patient name")

	for i := range 10 {
		r.Images = append(r.Images, radgate.ImageNote{SOPInstanceUID: fmt.Sprintf("%s.9.%d", study, i), View: "LL", Reason: "lateral view; engine takes PA/AP"})
	}
	b, err = PDF(Input{Result: r})
	require.NoError(t, err, "a long list still fits on one page")
	flat = spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", writePDF(t, "many-images", b), "-"), " ")
	require.Contains(t, flat, "Images scored: 1 of 13.")
	require.Contains(t, flat, "… and 6 more images not scored.")

	r.Images, r.Revision = nil, 0
	b, err = PDF(Input{Result: r})
	require.NoError(t, err)
	flat = spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", writePDF(t, "no-images", b), "-"), " ")
	require.NotContains(t, flat, "Images scored")
	require.NotContains(t, flat, "Result revision")
}

// The preview the inference stage drew is the picture, embedded as it is:
// the page carries the JPEG's own bytes, for a marked result (the heatmap
// overlay, even beside a HeatmapPNG) and for one that is not (the
// radiograph), with the caption that says which.
func TestPDFEmbedsThePreview(t *testing.T) {
	preview := func(grey bool) []byte {
		var img image.Image = image.NewRGBA(image.Rect(0, 0, 320, 256))
		if grey {
			img = image.NewGray(image.Rect(0, 0, 320, 256))
		}
		var buf bytes.Buffer
		require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}))
		return buf.Bytes()
	}
	for _, marked := range []bool{true, false} {
		r := testResult(t, marked)
		r.Preview = preview(!marked)
		b, err := PDF(Input{Result: r})
		require.NoError(t, err)
		require.True(t, bytes.Contains(b, r.Preview), "the JPEG is embedded unchanged (marked %v)", marked)
		file := writePDF(t, fmt.Sprintf("preview-%v", marked), b)
		list := poppler(t, "pdfimages", "-list", file)
		require.Regexp(t, `\s320\s+256\s+(rgb|gray)\s.*\sjpeg\s`, list)
		flat := spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", file, "-"), " ")
		if marked {
			require.Contains(t, flat, "AI heatmap (class activation map)")
		} else {
			require.Contains(t, flat, "Radiograph as scored.")
		}
	}
	r := testResult(t, true)
	r.Preview = []byte("GIF89a")
	_, err := PDF(Input{Result: r})
	require.ErrorIs(t, err, ErrInvalidInput)
	require.ErrorContains(t, err, "Result.Preview: not a JPEG")
}

// A result scored with caveats (an unknown patient age) shows each in a
// box before the disclaimer, and still fits one page with a long image
// list.
func TestPDFCaveats(t *testing.T) {
	const caveat = "patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y (accepts.age_years); the result was not checked against it (no Patient's Age, and no Patient's Birth Date with a Study Date; the order gives none)"
	r := testResult(t, true)
	r.Caveats = []string{caveat}
	for i := range 13 {
		r.Images = append(r.Images, radgate.ImageNote{SOPInstanceUID: fmt.Sprintf("1.2.3.%d", i), View: "LL", Reason: "lateral view; engine takes PA/AP"})
	}
	b, err := PDF(Input{Result: r})
	require.NoError(t, err)
	file := writePDF(t, "caveats", b)
	require.Regexp(t, `(?m)^Pages:\s+1$`, poppler(t, "pdfinfo", file))
	flat := spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", file, "-"), " ")
	require.Contains(t, flat, "Caveat "+caveat)
	require.Less(t, strings.Index(flat, "Caveat"), strings.Index(flat, "Disclaimer"), "the caveat comes before the disclaimer")

	r.Caveats = nil
	b, err = PDF(Input{Result: r})
	require.NoError(t, err)
	require.NotContains(t, spaces.ReplaceAllString(poppler(t, "pdftotext", "-enc", "UTF-8", writePDF(t, "no-caveats", b), "-"), " "), "Caveat")
}
