package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/radgate/radgate/inference"
	ort "github.com/yalue/onnxruntime_go"
)

// DefaultMaxBatch is how many images Score puts into one ONNX Runtime run
// when EngineOptions.MaxBatch is zero.
const DefaultMaxBatch = 32

// EngineOptions tune NewEngine.
type EngineOptions struct {
	// Library is the ONNX Runtime shared library; "" means FindLibrary("").
	Library string
	// Threads is ONNX Runtime's intra-op thread count for this engine's
	// session, the calling thread included; 0 means runtime.NumCPU(),
	// which suits scoring batches of files (from batch 2 on, more threads
	// cut the wall time at about the same CPU per image). radgate serve
	// takes it from the config (OptionsFromConfig).
	Threads int
	// Spinning lets the session's idle intra-op threads busy-wait for the
	// next piece of work instead of sleeping (ONNX Runtime's own default).
	// Off unless set: on shared cores it burns CPU that other processes
	// need, for no gain in wall time.
	Spinning bool
	// MaxBatch caps the images per run; 0 means DefaultMaxBatch.
	MaxBatch int
	// SkipChecksum skips checking the model file against the manifest's sha256.
	SkipChecksum bool
	// Decode bounds what Engine.Decode may inflate (zero: the defaults).
	Decode inference.DecodeOptions
}

// ErrEngineClosed is returned by Score after Close.
var ErrEngineClosed = errors.New("engine closed")

// Engine runs one model. It holds one ONNX Runtime session, created by
// NewEngine and reused by every Score; it is safe for concurrent use
// (ONNX Runtime allows concurrent runs on one session).
type Engine struct {
	m          *inference.Manifest
	sess       *ort.DynamicAdvancedSession
	maxBatch   int
	size       int
	camH, camW int
	decode     inference.DecodeOptions

	mu     sync.RWMutex // Score holds it shared; Close exclusively
	closed bool
}

// NewEngine initialises ONNX Runtime (once per process, see InitRuntime),
// checks the model file against the manifest's checksum and creates the
// session.
func NewEngine(m *inference.Manifest, opts EngineOptions) (*Engine, error) {
	if m == nil {
		return nil, errors.New("NewEngine: nil manifest")
	}
	lib := opts.Library
	if lib == "" {
		var err error
		if lib, err = FindLibrary(""); err != nil {
			return nil, err
		}
	}
	if err := InitRuntime(lib); err != nil {
		return nil, err
	}
	path := m.ModelPath()
	if m.SHA256 != "" && !opts.SkipChecksum {
		sum, err := fileSHA256(path)
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", m.ID, err)
		}
		if sum != m.SHA256 {
			return nil, fmt.Errorf("engine %s: %s has sha256 %s, manifest %s says %s", m.ID, path, sum, m.File, m.SHA256)
		}
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", m.ID, err)
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(path,
		[]string{m.Input.Name}, []string{m.Outputs.Probability.Name, m.Outputs.CAM.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("engine %s: creating ONNX Runtime session for %s: %w", m.ID, path, err)
	}
	e := &Engine{m: m, sess: sess, maxBatch: opts.MaxBatch, size: m.Preprocessing.Size, decode: opts.Decode}
	if e.maxBatch <= 0 {
		e.maxBatch = DefaultMaxBatch
	}
	e.camH, e.camW = m.CAMSize()
	return e, nil
}

// Session configuration keys that switch the thread pools' spinning
// (onnxruntime_session_options_config_keys.h); "1" spins, "0" sleeps.
const (
	intraOpSpinningKey = "session.intra_op.allow_spinning"
	interOpSpinningKey = "session.inter_op.allow_spinning"
)

// sessionOptions builds the ONNX Runtime session options for opts: intra-op
// threads (0: runtime.NumCPU()), one inter-op thread (the models are one
// chain of nodes), and spinning on or off in both pools. The caller
// destroys them.
func sessionOptions(opts EngineOptions) (*ort.SessionOptions, error) {
	threads := opts.Threads
	if threads < 0 {
		return nil, fmt.Errorf("session options: %d intra-op threads (want 0 for the default, or more)", threads)
	}
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	spin := "0"
	if opts.Spinning {
		spin = "1"
	}
	for _, set := range []func() error{
		func() error { return so.SetIntraOpNumThreads(threads) },
		func() error { return so.SetInterOpNumThreads(1) },
		func() error { return so.AddSessionConfigEntry(intraOpSpinningKey, spin) },
		func() error { return so.AddSessionConfigEntry(interOpSpinningKey, spin) },
	} {
		if err := set(); err != nil {
			_ = so.Destroy()
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	return so, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Manifest returns the engine's manifest.
func (e *Engine) Manifest() *inference.Manifest { return e.m }

// Decode decodes a file for this engine: inference.DecodeWith and the engine's
// EngineOptions.Decode limits.
func (e *Engine) Decode(data []byte) (*inference.Image, error) {
	return inference.DecodeWith(data, e.decode)
}

// Accepts checks an image against the engine's intended-use rules
// (inference.Manifest.CheckImage): nil, or an error matching
// inference.ErrNotAccepted.
func (e *Engine) Accepts(img *inference.Image) error { return e.m.CheckImage(&img.Meta) }

// Close releases the session. It waits for runs in progress, is idempotent,
// and Score afterwards returns ErrEngineClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.sess.Destroy()
}

// Score scores the images, at most MaxBatch per ONNX Runtime run, and
// returns one inference.Result per image in order. Preprocessing follows
// the manifest.
// A cancelled ctx stops between batches and terminates a run in progress.
func (e *Engine) Score(ctx context.Context, images []*inference.Image) ([]inference.Result, error) {
	results := make([]inference.Result, len(images))
	plane := e.size * e.size
	for start := 0; start < len(images); start += e.maxBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := images[start:min(start+e.maxBatch, len(images))]
		input := make([]float32, len(batch)*plane)
		rects := make([]image.Rectangle, len(batch))
		if err := e.preprocessBatch(batch, input, rects); err != nil {
			return nil, err
		}
		probs, cams, err := e.ScoreTensor(ctx, input, len(batch))
		if err != nil {
			return nil, err
		}
		hw := e.camH * e.camW
		for i, img := range batch {
			p := float64(probs[i])
			results[start+i] = inference.Result{
				EngineID:          e.m.ID,
				EngineVersion:     e.m.Version,
				Probability:       p,
				Tier:              e.m.Thresholds.Tier(p),
				ConfidencePercent: inference.ConfidencePercent(p),
				Marked:            e.m.Thresholds.Marked(p),
				CAM:               cams[i*hw : (i+1)*hw : (i+1)*hw],
				CAMWidth:          e.camW,
				CAMHeight:         e.camH,
				Crop:              rects[i],
				SourceWidth:       img.Width,
				SourceHeight:      img.Height,
			}
		}
	}
	return results, nil
}

// preprocessBatch fills input with the batch's planes, in parallel.
func (e *Engine) preprocessBatch(batch []*inference.Image, input []float32, rects []image.Rectangle) error {
	plane := e.size * e.size
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, img := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rects[i], errs[i] = e.m.Preprocessing.Preprocess(img, input[i*plane:(i+1)*plane])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("image %d of the batch: %w", i, err)
		}
	}
	return nil
}

