package inference

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Attribute access on a flat element list. The library stores strings (also
// DS and IS) as []string, US/SS/UL/SL as []int, FL/FD as []float64 and OB/OW
// as []byte; nothing here panics on an unexpected shape.

func findElement(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e != nil && e.Tag == t {
			return e
		}
	}
	return nil
}

func getStrings(elems []*dicom.Element, t tag.Tag) []string {
	e := findElement(elems, t)
	if e == nil || e.Value == nil {
		return nil
	}
	if v, ok := e.Value.GetValue().([]string); ok {
		return v
	}
	return nil
}

func getString(elems []*dicom.Element, t tag.Tag) string {
	v := getStrings(elems, t)
	if len(v) == 0 {
		return ""
	}
	return strings.TrimRight(strings.TrimSpace(v[0]), "\x00")
}

// getInt returns the first value of a US/SS/UL/SL or IS attribute.
func getInt(elems []*dicom.Element, t tag.Tag) (v int, present bool, err error) {
	e := findElement(elems, t)
	if e == nil || e.Value == nil {
		return 0, false, nil
	}
	switch x := e.Value.GetValue().(type) {
	case []int:
		if len(x) == 0 {
			return 0, false, nil
		}
		return x[0], true, nil
	case []string:
		if len(x) == 0 || strings.TrimSpace(x[0]) == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(x[0]))
		if err != nil {
			return 0, true, fmt.Errorf("%s: %q is not an integer", tagName(t), x[0])
		}
		return n, true, nil
	}
	return 0, true, fmt.Errorf("%s: unexpected value type", tagName(t))
}

// getFloat returns the first value of a DS or FL/FD attribute.
func getFloat(elems []*dicom.Element, t tag.Tag) (v float64, present bool, err error) {
	e := findElement(elems, t)
	if e == nil || e.Value == nil {
		return 0, false, nil
	}
	switch x := e.Value.GetValue().(type) {
	case []float64:
		if len(x) == 0 {
			return 0, false, nil
		}
		return x[0], true, nil
	case []string:
		if len(x) == 0 || strings.TrimSpace(x[0]) == "" {
			return 0, false, nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(x[0]), 64)
		if err != nil {
			return 0, true, fmt.Errorf("%s: %q is not a decimal number", tagName(t), x[0])
		}
		return f, true, nil
	}
	return 0, true, fmt.Errorf("%s: unexpected value type", tagName(t))
}

// getSpacing returns a pixel spacing pair (DS "row\\column") when it holds
// two positive numbers. A spacing that does not is treated as absent, not
// as an error: decoding never needed it.
func getSpacing(elems []*dicom.Element, t tag.Tag) ([2]float64, bool) {
	v := getStrings(elems, t)
	if len(v) != 2 {
		return [2]float64{}, false
	}
	var out [2]float64
	for i, s := range v {
		f, err := strconv.ParseFloat(strings.TrimRight(strings.TrimSpace(s), "\x00"), 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return [2]float64{}, false
		}
		out[i] = f
	}
	return out, true
}

// getInts returns an integer list stored as US/SS ([]int) or as OW bytes
// (16-bit words; the library hands OW over little endian).
func getInts(e *dicom.Element, signed bool) []int {
	if e == nil || e.Value == nil {
		return nil
	}
	switch x := e.Value.GetValue().(type) {
	case []int:
		return x
	case []byte:
		out := make([]int, len(x)/2)
		for i := range out {
			w := binary.LittleEndian.Uint16(x[2*i:])
			if signed {
				out[i] = int(int16(w))
			} else {
				out[i] = int(w)
			}
		}
		return out
	}
	return nil
}

// firstItem returns the elements of the first item of a sequence attribute.
func firstItem(elems []*dicom.Element, t tag.Tag) ([]*dicom.Element, bool) {
	e := findElement(elems, t)
	if e == nil || e.Value == nil {
		return nil, false
	}
	items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok || len(items) == 0 || items[0] == nil {
		return nil, false
	}
	sub, ok := items[0].GetValue().([]*dicom.Element)
	return sub, ok
}

func tagName(t tag.Tag) string {
	if info, err := tag.Find(t); err == nil {
		return fmt.Sprintf("%s %s", info.Name, t.String())
	}
	return t.String()
}

