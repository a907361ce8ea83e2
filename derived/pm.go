package derived

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
)

// ErrNoParametricMap is returned by ParametricMap for a result without a
// class activation map (below the marking threshold, or from an engine
// that gives none): there is nothing to map.
var ErrNoParametricMap = errors.New("derived: no Parametric Map for a result without a class activation map")

// PMSeriesDescription is the Series Description of the Parametric Map.
const PMSeriesDescription = "AI pneumonia activation map (not a diagnosis)"

// pmMaxStored is the stored value of a CAM value of 1: the Real World Value
// Mapping maps 0..pmMaxStored linearly onto 0..1.
const pmMaxStored = 65535

// Concepts of the Parametric Map.
var (
	unitNoUnits     = code{"1", "UCUM", "no units"}
	purposeSource   = code{"121322", "DCM", "Source image for image processing operation"}
	quantityConcept = code{"246205007", "SCT", "Quantity"}
	quantityCAM     = code{"cam", schemeRadgate, "Class activation (relative to the map's maximum)"}
)

// ParametricMap builds a Parametric Map (SOP class
// 1.2.840.10008.5.1.4.1.1.30) of the result's class activation map, for a
// viewer to overlay on the source with adjustable opacity: one frame on the
// source's pixel grid (same Rows and Columns), 16-bit unsigned, with a Real
// World Value Mapping of 0..65535 onto 0..1 (the CAM normalised by its
// maximum, negative values as 0, upsampled bilinearly over the crop the
// model saw as inference.RenderHeatmap does; 0 outside it).
//
// Geometry: the source's Frame of Reference UID, Image Position and
// Orientation (Patient) and Pixel Spacing when it has them; a projection
// radiograph usually has none, so the map then gets its own Frame of
// Reference (from the result id), position 0\0\0, orientation 1\0\0\0\1\0,
// and the source's Pixel Spacing, Imager Pixel Spacing or 1\1 — the map is
// registered to the source by its pixel grid and the Derivation Image
// Sequence naming the source.
//
// Attributes: Image Type DERIVED\PRIMARY, Content Label CAM, Series Number
// SeriesNumberPM, Contributing Equipment naming the algorithm, patient and
// study attributes copied from the source (valid values only), UIDs from
// UIDsFor(in.ResultID, in.Revision). A result without in.CAM gives ErrNoParametricMap.
func ParametricMap(src []byte, in Input) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if in.CAM == nil {
		return nil, ErrNoParametricMap
	}
	s, err := readSource(src)
	if err != nil {
		return nil, err
	}
	meta, err := inference.ReadHeader(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	cols, rows := meta.Columns, meta.Rows
	if cols <= 0 || rows <= 0 || cols > 65535 || rows > 65535 {
		return nil, fmt.Errorf("%w: the source is %d×%d pixels", ErrSource, cols, rows)
	}
	pix, err := camPixels(in.CAM, cols, rows)
	if err != nil {
		return nil, fmt.Errorf("%w: result %s: %w", ErrInput, in.ResultID, err)
	}

	u := in.UIDs()
	b := &builder{}
	b.common(s, &in, SOPClassParametricMap, u.PM, "OT", u.PMSeries, SeriesNumberPM, PMSeriesDescription)
	b.seriesLaterality(s)
	b.enhancedEquipment(&in)

	// Frame of Reference: the source's, or one of the map's own.
	g := s.geometry
	if s.frameOfReference == "" || !g.positioned {
		g.frameOfReference = u.PMFrameOfReference
		g.position = []string{"0", "0", "0"}
		g.orientation = []string{"1", "0", "0", "0", "1", "0"}
	} else {
		g.frameOfReference = s.frameOfReference
	}
	b.str(tag.FrameOfReferenceUID, "UI", g.frameOfReference)
	b.str(tag.PositionReferenceIndicator, "LO", "")

	// Parametric Map Image and Image Pixel.
	b.str(tag.ImageType, "CS", imageType...)
	b.str(tag.ContentQualification, "CS", "PRODUCT")
	b.ints(tag.SamplesPerPixel, "US", 1)
	b.str(tag.PhotometricInterpretation, "CS", "MONOCHROME2")
	b.ints(tag.Rows, "US", rows)
	b.ints(tag.Columns, "US", cols)
	b.ints(tag.BitsAllocated, "US", 16)
	b.ints(tag.BitsStored, "US", 16)
	b.ints(tag.HighBit, "US", 15)
	b.ints(tag.PixelRepresentation, "US", 0)
	b.str(tag.PresentationLUTShape, "CS", "IDENTITY")
	b.str(tag.LossyImageCompression, "CS", "00")
	b.str(tag.BurnedInAnnotation, "CS", "NO")
	b.str(tag.RecognizableVisualFeatures, "CS", "NO")
	b.str(tag.ContentLabel, "CS", "CAM")
	b.str(tag.ContentDescription, "LO", "AI class activation map: "+in.findingName())
	b.str(tag.ContentCreatorName, "PN", "")

	// Multi-frame Functional Groups and Dimensions: one frame.
	b.str(tag.NumberOfFrames, "IS", "1")
	dimOrg := u.PMDimensions
	org := &builder{}
	org.str(tag.DimensionOrganizationUID, "UI", dimOrg)
	b.seq(tag.DimensionOrganizationSequence, org)
	b.str(tag.DimensionOrganizationType, "CS", "3D")
	idx := &builder{}
	idx.ints(tag.DimensionIndexPointer, "AT", int(tag.ImagePositionPatient.Group), int(tag.ImagePositionPatient.Element))
	idx.ints(tag.FunctionalGroupPointer, "AT", int(tag.PlanePositionSequence.Group), int(tag.PlanePositionSequence.Element))
	idx.str(tag.DimensionOrganizationUID, "UI", dimOrg)
	b.seq(tag.DimensionIndexSequence, idx)

	shared := &builder{}
	measures := &builder{}
	measures.str(tag.PixelSpacing, "DS", g.spacing...)
	measures.str(tag.SliceThickness, "DS", "1")
	shared.seq(tag.PixelMeasuresSequence, measures)
	orient := &builder{}
	orient.str(tag.ImageOrientationPatient, "DS", g.orientation...)
	shared.seq(tag.PlaneOrientationSequence, orient)
	deriv := &builder{}
	deriv.str(tag.DerivationDescription, "ST", "AI class activation map of "+in.engineLabel()+", normalised to its maximum, on the source's pixel grid")
	deriv.seq(tag.DerivationCodeSequence, pmDerivation.item())
	ref := s.ref()
	ref.seq(tag.PurposeOfReferenceCodeSequence, purposeSource.item())
	deriv.seq(tag.SourceImageSequence, ref)
	shared.seq(tag.DerivationImageSequence, deriv)
	rwv := &builder{}
	rwv.ints(tag.RealWorldValueFirstValueMapped, "US", 0)
	rwv.ints(tag.RealWorldValueLastValueMapped, "US", pmMaxStored)
	rwv.add(tag.RealWorldValueIntercept, "FD", []float64{0}, false)
	rwv.add(tag.RealWorldValueSlope, "FD", []float64{1.0 / pmMaxStored}, false)
	rwv.str(tag.LUTExplanation, "LO", "Class activation, relative to the map's maximum (0..1)")
	rwv.str(tag.LUTLabel, "SH", "CAM")
	rwv.seq(tag.MeasurementUnitsCodeSequence, unitNoUnits.item())
	q := &builder{}
	q.str(tag.ValueType, "CS", "CODE")
	q.seq(tag.ConceptNameCodeSequence, quantityConcept.item())
	q.seq(tag.ConceptCodeSequence, quantityCAM.item())
	rwv.seq(tag.QuantityDefinitionSequence, q)
	shared.seq(tag.RealWorldValueMappingSequence, rwv)
	ftype := &builder{}
	ftype.str(tag.FrameType, "CS", imageType...)
	shared.seq(tag.ParametricMapFrameTypeSequence, ftype)
	ident := &builder{}
	ident.str(tag.RescaleIntercept, "DS", "0")
	ident.str(tag.RescaleSlope, "DS", "1")
	ident.str(tag.RescaleType, "LO", "US")
	shared.seq(tag.PixelValueTransformationSequence, ident)
	b.seq(tag.SharedFunctionalGroupsSequence, shared)

	frame := &builder{}
	content := &builder{}
	content.ints(tag.DimensionIndexValues, "UL", 1)
	frame.seq(tag.FrameContentSequence, content)
	pos := &builder{}
	pos.str(tag.ImagePositionPatient, "DS", g.position...)
	frame.seq(tag.PlanePositionSequence, pos)
	b.seq(tag.PerFrameFunctionalGroupsSequence, frame)

	// Acquisition Context (Type 2, empty) and Common Instance Reference.
	b.seq(tag.AcquisitionContextSequence)
	inst := s.ref()
	series := &builder{}
	series.str(tag.SeriesInstanceUID, "UI", s.series)
	series.seq(tag.ReferencedInstanceSequence, inst)
	b.seq(tag.ReferencedSeriesSequence, series)

	b.add(tag.PixelData, "OW", dicomPixelData(pix), false)
	return b.part10(SOPClassParametricMap, u.PM)
}

