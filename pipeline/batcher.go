package pipeline

import (
	"context"
	"sync"

	"github.com/radgate/radgate/inference"
)

// batcher groups the images that concurrent inference workers want scored
// into one ONNX Runtime run. There is no goroutine of its own: the first
// caller to find the engine idle becomes the leader and runs batches until
// the queue is empty, while later callers wait for their share. So one job
// alone runs at once, and jobs that arrive while the engine is busy are
// scored together in the next run — batching exactly when several images
// wait, and fetching, decoding and heatmap rendering overlap with inference.
type batcher struct {
	score    func(ctx context.Context, imgs []*inference.Image) ([]inference.Result, error)
	maxBatch int

	mu      sync.Mutex
	queue   []*batchReq
	running bool
}

type batchReq struct {
	imgs []*inference.Image
	res  []inference.Result
	err  error
	done chan struct{}
}

// Score scores imgs, possibly together with other callers' images.
func (b *batcher) Score(ctx context.Context, imgs []*inference.Image) ([]inference.Result, error) {
	req := &batchReq{imgs: imgs, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, req)
	if b.running {
		b.mu.Unlock()
		select {
		case <-req.done:
			return req.res, req.err
		case <-ctx.Done():
			return nil, ctx.Err() // the leader still runs it; the result is dropped
		}
	}
	b.running = true
	b.mu.Unlock()
	for b.runOnce() {
	}
	return req.res, req.err
}

// runOnce scores the waiting requests, up to maxBatch images (a larger single
// request goes alone), and reports whether there was anything to do.
func (b *batcher) runOnce() bool {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.running = false
		b.mu.Unlock()
		return false
	}
	n, take := 0, 0
	for take < len(b.queue) && (take == 0 || n+len(b.queue[take].imgs) <= b.maxBatch) {
		n += len(b.queue[take].imgs)
		take++
	}
	batch := b.queue[:take:take]
	b.queue = b.queue[take:]
	b.mu.Unlock()

	all := make([]*inference.Image, 0, n)
	for _, r := range batch {
		all = append(all, r.imgs...)
	}
	// The batch serves several callers: no one caller's context may cancel it.
	res, err := b.score(context.Background(), all)
	off := 0
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.res = res[off : off+len(r.imgs) : off+len(r.imgs)]
		}
		off += len(r.imgs)
		close(r.done)
	}
	return true
}
