package derived

import (
	"errors"

	"github.com/radgate/radgate"
)

// Set chooses the objects Derive builds.
type Set struct {
	// SC: a Secondary Capture (SecondaryCapture); none for an unmarked
	// result when Input.SCWhenUnmarked is SCUnmarkedNone.
	SC bool
	// SR: a Comprehensive 3D SR (StructuredReport).
	SR bool
	// ParametricMap: the class activation map as a Parametric Map
	// (ParametricMap); none for a result without a map.
	ParametricMap bool
	// PDF is the rendered PDF report, stored as an Encapsulated PDF
	// (EncapsulatedPDF); nil: none.
	PDF []byte
}

// Object is one derived object: a Part 10 file (Explicit VR Little Endian)
// and the UIDs a store or a rejection note names it by.
type Object struct {
	SeriesInstanceUID, SOPInstanceUID, SOPClassUID string
	File                                           []byte
}

// Kind names the object by its SOP class, as the console shows it: SC,
// SR, PDF, PM, KOS ("" for another class).
func (o Object) Kind() string {
	switch o.SOPClassUID {
	case SOPClassSecondaryCapture:
		return "SC"
	case SOPClassComprehensive3DSR:
		return "SR"
	case SOPClassEncapsulatedPDF:
		return "PDF"
	case SOPClassParametricMap:
		return "PM"
	case SOPClassKeyObjectSelection:
		return "KOS"
	}
	return ""
}

// Delivered is the object as a receipt lists it (radgate.DeliveredObject):
// its kind, its DICOMweb path in study and its SOP Instance UID.
func (o Object) Delivered(study string) radgate.DeliveredObject {
	return radgate.DeliveredObject{Kind: o.Kind(), UID: o.SOPInstanceUID,
		Ref: "studies/" + study + "/series/" + o.SeriesInstanceUID + "/instances/" + o.SOPInstanceUID}
}

// Ref is the object as a rejection note references it.
func (o Object) Ref() ObjectRef {
	return ObjectRef{SeriesInstanceUID: o.SeriesInstanceUID, SOPClassUID: o.SOPClassUID, SOPInstanceUID: o.SOPInstanceUID}
}

// Derive builds the objects set asks for from the scored source instance
// src, in this order: Encapsulated PDF, Parametric Map, Secondary Capture,
// SR — so the last one is the report a receipt names (the SR when there is
// one). An object the result has none of (ErrNoParametricMap,
// ErrNoSecondaryCapture) is left out, not an error; every other error of a
// builder is returned as it is. An empty set builds nothing.
func Derive(src []byte, in Input, set Set) ([]Object, error) {
	u := in.UIDs()
	steps := []struct {
		on                 bool
		class, series, sop string
		build              func() ([]byte, error)
		none               error // the builder's "this result has none"
	}{
		{set.PDF != nil, SOPClassEncapsulatedPDF, u.PDFSeries, u.PDF, func() ([]byte, error) { return EncapsulatedPDF(src, in, set.PDF) }, nil},
		{set.ParametricMap, SOPClassParametricMap, u.PMSeries, u.PM, func() ([]byte, error) { return ParametricMap(src, in) }, ErrNoParametricMap},
		{set.SC, SOPClassSecondaryCapture, u.SCSeries, u.SC, func() ([]byte, error) { return SecondaryCapture(src, in) }, ErrNoSecondaryCapture},
		{set.SR, SOPClassComprehensive3DSR, u.SRSeries, u.SR, func() ([]byte, error) { return StructuredReport(src, in) }, nil},
	}
	var out []Object
	for _, s := range steps {
		if !s.on {
			continue
		}
		f, err := s.build()
		switch {
		case s.none != nil && errors.Is(err, s.none):
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, Object{SeriesInstanceUID: s.series, SOPInstanceUID: s.sop, SOPClassUID: s.class, File: f})
	}
	return out, nil
}

// PicturesFor are the pictures a destination storing these objects shows
// (radgate.PictureUser): the Secondary Capture the heatmap at full
// resolution (an unmarked result's SC is drawn from the source itself),
// the PDF report the preview or, unmarked, the thumbnail.
func PicturesFor(sc, pdf bool) radgate.Pictures {
	var p radgate.Pictures
	if sc {
		p |= radgate.PictureHeatmap
	}
	if pdf {
		p |= radgate.PicturePreview | radgate.PictureThumbnail
	}
	return p
}
