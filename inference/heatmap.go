package inference

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// MaxHeatmapEdge is the longest edge, in pixels, of a heatmap PNG: a source
// image larger than this is downscaled (area averaging, aspect ratio kept)
// so that its long edge is MaxHeatmapEdge; smaller sources keep their size.
const MaxHeatmapEdge = 2048

// DefaultHeatmapAlpha is the overlay's opacity where the normalised CAM is 1;
// it falls linearly to 0 where the CAM is 0, so cold areas stay plain grey.
const DefaultHeatmapAlpha = 0.5

// HeatmapOptions tune RenderHeatmap.
type HeatmapOptions struct {
	// MaxEdge overrides MaxHeatmapEdge when > 0.
	MaxEdge int
	// Alpha overrides DefaultHeatmapAlpha when > 0 (at most 1).
	Alpha float64
	// Force draws a heatmap for a result that is not marked (tests, research).
	Force bool
}

// ErrNotMarked is returned by RenderHeatmap for a result below the mark
// threshold: the region of interest is marked only from that probability.
var ErrNotMarked = errors.New("result is not marked: no heatmap below the mark threshold")

// RenderHeatmap draws res's class activation map over img and returns the
// PNG, its width and its height. The CAM is normalised by its maximum (an
// all-zero CAM stays zero), upsampled bilinearly (half-pixel centres, edges
// clamped) over the crop rectangle the model saw, placed at the crop's
// offset in the source, coloured with the jet colour map and alpha-blended
// over the windowed radiograph in grey. Outside the crop the radiograph is
// plain grey. The PNG has the source's size, or is downscaled to
// MaxHeatmapEdge (see HeatmapOptions.MaxEdge). It is encoded with
// one fixed PNG filter and fast zlib (see pngWriter). Only a Marked result
// gets a heatmap unless opts.Force.
func RenderHeatmap(img *Image, res Result, opts HeatmapOptions) ([]byte, int, int, error) {
	if !res.Marked && !opts.Force {
		return nil, 0, 0, ErrNotMarked
	}
	if !img.consistent() {
		return nil, 0, 0, errors.New("heatmap: empty or inconsistent image")
	}
	if res.SourceWidth != img.Width || res.SourceHeight != img.Height {
		return nil, 0, 0, fmt.Errorf("heatmap: result is for a %d×%d image, got %d×%d",
			res.SourceWidth, res.SourceHeight, img.Width, img.Height)
	}
	ch, cw := res.CAMHeight, res.CAMWidth
	if ch <= 0 || cw <= 0 || len(res.CAM) != ch*cw {
		return nil, 0, 0, fmt.Errorf("heatmap: CAM of %d values is not %d×%d", len(res.CAM), ch, cw)
	}
	crop := res.Crop.Intersect(image.Rect(0, 0, img.Width, img.Height))
	if crop.Empty() {
		return nil, 0, 0, fmt.Errorf("heatmap: crop %v outside the %d×%d image", res.Crop, img.Width, img.Height)
	}
	maxEdge := opts.MaxEdge
	if maxEdge <= 0 {
		maxEdge = MaxHeatmapEdge
	}
	alpha := opts.Alpha
	if alpha <= 0 {
		alpha = DefaultHeatmapAlpha
	}
	alpha = math.Min(alpha, 1)

	W, H := img.Width, img.Height
	ow, oh := W, H
	if long := max(W, H); long > maxEdge {
		s := float64(maxEdge) / float64(long)
		ow = max(1, int(math.Round(float64(W)*s)))
		oh = max(1, int(math.Round(float64(H)*s)))
	}
	// The grey rows: the source's own (read through the lookup table when
	// the image is kept as stored words), or the downscaled plane.
	greyRow := img.rows(image.Rect(0, 0, W, H))
	if ow != W || oh != H {
		grey := make([]float32, ow*oh)
		resizeRows(img.adder(image.Rect(0, 0, W, H)), image.Rect(0, 0, W, H), grey, ow, oh, true)
		greyRow = func(y int, _ []float32) []float32 { return grey[y*ow : (y+1)*ow] }
	}
	rowBuf := make([]float32, ow)

	cam := make([]float64, len(res.CAM))
	var peak float64
	for _, v := range res.CAM {
		peak = math.Max(peak, float64(v))
	}
	if peak > 0 {
		for i, v := range res.CAM {
			cam[i] = math.Max(0, float64(v)) / peak
		}
	}

	// Separable bilinear taps: output column → CAM columns, row → CAM rows.
	xs := camTaps(ow, W, crop.Min.X, crop.Dx(), cw)
	ys := camTaps(oh, H, crop.Min.Y, crop.Dy(), ch)

	enc, err := newPNGWriter(ow, oh)
	if err != nil {
		return nil, 0, 0, err
	}
	row := enc.row()
	for y := 0; y < oh; y++ {
		ty := ys[y]
		grow := greyRow(y, rowBuf)
		for x := 0; x < ow; x++ {
			g := float64(grow[x])
			p := row[3*x : 3*x+3 : 3*x+3]
			if tx := xs[x]; tx.inside && ty.inside {
				top := cam[ty.i0*cw+tx.i0]*(1-tx.f) + cam[ty.i0*cw+tx.i1]*tx.f
				bot := cam[ty.i1*cw+tx.i0]*(1-tx.f) + cam[ty.i1*cw+tx.i1]*tx.f
				h := top*(1-ty.f) + bot*ty.f
				if h > 0 {
					cr, cg, cb := jet(h)
					a := alpha * h
					p[0], p[1], p[2] = to8((1-a)*g+a*cr), to8((1-a)*g+a*cg), to8((1-a)*g+a*cb)
					continue
				}
			}
			v := to8(g)
			p[0], p[1], p[2] = v, v, v
		}
		if err := enc.writeRow(); err != nil {
			return nil, 0, 0, fmt.Errorf("heatmap: encoding PNG: %w", err)
		}
	}
	png, err := enc.finish()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("heatmap: encoding PNG: %w", err)
	}
	return png, ow, oh, nil
}

type camTap struct {
	i0, i1 int
	f      float64
	inside bool
}

// camTaps maps each of n output pixels along an axis (the source axis has
// length src) to the CAM cells (length cells) that cover it, for a crop
// starting at off with length clen in source pixels.
func camTaps(n, src, off, clen, cells int) []camTap {
	taps := make([]camTap, n)
	for i := range taps {
		s := (float64(i) + 0.5) * float64(src) / float64(n) // source coordinate
		if s < float64(off) || s >= float64(off+clen) {
			continue
		}
		u := (s-float64(off))/float64(clen)*float64(cells) - 0.5
		if u < 0 {
			u = 0
		}
		i0 := int(math.Floor(u))
		if i0 > cells-1 {
			i0 = cells - 1
		}
		i1 := min(i0+1, cells-1)
		taps[i] = camTap{i0: i0, i1: i1, f: u - float64(i0), inside: true}
		if i0 == i1 {
			taps[i].f = 0
		}
	}
	return taps
}

// jet is the classic blue–cyan–yellow–red colour map, v in 0..1.
func jet(v float64) (r, g, b float64) {
	c := func(x float64) float64 { return math.Max(0, math.Min(1, x)) }
	return c(1.5 - math.Abs(4*v-3)), c(1.5 - math.Abs(4*v-2)), c(1.5 - math.Abs(4*v-1))
}

func to8(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 1:
		return 255
	}
	return uint8(v*255 + 0.5)
}
