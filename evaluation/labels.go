package evaluation

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Case is one row of a labels file: a file, relative to the set's
// directory, and whether it is positive.
type Case struct {
	File     string
	Positive bool
}

// ReadLabels reads a labels CSV: a header naming the columns "file" and
// "label" (any case, in any position, other columns ignored; a UTF-8 BOM is
// allowed), then one row per case with label 1 (positive) or 0 (negative).
// A file must be a relative path inside the set's directory and listed
// once. Errors name the file and line.
func ReadLabels(path string) ([]Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading labels: %w", err)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", path, err)
	}
	fileCol, labelCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "file":
			fileCol = i
		case "label":
			labelCol = i
		}
	}
	if fileCol < 0 || labelCol < 0 {
		return nil, fmt.Errorf("%s:1: the header must name the columns file and label (got %s)", path, strings.Join(header, ","))
	}
	var cases []Case
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if max(fileCol, labelCol) >= len(rec) {
			return nil, fmt.Errorf("%s:%d: %d columns, the header has %d", path, line, len(rec), len(header))
		}
		file := strings.TrimSpace(rec[fileCol])
		if file == "" || !filepath.IsLocal(file) {
			return nil, fmt.Errorf("%s:%d: file %q must be a relative path inside the directory", path, line, file)
		}
		if first, dup := seen[file]; dup {
			return nil, fmt.Errorf("%s:%d: file %q listed twice (first on line %d)", path, line, file, first)
		}
		seen[file] = line
		var positive bool
		switch l := strings.TrimSpace(rec[labelCol]); l {
		case "1":
			positive = true
		case "0":
		default:
			return nil, fmt.Errorf("%s:%d: label %q: want 1 (positive) or 0 (negative)", path, line, l)
		}
		cases = append(cases, Case{File: file, Positive: positive})
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases listed", path)
	}
	return cases, nil
}
