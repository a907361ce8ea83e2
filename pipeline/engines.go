package pipeline

import (
	"context"
	"fmt"

	"github.com/radgate/radgate"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
)

// inferenceEngine adapts an onnx.Engine (an ONNX model from its
// manifest) to the inference stage.
type inferenceEngine struct {
	e     *onnx.Engine
	info  radgate.EngineInfo
	hm    inference.HeatmapOptions
	batch *batcher
}

// MaxInferenceBatch caps the images scored in one ONNX Runtime run when
// several jobs wait (8: most of the per-image gain of batching on a CPU, at a
// bounded wait for the first image of the batch).
const MaxInferenceBatch = 8

// NewInferenceEngine adapts e for the pipeline; heatmaps are drawn with hm.
// Concurrent Score calls are batched into shared runs (see batcher).
func NewInferenceEngine(e *onnx.Engine, hm inference.HeatmapOptions) radgate.Engine {
	return &inferenceEngine{e: e, hm: hm, batch: &batcher{score: e.Score, maxBatch: MaxInferenceBatch}, info: engineInfo(e.Manifest())}
}

func engineInfo(m *inference.Manifest) radgate.EngineInfo {
	return radgate.EngineInfo{
		ID: m.ID, Name: m.Name, Version: m.Version, Disclaimer: m.Disclaimer,
		Finding: radgate.Coding{System: m.Finding.System, Code: m.Finding.Code, Display: m.Finding.Display},
	}
}

// metadataEngine is an engine known by its manifest only: what an edge's
// router needs (ids and versions, modalities, body parts, views, the age
// range of its intended use), without an ONNX Runtime session — an edge
// never scores, the hub does.
type metadataEngine struct {
	m    *inference.Manifest
	info radgate.EngineInfo
}

// NewEngineMetadata is the engine of manifest m for a radgate that scores
// nothing (role edge): the manifest's metadata, and a Score that fails.
func NewEngineMetadata(m *inference.Manifest) radgate.Engine {
	return &metadataEngine{m: m, info: engineInfo(m)}
}

func (a *metadataEngine) Info() radgate.EngineInfo { return a.info }
func (a *metadataEngine) Modalities() []string     { return a.m.Modalities }
func (a *metadataEngine) BodyParts() []string      { return a.m.BodyParts }
func (a *metadataEngine) Views() []string          { return a.m.Views }

// AgeYears is the manifest's accepts.age_years (radgate.AgeRanged).
func (a *metadataEngine) AgeYears() (lo, hi int, ok bool) {
	if r := a.m.Accepts.AgeYears; r != nil {
		return r.Min, r.Max, true
	}
	return 0, 0, false
}

// Score fails: this radgate has no session of the engine's model.
func (a *metadataEngine) Score(context.Context, [][]byte) ([]radgate.ImageScore, error) {
	return nil, fmt.Errorf("engine %s: loaded from its manifest only, without its model (role edge: the hub scores)", a.info.ID)
}

func (a *inferenceEngine) Info() radgate.EngineInfo { return a.info }
func (a *inferenceEngine) Modalities() []string     { return a.e.Manifest().Modalities }
func (a *inferenceEngine) BodyParts() []string      { return a.e.Manifest().BodyParts }
func (a *inferenceEngine) Views() []string          { return a.e.Manifest().Views }

// AgeYears is the manifest's accepts.age_years (radgate.AgeRanged).
func (a *inferenceEngine) AgeYears() (lo, hi int, ok bool) {
	if r := a.e.Manifest().Accepts.AgeYears; r != nil {
		return r.Min, r.Max, true
	}
	return 0, 0, false
}

// Score decodes every file, then scores all decodable images in one batch,
// shared with whatever other workers are waiting. The inference stage gives
// it one file at a time (see Pipeline.scoreImages), so batches form across
// concurrent jobs. A native grey image is decoded in place: its Render keeps
// the file's bytes alive, which is why the stage keeps only the best
// image's score.
func (a *inferenceEngine) Score(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	return a.score(ctx, files, false)
}

// ScoreOutOfScope is Score that also scores the images of patients outside
// the engine's intended use (a patient rule: the age; image rules still
// refuse), saying why in ImageScore.OutOfScope
// (radgate.OutOfScopeScorer): an engine in shadow is measured on every
// study its route sends.
func (a *inferenceEngine) ScoreOutOfScope(ctx context.Context, files [][]byte) ([]radgate.ImageScore, error) {
	return a.score(ctx, files, true)
}

func (a *inferenceEngine) score(ctx context.Context, files [][]byte, anyScope bool) ([]radgate.ImageScore, error) {
	out := make([]radgate.ImageScore, len(files))
	imgs := make([]*inference.Image, 0, len(files))
	idx := make([]int, 0, len(files))
	for i, f := range files {
		img, err := a.e.Decode(f)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].SOPInstanceUID = img.Meta.SOPInstanceUID
		out[i].SeriesInstanceUID = img.Meta.SeriesInstanceUID
		out[i].Modality, out[i].Manufacturer = img.Meta.Modality, img.Meta.Manufacturer
		out[i].BodyPart = img.Meta.BodyPartExamined
		if ag := img.Meta.Age; ag.Known {
			out[i].Age = &radgate.PatientAge{Years: ag.Years, Text: ag.Text, From: ag.From}
		} else {
			out[i].AgeProblem = ag.Unknown()
		}
		if out[i].Err = a.e.Accepts(img); out[i].Err != nil {
			if !anyScope || !inference.PatientRule(out[i].Err) {
				continue // outside the engine's intended use: not scored
			}
			out[i].OutOfScope, out[i].Err = out[i].Err.Error(), nil
		}
		imgs = append(imgs, img)
		idx = append(idx, i)
	}
	if len(imgs) == 0 {
		return out, nil
	}
	res, err := a.batch.Score(ctx, imgs)
	if err != nil {
		return nil, err
	}
	for k, r := range res {
		i, img, r := idx[k], imgs[k], r
		out[i].Probability, out[i].Tier, out[i].Marked = r.Probability, string(r.Tier), r.Marked
		out[i].Render = func(want radgate.Pictures) (radgate.Drawn, error) { return a.draw(img, r, want) }
		if r.Marked && len(r.CAM) > 0 {
			out[i].CAM = &radgate.CAM{Values: r.CAM, Width: r.CAMWidth, Height: r.CAMHeight,
				X0: r.Crop.Min.X, Y0: r.Crop.Min.Y, X1: r.Crop.Max.X, Y1: r.Crop.Max.Y,
				SourceWidth: r.SourceWidth, SourceHeight: r.SourceHeight}
		}
	}
	return out, nil
}

// draw renders what want asks for and r calls for: for a marked result the
// full-size heatmap and the preview, for one that is not the thumbnail.
func (a *inferenceEngine) draw(img *inference.Image, r inference.Result, want radgate.Pictures) (radgate.Drawn, error) {
	var d radgate.Drawn
	var err error
	if r.Marked && want&radgate.PictureHeatmap != 0 {
		if d.HeatmapPNG, d.HeatmapWidth, d.HeatmapHeight, err = inference.RenderHeatmap(img, r, a.hm); err != nil {
			return d, err
		}
	}
	if r.Marked && want&radgate.PicturePreview != 0 || !r.Marked && want&radgate.PictureThumbnail != 0 {
		hm := a.hm
		hm.MaxEdge = 0 // the preview has its own size
		if d.Preview, d.PreviewWidth, d.PreviewHeight, err = inference.RenderPreview(img, r, hm); err != nil {
			return d, err
		}
	}
	return d, nil
}
