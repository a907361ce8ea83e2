package derived

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/inference"
)

// SOP classes of the derived objects, and the transfer syntax they are
// written in.
const (
	SOPClassSecondaryCapture = "1.2.840.10008.5.1.4.1.1.7"
	SOPClassComprehensiveSR  = "1.2.840.10008.5.1.4.1.1.88.33"
	SOPClassEncapsulatedPDF  = "1.2.840.10008.5.1.4.1.1.104.1"
	transferSyntax           = inference.TSExplicitVRLittleEndian
	// studyReferenceClass is the SOP class a Referenced Study Sequence item
	// names (Detached Study Management, retired, still the value PS3.3
	// prescribes for it).
	studyReferenceClass = "1.2.840.10008.3.1.2.3.1"
)

// Series numbers of the derived series, high so that they sort after the
// modality's own series in a viewer.
const (
	SeriesNumberSC  = 9901
	SeriesNumberSR  = 9902
	SeriesNumberPDF = 9903
)

// Manufacturer is the Manufacturer (0008,0070) of every derived object.
const Manufacturer = "radgate"

// ErrSource wraps every error about the source instance: not DICOM, a header
// that cannot be read, a missing UID, pixel data that cannot be decoded.
var ErrSource = errors.New("derived: unusable source instance")

// ErrInput wraps every error about the Input (no result id, a probability
// outside 0..1, a marked result without its heatmap, …).
var ErrInput = errors.New("derived: invalid input")

// source is what the derived objects copy from the scored instance.
type source struct {
	sopClass, sopInstance, series string
	// copied holds the patient and study attributes, as found (Type 2: an
	// absent one is written empty).
	copied map[tag.Tag]string
}

// copiedTags are the Patient and General Study attributes copied from the
// source, with their VRs.
var copiedTags = []struct {
	t  tag.Tag
	vr string
}{
	{tag.StudyDate, "DA"},
	{tag.StudyTime, "TM"},
	{tag.AccessionNumber, "SH"},
	{tag.ReferringPhysicianName, "PN"},
	{tag.PatientName, "PN"},
	{tag.PatientID, "LO"},
	{tag.PatientBirthDate, "DA"},
	{tag.PatientSex, "CS"},
	{tag.StudyInstanceUID, "UI"},
	{tag.StudyID, "SH"},
}

