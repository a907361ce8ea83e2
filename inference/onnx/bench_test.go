package onnx

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
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

// BenchmarkThreading: the cost per image of ONNX Runtime runs under each
// session threading, on the 1024² marked chest radiograph's ready tensor
// (repeated for a batch):
//
//	threads=T/spin=S/batch=N       one session, one caller: intra-op
//	                               threads 1 and 2 × spinning off and on ×
//	                               batch 1, 2, 4, 8
//	threads=T/spin=S/2x-batch=1    two goroutines each running batch 1 at
//	                               once on one session (concurrent workers
//	                               without the pipeline's batcher)
//	threads=T/spin=S/2-engines     the two shipped engines' sessions, each
//	                               running batch 1 at once (two routes' jobs:
//	                               the batcher is per engine, so these runs
//	                               overlap and their pools share the cores)
//
// Each reports wall-ms/image (elapsed per image) and cpu-ms/image (process
// CPU from getrusage, ONNX Runtime's pool threads included, so spinning
// shows). Only the sessions being measured exist, so no other pool spins
// meanwhile. On a shared machine compare ratios within one run.
func BenchmarkThreading(b *testing.B) {
	lib := testenv.ONNXRuntimeLib(b)
	var f stageFixture
	type config struct {
		threads  int
		spinning bool
		batches  []int // one caller per batch size, in turn
		callers  int   // with batch 1: callers at once on one session
		engines  int   // with batch 1: the shipped engines, one caller each
	}
	configs := []config{
		{threads: 1, batches: []int{1, 2, 4, 8}},
		{threads: 1, spinning: true, batches: []int{1, 4, 8}},
		{threads: 2, batches: []int{1, 2, 4, 8}},
		{threads: 2, spinning: true, batches: []int{1, 4, 8}},
		{threads: 1, callers: 2},
		{threads: 2, callers: 2},
		{threads: 1, engines: 2},
		{threads: 2, engines: 2},
		{threads: 2, spinning: true, engines: 2},
	}
	ids := []string{inference.DefaultEngineID, "cxr-pneumonia-densenet121-k224"}
	for _, c := range configs {
		var engines []*Engine
		for _, id := range ids[:max(c.engines, 1)] {
			e, err := NewEngine(loadTestManifest(b, id), EngineOptions{Library: lib, Threads: c.threads, Spinning: c.spinning})
			if err != nil {
				b.Fatal(err)
			}
			engines = append(engines, e)
		}
		if f.in == nil {
			f = newStageFixture(b, engines[0])
		}
		prefix := fmt.Sprintf("threads=%d/spin=%s", c.threads, map[bool]string{false: "off", true: "on"}[c.spinning])
		switch {
		case c.engines > 1:
			b.Run(prefix+"/2-engines", func(b *testing.B) { benchRuns(b, engines, f.in, 1) })
		case c.callers > 1:
			b.Run(fmt.Sprintf("%s/%dx-batch=1", prefix, c.callers), func(b *testing.B) {
				benchRuns(b, slices.Repeat(engines, c.callers), f.in, 1)
			})
		default:
			for _, n := range c.batches {
				b.Run(fmt.Sprintf("%s/batch=%d", prefix, n), func(b *testing.B) { benchRuns(b, engines, f.in, n) })
			}
		}
		for _, e := range engines {
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchRuns times ScoreTensor on n copies of the plane, one caller per
// element of sessions, all at once, per iteration, and reports wall time
// and process CPU per image.
func benchRuns(b *testing.B, sessions []*Engine, plane []float32, n int) {
	in := slices.Repeat(plane, n)
	run := func(e *Engine) func() {
		return func() {
			if _, _, err := e.ScoreTensor(b.Context(), in, n); err != nil {
				b.Error(err)
			}
		}
	}
	for _, e := range sessions { // warm-up
		run(e)()
	}
	cpu0 := processCPU()
	for b.Loop() {
		if len(sessions) == 1 {
			run(sessions[0])()
			continue
		}
		var wg sync.WaitGroup
		for _, e := range sessions {
			wg.Go(run(e))
		}
		wg.Wait()
	}
	cpu := processCPU() - cpu0
	images := float64(b.N * n * len(sessions))
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/images, "wall-ms/image")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/images, "cpu-ms/image")
}
