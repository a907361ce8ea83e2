package inference

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ManifestFile is the file name of an engine manifest inside its directory
// (models/<id>/model.yaml).
const ManifestFile = "model.yaml"

// DefaultEngineID is the engine used when none is named.
const DefaultEngineID = "cxr-pneumonia-densenet121"

// Manifest describes one engine: which model file to run, on what images,
// how to preprocess them, how to read its outputs, and what every result
// must say. It is read from models/<id>/model.yaml by LoadManifest; the YAML
// keys are the snake_case tags below, and unknown keys are errors.
type Manifest struct {
	// ID names the engine in routes, CLI flags and results; it must equal
	// the name of the manifest's directory.
	ID string `yaml:"id"`
	// Name is a human title.
	Name string `yaml:"name"`
	// Version is the model version; it goes into derived identifiers, so
	// change it whenever model.onnx changes.
	Version string `yaml:"version"`
	// Model is the ONNX file, relative to the manifest's directory.
	Model string `yaml:"model"`
	// SHA256 is the model file's hex SHA-256; onnx.NewEngine (package
	// inference/onnx) refuses a file that does not match. Optional.
	SHA256 string `yaml:"sha256"`
	// Modalities the engine is meant for (DICOM Modality, e.g. CR, DX).
	Modalities []string `yaml:"modalities"`
	// BodyParts the engine is meant for (DICOM Body Part Examined, e.g. CHEST).
	BodyParts []string `yaml:"body_parts"`
	// Views the engine scores (DICOM View Position, e.g. PA, AP; or read
	// from the View Code Sequence). An image of another view — a lateral —
	// is skipped and named in the result. Empty: any view, and images that
	// declare none.
	Views []string `yaml:"views"`
	// Accepts are the intended-use rules an image must meet to be scored
	// by serve (score and eval score it anyway, with a warning).
	Accepts Accepts `yaml:"accepts"`
	// Finding is the coded finding the probability is about.
	Finding Coding `yaml:"finding"`
	// Input is the image tensor, [N,1,Size,Size] float32 (N = -1: dynamic).
	Input TensorSpec `yaml:"input"`
	// Outputs names the probability [N] and CAM [N,h,w] tensors.
	Outputs Outputs `yaml:"outputs"`
	// Preprocessing says how an image becomes the input plane.
	Preprocessing Preprocessing `yaml:"preprocessing"`
	// Thresholds for tiers and for marking the region of interest.
	Thresholds Thresholds `yaml:"thresholds"`
	// IntendedUse is the engine's intended use, in prose.
	IntendedUse string `yaml:"intended_use"`
	// Disclaimer goes word for word into every result (FHIR, HL7, DICOM, PDF).
	Disclaimer string `yaml:"disclaimer"`
	// Licence of the model and of the data it was trained on.
	Licence string `yaml:"licence"`
	// Metrics are the training run's own measured figures.
	Metrics Metrics `yaml:"metrics"`
	// Reference is the engine's score distribution on its validation set:
	// what live monitoring compares a facility's scores with (PSI). Nil
	// when the manifest gives none (no drift by PSI is then measured).
	Reference *Reference `yaml:"reference"`

	// Dir is the manifest's directory and File its path (set by LoadManifest).
	Dir  string `yaml:"-"`
	File string `yaml:"-"`
}

// Accepts are an engine's intended-use rules on one image, checked on its
// header (CheckImage). Views are Manifest.Views (the router skips other
// views before scoring).
type Accepts struct {
	// MinRows and MinColumns are the smallest matrix the engine scores
	// (DICOM Rows and Columns); both required, at least 1.
	MinRows    int `yaml:"min_rows"`
	MinColumns int `yaml:"min_columns"`
	// PixelSpacingMM is the pixel spacing range, in mm, the engine scores
	// (both the row and the column spacing; Pixel Spacing, else Imager
	// Pixel Spacing). An image that states no spacing is not refused for
	// it. Optional.
	PixelSpacingMM *Range `yaml:"pixel_spacing_mm"`
	// AgeYears is the patient age range at the study date, in whole years
	// completed, both ends included: {min: 1, max: 5} takes a child of 5
	// years 11 months (5) and refuses one of 11 months (0). The age is
	// read from the image (Age), else from the order; serve refuses an
	// image whose age is outside, and scores one whose age is unknown with
	// a caveat (UnknownAgeCaveat) unless the route says unknown_age:
	// reject. Optional: no range, no age rule.
	AgeYears *YearRange `yaml:"age_years"`
}

