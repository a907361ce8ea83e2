package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/inference"
)

// scoreBatch is how many files `radgate score` decodes and scores together
// (one ONNX Runtime run); it bounds memory to that many decoded images.
const scoreBatch = 16

type scoreOptions struct {
	jsonOut    bool
	engineID   string
	modelsDir  string
	heatmapDir string
	lib        string
}

// scoreLine is one line of `radgate score --json`: exactly these keys, in
// this order. When Error is set the score fields (probability,
// confidence_percent, tier, marked, heatmap) are null; sop_instance_uid is
// null only when the file's header could not be read.
type scoreLine struct {
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

func init() {
	o := scoreOptions{}
	cmd := &cobra.Command{
		Use:   "score [flags] FILE|DIR...",
		Short: "Score DICOM files with an engine (no config, no server needed)",
		Long: `Score DICOM files with one engine and print one result per file.

Directories are walked; in them, files that are not DICOM Part 10 (no "DICM"
marker) and hidden files are skipped. A file named on the command line is
always scored or reported as failed.

For each file: the SOP Instance UID, the probability, the confidence in
percent, the tier (Low/Mid/High, from the unrounded probability and the
engine's thresholds), whether the region of interest is marked, and — when
marked — a heatmap PNG written to --heatmaps as <SOP Instance UID>.png. A
file outside the engine's declared modalities or body parts is still scored,
with a warning.

--json prints one object per line with the keys file, engine,
sop_instance_uid, probability, confidence_percent, tier, marked, heatmap,
warning, error (null when absent; when error is set the score fields are
null).

The ONNX Runtime library is looked up from --onnxruntime-lib, then
$RADGATE_ONNXRUNTIME_LIB, then .tools/onnxruntime/lib/libonnxruntime.so.

Exit status: 0 when every file was scored, 1 when any file failed (after
scoring the rest), 2 when the engine could not be loaded.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScore(cmd.Context(), o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object per file")
	f.StringVar(&o.engineID, "engine", inference.DefaultEngineID, "engine id (a directory under --models)")
	f.StringVar(&o.modelsDir, "models", "models", "models directory")
	f.StringVar(&o.heatmapDir, "heatmaps", "heatmaps", "directory for heatmap PNGs of marked results")
	f.StringVar(&o.lib, "onnxruntime-lib", "", "ONNX Runtime shared library (default: $RADGATE_ONNXRUNTIME_LIB, then the set-up script's path)")
	rootCmd.AddCommand(cmd)
}

// scoreInput is one file to score; err is set when it cannot even be listed.
type scoreInput struct {
	path string
	err  error
}

func runScore(ctx context.Context, o scoreOptions, args []string, stdout, stderr io.Writer) error {
	inputs, skipped, err := collectScoreInputs(args)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "radgate: skipped %d non-DICOM or hidden file(s) in the directories given\n", skipped)
	}

	reg, regErr := inference.LoadEngines(o.modelsDir)
	m, err := reg.Get(o.engineID)
	if err != nil {
		if regErr != nil {
			err = fmt.Errorf("%w\n%v", err, regErr)
		}
		return &exitError{code: 2, err: err}
	}
	if regErr != nil {
		fmt.Fprintf(stderr, "radgate: warning: other engines in %s did not load:\n%v\n", o.modelsDir, regErr)
	}
	lib, err := inference.FindLibrary(o.lib)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	eng, err := inference.NewEngine(m, inference.EngineOptions{Library: lib})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer eng.Close()

	out := &scorePrinter{w: stdout, json: o.jsonOut}
	for start := 0; start < len(inputs); start += scoreBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := inputs[start:min(start+scoreBatch, len(inputs))]
		for _, line := range scoreFiles(ctx, eng, batch, o.heatmapDir) {
			if err := out.print(line); err != nil {
				return err
			}
		}
	}
	out.summary(m)
	if out.failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d file(s) failed", out.failed, out.total)}
	}
	return nil
}

// collectScoreInputs expands the arguments: files as given, directories
// walked in lexical order (hidden entries and non-DICOM files skipped).
func collectScoreInputs(args []string) (inputs []scoreInput, skipped int, err error) {
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			inputs = append(inputs, scoreInput{path: arg, err: err})
			continue
		}
		if !st.IsDir() {
			inputs = append(inputs, scoreInput{path: arg})
			continue
		}
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				inputs = append(inputs, scoreInput{path: p, err: err})
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
			inputs = append(inputs, scoreInput{path: p})
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

// scoreFiles decodes and scores one batch; the lines come back in order.
func scoreFiles(ctx context.Context, eng *inference.Engine, batch []scoreInput, heatmapDir string) []scoreLine {
	m := eng.Manifest()
	lines := make([]scoreLine, len(batch))
	var imgs []*inference.Image
	var idx []int
	for i, in := range batch {
		lines[i] = scoreLine{File: in.path, Engine: m.ID}
		if in.err != nil {
			lines[i].Error = ptr(in.err.Error())
			continue
		}
		data, err := os.ReadFile(in.path)
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
		if r.Marked {
			p, err := writeHeatmap(img, r, heatmapDir)
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

// heatmapName is <SOP Instance UID>.png; a UID that is not a plain dotted
// number (it is untrusted input) becomes a hash, so it can never name a
// path outside the directory.
func heatmapName(uid string) string {
	if plainUID.MatchString(uid) && len(uid) <= 64 {
		return uid + ".png"
	}
	sum := sha256.Sum256([]byte(uid))
	return "sop-" + hex.EncodeToString(sum[:12]) + ".png"
}

func writeHeatmap(img *inference.Image, r inference.Result, dir string) (string, error) {
	png, _, _, err := inference.RenderHeatmap(img, r, inference.HeatmapOptions{})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, heatmapName(img.Meta.SOPInstanceUID))
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

// scorePrinter writes JSON lines or human lines, and counts.
type scorePrinter struct {
	w                     io.Writer
	json                  bool
	total, failed, marked int
}

func (p *scorePrinter) print(l scoreLine) error {
	p.total++
	if l.Error != nil {
		p.failed++
	} else if l.Marked != nil && *l.Marked {
		p.marked++
	}
	if p.json {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n", l.File)
	uid := "(unknown SOP Instance UID)"
	if l.SOPInstanceUID != nil {
		uid = *l.SOPInstanceUID
	}
	if l.Error != nil {
		fmt.Fprintf(&s, "    FAILED  %s\n    error:   %s\n", uid, *l.Error)
	} else {
		mark := "not marked"
		if *l.Marked {
			mark = "marked"
		}
		fmt.Fprintf(&s, "    %-4s %5.1f%%  p=%.6f  %s  %s\n", *l.Tier, *l.ConfidencePercent, *l.Probability, mark, uid)
		if l.Heatmap != nil {
			fmt.Fprintf(&s, "    heatmap: %s\n", *l.Heatmap)
		}
	}
	if l.Warning != nil {
		fmt.Fprintf(&s, "    warning: %s\n", *l.Warning)
	}
	_, err := io.WriteString(p.w, s.String())
	return err
}

// summary closes human output with the counts and the engine's disclaimer.
func (p *scorePrinter) summary(m *inference.Manifest) {
	if p.json {
		return
	}
	fmt.Fprintf(p.w, "\n%d file(s) with %s %s: %d scored (%d marked), %d failed.\n%s\n",
		p.total, m.ID, m.Version, p.total-p.failed, p.marked, p.failed, m.Disclaimer)
}

func ptr[T any](v T) *T { return &v }
