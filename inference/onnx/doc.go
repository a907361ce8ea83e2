// Package onnx runs inference engines in ONNX Runtime (yalue/onnxruntime_go,
// cgo). It owns everything that touches the runtime: finding and loading the
// shared library once per process (FindLibrary, InitRuntime,
// RuntimeVersion), and the Engine, one ONNX Runtime session per model,
// created from an inference.Manifest by NewEngine and reused by every Score.
//
// Decoding, preprocessing, manifests, thresholds and tiers, the CAM heatmap
// and the Result type stay in package inference, which links no ONNX
// Runtime, so packages that only decode or render (derived, the DICOMweb
// adapter) do not load it.
//
// The usual flow:
//
//	lib, err := onnx.FindLibrary(cfg.ONNXRuntimeLibrary)
//	reg, err := inference.LoadEngines("models")
//	m, err := reg.Get(inference.DefaultEngineID)
//	eng, err := onnx.NewEngine(m, onnx.EngineOptions{Library: lib})
//	defer eng.Close()
//	img, err := eng.Decode(data)
//	res, err := eng.Score(ctx, []*inference.Image{img})
//	if res[0].Marked {
//		png, w, h, err := inference.RenderHeatmap(img, res[0], inference.HeatmapOptions{})
//	}
package onnx
