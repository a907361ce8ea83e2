package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/inference"
)

// fakeRun "scores" an image as its width, slowly, and records batch sizes.
type fakeRun struct {
	mu    sync.Mutex
	sizes []int
	fail  atomic.Bool
}

func (f *fakeRun) score(_ context.Context, imgs []*inference.Image) ([]inference.Result, error) {
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	f.sizes = append(f.sizes, len(imgs))
	f.mu.Unlock()
	if f.fail.Load() {
		return nil, errors.New("onnx run failed")
	}
	out := make([]inference.Result, len(imgs))
	for i, img := range imgs {
		out[i].Probability = float64(img.Width)
	}
	return out, nil
}

func imgs(widths ...int) []*inference.Image {
	out := make([]*inference.Image, len(widths))
	for i, w := range widths {
		out[i] = &inference.Image{Width: w}
	}
	return out
}

func TestBatcherSharesRunsAndReturnsEachCallersResults(t *testing.T) {
	f := &fakeRun{}
	b := &batcher{score: f.score, maxBatch: 8}
	var wg sync.WaitGroup
	const callers = 12
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.Score(t.Context(), imgs(100+c, 200+c))
			require.NoError(t, err)
			require.Len(t, res, 2)
			require.Equal(t, float64(100+c), res[0].Probability)
			require.Equal(t, float64(200+c), res[1].Probability)
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range f.sizes {
		require.LessOrEqual(t, n, 8)
		total += n
	}
	require.Equal(t, 2*callers, total, "every image scored exactly once")
	require.Less(t, len(f.sizes), callers, "callers that waited were batched together")
	require.False(t, b.running)
}

func TestBatcherOversizedRequestGoesAlone(t *testing.T) {
	f := &fakeRun{}
	b := &batcher{score: f.score, maxBatch: 2}
	res, err := b.Score(t.Context(), imgs(1, 2, 3, 4, 5))
	require.NoError(t, err)
	require.Len(t, res, 5)
	require.Equal(t, []int{5}, f.sizes)
}

func TestBatcherErrorReachesEveryCallerOfTheRun(t *testing.T) {
	f := &fakeRun{}
	f.fail.Store(true)
	b := &batcher{score: f.score, maxBatch: 8}
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Score(t.Context(), imgs(c))
			require.ErrorContains(t, err, "onnx run failed")
		}()
	}
	wg.Wait()
	f.fail.Store(false)
	res, err := b.Score(t.Context(), imgs(7))
	require.NoError(t, err, "a failed run leaves the batcher usable")
	require.Equal(t, 7.0, res[0].Probability)
}
