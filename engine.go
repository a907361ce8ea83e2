package radgate

import "context"

// Engine is a scoring engine as the inference stage sees it. The inference
// package's engines are adapted to it by NewInferenceEngine.
type Engine interface {
	Info() EngineInfo
	// Modalities and BodyParts are what the engine's manifest declares.
	Modalities() []string
	BodyParts() []string
	// Views are the view positions the engine scores (PA, AP); empty:
	// any.
	Views() []string
	// Score decodes and scores Part 10 files, one ImageScore per file in
	// order. A file that cannot be decoded has Err set; the error return is
	// for failures of the engine itself.
	Score(ctx context.Context, files [][]byte) ([]ImageScore, error)
}

// AgeRanged is an Engine whose intended use has a patient age range, in
// whole years at the study date, both ends included (the manifest's
// accepts.age_years). The engine itself refuses an image whose header
// gives an age outside it; the inference stage decides for an image whose
// header gives none (the order's age, else the route's unknown_age).
type AgeRanged interface {
	AgeYears() (min, max int, ok bool)
}

// OutOfScopeScorer is an Engine that can also score the images of patients
// outside its intended use (the manifest's patient rules: the age), for an
// engine in shadow: measured on a facility's whole population, never
// delivered. Such an image's ImageScore has OutOfScope set to why, and Err
// nil; decoding errors and image rules (matrix, spacing) stay errors.
type OutOfScopeScorer interface {
	ScoreOutOfScope(ctx context.Context, files [][]byte) ([]ImageScore, error)
}

// ImageScore is one image's score.
type ImageScore struct {
	Err error
	// Age is the patient's age at the study date as the image's header
	// gives it; nil when it gives none, AgeProblem then says why when the
	// header had age attributes that could not be used.
	Age        *PatientAge
	AgeProblem string
	// OutOfScope, on an image scored by OutOfScopeScorer, says why the
	// image is outside the engine's intended use (its manifest's accepts
	// rules); Err is then nil.
	OutOfScope        string
	SOPInstanceUID    string
	SeriesInstanceUID string
	Modality          string
	// Manufacturer is the image's Manufacturer (0008,0070).
	Manufacturer string
	BodyPart     string
	Probability  float64
	Tier         string
	Marked       bool
	// Render draws the pictures asked for (see Pictures) that apply to
	// this score: the heatmap and its preview only when Marked, the
	// thumbnail only when not. Nil: the engine draws nothing.
	Render func(want Pictures) (Drawn, error)
	// CAM is the class activation map (set when Marked).
	CAM *CAM
}

// Drawn holds the pictures ImageScore.Render drew; each is empty when it was
// not asked for or does not apply.
type Drawn struct {
	HeatmapPNG                  []byte
	HeatmapWidth, HeatmapHeight int
	// Preview is the preview (marked) or the thumbnail (not marked), JPEG.
	Preview                     []byte
	PreviewWidth, PreviewHeight int
}