// YearRange is a closed interval of whole years [Min, Max].
type YearRange struct {
	Min int `yaml:"min"`
	Max int `yaml:"max"`
}

// String writes the range as "1–5 y".
func (r YearRange) String() string { return fmt.Sprintf("%d–%d y", r.Min, r.Max) }

// Contains reports whether whole years y lie in the range.
func (r YearRange) Contains(y int) bool { return y >= r.Min && y <= r.Max }

// AgeOutside is the reason an image of a patient aged ageText (its whole
// years outside r) is not scored by engine: "patient age 86 y is outside
// engine x's intended use: 1–5 y (accepts.age_years)"; from, when not
// empty, says where the age came from and is added in brackets.
func AgeOutside(engine string, r YearRange, ageText, from string) string {
	src := ""
	if from != "" {
		src = " (" + from + ")"
	}
	return fmt.Sprintf("patient age %s%s is outside engine %s's intended use: %s (accepts.age_years)", ageText, src, engine, r)
}

// UnknownAgeCaveat is what a result scored without a known age says, in
// every output: "patient age unknown: engine x's intended use is 1–5 y
// (accepts.age_years); the result was not checked against it".
func UnknownAgeCaveat(engine string, r YearRange) string {
	return fmt.Sprintf("patient age unknown: engine %s's intended use is %s (accepts.age_years); the result was not checked against it", engine, r)
}

// UnknownAgeRefused is the reason an image without a known age is not
// scored when the route says unknown_age: reject; why says why the age is
// unknown.
func UnknownAgeRefused(engine string, r YearRange, why string) string {
	return fmt.Sprintf("patient age unknown (%s): engine %s's intended use is %s (accepts.age_years) and the route refuses unknown ages (unknown_age: reject)", why, engine, r)
}

