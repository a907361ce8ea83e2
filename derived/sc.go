package derived

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/radgate/radgate/inference"
)

// ErrNoSecondaryCapture is returned by SecondaryCapture for a result below
// the marking threshold when Input.SCWhenUnmarked is SCUnmarkedNone.
var ErrNoSecondaryCapture = errors.New("derived: no Secondary Capture for an unmarked result (sc_when_unmarked: none)")

// Image geometry of the Secondary Capture.
const (
	// MinSCWidth: a narrower image is scaled up (bilinear) so that the
	// burned-in text stays legible when a viewer fits the image to the
	// screen.
	MinSCWidth = 1024
	// maxHeatmapEdge bounds the heatmap PNG accepted (inference renders at
	// most inference.MaxHeatmapEdge).
	maxHeatmapEdge = 4096
)

// SCSeriesDescription is the Series Description of the Secondary Capture.
const SCSeriesDescription = "AI pneumonia heatmap (not a diagnosis)"

// SecondaryCapture builds a Secondary Capture Image (SOP class
// 1.2.840.10008.5.1.4.1.1.7, single frame, RGB, 8 bits) for the result:
//
//   - marked: the heatmap PNG (the CAM overlay over the windowed
//     radiograph, inference.RenderHeatmap);
//   - not marked: the source decoded by inference.Decode (its PS3.3
//     grey-scale pipeline and windowing), downscaled like the heatmap to
//     inference.MaxHeatmapEdge, in grey; or text alone
//     (SCUnmarkedText); or nothing (SCUnmarkedNone: ErrNoSecondaryCapture).
//
// Below the image a black band carries the burned-in text: the finding with
// the confidence percentage and tier, the engine name and version,
// DisclaimerHeadline, and the engine's disclaimer word for word, wrapped.
// The band never covers the image. An image narrower than MinSCWidth is
// scaled up first.
//
// Single-frame Secondary Capture rather than Multi-frame True Color SC:
// every PACS viewer displays it, it needs no multi-frame functional groups,
// and a result is one picture.
//
// Attributes: Image Type DERIVED\SECONDARY, Burned In Annotation YES,
// Conversion Type WSD, Source Image Sequence and Referenced Study Sequence
// naming the source, patient and study attributes copied from it, Series
// Number SeriesNumberSC, Instance Number 1, Manufacturer "radgate", and
// UIDs from UIDsFor(in.ResultID, in.Revision).
func SecondaryCapture(src []byte, in Input) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	var (
		picture    *image.RGBA
		derivation string
	)
	switch {
	case in.Marked:
		if len(in.HeatmapPNG) == 0 {
			return nil, fmt.Errorf("%w: result %s is marked but carries no heatmap PNG", ErrInput, in.ResultID)
		}
		if picture, err = decodeHeatmap(in.HeatmapPNG); err != nil {
			return nil, fmt.Errorf("%w: result %s: %w", ErrInput, in.ResultID, err)
		}
		derivation = "AI class activation map (heatmap) over the windowed source image, with the result burned in"
	case in.SCWhenUnmarked == SCUnmarkedNone:
		return nil, ErrNoSecondaryCapture
	case in.SCWhenUnmarked == SCUnmarkedText:
		derivation = "AI result as burned-in text, no image"
	default:
		img, err := inference.Decode(src)
		if err != nil {
			return nil, fmt.Errorf("%w: decoding the pixel data: %w", ErrSource, err)
		}
		picture = greyRGBA(img)
		derivation = "Windowed source image (" + img.VOI + "), with the AI result burned in"
	}
	canvas, err := compose(picture, textLines(&in))
	if err != nil {
		return nil, err
	}
	w, h := canvas.Bounds().Dx(), canvas.Bounds().Dy()
	pix := make([]byte, 0, w*h*3+1)
	for y := range h {
		row := canvas.Pix[y*canvas.Stride : y*canvas.Stride+4*w]
		for x := 0; x < w; x++ {
			pix = append(pix, row[4*x], row[4*x+1], row[4*x+2])
		}
	}

	u := in.UIDs()
	b := &builder{}
	b.common(s, &in, SOPClassSecondaryCapture, u.SC, "OT", u.SCSeries, SeriesNumberSC, SCSeriesDescription)
	b.seriesLaterality(s)
	b.str(tag.ImageType, "CS", "DERIVED", "SECONDARY")
	b.str(tag.ConversionType, "CS", "WSD")
	b.str(tag.SecondaryCaptureDeviceManufacturer, "LO", Manufacturer)
	b.str(tag.SecondaryCaptureDeviceManufacturerModelName, "LO", in.engineName())
	b.str(tag.SecondaryCaptureDeviceSoftwareVersions, "LO", in.Engine.Version)
	b.str(tag.DerivationDescription, "ST", derivation)
	b.str(tag.PatientOrientation, "CS", "")
	b.str(tag.BurnedInAnnotation, "CS", "YES")
	ref := s.ref()
	ref.seq(tag.PurposeOfReferenceCodeSequence, code{"121322", "DCM", "Source image for image processing operation"}.item())
	b.seq(tag.SourceImageSequence, ref)
	b.ints(tag.SamplesPerPixel, "US", 3)
	b.str(tag.PhotometricInterpretation, "CS", "RGB")
	b.ints(tag.PlanarConfiguration, "US", 0)
	b.ints(tag.Rows, "US", h)
	b.ints(tag.Columns, "US", w)
	b.ints(tag.BitsAllocated, "US", 8)
	b.ints(tag.BitsStored, "US", 8)
	b.ints(tag.HighBit, "US", 7)
	b.ints(tag.PixelRepresentation, "US", 0)
	b.pixels(pix)
	return b.part10(SOPClassSecondaryCapture, u.SC)
}

