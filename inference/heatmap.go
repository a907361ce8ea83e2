package inference

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"sync"

	"github.com/radgate/radgate/inference/codec"
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
	o, err := newOverlay(img, res, cmp.Or(opts.MaxEdge, MaxHeatmapEdge), opts.Alpha, true)
	if err != nil {
		return nil, 0, 0, err
	}
	defer o.release()
	enc, err := newPNGWriter(o.w, o.h)
	if err != nil {
		return nil, 0, 0, err
	}
	row := enc.row()
	for y := 0; y < o.h; y++ {
		o.row(y, row, 3)
		if err := enc.writeRow(); err != nil {
			return nil, 0, 0, fmt.Errorf("heatmap: encoding PNG: %w", err)
		}
	}
	png, err := enc.finish()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("heatmap: encoding PNG: %w", err)
	}
	return png, o.w, o.h, nil
}

// PreviewEdge is the longest edge, in pixels, of a preview (RenderPreview):
// what a FHIR Media and the PDF report show. 512 pixels show a 7×7 class
// activation map's region plainly on a screen and at about 140 dpi over the
// report's 92 mm picture, as a JPEG of tens of kilobytes; the heatmap at the
// image's own resolution goes to the PACS (RenderHeatmap).
const PreviewEdge = 512

// PreviewQuality is the JPEG quality of a preview.
const PreviewQuality = 85

// RenderPreview draws the picture a clinician sees beside the score, at most
// PreviewEdge pixels on its long edge (opts.MaxEdge overrides), as a
// baseline JPEG: for a Marked result (or with opts.Force) the heatmap
// overlay as RenderHeatmap draws it, in colour; otherwise the windowed
// radiograph as scored, in grey. It is drawn straight from the decoded
// image, once, at the size it is shown.
func RenderPreview(img *Image, res Result, opts HeatmapOptions) ([]byte, int, int, error) {
	colour := res.Marked || opts.Force
	o, err := newOverlay(img, res, cmp.Or(opts.MaxEdge, PreviewEdge), opts.Alpha, colour)
	if err != nil {
		return nil, 0, 0, err
	}
	defer o.release()
	// The pixels live only until they are encoded: pooled, like the
	// overlay's grey plane, they are not a megabyte of garbage a result.
	bpp := 1
	if colour {
		bpp = 4
	}
	pixp := pixelPool.get(bpp * o.w * o.h)
	defer pixelPool.put(pixp)
	pix, stride := *pixp, bpp*o.w
	var pic image.Image
	if colour {
		for y := 0; y < o.h; y++ {
			row := pix[y*stride : (y+1)*stride]
			o.row(y, row, 4)
			for x := 3; x < len(row); x += 4 {
				row[x] = 0xff
			}
		}
		pic = &image.RGBA{Pix: pix, Stride: stride, Rect: image.Rect(0, 0, o.w, o.h)}
	} else {
		for y := 0; y < o.h; y++ {
			o.row(y, pix[y*stride:(y+1)*stride], 1)
		}
		pic = &image.Gray{Pix: pix, Stride: stride, Rect: image.Rect(0, 0, o.w, o.h)}
	}
	if codec.TurboJPEG {
		b, err := codec.EncodeJPEG(pix, o.w, o.h, stride, !colour, PreviewQuality)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("preview: %w", err)
		}
		return b, o.w, o.h, nil
	}
	var buf bytes.Buffer
	buf.Grow(o.w * o.h / 8)
	if err := jpeg.Encode(&buf, pic, &jpeg.Options{Quality: PreviewQuality}); err != nil {
		return nil, 0, 0, fmt.Errorf("preview: encoding JPEG: %w", err)
	}
	return buf.Bytes(), o.w, o.h, nil
}

// slicePool keeps large slices between results (sync.Pool: what is not
// used again is dropped at the next collections). get returns a slice of
// length n, its contents undefined.
type slicePool[T any] struct{ p sync.Pool }

func (sp *slicePool[T]) get(n int) *[]T {
	if v, ok := sp.p.Get().(*[]T); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	s := make([]T, n)
	return &s
}

func (sp *slicePool[T]) put(s *[]T) { sp.p.Put(s) }

// pixelPool holds the preview's pixels, planePool the overlay's
// downscaled grey plane: a megabyte each for a 512-pixel preview.
var (
	pixelPool slicePool[byte]
	planePool slicePool[float32]
)

// overlay draws one result over its image at one output size.
type overlay struct {
	w, h   int
	grey   func(y int, buf []float32) []float32
	buf    []float32
	colour bool // false: the radiograph alone
	cam    []float64
	cw     int
	xs, ys []camTap
	// camX is the CAM interpolated along x, one row of o.w values per CAM
	// row: the horizontal half of the bilinear upsampling, the same for
	// every output row between two CAM rows, so done once per CAM row.
	camX  []float64
	alpha float64
	plane *[]float32 // the downscaled grey, from planePool; see release
}

// release gives the overlay's pooled memory back; o is not used after.
func (o *overlay) release() {
	if o.plane != nil {
		planePool.put(o.plane)
		o.plane = nil
	}
}

