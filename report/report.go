// Package report writes the human-readable form of a scored result: a
// one-page PDF with the radiograph (and the AI heatmap when the region was
// marked), the confidence and its tier, the conclusion sentence the FHIR
// DiagnosticReport carries, the engine's disclaimer word for word, the
// algorithm, how many of the study's images were scored and which were not
// (with the reason), and the order and study identifiers.
//
// The PDF names no patient: radgate carries references and identifiers only.
// The same input always gives the same bytes (the document dates are the
// scoring time, catalogs are sorted, fonts are embedded from Go's own
// gofont), so a redelivered result presents the same document.
package report

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// Title is the report's heading.
const Title = "AI decision support — pneumonia findings (not a diagnosis)"

// TierLegend explains the tiers and when the region is marked.
const TierLegend = "Tiers: Low < 30 %, Mid 30–65 %, High ≥ 65 %. The region of interest is marked only when the confidence is ≥ 50 %."

// ErrInvalidInput is wrapped by PDF's errors about its input.
var ErrInvalidInput = errors.New("invalid report input")

// Input is what a report is made of.
type Input struct {
	// Result is the scored result (Outcome must be scored). Its Preview
	// (a JPEG, embedded as it is) is the picture: the class activation map
	// over the windowed radiograph when Marked, the radiograph when not.
	// A marked result without a Preview shows its HeatmapPNG, scaled.
	Result radgate.Result
	// Thumbnail, optional, is a PNG of the radiograph, shown when the
	// result is not marked and has no Preview. Without either the picture
	// is a box saying there is no image.
	Thumbnail []byte
}

// Page geometry, in mm (A4 portrait).
const (
	pageW    = 210.0
	margin   = 15.0
	contentW = pageW - 2*margin
	imgBox   = 92.0 // the picture's square
	lineH    = 5.0
)

const fontFamily = "go"

