package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate/inference"
)

// The bench's studies are clones of a few radiographs. Each source file is
// turned once into a template whose identifying values have a fixed width:
// the Study, Series and SOP Instance UIDs end in an 8-digit clone number,
// the accession number is 16 characters, Patient's Age "00nY" and Patient's
// Birth Date 8 digits. A clone is the template with those digits written at
// their offsets: no element changes length, and nothing is searched for in
// the pixel data. Study Date is the day of the run. The UIDs and accession numbers carry a number drawn per
// run, so clones differ between runs against the same PACS and FHIR server.

// cloneDigits is the width of the clone number in the UIDs and accession.
const cloneDigits = 8

// Patient ages are set inside the shipped engines' intended use: both model
// cards name a paediatric training population (Kermany et al., Cell 2018:
// children one to five years old) and say the engines are not valid for
// adults. Clone i is ageFor(i) years old on its study date.
const minAgeYears, maxAgeYears = 1, 5

func ageFor(i int) int { return minAgeYears + i%(maxAgeYears-minAgeYears+1) }

// birthDate is a birth date at which a patient is exactly years old (and
// i-dependent days more) on study.
func birthDate(study time.Time, years, i int) time.Time {
	return study.AddDate(-years, 0, -(i*37)%300)
}

// mix is a corpus's make-up: shares of non-chest studies (the engines
// reject them) and of stat orders among the chest ones.
type mix struct {
	// NonChestEvery: every NonChestEvery-th study is a non-chest one (0: none).
	NonChestEvery int
	// StatEvery: every StatEvery-th study is a stat chest order (0: none).
	StatEvery int
}

// dayMix is the compressed day's: 10 % non-chest studies, 5 % stat orders.
var dayMix = mix{NonChestEvery: 10, StatEvery: 20}

// study is what the corpus plans for clone i.
type study struct {
	Chest bool
	// Source is the index into the chest or the non-chest templates.
	Source int
	Stat   bool
}

// plan spreads the mix evenly over the corpus: clone i is non-chest when
// i%NonChestEvery is NonChestEvery-1, stat when i%StatEvery is
// StatEvery/5 (never a non-chest one); chest and non-chest sources are
// each taken in turn.
func (m mix) plan(i, chestSources, otherSources int) study {
	if m.NonChestEvery > 0 && otherSources > 0 && i%m.NonChestEvery == m.NonChestEvery-1 {
		return study{Source: (i / m.NonChestEvery) % otherSources}
	}
	s := study{Chest: true, Source: i % chestSources}
	if m.StatEvery > 0 && i%m.StatEvery == m.StatEvery/5 {
		s.Stat = true
	}
	return s
}

// template is one source radiograph prepared for cloning.
type template struct {
	name  string
	data  []byte
	meta  *inference.Meta
	study time.Time // its Study Date: the day of the run
	// Offsets of the values the clones change (uids: every place each UID
	// is written, the file meta included).
	uids           [3][]int // study, series, SOP instance
	accession      int
	age, birthDate int
	// uidValues are the template's UIDs (clone number 0).
	uidValues [3]string
}

// clone is one cloned study: the metadata the order needs; the file itself
// goes to the PACS and is not kept.
type clone struct {
	Meta      inference.Meta
	BirthDate time.Time
	Age       int
}

var (
	tagMediaSOPInstance = uint32(0x00020003)
	tagSOPInstance      = uint32(0x00080018)
	tagStudyDate        = uint32(0x00080020)
	tagAccession        = uint32(0x00080050)
	tagBirthDate        = uint32(0x00100030)
	tagAge              = uint32(0x00101010)
	tagStudyUID         = uint32(0x0020000D)
	tagSeriesUID        = uint32(0x0020000E)
)