// Range is a closed interval [Min, Max].
type Range struct {
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// ErrNotAccepted: an image is outside an engine's intended-use rules
// (Manifest.Accepts). serve does not score it; an order with no other image
// is answered not-applicable with the reason.
var ErrNotAccepted = errors.New("image outside the engine's intended use")

// NotAcceptedError says which rule of Manifest.Accepts an image breaks.
type NotAcceptedError struct {
	Engine string
	Reason string // e.g. "image 16×16 px is below engine x's minimum matrix 28×28 (accepts.min_rows, accepts.min_columns)"
	// Rule is the patient rule broken, RuleAge; "" for an image rule
	// (matrix, spacing). An engine in shadow still scores a study outside a
	// patient rule, recorded as out of scope, to be measured on the
	// facility's own population.
	Rule string
}

// RuleAge is NotAcceptedError.Rule of an age outside accepts.age_years.
const RuleAge = "accepts.age_years"

// PatientRule reports whether err is an image refused for a patient rule
// of the intended use (RuleAge), which an engine in shadow scores anyway.
func PatientRule(err error) bool {
	var na *NotAcceptedError
	return errors.As(err, &na) && na.Rule != ""
}

func (e *NotAcceptedError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrNotAccepted) true.
func (e *NotAcceptedError) Is(target error) bool { return target == ErrNotAccepted }

// CheckImage checks an image's header against Accepts: nil when the engine
// may score it, else a *NotAcceptedError (ErrNotAccepted) saying why. An
// image whose header gives no age passes: the caller knows the order (its
// age) and the route (unknown_age), which decide.
func (m *Manifest) CheckImage(meta *Meta) error {
	a := m.Accepts
	if meta.Rows < a.MinRows || meta.Columns < a.MinColumns {
		return &NotAcceptedError{Engine: m.ID, Reason: fmt.Sprintf(
			"image %d×%d px (rows×columns) is below engine %s's minimum matrix %d×%d (accepts.min_rows, accepts.min_columns)",
			meta.Rows, meta.Columns, m.ID, a.MinRows, a.MinColumns)}
	}
	if r := a.PixelSpacingMM; r != nil && meta.PixelSpacingFrom != "" {
		for _, v := range meta.PixelSpacing {
			if v < r.Min || v > r.Max {
				return &NotAcceptedError{Engine: m.ID, Reason: fmt.Sprintf(
					"image pixel spacing %g×%g mm (%s) is outside engine %s's range %g–%g mm (accepts.pixel_spacing_mm)",
					meta.PixelSpacing[0], meta.PixelSpacing[1], meta.PixelSpacingFrom, m.ID, r.Min, r.Max)}
			}
		}
	}
	if r := a.AgeYears; r != nil && meta.Age.Known && !r.Contains(meta.Age.Years) {
		return &NotAcceptedError{Engine: m.ID, Reason: AgeOutside(m.ID, *r, meta.Age.Text, meta.Age.From), Rule: RuleAge}
	}
	return nil
}

// Coding is a code from a code system (SNOMED CT for findings).
type Coding struct {
	System  string `yaml:"system"`
	Code    string `yaml:"code"`
	Display string `yaml:"display"`
}

// TensorSpec names a model input or output and its shape (-1: dynamic).
type TensorSpec struct {
	Name  string  `yaml:"name"`
	Shape []int64 `yaml:"shape"`
	// DType is the element type; only "float32" is supported.
	DType string `yaml:"dtype"`
}

// Outputs are the model outputs radgate reads.
type Outputs struct {
	// Probability is [N]: the calibrated probability of the finding.
	Probability TensorSpec `yaml:"probability"`
	// CAM is [N,h,w]: the class activation map, ReLU'd, not normalised.
	CAM TensorSpec `yaml:"cam"`
}

// Thresholds turn a probability into a tier and a mark. Tiers: Low below
// TierMid, Mid from TierMid up to (not including) TierHigh, High from
// TierHigh; the region is marked from Mark. Always compare the unrounded
// probability.
type Thresholds struct {
	TierMid  float64 `yaml:"tier_mid"`
	TierHigh float64 `yaml:"tier_high"`
	Mark     float64 `yaml:"mark"`
}

// Metrics are an engine's measured figures, copied from its training run.
type Metrics struct {
	// Source names where the figures come from (training-metrics.json).
	Source      string        `yaml:"source"`
	Validation  *SplitMetrics `yaml:"validation"`
	Test        *SplitMetrics `yaml:"test"`
	ONNXRuntime *RuntimeCheck `yaml:"onnxruntime"`
}

// SplitMetrics are the figures on one data split, at probability 0.5.
type SplitMetrics struct {
	Dataset     string  `yaml:"dataset"`
	N           int     `yaml:"n"`
	AUC         float64 `yaml:"auc"`
	Accuracy    float64 `yaml:"accuracy"`
	Sensitivity float64 `yaml:"sensitivity"`
	Specificity float64 `yaml:"specificity"`
	ECE         float64 `yaml:"ece"`
	// Tiers counts cases per label ("normal", "pneumonia") and tier.
	Tiers map[string]TierCounts `yaml:"tiers"`
}

// TierCounts counts cases per tier.
type TierCounts struct {
	Low  int `yaml:"low"`
	Mid  int `yaml:"mid"`
	High int `yaml:"high"`
}

// RuntimeCheck records how ONNX Runtime reproduced the training framework.
type RuntimeCheck struct {
	Version         string  `yaml:"version"`
	TestAUC         float64 `yaml:"test_auc"`
	MaxAbsDiffTorch float64 `yaml:"max_abs_diff_vs_pytorch"`
}

// ModelPath is the absolute (or manifest-relative) path of the ONNX file.
func (m *Manifest) ModelPath() string {
	if filepath.IsAbs(m.Model) {
		return m.Model
	}
	return filepath.Join(m.Dir, m.Model)
}

// CAMSize returns the CAM's height and width from Outputs.CAM.Shape.
func (m *Manifest) CAMSize() (h, w int) {
	s := m.Outputs.CAM.Shape
	if len(s) != 3 {
		return 0, 0
	}
	return int(s[1]), int(s[2])
}

// Check reports how an image's header falls outside the engine's declared
// modalities, body parts and Accepts rules: "" when it matches. An empty
// Body Part Examined is reported too (nothing confirms the body part).
func (m *Manifest) Check(meta *Meta) string {
	var probs []string
	if !slices.Contains(m.Modalities, strings.ToUpper(meta.Modality)) {
		mod := meta.Modality
		if mod == "" {
			mod = "(none)"
		}
		probs = append(probs, fmt.Sprintf("modality %s is not one of %s", mod, strings.Join(m.Modalities, ", ")))
	}
	switch bp := strings.ToUpper(meta.BodyPartExamined); {
	case bp == "":
		probs = append(probs, fmt.Sprintf("Body Part Examined is empty (engine declares %s)", strings.Join(m.BodyParts, ", ")))
	case !slices.Contains(m.BodyParts, bp):
		probs = append(probs, fmt.Sprintf("body part %s is not one of %s", bp, strings.Join(m.BodyParts, ", ")))
	}
	var out []string
	if len(probs) > 0 {
		out = append(out, fmt.Sprintf("outside engine %s's declaration: %s", m.ID, strings.Join(probs, "; ")))
	}
	if err := m.CheckImage(meta); err != nil {
		out = append(out, err.Error())
	}
	if r := m.Accepts.AgeYears; r != nil && !meta.Age.Known {
		out = append(out, UnknownAgeCaveat(m.ID, *r)+" ("+meta.Age.Unknown()+")")
	}
	if w := meta.IntentWarning(); w != "" {
		out = append(out, w)
	}
	return strings.Join(out, "; ")
}

// ManifestError is one problem in a manifest, at a position when known.
type ManifestError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *ManifestError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ManifestErrors is every problem found in one manifest, in file order.
type ManifestErrors []*ManifestError

func (es ManifestErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

var (
	idRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// LoadManifest reads and validates one manifest. Unknown keys, wrong types
// and invalid values are all reported, each as "file:line:col: message", in
// one ManifestErrors.
func LoadManifest(path string) (*Manifest, error) { return loadManifest(path, true) }

// loadManifest is LoadManifest; withModel checks that the model file it
// names is there.
func loadManifest(path string, withModel bool) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(path, data, withModel)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ParseManifest is LoadManifest on bytes already read; path names the file
// in errors and sets Dir.
func ParseManifest(path string, data []byte) (*Manifest, error) {
	return parseManifest(path, data, true)
}

func parseManifest(path string, data []byte, withModel bool) (*Manifest, error) {
	var errs ManifestErrors
	add := func(n *yaml.Node, format string, args ...any) {
		e := &ManifestError{File: path, Msg: fmt.Sprintf(format, args...)}
		if n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
		errs = append(errs, e)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &ManifestError{File: path, Msg: err.Error()}
		if sm := yamlLine.FindStringSubmatch(err.Error()); sm != nil {
			fmt.Sscan(sm[1], &e.Line)
			e.Msg = sm[2]
		}
		return nil, ManifestErrors{e}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, ManifestErrors{{File: path, Msg: "empty manifest"}}
	}
	root := doc.Content[0]
	checkNode(root, reflect.TypeOf(Manifest{}), "", add)
	if len(errs) > 0 {
		return nil, errs
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		// checkNode should have caught it; keep yaml's own words.
		return nil, ManifestErrors{{File: path, Msg: err.Error()}}
	}
	m.File = path
	m.Dir = filepath.Dir(path)
	m.validate(withModel, func(keys []string, format string, args ...any) {
		add(nodeAt(root, keys...), format, args...)
	})
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			if errs[i].Line != errs[j].Line {
				return errs[i].Line < errs[j].Line
			}
			return errs[i].Column < errs[j].Column
		})
		return nil, errs
	}
	return &m, nil
}

