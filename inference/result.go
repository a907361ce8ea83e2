package inference

import (
	"image"
	"math"
)

// Tier is the result class shown to clinicians.
type Tier string

// The three tiers.
const (
	TierLow  Tier = "Low"
	TierMid  Tier = "Mid"
	TierHigh Tier = "High"
)

// DefaultThresholds are the reference product's: Low < 0.30 ≤ Mid < 0.65 ≤
// High, region marked from 0.50.
var DefaultThresholds = Thresholds{TierMid: 0.30, TierHigh: 0.65, Mark: 0.50}

// Tier returns the tier of an unrounded probability.
func (t Thresholds) Tier(p float64) Tier {
	switch {
	case p >= t.TierHigh:
		return TierHigh
	case p >= t.TierMid:
		return TierMid
	}
	return TierLow
}

// Marked reports whether the region of interest is marked at probability p.
func (t Thresholds) Marked(p float64) bool { return p >= t.Mark }

// TierOf is DefaultThresholds.Tier(p).
func TierOf(p float64) Tier { return DefaultThresholds.Tier(p) }

// ConfidencePercent is the probability as a percentage with one decimal, for
// display (tiers and marks always use the unrounded probability).
func ConfidencePercent(p float64) float64 { return math.Round(p*1000) / 10 }

// Result is one image's score.
type Result struct {
	// EngineID and EngineVersion come from the manifest.
	EngineID      string
	EngineVersion string
	// Probability is the model's float32 output, widened.
	Probability float64
	// Tier comes from the unrounded Probability and the manifest thresholds.
	Tier Tier
	// ConfidencePercent is Probability × 100, one decimal.
	ConfidencePercent float64
	// Marked: Probability ≥ the manifest's mark threshold; only then is a
	// heatmap drawn.
	Marked bool
	// CAM is the raw class activation map (ReLU'd, not normalised),
	// CAMHeight×CAMWidth, row-major, aligned with the model input.
	CAM                 []float32
	CAMWidth, CAMHeight int
	// Crop is the rectangle of the source image the model saw (the whole
	// image for engines without a crop), in source pixel coordinates.
	Crop image.Rectangle
	// SourceWidth and SourceHeight are the scored image's size.
	SourceWidth, SourceHeight int
}
