package derived

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/inference"
)

// SOP classes of the derived objects, and the transfer syntax they are
// written in.
const (
	SOPClassSecondaryCapture  = "1.2.840.10008.5.1.4.1.1.7"
	SOPClassComprehensive3DSR = "1.2.840.10008.5.1.4.1.1.88.34"
	SOPClassEncapsulatedPDF   = "1.2.840.10008.5.1.4.1.1.104.1"
	SOPClassParametricMap     = "1.2.840.10008.5.1.4.1.1.30"
	transferSyntax            = inference.TSExplicitVRLittleEndian
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
	SeriesNumberPM  = 9904
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
	// frameOfReference is the source's Frame of Reference UID ("" when it
	// has none or an invalid one).
	frameOfReference string
	// copied holds the patient and study attributes whose values are valid
	// for their VR (an absent or invalid Type 2 one is written empty, a
	// Type 3 one left out).
	copied map[tag.Tag]string
	// geometry is where the image lies (for the Parametric Map).
	geometry geometry
	// laterality is the source's Laterality (R or L), else "";
	// bodyPart its Body Part Examined (a valid CS), else "".
	laterality, bodyPart string
	// dropped lists the attributes whose source values were not copied
	// because they are invalid for their VR, with the reason (never the
	// value).
	dropped []droppedAttr
}

// droppedAttr is a source attribute not copied, and why.
type droppedAttr struct {
	tag    tag.Tag
	reason string
}

