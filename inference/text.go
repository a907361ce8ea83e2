package inference

import (
	"fmt"
	"os"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/dicomcs"
)

// Text is the text of a data set's top-level string elements, decoded by
// its Specific Character Set (0008,0005) with package dicomcs. The DICOM
// library radgate parses with splits values on 0x5C before decoding them
// and has no JIS X 0201 katakana in G1: a kanji whose second byte is 0x5C
// comes out broken there, and right here.
//
// Text can hold patient demographics (Patient's Name): it is for building
// what is sent at once (a derived object, an ORU's PID), never to be
// stored or logged.
type Text struct {
	// CharacterSet is the data set's Specific Character Set.
	CharacterSet dicomcs.Set
	// CharacterSetErr is set when (0008,0005) names a set dicomcs does not
	// decode: non-ASCII bytes then read as U+FFFD, and a caller should
	// prefer the DICOM library's reading.
	CharacterSetErr error
	raw             map[tag.Tag]rawText
}

func newText(raw map[tag.Tag]rawText) *Text {
	x := &Text{raw: raw}
	if cs, ok := raw[tag.SpecificCharacterSet]; ok {
		x.CharacterSet, x.CharacterSetErr = dicomcs.Parse(string(cs.raw))
	}
	return x
}

// ReadText reads the top-level string elements of a DICOM Part 10 file (any
// transfer syntax; a deflated data set is inflated within the default
// DecodeOptions). It never panics; a file it cannot walk is ErrNotDICOM or
// ErrMalformed. The Text refers to data: do not change data while using it.
func ReadText(data []byte) (x *Text, err error) {
	defer func() {
		if r := recover(); r != nil {
			x, err = nil, fmt.Errorf("%w: reading text: %v", ErrMalformed, r)
		}
	}()
	if !IsDICOM(data) {
		return nil, fmt.Errorf("%w: no \"DICM\" marker after the 128-byte preamble", ErrNotDICOM)
	}
	c, err := checkStructure(data, DecodeOptions{}, func(tag.Tag) bool { return true })
	if err != nil {
		return nil, err
	}
	return newText(c.text), nil
}

// ReadTextFile is ReadText of a file.
func ReadTextFile(path string) (*Text, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ReadText(data)
}

// Values returns the decoded values of element t (trimmed of padding), and
// whether the data set has it at the top level.
func (x *Text) Values(t tag.Tag) ([]string, bool) {
	if x == nil {
		return nil, false
	}
	r, ok := x.raw[t]
	if !ok {
		return nil, false
	}
	if len(r.raw) == 0 {
		return nil, true
	}
	return x.CharacterSet.Decode(r.raw, r.vr), true
}

// String returns the values of t joined with '\' (see Values).
func (x *Text) String(t tag.Tag) (string, bool) {
	v, ok := x.Values(t)
	return strings.Join(v, `\`), ok
}

// PersonName returns the first value of the Person Name element t split
// into its groups and components (zero when absent or empty).
func (x *Text) PersonName(t tag.Tag) dicomcs.PersonName {
	v, _ := x.Values(t)
	if len(v) == 0 {
		return dicomcs.PersonName{}
	}
	return dicomcs.SplitPN(v[0])
}