// validate checks values; report takes the key path of the offending
// value. withModel: the model file must be there too.
func (m *Manifest) validate(withModel bool, report func(keys []string, format string, args ...any)) {
	k := func(keys ...string) []string { return keys }
	required := func(v string, keys ...string) bool {
		if strings.TrimSpace(v) == "" {
			report(keys, "%s is required", strings.Join(keys, "."))
			return false
		}
		return true
	}
	if required(m.ID, "id") {
		if !idRE.MatchString(m.ID) {
			report(k("id"), "id %q: use lower-case letters, digits, '.', '_' and '-'", m.ID)
		}
		if dir := filepath.Base(m.Dir); m.Dir != "" && dir != m.ID {
			report(k("id"), "id %q differs from its directory name %q", m.ID, dir)
		}
	}
	required(m.Name, "name")
	required(m.Version, "version")
	if required(m.Model, "model") && withModel {
		if st, err := os.Stat(m.ModelPath()); err != nil {
			report(k("model"), "model file %s: %v", m.ModelPath(), errors.Unwrap(err))
		} else if st.IsDir() {
			report(k("model"), "model file %s is a directory", m.ModelPath())
		}
	}
	if m.SHA256 != "" && !sha256RE.MatchString(m.SHA256) {
		report(k("sha256"), "sha256 must be 64 lower-case hex digits")
	}
	if len(m.Modalities) == 0 {
		report(k("modalities"), "modalities: list at least one (e.g. [CR, DX])")
	}
	for i, v := range m.Modalities {
		if v == "" || v != strings.ToUpper(v) {
			report(k("modalities", fmt.Sprint(i)), "modality %q: use the upper-case DICOM code", v)
		}
	}
	if len(m.BodyParts) == 0 {
		report(k("body_parts"), "body_parts: list at least one (e.g. [CHEST])")
	}
	for i, v := range m.BodyParts {
		if v == "" || v != strings.ToUpper(v) {
			report(k("body_parts", fmt.Sprint(i)), "body part %q: use the upper-case DICOM term", v)
		}
	}
	for i, v := range m.Views {
		if !KnownView(v) {
			report(k("views", fmt.Sprint(i)), "view %q: use an upper-case DICOM View Position (PA, AP, LL, RL, LATERAL, …)", v)
		}
	}
	if m.Accepts.MinRows < 1 {
		report(k("accepts", "min_rows"), "accepts.min_rows: want the smallest Rows the engine scores, at least 1 (e.g. 224), got %d", m.Accepts.MinRows)
	}
	if m.Accepts.MinColumns < 1 {
		report(k("accepts", "min_columns"), "accepts.min_columns: want the smallest Columns the engine scores, at least 1 (e.g. 224), got %d", m.Accepts.MinColumns)
	}
	if r := m.Accepts.PixelSpacingMM; r != nil && !(r.Min > 0 && r.Min <= r.Max && !math.IsInf(r.Max, 0)) {
		report(k("accepts", "pixel_spacing_mm"), "accepts.pixel_spacing_mm: want 0 < min ≤ max (mm), got min %g, max %g", r.Min, r.Max)
	}
	if r := m.Accepts.AgeYears; r != nil && !(r.Min >= 0 && r.Min <= r.Max && r.Max <= maxAgeYears) {
		report(k("accepts", "age_years"), "accepts.age_years: want 0 ≤ min ≤ max ≤ %d (whole years at the study date), got min %d, max %d", maxAgeYears, r.Min, r.Max)
	}
	required(m.Finding.System, "finding", "system")
	required(m.Finding.Code, "finding", "code")
	required(m.Finding.Display, "finding", "display")

	if err := m.Preprocessing.Validate(); err != nil {
		report(k("preprocessing"), "preprocessing: %v", err)
	}
	size := int64(m.Preprocessing.Size)
	required(m.Input.Name, "input", "name")
	if s := m.Input.Shape; len(s) != 4 || s[1] != 1 || s[2] != size || s[3] != size || (s[0] != -1 && s[0] < 1) {
		report(k("input", "shape"), "input shape %v: want [-1, 1, %d, %d] (batch, channel, preprocessing.size²)", s, size, size)
	}
	for _, t := range []struct {
		spec *TensorSpec
		key  []string
	}{{&m.Input, k("input")}, {&m.Outputs.Probability, k("outputs", "probability")}, {&m.Outputs.CAM, k("outputs", "cam")}} {
		if t.spec.DType != "float32" {
			report(append(t.key, "dtype"), "%s.dtype %q: only float32 is supported", strings.Join(t.key, "."), t.spec.DType)
		}
	}
	required(m.Outputs.Probability.Name, "outputs", "probability", "name")
	if s := m.Outputs.Probability.Shape; len(s) != 1 || s[0] != m.Input.Shape0() {
		report(k("outputs", "probability", "shape"), "probability shape %v: want [%d] (one per image)", s, m.Input.Shape0())
	}
	required(m.Outputs.CAM.Name, "outputs", "cam", "name")
	if s := m.Outputs.CAM.Shape; len(s) != 3 || s[0] != m.Input.Shape0() || s[1] < 1 || s[2] < 1 {
		report(k("outputs", "cam", "shape"), "cam shape %v: want [%d, h, w]", s, m.Input.Shape0())
	}
	t := m.Thresholds
	if !(t.TierMid > 0 && t.TierMid < t.TierHigh && t.TierHigh <= 1) {
		report(k("thresholds"), "thresholds: want 0 < tier_mid < tier_high ≤ 1, got tier_mid %g, tier_high %g", t.TierMid, t.TierHigh)
	}
	if !(t.Mark > 0 && t.Mark <= 1) {
		report(k("thresholds", "mark"), "thresholds.mark %g: want 0 < mark ≤ 1", t.Mark)
	}
	required(m.IntendedUse, "intended_use")
	required(m.Disclaimer, "disclaimer")
	required(m.Licence, "licence")
	if m.Reference != nil {
		m.Reference.validate(report)
	}
}