// copiedTags are the Patient, General Study and Patient Study attributes
// copied from the source, and its Institution Name (General Equipment: the
// institution the object is made for, which a PACS files and routes by),
// with their VRs and types (2: written empty when the source has no valid
// value; 3: left out). enum, when set, lists the values allowed. Their text
// is decoded by the source's Specific Character Set (inference.ReadText)
// and written in UTF-8 (ISO_IR 192).
var copiedTags = []struct {
	t    tag.Tag
	vr   string
	typ  int
	enum []string
}{
	{tag.StudyDate, "DA", 2, nil},
	{tag.StudyTime, "TM", 2, nil},
	{tag.AccessionNumber, "SH", 2, nil},
	{tag.ReferringPhysicianName, "PN", 2, nil},
	{tag.PatientName, "PN", 2, nil},
	{tag.PatientID, "LO", 2, nil},
	{tag.PatientBirthDate, "DA", 2, nil},
	{tag.PatientSex, "CS", 2, []string{"M", "F", "O"}},
	{tag.PatientAge, "AS", 3, nil},
	{tag.StudyInstanceUID, "UI", 1, nil},
	{tag.StudyID, "SH", 2, nil},
	{tag.StudyDescription, "LO", 3, nil},
	{tag.InstitutionName, "LO", 3, nil},
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
	// The text as the source's Specific Character Set encodes it: the
	// library splits values on 0x5C before decoding (breaking a kanji whose
	// second byte is 0x5C) and has no JIS X 0201 katakana in G1. Its own
	// reading stays for a character set dicomcs does not know.
	text, err := inference.ReadText(data)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the header's text: %v", ErrSource, err)
	}
	if text.CharacterSetErr != nil {
		text = nil
	}
	get := func(t tag.Tag) (string, bool) {
		if v, ok := text.String(t); ok {
			return strings.TrimRight(v, " \x00"), true
		}
		e, err := ds.FindElementByTag(t)
		if err != nil || e.Value == nil || e.Value.ValueType() != dicom.Strings {
			return "", false
		}
		v, _ := e.Value.GetValue().([]string)
		return strings.TrimRight(strings.Join(v, `\`), " \x00"), true
	}
	src = &source{copied: map[tag.Tag]string{}}
	// The UIDs that the derived objects reference: they must be valid, or
	// every reference to the source is invalid.
	for _, u := range []struct {
		t    tag.Tag
		what string
		dst  *string
	}{
		{tag.SOPClassUID, "SOP Class UID", &src.sopClass},
		{tag.SOPInstanceUID, "SOP Instance UID", &src.sopInstance},
		{tag.SeriesInstanceUID, "Series Instance UID", &src.series},
	} {
		v, _ := get(u.t)
		if v == "" {
			return nil, fmt.Errorf("%w: the header has no %s", ErrSource, u.what)
		}
		if why := validUI(v); why != "" {
			return nil, fmt.Errorf("%w: the %s %v is invalid: %s", ErrSource, u.what, u.t, why)
		}
		*u.dst = v
	}
	for _, c := range copiedTags {
		v, ok := get(c.t)
		if !ok || v == "" {
			if c.typ == 1 {
				return nil, fmt.Errorf("%w: the header has no %s", ErrSource, keyword(c.t))
			}
			continue
		}
		why := validValue(c.vr, v)
		if why == "" && c.enum != nil && !slices.Contains(c.enum, v) {
			why = "not one of " + strings.Join(c.enum, ", ")
		}
		if why != "" {
			if c.typ == 1 {
				return nil, fmt.Errorf("%w: the %s %v is invalid: %s", ErrSource, keyword(c.t), c.t, why)
			}
			src.dropped = append(src.dropped, droppedAttr{c.t, why})
			continue
		}
		src.copied[c.t] = v
	}
	src.geometry = readGeometry(get)
	if v, _ := get(tag.FrameOfReferenceUID); v != "" && validUI(v) == "" {
		src.frameOfReference = v
	}
	if v, _ := get(tag.BodyPartExamined); v != "" {
		if why := validValue("CS", v); why != "" {
			src.dropped = append(src.dropped, droppedAttr{tag.BodyPartExamined, why})
		} else {
			src.bodyPart = v
		}
	}
	switch v, _ := get(tag.Laterality); v {
	case "R", "L", "":
		src.laterality = v
	default:
		src.dropped = append(src.dropped, droppedAttr{tag.Laterality, "not R or L"})
	}
	return src, nil
}

// unpaired are Body Part Examined values (PS3.16 Annex L) of unpaired
// structures: an image of one needs no Laterality.
var unpaired = []string{"CHEST", "ABDOMEN", "PELVIS", "HEAD", "SKULL", "NECK", "HEADNECK", "CHESTABDOMEN",
	"ABDOMENPELVIS", "CHESTABDPELVIS", "SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "COCCYX", "HEART", "STERNUM", "WHOLEBODY"}

// seriesLaterality adds Body Part Examined (copied when valid) and the
// General Series Laterality (Type 2C: required for a paired structure):
// the source's R or L; left out for an unpaired body part; else empty
// (unknown).
func (b *builder) seriesLaterality(s *source) {
	if s.bodyPart != "" {
		b.str(tag.BodyPartExamined, "CS", s.bodyPart)
	}
	if s.laterality == "" && slices.Contains(unpaired, s.bodyPart) {
		return
	}
	b.str(tag.Laterality, "CS", s.laterality)
}

// keyword is the DICOM keyword of t ("PatientBirthDate"), or its number.
func keyword(t tag.Tag) string {
	if info, err := tag.Find(t); err == nil {
		return info.Keyword
	}
	return t.String()
}

// logDropped logs, once per derived object, each source attribute left out
// for an invalid value: the tag and keyword, never the value.
func (in *Input) logDropped(s *source, object string) {
	if in.Logger == nil {
		return
	}
	for _, d := range s.dropped {
		in.Logger.Warn("source attribute not copied: invalid value", "result", in.ResultID, "object", object,
			"tag", d.tag.String(), "keyword", keyword(d.tag), "reason", d.reason)
	}
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

// common adds what every derived object shares: SOP Common (with the
// Contributing Equipment Sequence naming the algorithm), Patient, General
// Study and Patient Study (copied), the series, General Equipment, and the
// content date and time. It logs the source attributes left out.
func (b *builder) common(src *source, in *Input, sopClass, sopInstance, modality, seriesUID string, seriesNumber int, seriesDescription string) {
	in.logDropped(src, objectNames[sopClass])
	b.str(tag.SpecificCharacterSet, "CS", "ISO_IR 192")
	b.str(tag.SOPClassUID, "UI", sopClass)
	b.str(tag.SOPInstanceUID, "UI", sopInstance)
	for _, c := range copiedTags {
		if v, ok := src.copied[c.t]; ok || c.typ != 3 {
			b.str(c.t, c.vr, v)
		}
	}
	at := in.time().UTC()
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
	b.str(tag.InstanceNumber, "IS", strconv.Itoa(in.revision()))
	study := &builder{}
	study.str(tag.ReferencedSOPClassUID, "UI", studyReferenceClass)
	study.str(tag.ReferencedSOPInstanceUID, "UI", src.studyUID())
	b.seq(tag.ReferencedStudySequence, study)
	b.seq(tag.ContributingEquipmentSequence, in.algorithmEquipment())
}

// objectNames name the derived objects in logs.
var objectNames = map[string]string{
	SOPClassSecondaryCapture:   "Secondary Capture",
	SOPClassComprehensive3DSR:  "SR",
	SOPClassEncapsulatedPDF:    "Encapsulated PDF",
	SOPClassParametricMap:      "Parametric Map",
	SOPClassKeyObjectSelection: "rejection note",
}

// purposeProcessingAlgorithm is the Purpose of Reference of a Contributing
// Equipment item that is an AI algorithm (IHE AI Results, 99IHE 1630).
var purposeProcessingAlgorithm = code{"1630", "99IHE", "Processing Algorithm"}

// algorithmEquipment is the Contributing Equipment Sequence item of the
// engine (IHE AI Results): Manufacturer, Manufacturer's Model Name (the
// engine's name), Software Versions (its version) and a Device UID that
// changes with the version (DeviceUID).
func (in *Input) algorithmEquipment() *builder {
	it := &builder{}
	it.seq(tag.PurposeOfReferenceCodeSequence, purposeProcessingAlgorithm.item())
	it.str(tag.Manufacturer, "LO", Manufacturer)
	it.str(tag.ManufacturerModelName, "LO", in.engineName())
	it.str(tag.SoftwareVersions, "LO", in.softwareVersion())
	it.str(tag.DeviceUID, "UI", in.DeviceUID())
	it.str(tag.ContributionDateTime, "DT", in.time().UTC().Format("20060102150405")+"+0000")
	it.str(tag.ContributionDescription, "ST", "AI analysis: "+in.engineLabel())
	return it
}

// DeviceUID identifies the engine at its version: the Device UID of the
// Contributing Equipment item and the SR's Device Observer UID. It is
// computed from the engine id and version, so every object of one model
// version names the same device and a new version is a new device.
func (in *Input) DeviceUID() string {
	return hashUID("engine/" + in.Engine.ID + "@" + in.Engine.Version)
}

// enhancedEquipment adds the Enhanced General Equipment module (all Type
// 1): radgate, the device that made the object.
func (b *builder) enhancedEquipment(in *Input) {
	b.str(tag.ManufacturerModelName, "LO", in.engineName())
	b.str(tag.DeviceSerialNumber, "LO", in.Engine.ID+"@"+in.softwareVersion())
	b.str(tag.SoftwareVersions, "LO", in.softwareVersion())
}

// softwareVersion is the engine's version, or "unknown" (Software Versions
// is Type 1 in the Enhanced General Equipment module).
func (in *Input) softwareVersion() string {
	if in.Engine.Version == "" {
		return "unknown"
	}
	return in.Engine.Version
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