// decodeHeatmap decodes the heatmap PNG into an RGBA image (alpha is
// ignored: RenderHeatmap's overlay is already blended).
func decodeHeatmap(p []byte) (*image.RGBA, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(p))
	if err != nil {
		return nil, fmt.Errorf("heatmap is not a PNG: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxHeatmapEdge || cfg.Height > maxHeatmapEdge {
		return nil, fmt.Errorf("heatmap PNG is %d×%d, outside 1..%d", cfg.Width, cfg.Height, maxHeatmapEdge)
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		return nil, fmt.Errorf("decoding the heatmap PNG: %w", err)
	}
	out := image.NewRGBA(image.Rect(0, 0, cfg.Width, cfg.Height))
	draw.Draw(out, out.Bounds(), image.Black, image.Point{}, draw.Src)
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Over)
	return out, nil
}

// greyRGBA turns the decoded radiograph into grey RGBA, downscaled (area
// averaging, as the heatmap is) so that its long edge is at most
// inference.MaxHeatmapEdge.
func greyRGBA(img *inference.Image) *image.RGBA {
	grey, ow, oh := greyScaled(img, inference.MaxHeatmapEdge)
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for i, g := range grey {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = g, g, g, 255
	}
	return out
}

// greyScaled is the decoded radiograph as 8-bit grey, downscaled by area
// averaging so that its long edge is at most maxEdge.
func greyScaled(img *inference.Image, maxEdge int) (grey []uint8, w, h int) {
	W, H := img.Width, img.Height
	w, h = W, H
	if long := max(W, H); maxEdge > 0 && long > maxEdge {
		s := float64(maxEdge) / float64(long)
		w, h = max(1, int(float64(W)*s+0.5)), max(1, int(float64(H)*s+0.5))
	}
	plane := img.Plane()
	if w != W || h != H {
		small := make([]float32, w*h)
		inference.Resize(plane, W, image.Rect(0, 0, W, H), small, w, h, true)
		plane = small
	}
	grey = make([]uint8, len(plane))
	for i, v := range plane {
		grey[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
	}
	return grey, w, h
}

// line is one paragraph of burned-in text.
type line struct {
	text string
	bold bool
	col  color.RGBA
}

var (
	white  = color.RGBA{255, 255, 255, 255}
	yellow = color.RGBA{255, 215, 64, 255}
)

func textLines(in *Input) []line {
	head := fmt.Sprintf("%s — AI confidence %s %% — tier %s", in.findingName(), in.ConfidencePercent(), in.Tier)
	if in.Marked {
		head += " — region of interest marked"
	} else {
		head += " — below the marking threshold, no region marked"
	}
	return []line{
		{head, true, white},
		{"Engine: " + in.engineLabel(), false, white},
		{DisclaimerHeadline, true, yellow},
		{in.Engine.Disclaimer, false, yellow},
	}
}

var (
	fontsOnce            sync.Once
	regularFont, boldFnt *opentype.Font
	fontsErr             error
)

func fonts() (*opentype.Font, *opentype.Font, error) {
	fontsOnce.Do(func() {
		if regularFont, fontsErr = opentype.Parse(goregular.TTF); fontsErr != nil {
			return
		}
		boldFnt, fontsErr = opentype.Parse(gobold.TTF)
	})
	return regularFont, boldFnt, fontsErr
}

// compose scales picture up to MinSCWidth when narrower and appends a
// black band holding the text, wrapped to the width. A nil picture gives
// the band alone, MinSCWidth wide.
func compose(picture *image.RGBA, lines []line) (*image.RGBA, error) {
	w, ph := MinSCWidth, 0
	if picture != nil {
		w, ph = picture.Bounds().Dx(), picture.Bounds().Dy()
		if w < MinSCWidth {
			ph = max(1, ph*MinSCWidth/w)
			w = MinSCWidth
		}
	}
	size := max(16.0, float64(w)/56)
	reg, bold, err := fonts()
	if err != nil {
		return nil, fmt.Errorf("derived: parsing the embedded Go fonts: %w", err)
	}
	opts := &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull}
	regFace, err := opentype.NewFace(reg, opts)
	if err != nil {
		return nil, fmt.Errorf("derived: font face: %w", err)
	}
	defer regFace.Close()
	boldFace, err := opentype.NewFace(bold, opts)
	if err != nil {
		return nil, fmt.Errorf("derived: font face: %w", err)
	}
	defer boldFace.Close()

	margin := int(size)
	lineH := int(size * 1.35)
	type placed struct {
		text string
		face font.Face
		col  color.RGBA
	}
	var rows []placed
	for _, l := range lines {
		face := regFace
		if l.bold {
			face = boldFace
		}
		for _, t := range wrap(face, l.text, w-2*margin) {
			rows = append(rows, placed{t, face, l.col})
		}
	}
	bandH := 2*margin + len(rows)*lineH
	canvas := image.NewRGBA(image.Rect(0, 0, w, ph+bandH))
	draw.Draw(canvas, canvas.Bounds(), image.Black, image.Point{}, draw.Src)
	if picture != nil {
		dst := image.Rect(0, 0, w, ph)
		if dst.Size() == picture.Bounds().Size() {
			draw.Draw(canvas, dst, picture, picture.Bounds().Min, draw.Src)
		} else {
			draw.BiLinear.Scale(canvas, dst, picture, picture.Bounds(), draw.Src, nil)
		}
	}
	for i, r := range rows {
		d := font.Drawer{
			Dst:  canvas,
			Src:  image.NewUniform(r.col),
			Face: r.face,
			Dot:  fixed.P(margin, ph+margin+i*lineH+int(size)),
		}
		d.DrawString(r.text)
	}
	return canvas, nil
}

// wrap breaks s into lines no wider than width (a single word wider than
// the line stays whole on its own line).
func wrap(face font.Face, s string, width int) []string {
	var out []string
	cur := ""
	for _, word := range strings.Fields(s) {
		try := word
		if cur != "" {
			try = cur + " " + word
		}
		if cur != "" && font.MeasureString(face, try).Ceil() > width {
			out = append(out, cur)
			cur = word
			continue
		}
		cur = try
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// pixels adds Pixel Data (OB) holding the interleaved RGB samples.
func (b *builder) pixels(p []byte) {
	if len(p)%2 == 1 {
		p = append(p, 0)
	}
	b.add(tag.PixelData, "OB", dicomPixelData(p), false)
}
