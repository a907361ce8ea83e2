package onnx

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
)

// BenchmarkSessionRun: one ONNX Runtime run of the default engine on a
// ready tensor, per batch size.
func BenchmarkSessionRun(b *testing.B) {
	e := newTestEngine(b, inference.DefaultEngineID)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := make([]float32, n*224*224)
			for i := range in {
				in[i] = float32(i%224) / 224
			}
			if _, _, err := e.ScoreTensor(b.Context(), in, n); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := e.ScoreTensor(b.Context(), in, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/image")
		})
	}
}

// stageFixture is the 1024² marked chest radiograph of testdata/cxr-dicom,
// as Part 10 bytes, decoded, and preprocessed into the default engine's
// [1,1,224,224] input.
type stageFixture struct {
	data []byte
	img  *inference.Image
	in   []float32
}

func newStageFixture(tb testing.TB, e *Engine) stageFixture {
	tb.Helper()
	data, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	if err != nil {
		tb.Fatal(err)
	}
	img, err := inference.Decode(data)
	if err != nil {
		tb.Fatal(err)
	}
	s := e.Manifest().Preprocessing.Size
	in := make([]float32, s*s)
	if _, err := e.Manifest().Preprocessing.Preprocess(img, in); err != nil {
		tb.Fatal(err)
	}
	return stageFixture{data: data, img: img, in: in}
}

// runOverhead times bare ScoreTensor and Score on the same image, each
// rounds times, interleaved (so drift in machine load hits both alike), and
// returns the median of each. Score's input is the decoded image, so its
// extra time is preprocessing, the input copy and building the Result.
func runOverhead(tb testing.TB, e *Engine, f stageFixture, rounds int) (bare, score time.Duration) {
	tb.Helper()
	ctx := context.Background()
	imgs := []*inference.Image{f.img}
	bs := make([]time.Duration, rounds)
	ss := make([]time.Duration, rounds)
	for i := -2; i < rounds; i++ { // two warm-up rounds
		t0 := time.Now()
		if _, _, err := e.ScoreTensor(ctx, f.in, 1); err != nil {
			tb.Fatal(err)
		}
		t1 := time.Now()
		if _, err := e.Score(ctx, imgs); err != nil {
			tb.Fatal(err)
		}
		t2 := time.Now()
		if i >= 0 {
			bs[i], ss[i] = t1.Sub(t0), t2.Sub(t1)
		}
	}
	slices.Sort(bs)
	slices.Sort(ss)
	return bs[rounds/2], ss[rounds/2]
}

// BenchmarkInferenceStage: images/s through the inference stage beside bare
// session.Run, in the same run, on the 1024² marked chest radiograph,
// batch 1:
//
//	bare-run  ScoreTensor on the ready 224² tensor
//	score     Engine.Score on the decoded image (preprocess + run + CAM)
//	stage     Decode of the Part 10 bytes → Score → RenderHeatmap PNG
//	ratio     bare-run and score interleaved; run-ratio = bare / score
//	          (target ≥ 0.9: Score's work around the run ≤ ~10 % of it)
func BenchmarkInferenceStage(b *testing.B) {
	e := newTestEngine(b, inference.DefaultEngineID)
	f := newStageFixture(b, e)
	imagesPerSec := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	}
	if _, _, err := e.ScoreTensor(b.Context(), f.in, 1); err != nil { // warm-up
		b.Fatal(err)
	}
	b.Run("bare-run", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := e.ScoreTensor(b.Context(), f.in, 1); err != nil {
				b.Fatal(err)
			}
		}
		imagesPerSec(b)
	})
	b.Run("score", func(b *testing.B) {
		b.ReportAllocs()
		imgs := []*inference.Image{f.img}
		for b.Loop() {
			if _, err := e.Score(b.Context(), imgs); err != nil {
				b.Fatal(err)
			}
		}
		imagesPerSec(b)
	})
	b.Run("stage", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(f.data)))
		for b.Loop() {
			img, err := inference.Decode(f.data)
			if err != nil {
				b.Fatal(err)
			}
			res, err := e.Score(b.Context(), []*inference.Image{img})
			if err != nil {
				b.Fatal(err)
			}
			if !res[0].Marked {
				b.Fatalf("fixture not marked (p=%.3f)", res[0].Probability)
			}
			if _, _, _, err := inference.RenderHeatmap(img, res[0], inference.HeatmapOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		imagesPerSec(b)
	})
	b.Run("ratio", func(b *testing.B) {
		var bare, score time.Duration
		for b.Loop() {
			bare, score = runOverhead(b, e, f, 9)
		}
		b.ReportMetric(float64(bare.Microseconds())/1e3, "bare-ms")
		b.ReportMetric(float64(score.Microseconds())/1e3, "score-ms")
		b.ReportMetric(float64(bare)/float64(score), "run-ratio")
	})
}