// readSource parses the header of the source instance (any transfer syntax:
// the pixel data is skipped). It never panics.
func readSource(data []byte) (src *source, err error) {
	defer func() {
		if r := recover(); r != nil {
			src, err = nil, fmt.Errorf("%w: DICOM parser failed: %v", ErrSource, r)
		}
	}()
	if !inference.IsDICOM(data) {
		return nil, fmt.Errorf("%w: not a DICOM Part 10 file (no \"DICM\" after the preamble)", ErrSource)
	}
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil,
		dicom.SkipPixelData(), dicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		return nil, fmt.Errorf("%w: reading the header: %v", ErrSource, err)
	}
	get := func(t tag.Tag) string {
		e, err := ds.FindElementByTag(t)
		if err != nil || e.Value == nil || e.Value.ValueType() != dicom.Strings {
			return ""
		}
		v, _ := e.Value.GetValue().([]string)
		return strings.ToValidUTF8(strings.TrimRight(strings.Join(v, `\`), " \x00"), "?")
	}
	src = &source{
		sopClass:    get(tag.SOPClassUID),
		sopInstance: get(tag.SOPInstanceUID),
		series:      get(tag.SeriesInstanceUID),
		copied:      map[tag.Tag]string{},
	}
	for _, c := range copiedTags {
		src.copied[c.t] = get(c.t)
	}
	for what, v := range map[string]string{
		"SOP Class UID": src.sopClass, "SOP Instance UID": src.sopInstance,
		"Series Instance UID": src.series, "Study Instance UID": src.copied[tag.StudyInstanceUID],
	} {
		if v == "" {
			return nil, fmt.Errorf("%w: the header has no %s", ErrSource, what)
		}
	}
	return src, nil
}

// studyUID is the source's Study Instance UID.
func (s *source) studyUID() string { return s.copied[tag.StudyInstanceUID] }

// builder collects the elements of one data set (or sequence item).
type builder struct {
	elems []*dicom.Element
	err   error
}

func (b *builder) add(t tag.Tag, vr string, data any, undefinedLength bool) {
	if b.err != nil {
		return
	}
	v, err := dicom.NewValue(data)
	if err != nil {
		b.err = fmt.Errorf("derived: element %v: %w", t, err)
		return
	}
	e := &dicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: v}
	if undefinedLength {
		e.ValueLength = tag.VLUndefinedLength
	}
	b.elems = append(b.elems, e)
}

// str adds a string element; "" writes an empty (Type 2) element. Values
// longer than the VR allows are cut at a rune boundary.
func (b *builder) str(t tag.Tag, vr string, vals ...string) {
	if len(vals) == 0 {
		vals = []string{""}
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = limit(v, vr)
	}
	b.add(t, vr, out, false)
}

func (b *builder) ints(t tag.Tag, vr string, vals ...int) { b.add(t, vr, vals, false) }

func (b *builder) bytes(t tag.Tag, vr string, v []byte) {
	if len(v)%2 == 1 {
		v = append(slices.Clip(v), 0)
	}
	b.add(t, vr, v, false)
}

// seq adds a sequence of the given items (each sorted by tag).
func (b *builder) seq(t tag.Tag, items ...*builder) {
	vals := make([][]*dicom.Element, 0, len(items))
	for _, it := range items {
		if it.err != nil && b.err == nil {
			b.err = it.err
		}
		vals = append(vals, it.sorted())
	}
	b.add(t, "SQ", vals, true)
}

func (b *builder) sorted() []*dicom.Element {
	out := slices.Clone(b.elems)
	slices.SortStableFunc(out, func(x, y *dicom.Element) int {
		if x.Tag.Group != y.Tag.Group {
			return int(x.Tag.Group) - int(y.Tag.Group)
		}
		return int(x.Tag.Element) - int(y.Tag.Element)
	})
	return out
}

// maxLen is the longest value, in characters, of the string VRs used here.
var maxLen = map[string]int{"SH": 16, "LO": 64, "CS": 16, "PN": 64 * 5, "ST": 1024, "LT": 10240, "DS": 16, "IS": 12}

func limit(v, vr string) string {
	n, ok := maxLen[vr]
	if !ok || utf8.RuneCountInString(v) <= n {
		return v
	}
	r := []rune(v)
	return string(r[:n])
}

// code is a coded entry (Code Value, Coding Scheme Designator, Code Meaning).
type code struct{ value, scheme, meaning string }

func (c code) item() *builder {
	it := &builder{}
	it.str(tag.CodeValue, "SH", c.value)
	it.str(tag.CodingSchemeDesignator, "SH", c.scheme)
	it.str(tag.CodeMeaning, "LO", c.meaning)
	return it
}

// common adds what every derived object shares: SOP Common, Patient,
// General Study (copied), General Series, General Equipment, and the
// content date and time.
func (b *builder) common(src *source, sopClass, sopInstance, modality, seriesUID string, seriesNumber int, seriesDescription string, at time.Time) {
	b.str(tag.SpecificCharacterSet, "CS", "ISO_IR 192")
	b.str(tag.SOPClassUID, "UI", sopClass)
	b.str(tag.SOPInstanceUID, "UI", sopInstance)
	for _, c := range copiedTags {
		b.str(c.t, c.vr, src.copied[c.t])
	}
	at = at.UTC()
	b.str(tag.InstanceCreationDate, "DA", at.Format("20060102"))
	b.str(tag.InstanceCreationTime, "TM", at.Format("150405"))
	b.str(tag.ContentDate, "DA", at.Format("20060102"))
	b.str(tag.ContentTime, "TM", at.Format("150405"))
	b.str(tag.TimezoneOffsetFromUTC, "SH", "+0000")
	b.str(tag.Modality, "CS", modality)
	b.str(tag.Manufacturer, "LO", Manufacturer)
	b.str(tag.SeriesDescription, "LO", seriesDescription)
	b.str(tag.SeriesInstanceUID, "UI", seriesUID)
	b.str(tag.SeriesNumber, "IS", fmt.Sprint(seriesNumber))
	b.str(tag.InstanceNumber, "IS", "1")
	study := &builder{}
	study.str(tag.ReferencedSOPClassUID, "UI", studyReferenceClass)
	study.str(tag.ReferencedSOPInstanceUID, "UI", src.studyUID())
	b.seq(tag.ReferencedStudySequence, study)
}

// sourceRef is an item naming the source instance (Source Image Sequence,
// Referenced SOP Sequence, …).
func (src *source) ref() *builder {
	it := &builder{}
	it.str(tag.ReferencedSOPClassUID, "UI", src.sopClass)
	it.str(tag.ReferencedSOPInstanceUID, "UI", src.sopInstance)
	return it
}

// part10 writes the data set as a Part 10 file in Explicit VR Little Endian.
func (b *builder) part10(sopClass, sopInstance string) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	meta := &builder{}
	meta.add(tag.FileMetaInformationVersion, "OB", []byte{0, 1}, false)
	meta.str(tag.MediaStorageSOPClassUID, "UI", sopClass)
	meta.str(tag.MediaStorageSOPInstanceUID, "UI", sopInstance)
	meta.str(tag.TransferSyntaxUID, "UI", transferSyntax)
	meta.str(tag.ImplementationClassUID, "UI", implementationClassUID)
	meta.str(tag.ImplementationVersionName, "SH", implementationVersion)
	if meta.err != nil {
		return nil, meta.err
	}
	ds := dicom.Dataset{Elements: append(meta.sorted(), b.sorted()...)}
	var out bytes.Buffer
	if err := dicom.Write(&out, ds); err != nil {
		return nil, fmt.Errorf("derived: writing Part 10: %w", err)
	}
	return out.Bytes(), nil
}

// dicomPixelData wraps native pixel bytes so that the writer copies them as
// they are.
func dicomPixelData(p []byte) dicom.PixelDataInfo {
	return dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: p}
}