// ScoreTensor runs the model on n preprocessed planes (input holds
// n×Size×Size values, the [n,1,Size,Size] tensor) and returns the n
// probabilities and the n CAMs (n×h×w, row-major).
func (e *Engine) ScoreTensor(ctx context.Context, input []float32, n int) (probs, cams []float32, err error) {
	if n <= 0 || len(input) != n*e.size*e.size {
		return nil, nil, fmt.Errorf("ScoreTensor: %d values for %d images of %d²", len(input), n, e.size)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, nil, ErrEngineClosed
	}
	in, err := ort.NewTensor(ort.NewShape(int64(n), 1, int64(e.size), int64(e.size)), input)
	if err != nil {
		return nil, nil, fmt.Errorf("input tensor: %w", err)
	}
	defer in.Destroy()
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("run options: %w", err)
	}
	var roMu sync.Mutex
	roDone := false
	stop := context.AfterFunc(ctx, func() {
		roMu.Lock()
		defer roMu.Unlock()
		if !roDone {
			_ = ro.Terminate()
		}
	})
	defer func() {
		stop()
		roMu.Lock()
		roDone = true
		_ = ro.Destroy()
		roMu.Unlock()
	}()
	outs := []ort.Value{nil, nil}
	runErr := e.sess.RunWithOptions([]ort.Value{in}, outs, ro)
	defer func() {
		for _, o := range outs {
			if o != nil {
				_ = o.Destroy()
			}
		}
	}()
	if runErr != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("engine %s: ONNX Runtime run: %w", e.m.ID, runErr)
	}
	pt, ok1 := outs[0].(*ort.Tensor[float32])
	ct, ok2 := outs[1].(*ort.Tensor[float32])
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("engine %s: outputs are not float32 tensors", e.m.ID)
	}
	if s := pt.GetShape(); len(s) != 1 || s[0] != int64(n) {
		return nil, nil, fmt.Errorf("engine %s: output %s has shape %v, want [%d]", e.m.ID, e.m.Outputs.Probability.Name, s, n)
	}
	if s := ct.GetShape(); len(s) != 3 || s[0] != int64(n) || s[1] != int64(e.camH) || s[2] != int64(e.camW) {
		return nil, nil, fmt.Errorf("engine %s: output %s has shape %v, want [%d %d %d]", e.m.ID, e.m.Outputs.CAM.Name, s, n, e.camH, e.camW)
	}
	probs = append([]float32(nil), pt.GetData()...)
	cams = append([]float32(nil), ct.GetData()...)
	return probs, cams, nil
}
