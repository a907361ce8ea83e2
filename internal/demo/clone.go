package demo

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/radgate/radgate/inference"
)

// Clone returns a copy of a Part 10 file as a new study: its Study, Series
// and SOP Instance UIDs and its accession number are replaced by values
// derived from n, of the same byte length, so no element length changes.
// Benchmarks and load tests use it to make many distinct orders from one
// radiograph.
func Clone(file []byte, n int) ([]byte, *inference.Meta, error) {
	m, err := inference.ReadHeader(file)
	if err != nil {
		return nil, nil, err
	}
	out := file
	for i, uid := range []string{m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID} {
		repl, err := variantUID(uid, byte('7'+i), n)
		if err != nil {
			return nil, nil, err
		}
		out = bytes.ReplaceAll(out, []byte(uid), []byte(repl))
	}
	if a := m.AccessionNumber; a != "" {
		if len(a) < 4 {
			return nil, nil, fmt.Errorf("accession number %q too short to vary", a)
		}
		repl := fmt.Sprintf("B%0*d", len(a)-1, n)
		if len(repl) != len(a) {
			return nil, nil, fmt.Errorf("clone %d does not fit accession %q", n, a)
		}
		out = bytes.ReplaceAll(out, []byte(a), []byte(repl))
	}
	cm, err := inference.ReadHeader(out)
	if err != nil {
		return nil, nil, fmt.Errorf("clone %d does not parse: %w", n, err)
	}
	return out, cm, nil
}

// variantUID replaces the last component of uid with lead (a non-zero
// digit, one per kind of UID so study, series and instance never collide)
// followed by n, zero-padded to the component's length.
func variantUID(uid string, lead byte, n int) (string, error) {
	i := strings.LastIndexByte(uid, '.')
	last := uid[i+1:]
	if i < 0 || len(last) < 4 {
		return "", fmt.Errorf("UID %s: last component too short to vary", uid)
	}
	v := fmt.Sprintf("%c%0*d", lead, len(last)-1, n)
	if len(v) != len(last) {
		return "", fmt.Errorf("UID %s cannot hold variant %d", uid, n)
	}
	return uid[:i+1] + v, nil
}