// PDF writes the one-page report of in.Result. Errors wrap ErrInvalidInput
// when the input cannot make a report (a result that was not scored, an
// unknown tier, a marked result without a heatmap, an image that is not a
// PNG).
func PDF(in Input) ([]byte, error) {
	r := in.Result
	bad := func(format string, args ...any) error {
		return fmt.Errorf("report for result %q: %w: %s", r.ID, ErrInvalidInput, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(r.ID) == "" {
		return nil, bad("Result.ID: empty")
	}
	if r.Outcome != radgate.OutcomeScored {
		return nil, bad("Result.Outcome: %q: only a scored result has a report", r.Outcome)
	}
	if strings.TrimSpace(r.Engine.Disclaimer) == "" {
		return nil, bad("Result.Engine.Disclaimer: empty (every result carries the disclaimer)")
	}
	tier, ok := fhir.TierCoding(r.Tier)
	if !ok {
		return nil, bad("Result.Tier: %q is not Low, Mid or High", r.Tier)
	}
	engine := fhir.Engine{ID: r.Engine.ID, Name: r.Engine.Name, Version: r.Engine.Version, Disclaimer: r.Engine.Disclaimer,
		Finding: fhir.Coding{System: r.Engine.Finding.System, Code: r.Engine.Finding.Code, Display: r.Engine.Finding.Display}}
	conclusion, err := fhir.Conclusion(fhir.ResultInput{Engine: engine, Probability: r.Probability, Tier: r.Tier, Marked: r.Marked})
	if err != nil {
		return nil, fmt.Errorf("report for result %q: %w: %w", r.ID, ErrInvalidInput, err)
	}

	var picture []byte
	var caption string
	switch {
	case r.Marked:
		caption = "AI heatmap (class activation map) over the radiograph: the marked region is what drove the score."
		switch {
		case len(r.Preview) > 0:
			if picture, err = checkJPEG(r.Preview); err != nil {
				return nil, bad("Result.Preview: %v", err)
			}
		case len(r.HeatmapPNG) > 0:
			if picture, err = normalisePNG(r.HeatmapPNG); err != nil {
				return nil, bad("Result.HeatmapPNG: %v", err)
			}
		default:
			return nil, bad("Result.Preview and HeatmapPNG: empty, but the result is marked")
		}
	case len(r.Preview) > 0:
		if picture, err = checkJPEG(r.Preview); err != nil {
			return nil, bad("Result.Preview: %v", err)
		}
		caption = "Radiograph as scored. No region is marked (confidence below 50 %)."
	case len(in.Thumbnail) > 0:
		if picture, err = normalisePNG(in.Thumbnail); err != nil {
			return nil, bad("Thumbnail: %v", err)
		}
		caption = "Radiograph as scored. No region is marked (confidence below 50 %)."
	default:
		caption = "No region is marked (confidence below 50 %)."
	}

	scored := r.ScoredAt.UTC()
	if r.ScoredAt.IsZero() {
		// A fixed date keeps the output a function of the input.
		scored = time.Unix(0, 0).UTC()
	}

	f := fpdf.New("P", "mm", "A4", "")
	f.SetCreationDate(scored)
	f.SetModificationDate(scored)
	f.SetCatalogSort(true)
	f.SetCompression(true)
	f.SetProducer("radgate", false)
	f.SetCreator("radgate", false)
	f.SetTitle(Title, true)
	f.SetSubject("AI result "+r.ID, true)
	f.SetLang("en")
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(false, margin)
	f.AddUTF8FontFromBytes(fontFamily, "", goregular.TTF)
	f.AddUTF8FontFromBytes(fontFamily, "B", gobold.TTF)
	f.AddPage()

	label := r.Engine.Name
	if label == "" {
		label = r.Engine.ID
	}

	// Heading.
	f.SetFont(fontFamily, "B", 15)
	f.MultiCell(contentW, 7, Title, "", "L", false)
	f.SetFont(fontFamily, "", 9.5)
	f.SetTextColor(90, 90, 90)
	f.MultiCell(contentW, lineH, fmt.Sprintf("Algorithm %s, version %s. Scored %s.", label, orDash(r.Engine.Version), formatTime(scored)), "", "L", false)
	f.SetTextColor(0, 0, 0)
	f.Ln(3)

	// The picture, left.
	top := f.GetY()
	drawPicture(f, picture, margin, top)
	f.SetXY(margin, top+imgBox+1.5)
	f.SetFont(fontFamily, "", 8.5)
	f.MultiCell(imgBox, 4, caption, "", "L", false)
	belowPicture := f.GetY()

	// The score, right.
	x := margin + imgBox + 8
	w := pageW - margin - x
	f.SetXY(x, top)
	f.SetFont(fontFamily, "", 10)
	f.CellFormat(w, lineH, findingLabel(r.Engine.Finding)+" — AI confidence", "", 2, "L", false, 0, "")
	f.SetFont(fontFamily, "B", 30)
	f.CellFormat(w, 14, fhir.ConfidencePercent(r.Probability)+" %", "", 2, "L", false, 0, "")
	cr, cg, cb := tierColour(tier.Code)
	f.SetFillColor(cr, cg, cb)
	f.SetTextColor(255, 255, 255)
	f.SetFont(fontFamily, "B", 12)
	f.CellFormat(36, 8, "Tier: "+tier.Display, "", 2, "C", true, 0, "")
	f.SetTextColor(0, 0, 0)
	f.Ln(2)
	f.SetX(x)
	f.SetFont(fontFamily, "", 10)
	marked := "Region of interest: not marked"
	if r.Marked {
		marked = "Region of interest: marked on the heatmap"
	}
	f.MultiCell(w, lineH, marked, "", "L", false)
	f.Ln(1)
	f.SetX(x)
	f.SetFont(fontFamily, "", 8.5)
	f.SetTextColor(90, 90, 90)
	f.MultiCell(w, 4, TierLegend, "", "L", false)
	f.SetTextColor(0, 0, 0)
	f.Ln(3)
	f.SetX(x)
	f.SetFont(fontFamily, "B", 10)
	f.CellFormat(w, lineH, "Conclusion", "", 2, "L", false, 0, "")
	f.SetFont(fontFamily, "", 10)
	f.MultiCell(w, lineH, conclusion, "", "L", false)

	f.SetXY(margin, max(belowPicture, f.GetY())+5)
	// The caveats (Result.Caveats: "patient age unknown: …"), full width,
	// boxed, before the disclaimer: how far the score was checked.
	if len(r.Caveats) > 0 {
		f.SetFont(fontFamily, "B", 10)
		f.CellFormat(contentW, 6, "Caveat", "", 1, "L", false, 0, "")
		f.SetFont(fontFamily, "", 10)
		f.SetFillColor(253, 226, 222)
		f.SetDrawColor(190, 70, 50)
		f.SetCellMargin(2.5)
		for _, c := range r.Caveats {
			f.MultiCell(contentW, lineH, c, "1", "L", true)
		}
		f.SetCellMargin(1)
		f.SetDrawColor(0, 0, 0)
		f.Ln(3)
	}

	// The disclaimer, full width, boxed.
	f.SetFont(fontFamily, "B", 10)
	f.CellFormat(contentW, 6, "Disclaimer", "", 1, "L", false, 0, "")
	f.SetFont(fontFamily, "", 10)
	f.SetFillColor(255, 246, 214)
	f.SetDrawColor(200, 160, 60)
	f.SetCellMargin(2.5)
	f.MultiCell(contentW, lineH, r.Engine.Disclaimer, "1", "L", true)
	f.SetCellMargin(1)
	f.SetDrawColor(0, 0, 0)
	f.Ln(5)

	// The images the engine was offered.
	if lines := ImageLines(r.Images, maxSkippedLines); len(lines) > 0 {
		f.SetFont(fontFamily, "B", 10)
		f.CellFormat(contentW, 6, "Images", "", 1, "L", false, 0, "")
		f.SetFont(fontFamily, "", 8.5)
		for _, l := range lines {
			f.MultiCell(contentW, 4.6, l, "", "L", false)
		}
		f.Ln(3)
	}

	// Identifiers.
	f.SetFont(fontFamily, "B", 10)
	f.CellFormat(contentW, 6, "Order, study and result", "", 1, "L", false, 0, "")
	for _, row := range identifierRows(r) {
		f.SetFont(fontFamily, "", 8.5)
		f.SetTextColor(90, 90, 90)
		f.CellFormat(45, 4.6, row[0], "", 0, "L", false, 0, "")
		f.SetTextColor(0, 0, 0)
		f.MultiCell(contentW-45, 4.6, row[1], "", "L", false)
	}

	// Footer.
	f.SetXY(margin, 297-margin-4)
	f.SetFont(fontFamily, "", 7.5)
	f.SetTextColor(120, 120, 120)
	f.CellFormat(contentW, 4, "radgate AI result "+r.ID+". Decision support only: not a diagnosis. No patient data is printed on this page.", "T", 0, "L", false, 0, "")

	if f.PageCount() != 1 {
		return nil, bad("the report does not fit on one page (%d pages): a value is too long", f.PageCount())
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return nil, fmt.Errorf("report for result %q: writing the PDF: %w", r.ID, err)
	}
	return buf.Bytes(), nil
}

// drawPicture draws the (normalised) PNG fitted into the square at x, y, or
// a box saying there is no image.
func drawPicture(f *fpdf.Fpdf, picture []byte, x, y float64) {
	f.SetDrawColor(160, 160, 160)
	f.SetFillColor(20, 20, 20)
	if picture == nil {
		f.SetFillColor(240, 240, 240)
		f.Rect(x, y, imgBox, imgBox, "FD")
		f.SetXY(x, y+imgBox/2-4)
		f.SetFont(fontFamily, "", 11)
		f.SetTextColor(100, 100, 100)
		f.CellFormat(imgBox, 8, "No image", "", 2, "C", false, 0, "")
		f.SetTextColor(0, 0, 0)
		f.SetDrawColor(0, 0, 0)
		return
	}
	f.Rect(x, y, imgBox, imgBox, "FD")
	opt := fpdf.ImageOptions{ImageType: "JPG"}
	info := f.RegisterImageOptionsReader("picture", opt, bytes.NewReader(picture))
	if info == nil || f.Err() {
		return
	}
	iw, ih := info.Width(), info.Height()
	w, h := imgBox, imgBox
	if iw > ih {
		h = imgBox * ih / iw
	} else {
		w = imgBox * iw / ih
	}
	f.ImageOptions("picture", x+(imgBox-w)/2, y+(imgBox-h)/2, w, h, false, opt, 0, "")
	f.SetDrawColor(0, 0, 0)
}

// maxPictureEdge bounds the picture's long edge in pixels: about 300 dpi
// over the printed square, so the page stays sharp on paper while the PDF
// stays small enough to travel in an HL7 ED segment or a FHIR attachment.
const maxPictureEdge = 1024

// checkJPEG returns b when it is a baseline JPEG of a sane size, which
// fpdf embeds as it is (no decoding, no re-encoding): the preview the
// inference stage drew.
func checkJPEG(b []byte) ([]byte, error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a JPEG: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || max(cfg.Width, cfg.Height) > 4*maxPictureEdge {
		return nil, fmt.Errorf("a %d×%d JPEG is not a picture for the page", cfg.Width, cfg.Height)
	}
	return b, nil
}

// normalisePNG decodes a PNG, scales it down to maxPictureEdge and writes
// it as a baseline JPEG (quality 90, opaque on black): fpdf embeds JPEG as
// it is, and a radiograph with its heatmap compresses ten times better as a
// JPEG than as a PNG.
func normalisePNG(b []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a PNG: %w", err)
	}
	out := shrink(img, maxPictureEdge)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 90}); err != nil {
		return nil, fmt.Errorf("encoding the picture: %w", err)
	}
	return buf.Bytes(), nil
}