// imageType is the Image Type and Frame Type of the map.
var imageType = []string{"DERIVED", "PRIMARY", "PROJECTION", "QUANTITY"}

// pmDerivation is the Derivation Code of the map.
var pmDerivation = code{"113061", "DCM", "Image Processing"}

// camPixels is the CAM normalised by its maximum and upsampled bilinearly
// (half-pixel centres, edges clamped) over its crop of the cols×rows grid,
// as little-endian 16-bit words (0..pmMaxStored; 0 outside the crop).
func camPixels(c *radgate.CAM, cols, rows int) ([]byte, error) {
	switch {
	case c.Width <= 0 || c.Height <= 0 || len(c.Values) != c.Width*c.Height:
		return nil, fmt.Errorf("CAM of %d values is not %d×%d", len(c.Values), c.Width, c.Height)
	case c.SourceWidth != cols || c.SourceHeight != rows:
		return nil, fmt.Errorf("CAM is for a %d×%d image, the source is %d×%d", c.SourceWidth, c.SourceHeight, cols, rows)
	case c.X0 < 0 || c.Y0 < 0 || c.X1 > cols || c.Y1 > rows || c.X0 >= c.X1 || c.Y0 >= c.Y1:
		return nil, fmt.Errorf("CAM crop [%d,%d)×[%d,%d) is not inside the %d×%d image", c.X0, c.X1, c.Y0, c.Y1, cols, rows)
	}
	var peak float64
	for _, v := range c.Values {
		if f := float64(v); !math.IsNaN(f) && f > peak {
			peak = f
		}
	}
	cam := make([]float64, len(c.Values))
	if peak > 0 && !math.IsInf(peak, 1) {
		for i, v := range c.Values {
			if f := float64(v); f > 0 {
				cam[i] = math.Min(f/peak, 1)
			}
		}
	}
	xs := taps(cols, c.X0, c.X1-c.X0, c.Width)
	ys := taps(rows, c.Y0, c.Y1-c.Y0, c.Height)
	out := make([]byte, 2*cols*rows)
	for y, ty := range ys {
		if !ty.inside {
			continue
		}
		for x, tx := range xs {
			if !tx.inside {
				continue
			}
			top := cam[ty.i0*c.Width+tx.i0]*(1-tx.f) + cam[ty.i0*c.Width+tx.i1]*tx.f
			bot := cam[ty.i1*c.Width+tx.i0]*(1-tx.f) + cam[ty.i1*c.Width+tx.i1]*tx.f
			v := top*(1-ty.f) + bot*ty.f
			binary.LittleEndian.PutUint16(out[2*(y*cols+x):], uint16(math.Round(min(max(v, 0), 1)*pmMaxStored)))
		}
	}
	return out, nil
}