// newOverlay checks res against img and prepares the drawing at most
// maxEdge pixels on the long edge (aspect ratio kept, area averaging). The
// CAM is checked and used only when colour.
func newOverlay(img *Image, res Result, maxEdge int, alpha float64, colour bool) (*overlay, error) {
	if !img.consistent() {
		return nil, errors.New("heatmap: empty or inconsistent image")
	}
	if res.SourceWidth != img.Width || res.SourceHeight != img.Height {
		return nil, fmt.Errorf("heatmap: result is for a %d×%d image, got %d×%d",
			res.SourceWidth, res.SourceHeight, img.Width, img.Height)
	}
	W, H := img.Width, img.Height
	o := &overlay{w: W, h: H, colour: colour}
	if long := max(W, H); long > maxEdge {
		s := float64(maxEdge) / float64(long)
		o.w = max(1, int(math.Round(float64(W)*s)))
		o.h = max(1, int(math.Round(float64(H)*s)))
	}
	if colour {
		ch, cw := res.CAMHeight, res.CAMWidth
		if ch <= 0 || cw <= 0 || len(res.CAM) != ch*cw {
			return nil, fmt.Errorf("heatmap: CAM of %d values is not %d×%d", len(res.CAM), ch, cw)
		}
		crop := res.Crop.Intersect(image.Rect(0, 0, W, H))
		if crop.Empty() {
			return nil, fmt.Errorf("heatmap: crop %v outside the %d×%d image", res.Crop, W, H)
		}
		o.cw = cw
		o.cam = make([]float64, len(res.CAM))
		var peak float64
		for _, v := range res.CAM {
			peak = math.Max(peak, float64(v))
		}
		if peak > 0 {
			for i, v := range res.CAM {
				o.cam[i] = math.Max(0, float64(v)) / peak
			}
		}
		// Separable bilinear taps: output column → CAM columns, row → CAM rows.
		o.xs = camTaps(o.w, W, crop.Min.X, crop.Dx(), cw)
		o.ys = camTaps(o.h, H, crop.Min.Y, crop.Dy(), ch)
		o.camX = make([]float64, ch*o.w)
		for r := range ch {
			cr, dst := o.cam[r*cw:(r+1)*cw], o.camX[r*o.w:(r+1)*o.w]
			for x, tx := range o.xs {
				if tx.inside {
					dst[x] = cr[tx.i0]*(1-tx.f) + cr[tx.i1]*tx.f
				}
			}
		}
	}
	if alpha <= 0 {
		alpha = DefaultHeatmapAlpha
	}
	o.alpha = math.Min(alpha, 1)
	// The grey rows: the source's own (read through the lookup table when
	// the image is kept as stored words), or the downscaled plane.
	o.grey = img.rows(image.Rect(0, 0, W, H))
	if o.w != W || o.h != H {
		o.plane = planePool.get(o.w * o.h)
		grey := *o.plane
		resizeRows(img.adder(image.Rect(0, 0, W, H)), image.Rect(0, 0, W, H), grey, o.w, o.h, true)
		ow := o.w
		o.grey = func(y int, _ []float32) []float32 { return grey[y*ow : (y+1)*ow] }
	}
	o.buf = make([]float32, o.w)
	return o, nil
}

// row draws output row y into dst, bpp bytes a pixel: 1 writes grey, 3 or
// 4 write red, green, blue (the fourth byte is left alone).
func (o *overlay) row(y int, dst []byte, bpp int) {
	grow := o.grey(y, o.buf)
	if bpp == 1 {
		for x := 0; x < o.w; x++ {
			dst[x] = to8(float64(grow[x]))
		}
		return
	}
	var ty camTap
	if o.colour {
		ty = o.ys[y]
	}
	if !ty.inside { // the radiograph alone: no CAM on this row
		for x := 0; x < o.w; x++ {
			v := to8(float64(grow[x]))
			p := dst[bpp*x : bpp*x+3 : bpp*x+3]
			p[0], p[1], p[2] = v, v, v
		}
		return
	}
	alpha := o.alpha
	tops := o.camX[ty.i0*o.w : (ty.i0+1)*o.w]
	bots := o.camX[ty.i1*o.w : (ty.i1+1)*o.w]
	xs := o.xs[:o.w]
	fy, gy := ty.f, 1-ty.f
	grow = grow[:o.w]
	for x, tx := range xs {
		g := float64(grow[x])
		p := dst[bpp*x : bpp*x+3 : bpp*x+3]
		if tx.inside {
			if h := tops[x]*gy + bots[x]*fy; h > 0 {
				c := &jetLUT[int(h*(jetSteps-1)+0.5)]
				cr, cg, cb := c[0], c[1], c[2]
				a := alpha * h
				p[0], p[1], p[2] = to8((1-a)*g+a*cr), to8((1-a)*g+a*cg), to8((1-a)*g+a*cb)
				continue
			}
		}
		v := to8(g)
		p[0], p[1], p[2] = v, v, v
	}
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

// jetSteps is how finely jetLUT samples the colour map: a step changes a
// colour channel by at most 4/(jetSteps-1), under a quarter of one 8-bit
// level.
const jetSteps = 4096

// jetLUT is jet sampled at jetSteps points of 0..1.
var jetLUT = func() (lut [jetSteps][3]float64) {
	for i := range lut {
		lut[i][0], lut[i][1], lut[i][2] = jet(float64(i) / (jetSteps - 1))
	}
	return lut
}()

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