// readMeta fills Meta from the elements. Numeric attributes that do not parse
// are errors (ErrMalformed): decoding pixels with a guessed geometry would be
// worse than refusing the file.
func readMeta(elems []*dicom.Element, ts string) (*Meta, error) {
	m := &Meta{
		SOPClassUID:               getString(elems, tag.SOPClassUID),
		SOPInstanceUID:            getString(elems, tag.SOPInstanceUID),
		StudyInstanceUID:          getString(elems, tag.StudyInstanceUID),
		SeriesInstanceUID:         getString(elems, tag.SeriesInstanceUID),
		AccessionNumber:           getString(elems, tag.AccessionNumber),
		Modality:                  strings.ToUpper(getString(elems, tag.Modality)),
		BodyPartExamined:          strings.ToUpper(getString(elems, tag.BodyPartExamined)),
		ViewPosition:              getString(elems, tag.ViewPosition),
		InstitutionName:           getString(elems, tag.InstitutionName),
		Manufacturer:              getString(elems, tag.Manufacturer),
		TransferSyntaxUID:         ts,
		PhotometricInterpretation: strings.ToUpper(getString(elems, tag.PhotometricInterpretation)),
		VOILUTFunction:            strings.ToUpper(getString(elems, tagVOILUTFunction)),
		RescaleSlope:              1,
	}
	if m.SOPInstanceUID == "" {
		m.SOPInstanceUID = getString(elems, tag.MediaStorageSOPInstanceUID)
	}
	if m.SOPClassUID == "" {
		m.SOPClassUID = getString(elems, tag.MediaStorageSOPClassUID)
	}
	var errs []string
	ints := []struct {
		t   tag.Tag
		dst *int
		def int
	}{
		{tag.Rows, &m.Rows, 0},
		{tag.Columns, &m.Columns, 0},
		{tag.SamplesPerPixel, &m.SamplesPerPixel, 1},
		{tag.BitsAllocated, &m.BitsAllocated, 0},
		{tag.BitsStored, &m.BitsStored, -1},
		{tag.HighBit, &m.HighBit, -1},
		{tag.PixelRepresentation, &m.PixelRepresentation, 0},
		{tag.PlanarConfiguration, &m.PlanarConfiguration, 0},
		{tag.NumberOfFrames, &m.NumberOfFrames, 1},
	}
	for _, a := range ints {
		v, ok, err := getInt(elems, a.t)
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case ok:
			*a.dst = v
		default:
			*a.dst = a.def
		}
	}
	if m.BitsStored < 0 {
		m.BitsStored = m.BitsAllocated
	}
	if m.HighBit < 0 {
		m.HighBit = m.BitsStored - 1
	}
	if v, ok, err := getFloat(elems, tagRescaleSlope); err != nil {
		errs = append(errs, err.Error())
	} else if ok {
		m.RescaleSlope = v
	}
	if v, ok, err := getFloat(elems, tagRescaleIntercept); err != nil {
		errs = append(errs, err.Error())
	} else if ok {
		m.RescaleIntercept = v
	}
	c, okC, errC := getFloat(elems, tag.WindowCenter)
	w, okW, errW := getFloat(elems, tagWindowWidth)
	switch {
	case errC != nil:
		errs = append(errs, errC.Error())
	case errW != nil:
		errs = append(errs, errW.Error())
	case okC && okW:
		m.HasWindow, m.WindowCenter, m.WindowWidth = true, c, w
	}
	for _, a := range []struct {
		t    tag.Tag
		name string
	}{{tag.PixelSpacing, "Pixel Spacing"}, {tag.ImagerPixelSpacing, "Imager Pixel Spacing"}} {
		if sp, ok := getSpacing(elems, a.t); ok {
			m.PixelSpacing, m.PixelSpacingFrom = sp, a.name
			break
		}
	}
	m.Age = readAge(elems)
	_, m.HasVOILUTSequence = firstItem(elems, tag.VOILUTSequence)
	_, m.HasModalityLUTSequence = firstItem(elems, tag.ModalityLUTSequence)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, strings.Join(errs, "; "))
	}
	return m, nil
}
