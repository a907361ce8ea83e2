package scoring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
)

// Line is one file's result: one line of `radgate score --json`, exactly
// these keys in this order. When Error is set the score fields
// (probability, confidence_percent, tier, marked, heatmap) are null;
// sop_instance_uid is null only when the file's header could not be read;
// heatmap is null unless the result is marked and heatmaps were asked for.
type Line struct {
	File              string   `json:"file"`
	Engine            string   `json:"engine"`
	SOPInstanceUID    *string  `json:"sop_instance_uid"`
	Probability       *float64 `json:"probability"`
	ConfidencePercent *float64 `json:"confidence_percent"`
	Tier              *string  `json:"tier"`
	Marked            *bool    `json:"marked"`
	Heatmap           *string  `json:"heatmap"`
	Warning           *string  `json:"warning"`
	Error             *string  `json:"error"`
}

// Input is one file to score; Err is set when it cannot even be listed.
type Input struct {
	Path string
	Err  error
}

// Inputs expands command-line arguments: files as given (a missing one is
// an Input with Err, reported when scored), directories walked in lexical
// order with hidden entries and files that are not DICOM Part 10 skipped
// and counted.
func Inputs(args []string) (inputs []Input, skipped int, err error) {
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			inputs = append(inputs, Input{Path: arg, Err: err})
			continue
		}
		if !st.IsDir() {
			inputs = append(inputs, Input{Path: arg})
			continue
		}
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				inputs = append(inputs, Input{Path: p, Err: err})
				return nil
			}
			if p != arg && strings.HasPrefix(d.Name(), ".") {
				skipped++
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if !looksLikeDICOM(p) {
				skipped++
				return nil
			}
			inputs = append(inputs, Input{Path: p})
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return inputs, skipped, nil
}

func looksLikeDICOM(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true // let scoring report the error
	}
	defer f.Close()
	head := make([]byte, 132)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return inference.IsDICOM(head)
}

// Files decodes and scores one batch with eng in one run; the lines come
// back in the batch's order. When heatmapDir is not empty, each marked
// result's heatmap PNG is written there as HeatmapName(SOP Instance UID);
// when it is empty, no heatmap is rendered.
func Files(ctx context.Context, eng *onnx.Engine, batch []Input, heatmapDir string) []Line {
	m := eng.Manifest()
	lines := make([]Line, len(batch))
	var imgs []*inference.Image
	var idx []int
	for i, in := range batch {
		lines[i] = Line{File: in.Path, Engine: m.ID}
		if in.Err != nil {
			lines[i].Error = ptr(in.Err.Error())
			continue
		}
		data, err := os.ReadFile(in.Path)
		if err != nil {
			lines[i].Error = ptr(err.Error())
			continue
		}
		img, err := inference.Decode(data)
		if err != nil {
			if meta, herr := inference.ReadHeader(data); herr == nil && meta.SOPInstanceUID != "" {
				lines[i].SOPInstanceUID = ptr(meta.SOPInstanceUID)
			}
			lines[i].Error = ptr(err.Error())
			continue
		}
		if img.Meta.SOPInstanceUID != "" {
			lines[i].SOPInstanceUID = ptr(img.Meta.SOPInstanceUID)
		}
		if w := m.Check(&img.Meta); w != "" {
			lines[i].Warning = ptr(w)
		}
		imgs = append(imgs, img)
		idx = append(idx, i)
	}
	if len(imgs) == 0 {
		return lines
	}
	results, err := eng.Score(ctx, imgs)
	if err != nil {
		for _, i := range idx {
			lines[i].Error = ptr("scoring: " + err.Error())
		}
		return lines
	}
	for k, r := range results {
		i, img := idx[k], imgs[k]
		var heatmap *string
		if r.Marked && heatmapDir != "" {
			p, err := WriteHeatmap(img, r, heatmapDir)
			if err != nil {
				lines[i].Error = ptr("heatmap: " + err.Error())
				continue
			}
			heatmap = &p
		}
		lines[i].Probability = ptr(r.Probability)
		lines[i].ConfidencePercent = ptr(r.ConfidencePercent)
		lines[i].Tier = ptr(string(r.Tier))
		lines[i].Marked = ptr(r.Marked)
		lines[i].Heatmap = heatmap
	}
	return lines
}

var plainUID = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// HeatmapName is <SOP Instance UID>.png; a UID that is not a plain dotted
// number of at most 64 characters (it is untrusted input) becomes a hash,
// so it can never name a path outside the directory.
func HeatmapName(uid string) string {
	if plainUID.MatchString(uid) && len(uid) <= 64 {
		return uid + ".png"
	}
	sum := sha256.Sum256([]byte(uid))
	return "sop-" + hex.EncodeToString(sum[:12]) + ".png"
}

// WriteHeatmap renders r's heatmap over img and writes it into dir (made
// when missing) as HeatmapName, atomically; it returns the file's path.
func WriteHeatmap(img *inference.Image, r inference.Result, dir string) (string, error) {
	png, _, _, err := inference.RenderHeatmap(img, r, inference.HeatmapOptions{})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, HeatmapName(img.Meta.SOPInstanceUID))
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, png, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return p, nil
}

func ptr[T any](v T) *T { return &v }
