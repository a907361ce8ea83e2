package scoring

import (
	"context"
	"path/filepath"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
)

// Failure is a file that one engine (or every engine: Engine "") could not
// score.
type Failure struct {
	File   string
	Engine string
	Err    error
}

// Probabilities are one engine's probabilities for the files given to
// Labelled: Prob[i] is file i's, valid where Scored[i].
type Probabilities struct {
	// Outside counts the images outside the engine's accepts rules (scored
	// anyway: serve would not); FirstOutside says why for the first.
	Outside      int
	FirstOutside string
	Manifest     *inference.Manifest
	Prob         []float64
	Scored       []bool
}

// Labelled decodes files (paths relative to dir) batch at a time and scores
// each batch with every engine in one run, calling progress (when not nil)
// with the number of file × engine scorings done. A file that is missing or
// does not decode is a failure for all engines; one an engine cannot
// preprocess or run, a failure for that engine: the rest are scored. Only a
// cancelled ctx is returned as an error.
func Labelled(ctx context.Context, engines []*onnx.Engine, dir string, files []string, batch int, progress func(n int)) ([]Probabilities, []Failure, error) {
	if progress == nil {
		progress = func(int) {}
	}
	batch = max(batch, 1)
	scores := make([]Probabilities, len(engines))
	for i, e := range engines {
		scores[i] = Probabilities{Manifest: e.Manifest(), Prob: make([]float64, len(files)), Scored: make([]bool, len(files))}
	}
	var failures []Failure
	for start := 0; start < len(files); start += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		end := min(start+batch, len(files))
		var imgs []*inference.Image
		var idx []int
		for i := start; i < end; i++ {
			img, err := inference.DecodeFile(filepath.Join(dir, files[i]))
			if err != nil {
				failures = append(failures, Failure{File: files[i], Err: err})
				continue
			}
			imgs = append(imgs, img)
			idx = append(idx, i)
		}
		for k, eng := range engines {
			for _, img := range imgs {
				if err := eng.Accepts(img); err != nil {
					if scores[k].Outside++; scores[k].Outside == 1 {
						scores[k].FirstOutside = err.Error()
					}
				}
			}
			if err := scoreBatch(ctx, eng, imgs, idx, &scores[k], files, &failures); err != nil {
				return nil, nil, err
			}
			progress(end - start)
		}
	}
	return scores, failures, nil
}

// scoreBatch scores imgs (the files idx) with one engine into s. One image
// that cannot be preprocessed fails its whole batch, so then the images are
// scored one by one, to name the bad one and keep the rest. Only a cancelled
// ctx is returned as an error.
func scoreBatch(ctx context.Context, eng *onnx.Engine, imgs []*inference.Image, idx []int, s *Probabilities, files []string, failures *[]Failure) error {
	if len(imgs) == 0 {
		return ctx.Err()
	}
	results, err := eng.Score(ctx, imgs)
	if err == nil {
		for j, r := range results {
			s.Prob[idx[j]], s.Scored[idx[j]] = r.Probability, true
		}
		return nil
	}
	for j, img := range imgs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := eng.Score(ctx, []*inference.Image{img})
		if err != nil {
			*failures = append(*failures, Failure{File: files[idx[j]], Engine: s.Manifest.ID, Err: err})
			continue
		}
		s.Prob[idx[j]], s.Scored[idx[j]] = r[0].Probability, true
	}
	return ctx.Err()
}
