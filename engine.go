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

// ImageScore is one image's score.
type ImageScore struct {
	Err               error
	SOPInstanceUID    string
	SeriesInstanceUID string
	Modality          string
	BodyPart          string
	Probability       float64
	Tier              string
	Marked            bool
	// Render draws the heatmap PNG (only meaningful when Marked).
	Render func() (png []byte, width, height int, err error)
	// CAM is the class activation map (set when Marked).
	CAM *CAM
}