// Reference is a score distribution as counts in equal-width probability
// bins: Counts[i] scores s with i/len ≤ s < (i+1)/len (the last bin takes
// 1.0 too).
type Reference struct {
	Dataset string `yaml:"dataset"`
	N       int    `yaml:"n"`
	Counts  []int  `yaml:"counts"`
}

// Edges are the bins' edges, 0 to 1.
func (r *Reference) Edges() []float64 {
	out := make([]float64, len(r.Counts)+1)
	for i := range out {
		out[i] = float64(i) / float64(len(r.Counts))
	}
	return out
}

// Proportions are the bins' shares of N.
func (r *Reference) Proportions() []float64 {
	out := make([]float64, len(r.Counts))
	for i, c := range r.Counts {
		out[i] = float64(c) / float64(r.N)
	}
	return out
}

// ReferenceBin is the bin of a probability among n equal-width bins.
func ReferenceBin(p float64, n int) int {
	return min(max(int(p*float64(n)), 0), n-1)
}

func (r *Reference) validate(report func(keys []string, format string, args ...any)) {
	if strings.TrimSpace(r.Dataset) == "" {
		report([]string{"reference", "dataset"}, "reference.dataset is required (the cases the counts were taken from)")
	}
	if len(r.Counts) < 2 {
		report([]string{"reference", "counts"}, "reference.counts: want at least 2 equal-width bins over [0, 1], got %d", len(r.Counts))
		return
	}
	sum := 0
	for i, c := range r.Counts {
		if c < 0 {
			report([]string{"reference", "counts", fmt.Sprint(i)}, "reference.counts[%d] is %d: counts are not negative", i, c)
		}
		sum += c
	}
	if sum != r.N || r.N < 1 {
		report([]string{"reference", "n"}, "reference.n %d: want the sum of the counts (%d), at least 1", r.N, sum)
	}
}