// shrink returns img as RGBA on black, scaled by area averaging so that its
// long edge is at most maxEdge: each output pixel is the mean of the source
// pixels whose centres fall in it (exact for whole-number ratios, like the
// usual 2048 → 1024). A general-purpose kernel scaler took 300 ms here.
func shrink(img image.Image, maxEdge int) *image.RGBA {
	r := img.Bounds()
	W, H := r.Dx(), r.Dy()
	src, ok := img.(*image.RGBA)
	if !ok || r.Min != (image.Point{}) {
		src = image.NewRGBA(image.Rect(0, 0, W, H))
		draw.Draw(src, src.Bounds(), image.Black, image.Point{}, draw.Src)
		draw.Draw(src, src.Bounds(), img, r.Min, draw.Over)
	}
	w, h := W, H
	if long := max(W, H); long > maxEdge {
		w, h = max(1, W*maxEdge/long), max(1, H*maxEdge/long)
	}
	if w == W && h == H {
		return src
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	acc := make([]uint32, 4*w)
	x0 := make([]int, w+1)
	for x := 0; x <= w; x++ {
		x0[x] = x * W / w
	}
	for y := 0; y < h; y++ {
		clear(acc)
		rows := 0
		for sy := y * H / h; sy < (y+1)*H/h; sy++ {
			row := src.Pix[sy*src.Stride:]
			for x := 0; x < w; x++ {
				for sx := x0[x]; sx < x0[x+1]; sx++ {
					p := row[4*sx : 4*sx+4]
					a := acc[4*x : 4*x+4]
					a[0] += uint32(p[0])
					a[1] += uint32(p[1])
					a[2] += uint32(p[2])
					a[3] += uint32(p[3])
				}
			}
			rows++
		}
		for x := 0; x < w; x++ {
			n := uint32(rows * (x0[x+1] - x0[x]))
			if n == 0 {
				continue
			}
			o := out.Pix[y*out.Stride+4*x:]
			for c := 0; c < 4; c++ {
				o[c] = uint8((acc[4*x+c] + n/2) / n)
			}
		}
	}
	return out
}

// maxSkippedLines bounds the skipped images the PDF lists one by one (the
// report is one page); the rest are counted.
const maxSkippedLines = 6

// ImageLines states how many of the images the engine was offered it
// scored, then one line per image it did not score, with the view and the
// reason:
//
//	Images scored: 1 of 2.
//	Not scored: 1.2.3.4 (view LL): lateral view; engine takes PA/AP
//
// At most maxSkipped skipped images are listed (0: all); beyond, one line
// counts the others. Identifiers only: SOP Instance UIDs, the view and the
// stage's reason, never patient data. No images (a result from before
// images were noted) give no lines. The PDF report and the SR
// (derived.StructuredReport) state the same lines.
func ImageLines(images []radgate.ImageNote, maxSkipped int) []string {
	if len(images) == 0 {
		return nil
	}
	scored := radgate.ScoredImages(images)
	out := []string{fmt.Sprintf("Images scored: %d of %d.", scored, len(images))}
	listed := 0
	for _, im := range images {
		if im.Scored {
			continue
		}
		if maxSkipped > 0 && listed == maxSkipped {
			out = append(out, fmt.Sprintf("… and %d more images not scored.", len(images)-scored-listed))
			break
		}
		listed++
		out = append(out, SkippedLine(im))
	}
	return out
}

// SkippedLine is the line ImageLines writes for an image not scored.
func SkippedLine(im radgate.ImageNote) string { return "Not scored: " + im.Skipped() }

// identifierRows lists what identifies the order, the study and the result.
func identifierRows(r radgate.Result) [][2]string {
	var rows [][2]string
	add := func(k, v string) {
		if strings.TrimSpace(v) != "" {
			rows = append(rows, [2]string{k, v})
		}
	}
	o := r.Order
	if a := o.Accession; a != nil && a.Value != "" {
		v := a.Value
		if a.System != "" {
			v += "  (" + a.System + ")"
		}
		add("Accession number", v)
	}
	add("ServiceRequest", refString(o.ServiceRequest))
	add("ImagingStudy", refString(o.ImagingStudy))
	study := r.StudyInstanceUID
	if study == "" {
		study = o.StudyInstanceUID
	}
	add("Study Instance UID", radgate.StripUIDPrefix(study))
	add("Series Instance UID", r.SeriesInstanceUID)
	add("SOP Instance UID", r.SOPInstanceUID)
	add("Order id", o.ID)
	add("Result id", r.ID)
	if rev := r.EffectiveRevision(); rev > 1 {
		add("Result revision", fmt.Sprintf("%d (amends revision %d)", rev, rev-1))
	}
	engine := r.Engine.ID
	if r.Engine.Version != "" {
		engine += "@" + r.Engine.Version
	}
	add("Algorithm", strings.TrimSpace(r.Engine.Name+"  ("+engine+")"))
	add("Algorithm version", r.Engine.Version)
	if !r.ScoredAt.IsZero() {
		add("Scored at", formatTime(r.ScoredAt))
	}
	return rows
}

// refString writes a reference literally, or as system|value.
func refString(r *radgate.Reference) string {
	if r.IsZero() {
		return ""
	}
	if r.Reference != "" {
		return r.Reference
	}
	if r.Identifier.System != "" {
		return "identifier " + r.Identifier.System + "|" + r.Identifier.Value
	}
	return "identifier " + r.Identifier.Value
}

func findingLabel(c radgate.Coding) string {
	if c.Code == "" {
		c = radgate.Coding{Display: fhir.DefaultFinding.Display, Code: fhir.DefaultFinding.Code}
	}
	if c.Display != "" {
		return c.Display
	}
	return c.Code
}

func tierColour(code string) (r, g, b int) {
	switch code {
	case "high":
		return 176, 38, 38
	case "mid":
		return 201, 120, 20
	default:
		return 60, 120, 60
	}
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
