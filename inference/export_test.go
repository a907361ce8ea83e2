package inference

import "testing"

// What the external test package (vsrun_test.go, which needs an ONNX
// Runtime session from inference/onnx and so cannot be in package
// inference: onnx imports inference) uses of this package's test helpers.
var (
	OldDecodePreprocess = oldDecodePreprocess
	NewDecodePreprocess = newDecodePreprocess
)

// DecodeCase is one input of the decode+preprocess benchmarks.
type DecodeCase struct {
	Name string
	Data []byte
}

// DecodeCases is decodeCases for the external test package.
func DecodeCases(tb testing.TB) []DecodeCase {
	var out []DecodeCase
	for _, c := range decodeCases(tb) {
		out = append(out, DecodeCase{Name: c.name, Data: c.data})
	}
	return out
}