// tap is one output pixel's pair of CAM cells and the weight of the second.
type tap struct {
	i0, i1 int
	f      float64
	inside bool
}

// taps maps each of n pixels (centres at i+0.5) onto the cells CAM cells
// spread over [off, off+length).
func taps(n, off, length, cells int) []tap {
	out := make([]tap, n)
	for i := range out {
		s := float64(i) + 0.5
		if s < float64(off) || s >= float64(off+length) {
			continue
		}
		u := max((s-float64(off))/float64(length)*float64(cells)-0.5, 0)
		i0 := min(int(math.Floor(u)), cells-1)
		i1 := min(i0+1, cells-1)
		out[i] = tap{i0: i0, i1: i1, f: u - float64(i0), inside: true}
		if i0 == i1 {
			out[i].f = 0
		}
	}
	return out
}

// geometry is where the source image lies: its Pixel Spacing (or Imager
// Pixel Spacing, or 1\1), and Image Position and Orientation (Patient)
// when it has both (positioned).
type geometry struct {
	spacing, position, orientation []string
	positioned                     bool
	frameOfReference               string
}

// readGeometry reads the source's geometry from its decimal strings,
// keeping only valid, non-zero spacings.
func readGeometry(get func(tag.Tag) (string, bool)) geometry {
	g := geometry{spacing: []string{"1", "1"}}
	ds := func(t tag.Tag, n int) []string {
		v, _ := get(t)
		if v == "" {
			return nil
		}
		parts := splitBackslash(v)
		if len(parts) != n {
			return nil
		}
		for i, p := range parts {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || len(p) > 16 {
				return nil
			}
			parts[i] = p
		}
		return parts
	}
	positive := func(v []string) bool {
		for _, p := range v {
			if f, _ := strconv.ParseFloat(p, 64); f <= 0 {
				return false
			}
		}
		return len(v) > 0
	}
	if sp := ds(tag.PixelSpacing, 2); positive(sp) {
		g.spacing = sp
	} else if sp := ds(tag.ImagerPixelSpacing, 2); positive(sp) {
		g.spacing = sp
	}
	pos, ori := ds(tag.ImagePositionPatient, 3), ds(tag.ImageOrientationPatient, 6)
	if pos != nil && ori != nil {
		g.position, g.orientation, g.positioned = pos, ori, true
	}
	return g
}

func splitBackslash(v string) []string {
	parts := strings.Split(v, `\`)
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}
