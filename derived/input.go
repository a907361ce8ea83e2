package derived

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// What a Secondary Capture shows for a result below the marking threshold
// (Input.SCWhenUnmarked).
const (
	// SCUnmarkedImage (also "") shows the windowed radiograph in grey with
	// the result burned in below it.
	SCUnmarkedImage = "image"
	// SCUnmarkedText shows the burned-in text alone, no radiograph.
	SCUnmarkedText = "text"
	// SCUnmarkedNone stores no Secondary Capture (SecondaryCapture returns
	// ErrNoSecondaryCapture).
	SCUnmarkedNone = "none"
)

// CheckSCWhenUnmarked reports whether v is a valid Input.SCWhenUnmarked.
func CheckSCWhenUnmarked(v string) error {
	switch v {
	case "", SCUnmarkedImage, SCUnmarkedText, SCUnmarkedNone:
		return nil
	}
	return fmt.Errorf("%w: sc_when_unmarked %q is not %q, %q or %q", ErrInput, v, SCUnmarkedImage, SCUnmarkedText, SCUnmarkedNone)
}

// Input is the result the derived objects report.
type Input struct {
	// ResultID identifies the result (radgate.Result.ID); the UIDs of every
	// derived object are computed from it and Revision (UIDsFor).
	ResultID string
	// Revision is the result's revision (radgate.Result.Revision; 0 counts
	// as 1). It is each object's Instance Number; from 2 on the objects get
	// new SOP Instance UIDs and the SR names revision-1's SR in its
	// Predecessor Documents Sequence.
	Revision int
	// Images are the images of the study the engine was offered, scored or
	// skipped with the reason (radgate.Result.Images): the SR states how
	// many were scored and lists the skipped ones (ImageLines). Empty: not
	// stated.
	Images []radgate.ImageNote
	// Caveats are what the score must be read with (radgate.Result.Caveats:
	// "patient age unknown: …"): the SR carries each as a TEXT item.
	Caveats []string
	// Engine names the engine (name, version), its disclaimer (written word
	// for word) and the finding it scores (SNOMED CT 233604007 Pneumonia
	// when Finding.Code is empty).
	Engine radgate.EngineInfo
	// Probability is the engine's output, 0..1. The confidence shown is
	// Probability × 100 with one decimal (ConfidencePercent), formatted as
	// in the FHIR report, so every output states the same number.
	Probability float64
	// Tier is "Low", "Mid" or "High".
	Tier string
	// Marked: the probability reached the engine's marking threshold, and
	// HeatmapPNG holds the CAM overlay (inference.RenderHeatmap).
	Marked     bool
	HeatmapPNG []byte
	// Conclusion is the report's conclusion sentence; "" builds one from the
	// finding, confidence, tier and engine.
	Conclusion string
	// SCWhenUnmarked: see SCUnmarkedImage, SCUnmarkedText, SCUnmarkedNone.
	SCWhenUnmarked string
	// Time is the content date and time (the scoring time); zero means now.
	// Written in UTC.
	Time time.Time
	// CAM is the class activation map of a marked result, for the
	// Parametric Map (nil: ParametricMap returns ErrNoParametricMap).
	CAM *radgate.CAM
	// Logger receives a warning for each source attribute left out of a
	// derived object because its value is invalid for its VR (tag and
	// keyword, never the value). Nil: not logged.
	Logger *slog.Logger
}

// FromResult returns the Input for a scored result.
func FromResult(r radgate.Result) Input {
	return Input{
		ResultID:    r.ID,
		Revision:    r.EffectiveRevision(),
		Images:      r.Images,
		Caveats:     r.Caveats,
		Engine:      r.Engine,
		Probability: r.Probability,
		Tier:        r.Tier,
		Marked:      r.Marked,
		HeatmapPNG:  r.HeatmapPNG,
		CAM:         r.CAM,
		Time:        r.ScoredAt,
	}
}

// UIDs are the UIDs of the objects derived from this revision of the
// result: UIDsFor(ResultID, Revision).
func (in *Input) UIDs() UIDs { return UIDsFor(in.ResultID, in.Revision) }

// revision is Revision, at least 1.
func (in *Input) revision() int { return max(in.Revision, 1) }

