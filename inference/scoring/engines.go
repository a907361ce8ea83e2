package scoring

import (
	"fmt"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
)

// OpenEngines loads the manifests in modelsDir and opens the engines ids,
// in that order, with the ONNX Runtime library lib (looked up as
// onnx.FindLibrary does) and batches of up to maxBatch images (0: the
// default). An id given twice, an engine that is not there and a library or
// session that does not load are errors, after which nothing stays open.
// Other manifests in modelsDir that did not load come back as warning
// (nil when none). The caller closes the engines.
func OpenEngines(modelsDir string, ids []string, lib string, maxBatch int) (engines []*onnx.Engine, warning, err error) {
	for i, id := range ids {
		for _, prev := range ids[:i] {
			if id == prev {
				return nil, nil, fmt.Errorf("engine %q given twice", id)
			}
		}
	}
	reg, regErr := inference.LoadEngines(modelsDir)
	var manifests []*inference.Manifest
	for _, id := range ids {
		m, err := reg.Get(id)
		if err != nil {
			if regErr != nil {
				err = fmt.Errorf("%w\n%v", err, regErr)
			}
			return nil, nil, err
		}
		manifests = append(manifests, m)
	}
	lib, err = onnx.FindLibrary(lib)
	if err != nil {
		return nil, regErr, err
	}
	for _, m := range manifests {
		eng, err := onnx.NewEngine(m, onnx.EngineOptions{Library: lib, MaxBatch: maxBatch})
		if err != nil {
			for _, e := range engines {
				e.Close()
			}
			return nil, regErr, err
		}
		engines = append(engines, eng)
	}
	return engines, regErr, nil
}
