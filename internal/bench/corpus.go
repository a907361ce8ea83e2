package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
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
	data, offs, err := demo.SetElements(src, []demo.Element{
		{Tag: tagMediaSOPInstance, VR: "UI", Value: t.uidValues[2]},
		{Tag: tagSOPInstance, VR: "UI", Value: t.uidValues[2]},
		{Tag: tagStudyDate, VR: "DA", Value: t.study.Format("20060102")},
		{Tag: tagAccession, VR: "SH", Value: acsn},
		{Tag: tagBirthDate, VR: "DA", Value: "00000000"},
		{Tag: tagAge, VR: "AS", Value: "000Y"},
		{Tag: tagStudyUID, VR: "UI", Value: t.uidValues[0]},
		{Tag: tagSeriesUID, VR: "UI", Value: t.uidValues[1]},
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
	c.Meta.Age = inference.Age{Known: true, Years: c.Age, Text: fmt.Sprintf("%d y", c.Age), From: "Patient's Age"}
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