// ConfidencePercent is Probability × 100 rounded to one decimal, as text
// ("87.3").
func (in *Input) ConfidencePercent() string { return fhir.ConfidencePercent(in.Probability) }

// DisclaimerHeadline is burned into every Secondary Capture and written into
// every report, before the engine's own disclaimer.
const DisclaimerHeadline = "AI decision support — not a diagnosis"

func (in *Input) validate() error {
	switch {
	case strings.TrimSpace(in.ResultID) == "":
		return fmt.Errorf("%w: no result id", ErrInput)
	case math.IsNaN(in.Probability) || in.Probability < 0 || in.Probability > 1:
		return fmt.Errorf("%w: result %s: probability %v is outside 0..1", ErrInput, in.ResultID, in.Probability)
	case in.Tier != "Low" && in.Tier != "Mid" && in.Tier != "High":
		return fmt.Errorf("%w: result %s: tier %q is not Low, Mid or High", ErrInput, in.ResultID, in.Tier)
	case strings.TrimSpace(in.Engine.Disclaimer) == "":
		return fmt.Errorf("%w: result %s: engine %q has no disclaimer", ErrInput, in.ResultID, in.Engine.ID)
	case in.Engine.Name == "" && in.Engine.ID == "":
		return fmt.Errorf("%w: result %s: the engine has neither name nor id", ErrInput, in.ResultID)
	}
	if _, err := in.finding(); err != nil {
		return err
	}
	return CheckSCWhenUnmarked(in.SCWhenUnmarked)
}

func (in *Input) time() time.Time {
	if in.Time.IsZero() {
		return time.Now()
	}
	return in.Time
}

func (in *Input) engineName() string {
	if in.Engine.Name != "" {
		return in.Engine.Name
	}
	return in.Engine.ID
}

// engineLabel is "name version".
func (in *Input) engineLabel() string {
	if in.Engine.Version == "" {
		return in.engineName()
	}
	return in.engineName() + " " + in.Engine.Version
}

// schemes maps FHIR code system URIs to DICOM Coding Scheme Designators.
var schemes = map[string]string{
	"http://snomed.info/sct":                                 "SCT",
	"http://loinc.org":                                       "LN",
	"http://dicom.nema.org/resources/ontology/DCM":           "DCM",
	"http://radlex.org":                                      "RADLEX",
	"http://www.radlex.org":                                  "RADLEX",
	"http://unitsofmeasure.org":                              "UCUM",
	"http://hl7.org/fhir/sid/icd-10":                         "I10",
	"http://www.nlm.nih.gov/research/umls/rxnorm":            "RXNORM",
	"https://radgate.dev/fhir/CodeSystem/radgate":            schemeRadgate,
	"https://radgate.dev/fhir/CodeSystem/ai-confidence-tier": schemeRadgate,
}

// schemeRadgate is radgate's private coding scheme (the "99" prefix marks a
// local scheme, PS3.16 8.2).
const schemeRadgate = "99RADGATE"

// finding is the engine's finding as a DICOM code.
func (in *Input) finding() (code, error) {
	f := in.Engine.Finding
	if f.Code == "" {
		f = radgate.Coding{System: fhir.DefaultFinding.System, Code: fhir.DefaultFinding.Code, Display: fhir.DefaultFinding.Display}
	}
	scheme, ok := schemes[f.System]
	if !ok {
		return code{}, fmt.Errorf("%w: result %s: finding system %q has no DICOM coding scheme designator (known: SNOMED CT, LOINC, DCM, RadLex)", ErrInput, in.ResultID, f.System)
	}
	meaning := f.Display
	if meaning == "" {
		meaning = f.Code
	}
	return code{f.Code, scheme, meaning}, nil
}

func (in *Input) findingName() string {
	c, err := in.finding()
	if err != nil {
		return "Finding"
	}
	return c.meaning
}

// conclusion is in.Conclusion or the sentence built from the result.
func (in *Input) conclusion() string {
	if in.Conclusion != "" {
		return in.Conclusion
	}
	s := fmt.Sprintf("%s: AI confidence %s %% (tier %s), by %s.", in.findingName(), in.ConfidencePercent(), in.Tier, in.engineLabel())
	if in.Marked {
		s += " The region of interest is marked on the heatmap image."
	} else {
		s += " Below the marking threshold: no region is marked."
	}
	return s
}