// newTemplate prepares a source file (little endian, implicit or explicit
// VR) for cloning; run is a 9-digit number drawn per run.
func newTemplate(path, run string) (*template, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	m, err := inference.ReadHeader(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(run) != 9 || run[0] == '0' {
		return nil, fmt.Errorf("run number %q: want 9 digits, not starting with 0", run)
	}
	t := &template{name: name, study: time.Now().UTC().Truncate(24 * time.Hour)}
	// The UIDs keep the source's root (its UID without the last two
	// components) and end in <run>.<kind><clone number>.
	for k, uid := range []string{m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID} {
		parts := strings.Split(uid, ".")
		if len(parts) < 4 {
			return nil, fmt.Errorf("%s: UID %s has too few components to clone", name, uid)
		}
		v := strings.Join(parts[:len(parts)-2], ".") + "." + run + "." + fmt.Sprint(k+1) + strings.Repeat("0", cloneDigits)
		if len(v) > 64 {
			return nil, fmt.Errorf("%s: UID %s: its clones would be longer than 64 characters", name, uid)
		}
		t.uidValues[k] = v
	}
	acsn := "B" + run[2:] + strings.Repeat("0", cloneDigits) // 16 characters, the SH maximum
	data, offs, err := setElements(src, []element{
		{tagMediaSOPInstance, "UI", t.uidValues[2]},
		{tagSOPInstance, "UI", t.uidValues[2]},
		{tagStudyDate, "DA", t.study.Format("20060102")},
		{tagAccession, "SH", acsn},
		{tagBirthDate, "DA", "00000000"},
		{tagAge, "AS", "000Y"},
		{tagStudyUID, "UI", t.uidValues[0]},
		{tagSeriesUID, "UI", t.uidValues[1]},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t.data = data
	t.uids = [3][]int{{offs[tagStudyUID]}, {offs[tagSeriesUID]}, {offs[tagMediaSOPInstance], offs[tagSOPInstance]}}
	t.accession, t.age, t.birthDate = offs[tagAccession], offs[tagAge], offs[tagBirthDate]
	if t.meta, err = inference.ReadHeader(data); err != nil {
		return nil, fmt.Errorf("%s: the template does not parse: %w", name, err)
	}
	if t.meta.StudyInstanceUID != t.uidValues[0] || t.meta.SOPInstanceUID != t.uidValues[2] || t.meta.AccessionNumber != acsn {
		return nil, fmt.Errorf("%s: the template's identifiers did not take", name)
	}
	return t, nil
}

// clone writes clone n (also the age and birth date index) into buf (a
// copy of the template's file, reused between clones) and returns it with
// the study's metadata.
func (t *template) clone(buf []byte, n int) ([]byte, clone, error) {
	if n < 0 || n >= 1e8 {
		return nil, clone{}, fmt.Errorf("clone number %d out of range", n)
	}
	buf = append(buf[:0], t.data...)
	num := fmt.Sprintf("%0*d", cloneDigits, n)
	c := clone{Meta: *t.meta, Age: ageFor(n)}
	uids := [3]*string{&c.Meta.StudyInstanceUID, &c.Meta.SeriesInstanceUID, &c.Meta.SOPInstanceUID}
	for k, offs := range t.uids {
		v := t.uidValues[k]
		for _, off := range offs {
			copy(buf[off+len(v)-cloneDigits:], num)
		}
		*uids[k] = v[:len(v)-cloneDigits] + num
	}
	copy(buf[t.accession+16-cloneDigits:], num)
	c.Meta.AccessionNumber = t.meta.AccessionNumber[:16-cloneDigits] + num
	copy(buf[t.age:], fmt.Sprintf("%03dY", c.Age))
	c.BirthDate = birthDate(t.study, c.Age, n)
	copy(buf[t.birthDate:], c.BirthDate.Format("20060102"))
	return buf, c, nil
}

// element is a value to set at the top level of a data set (or in the file
// meta information, group 0002).
type element struct {
	tag   uint32
	vr    string
	value string
}

// setElements returns the Part 10 file with the elements set: replaced
// where present, inserted in tag order where not. The file meta group
// length is recomputed; the group length elements (gggg,0000) of the data
// set's groups touched are left out (they are retired). offs holds where
// each element's value starts in the result. The data set must be little
// endian, implicit or explicit VR (not deflated).
func setElements(file []byte, set []element) (out []byte, offs map[uint32]int, err error) {
	if !inference.IsDICOM(file) {
		return nil, nil, errors.New("not a DICOM Part 10 file")
	}
	set = slices.Clone(set)
	slices.SortFunc(set, func(a, b element) int { return int(int64(a.tag) - int64(b.tag)) })
	offs = map[uint32]int{}
	touched := map[uint16]bool{}
	for _, e := range set {
		touched[uint16(e.tag>>16)] = true
	}
	le := binary.LittleEndian

	// The file meta information: always explicit VR little endian.
	var meta []byte
	p, ts := 132, ""
	next := 0 // the next element of set to write
	emit := func(dst []byte, e element, implicit bool) []byte {
		v := []byte(e.value)
		if len(v)%2 == 1 {
			v = append(v, map[bool]byte{true: 0, false: ' '}[e.vr == "UI"])
		}
		dst = le.AppendUint16(dst, uint16(e.tag>>16))
		dst = le.AppendUint16(dst, uint16(e.tag))
		if implicit {
			dst = le.AppendUint32(dst, uint32(len(v)))
		} else {
			dst = append(dst, e.vr...)
			dst = le.AppendUint16(dst, uint16(len(v)))
		}
		offs[e.tag] = len(dst)
		return append(dst, v...)
	}
	for p+8 <= len(file) && le.Uint16(file[p:]) == 0x0002 {
		tag := uint32(le.Uint16(file[p:]))<<16 | uint32(le.Uint16(file[p+2:]))
		hdr, n := headerLen(file[p:], false)
		if hdr == 0 || p+hdr+n > len(file) {
			return nil, nil, fmt.Errorf("file meta element (%04X,%04X) runs past the end of the file", tag>>16, tag&0xFFFF)
		}
		for next < len(set) && set[next].tag < tag && set[next].tag>>16 == 0x0002 {
			meta = emit(meta, set[next], false)
			next++
		}
		switch {
		case tag == 0x00020000: // recomputed below
		case next < len(set) && set[next].tag == tag:
			meta = emit(meta, set[next], false)
			next++
		default:
			if tag == 0x00020010 {
				ts = strings.TrimRight(string(file[p+hdr:p+hdr+n]), "\x00 ")
			}
			meta = append(meta, file[p:p+hdr+n]...)
		}
		p += hdr + n
	}
	for next < len(set) && set[next].tag>>16 == 0x0002 {
		meta = emit(meta, set[next], false)
		next++
	}
	var implicit bool
	switch ts {
	case inference.TSImplicitVRLittleEndian:
		implicit = true
	case inference.TSExplicitVRBigEndian, inference.TSDeflatedExplicitVRLittleEndian, "":
		return nil, nil, fmt.Errorf("transfer syntax %q: the bench clones little endian, non-deflated files only", ts)
	}
	out = append(out, file[:132]...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = le.AppendUint32(out, uint32(len(meta)))
	for tag, off := range offs {
		offs[tag] = off + len(out)
	}
	out = append(out, meta...)

	// The data set, up to the last element to set; the rest is copied.
	for p < len(file) && next < len(set) {
		tag := uint32(le.Uint16(file[p:]))<<16 | uint32(le.Uint16(file[p+2:]))
		hdr, n := headerLen(file[p:], implicit)
		if hdr == 0 {
			return nil, nil, fmt.Errorf("element (%04X,%04X): truncated header", tag>>16, tag&0xFFFF)
		}
		end := p + hdr + n
		if n == undefinedLength {
			if end, err = skipUndefined(file, p+hdr, implicit, 0); err != nil {
				return nil, nil, fmt.Errorf("element (%04X,%04X): %w", tag>>16, tag&0xFFFF, err)
			}
		} else if end > len(file) {
			return nil, nil, fmt.Errorf("element (%04X,%04X) runs past the end of the file", tag>>16, tag&0xFFFF)
		}
		for next < len(set) && set[next].tag < tag {
			out = emit(out, set[next], implicit)
			next++
		}
		switch {
		case tag&0xFFFF == 0 && touched[uint16(tag>>16)]:
		case next < len(set) && set[next].tag == tag:
			out = emit(out, set[next], implicit)
			next++
		default:
			out = append(out, file[p:end]...)
		}
		p = end
	}
	for ; next < len(set); next++ {
		out = emit(out, set[next], implicit)
	}
	return append(out, file[p:]...), offs, nil
}

const undefinedLength = 0xFFFFFFFF

// headerLen is the length of the element header at b and its value length
// (undefinedLength for an undefined one); 0, 0 when b is too short.
func headerLen(b []byte, implicit bool) (hdr, n int) {
	le := binary.LittleEndian
	if len(b) < 8 {
		return 0, 0
	}
	if implicit || le.Uint16(b) == 0xFFFE {
		return 8, int(le.Uint32(b[4:]))
	}
	switch string(b[4:6]) {
	case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT", "UC", "UR", "SV", "UV":
		if len(b) < 12 {
			return 0, 0
		}
		return 12, int(le.Uint32(b[8:]))
	}
	return 8, int(le.Uint16(b[6:]))
}

// skipUndefined returns where the undefined-length value starting at p
// ends: after its Sequence Delimitation Item, past every item (each with a
// length, or walked up to its Item Delimitation Item).
func skipUndefined(b []byte, p int, implicit bool, depth int) (int, error) {
	if depth > 32 {
		return 0, errors.New("sequences nested too deep")
	}
	le := binary.LittleEndian
	for {
		if p+8 > len(b) {
			return 0, errors.New("undefined length without its delimiter")
		}
		g, e, n := le.Uint16(b[p:]), le.Uint16(b[p+2:]), int(le.Uint32(b[p+4:]))
		p += 8
		switch {
		case g == 0xFFFE && e == 0xE0DD:
			return p, nil
		case g == 0xFFFE && e == 0xE000 && n != undefinedLength:
			p += n
		case g == 0xFFFE && e == 0xE000:
			for { // the item's elements, up to its delimiter
				if p+8 > len(b) {
					return 0, errors.New("item without its delimiter")
				}
				if le.Uint16(b[p:]) == 0xFFFE && le.Uint16(b[p+2:]) == 0xE00D {
					p += 8
					break
				}
				hdr, n := headerLen(b[p:], implicit)
				if hdr == 0 {
					return 0, errors.New("truncated element in an item")
				}
				if n == undefinedLength {
					var err error
					if p, err = skipUndefined(b, p+hdr, implicit, depth+1); err != nil {
						return 0, err
					}
					continue
				}
				p += hdr + n
			}
		default:
			return 0, fmt.Errorf("(%04X,%04X) where an item was expected", g, e)
		}
		if p > len(b) {
			return 0, errors.New("an item runs past the end of the file")
		}
	}
}
