// Package inference turns DICOM radiographs into the inputs and outputs of
// AI engines: it decodes the pixel data (suyashkumar/dicom) and runs the
// PS3.3 grey-scale pipeline (Modality LUT, VOI, MONOCHROME1 inversion; for
// grey images of up to 16 bits one lookup table applied to the stored words
// as they are read), crops and area-resizes it as the engine's manifest says
// straight from the stored words (the full-size float32 plane is built only
// on demand, see Image.Plane), holds the manifests, thresholds, tiers and
// the Result type, and renders the class activation map as a PNG heatmap.
//
// Running the model is not here: the ONNX Runtime session lives in package
// inference/onnx (Engine, NewEngine, FindLibrary), so this package links no
// ONNX Runtime and packages that only decode or render (derived, the
// DICOMweb adapter) stay free of it. Compressed transfer syntaxes are
// decoded by inference/codec (OpenJPEG through cgo for JPEG 2000).
//
// It knows nothing of FHIR, NATS or routes, so it can be evaluated and
// benchmarked alone. Engines come from model manifests (models/<id>/model.yaml,
// see Manifest and LoadEngines), not from code registration.
//
// The usual flow:
//
//	lib, err := onnx.FindLibrary(cfg.ONNXRuntimeLibrary)
//	reg, err := inference.LoadEngines("models")
//	m, err := reg.Get(inference.DefaultEngineID)
//	eng, err := onnx.NewEngine(m, onnx.EngineOptions{Library: lib})
//	defer eng.Close()
//	img, err := inference.DecodeFile("study/1.dcm")
//	res, err := eng.Score(ctx, []*inference.Image{img})
//	if res[0].Marked {
//		png, w, h, err := inference.RenderHeatmap(img, res[0], inference.HeatmapOptions{})
//	}
//
// Every result must carry the manifest's Disclaimer, word for word.
//
// Two choices follow the engines' reference pipeline (pydicom + PyTorch)
// rather than the letter of a textbook, because the reference
// probabilities are what the engines are checked against:
//
//   - Resize "area" is PyTorch's interpolate(mode="area") (adaptive average
//     pooling bins), not exact fractional-area weights; "area-exact" offers
//     the latter. See ResizeArea.
//   - Unsigned pixel words above Bits Stored are kept, not masked, unless an
//     overlay is declared in those bits; signed data is masked and
//     sign-extended. See grayPipeline.
//
// Decoding never panics and checks every declared length against the data
// before the DICOM library allocates it (see checkStructure).
package inference