// Shape0 is the batch dimension of an input shape (-1 when dynamic).
func (t TensorSpec) Shape0() int64 {
	if len(t.Shape) == 0 {
		return -1
	}
	return t.Shape[0]
}

// nodeAt follows mapping keys (and sequence indices) from n; it returns the
// deepest node it reached, so a report always has a position.
func nodeAt(n *yaml.Node, keys ...string) *yaml.Node {
	cur := n
	for _, key := range keys {
		next := (*yaml.Node)(nil)
		switch cur.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(cur.Content); i += 2 {
				if cur.Content[i].Value == key {
					next = cur.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscan(key, &idx); err == nil && idx >= 0 && idx < len(cur.Content) {
				next = cur.Content[idx]
			}
		}
		if next == nil {
			return cur
		}
		cur = next
	}
	return cur
}

// checkNode walks a YAML node against the Go type it will decode into and
// reports, with positions, every unknown or duplicate key and every value of
// the wrong kind. (Decoder.KnownFields alone gives line numbers only and
// stops at the first problem.)
func checkNode(n *yaml.Node, t reflect.Type, path string, add func(*yaml.Node, string, ...any)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	name := path
	if name == "" {
		name = "the manifest"
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent value: the validation pass says if it is required
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			add(n, "%s: want a mapping of keys, got %s", name, kindName(n))
			return
		}
		fields := map[string]reflect.StructField{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tagv := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tagv == "" || tagv == "-" || !f.IsExported() {
				continue
			}
			fields[tagv] = f
			known = append(known, tagv)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			f, ok := fields[kn.Value]
			switch {
			case !ok:
				add(kn, "%s: unknown key %q (known: %s)", name, kn.Value, strings.Join(known, ", "))
				continue
			case seen[kn.Value]:
				add(kn, "%s: key %q given twice", name, kn.Value)
				continue
			}
			seen[kn.Value] = true
			checkNode(vn, f.Type, joinPath(path, kn.Value), add)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			add(n, "%s: want a mapping, got %s", name, kindName(n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if seen[kn.Value] {
				add(kn, "%s: key %q given twice", name, kn.Value)
				continue
			}
			seen[kn.Value] = true
			checkNode(vn, t.Elem(), joinPath(path, kn.Value), add)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			add(n, "%s: want a list, got %s", name, kindName(n))
			return
		}
		for i, c := range n.Content {
			checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), add)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			add(n, "%s: want a %s, got %s", name, t.Kind(), kindName(n))
			return
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			add(n, "%s: %q is not a valid %s", name, n.Value, t.Kind())
		} else if t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 && n.ShortTag() == "!!float" {
			// yaml truncates 0.5 to 0 without a word
			add(n, "%s: %q is not a valid %s: want a whole number", name, n.Value, t.Kind())
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// Registry is the set of engines found under a models directory, by id.
type Registry struct {
	dir  string
	byID map[string]*Manifest
}

// NewRegistry builds a registry from manifests already loaded (tests, or a
// caller with its own discovery). Duplicate ids are an error.
func NewRegistry(manifests ...*Manifest) (*Registry, error) {
	r := &Registry{byID: map[string]*Manifest{}}
	for _, m := range manifests {
		if _, dup := r.byID[m.ID]; dup {
			return nil, fmt.Errorf("engine %q defined twice", m.ID)
		}
		r.byID[m.ID] = m
	}
	return r, nil
}

// LoadEngines loads every engine directory under modelsDir: each
// subdirectory (names starting with "." or "_" are skipped) must hold a
// model.yaml. It returns the registry of the manifests that loaded and, if
// any did not, an error listing every problem (so one broken engine does not
// hide the others; callers that need all of them treat the error as fatal).
func LoadEngines(modelsDir string) (*Registry, error) { return loadEngines(modelsDir, true) }

// LoadEngineMetadata is LoadEngines for a radgate that scores nothing (an
// edge, whose router routes on what the manifests say: ids, intended use,
// modalities, views, ages): the model files the manifests name are not
// looked at, so an absent or unreadable one does not stop it. Everything
// else is checked as LoadEngines does.
func LoadEngineMetadata(modelsDir string) (*Registry, error) { return loadEngines(modelsDir, false) }

func loadEngines(modelsDir string, withModels bool) (*Registry, error) {
	r := &Registry{dir: modelsDir, byID: map[string]*Manifest{}}
	ents, err := os.ReadDir(modelsDir)
	if err != nil {
		return r, fmt.Errorf("reading models directory: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		path := filepath.Join(modelsDir, e.Name(), ManifestFile)
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: engine directory without %s", filepath.Join(modelsDir, e.Name()), ManifestFile))
			continue
		}
		m, err := loadManifest(path, withModels)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.byID[m.ID] = m // ids equal directory names, so they are unique
	}
	return r, errors.Join(errs...)
}

// IDs lists the engine ids, sorted.
func (r *Registry) IDs() []string {
	ids := make([]string, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Manifests lists the manifests, sorted by id.
func (r *Registry) Manifests() []*Manifest {
	var out []*Manifest
	for _, id := range r.IDs() {
		out = append(out, r.byID[id])
	}
	return out
}

// Get returns the engine with this id, or an error naming the known ones.
func (r *Registry) Get(id string) (*Manifest, error) {
	if m, ok := r.byID[id]; ok {
		return m, nil
	}
	where := ""
	if r.dir != "" {
		where = " in " + r.dir
	}
	known := strings.Join(r.IDs(), ", ")
	if known == "" {
		known = "none"
	}
	return nil, fmt.Errorf("engine %q not found%s (known: %s)", id, where, known)
}

// Default returns the DefaultEngineID engine.
func (r *Registry) Default() (*Manifest, error) { return r.Get(DefaultEngineID) }

// knownViews are the View Position (0018,5101) terms of radiography
// (PS3.3 C.8.11.5.1.1 and CR/DX practice).
var knownViews = map[string]bool{
	"PA": true, "AP": true, "LL": true, "RL": true, "LATERAL": true, "LAT": true,
	"LLD": true, "RLD": true, "AP LLD": true, "AP RLD": true, "PA LLD": true, "PA RLD": true,
	"LAO": true, "RAO": true, "LPO": true, "RPO": true, "OBLIQUE": true,
}

// KnownView reports whether v is a View Position term radgate knows.
func KnownView(v string) bool { return knownViews[v] }
