package dicomweb

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/radgate/radgate"
)

// DICOM tags this client reads, as DICOM JSON keys (PS3.18 F.2: eight
// uppercase hex digits).
const (
	tagSOPClassUID           = "00080016"
	tagSOPInstanceUID        = "00080018"
	tagAccessionNumber       = "00080050"
	tagInstitutionName       = "00080080"
	tagModality              = "00080060"
	tagSeriesDescription     = "0008103E"
	tagRetrieveURL           = "00081190"
	tagFailedSOPSequence     = "00081198"
	tagReferencedSOPSequence = "00081199"
	tagReferencedSOPClass    = "00081150"
	tagReferencedSOPInstance = "00081155"
	tagFailureReason         = "00081197"
	tagWarningReason         = "00081196"
	tagBodyPartExamined      = "00180015"
	tagViewPosition          = "00185101"
	tagViewCodeSequence      = "00540220"
	tagCodeValue             = "00080100"
	tagCodingScheme          = "00080102"
	tagCodeMeaning           = "00080104"
	tagStudyInstanceUID      = "0020000D"
	tagSeriesInstanceUID     = "0020000E"
	tagSeriesNumber          = "00200011"
	tagInstanceNumber        = "00200013"
)

// element is one attribute of a DICOM JSON object (PS3.18 F.2.2): its VR and
// its Value array. InlineBinary and BulkDataURI are not needed here.
type element struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// dataset is a DICOM JSON object, keyed by uppercase tag.
type dataset map[string]element

// UnmarshalJSON accepts lowercase hex keys too (some servers emit them).
func (d *dataset) UnmarshalJSON(b []byte) error {
	var m map[string]element
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out := make(dataset, len(m))
	for k, v := range m {
		out[strings.ToUpper(k)] = v
	}
	*d = out
	return nil
}

// parseDatasets decodes a QIDO-RS answer: a JSON array of DICOM JSON objects.
// An empty body (HTTP 204, or a server that sends nothing) is no match.
func parseDatasets(b []byte) ([]dataset, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var out []dataset
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// values returns the attribute's values as strings: strings as they are,
// numbers in their JSON spelling, person names by their Alphabetic group;
// null values (empty positions) as "". A sequence yields nothing.
func (d dataset) values(tag string) []string {
	e, ok := d[tag]
	if !ok || e.VR == "SQ" {
		return nil
	}
	out := make([]string, 0, len(e.Value))
	for _, raw := range e.Value {
		out = append(out, valueString(raw))
	}
	return out
}

// str returns the first value of tag as a string, trimmed of DICOM padding
// (spaces, NUL), or "".
func (d dataset) str(tag string) string {
	v := d.values(tag)
	if len(v) == 0 {
		return ""
	}
	return strings.Trim(v[0], " \x00")
}

// integer returns the first value of tag as an integer (IS and US come as JSON
// numbers, though some servers send IS as a string).
func (d dataset) integer(tag string) (int, bool) {
	s := d.str(tag)
	if s == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f == float64(int(f)) {
		return int(f), true
	}
	return 0, false
}

// seq returns the items of a sequence attribute; items that are not objects
// are skipped.
func (d dataset) seq(tag string) []dataset {
	e, ok := d[tag]
	if !ok || (e.VR != "SQ" && e.VR != "") {
		return nil
	}
	var out []dataset
	for _, raw := range e.Value {
		var item dataset
		if json.Unmarshal(raw, &item) == nil && item != nil {
			out = append(out, item)
		}
	}
	return out
}

func valueString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '{':
		var pn struct {
			Alphabetic string `json:"Alphabetic"`
		}
		if json.Unmarshal(raw, &pn) == nil {
			return pn.Alphabetic
		}
	default:
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// view reads an instance's view: View Position (0018,5101), and, when that
// is empty, the first item of View Code Sequence (0054,0220) with a code
// value. ok reports whether the answer settles it: a View Position, or a
// View Code Sequence present (possibly empty; a first item without a code
// value counts as no code). Servers that leave
// sequences out of QIDO-RS answers (Orthanc 1.10) give ok false for an
// instance without View Position.
func (d dataset) view() (position string, code *radgate.Coding, ok bool) {
	if p := d.str(tagViewPosition); p != "" {
		return p, nil, true
	}
	if _, has := d[tagViewCodeSequence]; !has {
		return "", nil, false
	}
	items := d.seq(tagViewCodeSequence)
	if len(items) == 0 || items[0].str(tagCodeValue) == "" {
		return "", nil, true
	}
	first := items[0]
	scheme := first.str(tagCodingScheme)
	if uri, known := codingSystems[scheme]; known {
		scheme = uri
	}
	return "", &radgate.Coding{System: scheme, Code: first.str(tagCodeValue), Display: first.str(tagCodeMeaning)}, true
}

// codingSystems maps the DICOM Coding Scheme Designators of view codes to
// the code system URIs radgate.Coding uses elsewhere (FHIR). Another
// designator (SRT, 99LOCAL, …) is kept as it is.
var codingSystems = map[string]string{
	"SCT": "http://snomed.info/sct",
	"DCM": "http://dicom.nema.org/resources/ontology/DCM",
	"LN":  "http://loinc.org",
}
