package onnx

import "github.com/radgate/radgate/config"

// OptionsFromConfig returns the options radgate serve opens every engine
// with, from the config's inference section: the ONNX Runtime library
// (FindLibrary of inference.onnxruntime_library), the intra-op threads
// (inference.threads; 0: config.DefaultInferenceThreads) and spinning
// (inference.spinning). Anything that measures serve's sessions — the
// bench's bare session.Run — opens its engine with these too, so both sides
// run with the same threads and spinning. The decode limits (the pacs
// section) and MaxBatch are left to the caller.
func OptionsFromConfig(inf config.Inference) (EngineOptions, error) {
	lib, err := FindLibrary(inf.ONNXRuntimeLibrary)
	if err != nil {
		return EngineOptions{}, err
	}
	return EngineOptions{Library: lib, Threads: inf.IntraOpThreads(), Spinning: inf.Spinning}, nil
}
