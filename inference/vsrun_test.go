package inference_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/internal/testenv"
)

// BenchmarkDecodePreprocessVsRun: decode + preprocess of each input beside
// one bare session.Run (ScoreTensor, batch 1, default engine) on a ready
// tensor, interleaved round by round (9 rounds after 2 warm-ups, medians)
// so that the machine's load hits all alike. It reports the medians and
// new/run and old/run, the share of one inference that decoding takes.
func BenchmarkDecodePreprocessVsRun(b *testing.B) {
	m, err := inference.LoadManifest(filepath.Join(testenv.RepoRoot(), "models", inference.DefaultEngineID, inference.ManifestFile))
	if err != nil {
		b.Fatal(err)
	}
	e, err := onnx.NewEngine(m, onnx.EngineOptions{Library: testenv.ONNXRuntimeLib(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := e.Close(); err != nil {
			b.Error(err)
		}
	})
	size := e.Manifest().Preprocessing.Size
	p := inference.Preprocessing{Crop: inference.CropCenterSquare, Size: size, Resize: inference.ResizeArea}
	dst := make([]float32, size*size)
	in := make([]float32, size*size)
	for i := range in {
		in[i] = float32(i%size) / float32(size)
	}
	for _, c := range inference.DecodeCases(b) {
		if _, err := inference.Decode(c.Data); errors.Is(err, inference.ErrUnsupportedTransferSyntax) {
			continue
		}
		b.Run(c.Name, func(b *testing.B) {
			const rounds = 9
			var run, oldT, newT [rounds]time.Duration
			for b.Loop() {
				for i := -2; i < rounds; i++ {
					t0 := time.Now()
					if _, _, err := e.ScoreTensor(b.Context(), in, 1); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if err := inference.OldDecodePreprocess(c.Data, p, dst); err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					if err := inference.NewDecodePreprocess(c.Data, p, dst); err != nil {
						b.Fatal(err)
					}
					t3 := time.Now()
					if i >= 0 {
						run[i], oldT[i], newT[i] = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
					}
				}
			}
			med := func(d [rounds]time.Duration) float64 {
				s := d[:]
				slices.Sort(s)
				return float64(s[rounds/2].Microseconds()) / 1e3
			}
			r, o, n := med(run), med(oldT), med(newT)
			b.ReportMetric(r, "run-ms")
			b.ReportMetric(o, "old-ms")
			b.ReportMetric(n, "new-ms")
			b.ReportMetric(o/r, "old/run")
			b.ReportMetric(n/r, "new/run")
			b.ReportMetric(o/n, "speedup")
		})
	}
}
