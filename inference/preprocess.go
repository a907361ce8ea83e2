package inference

import (
	"fmt"
	"image"
	"math"
	"sync"
)

// Crop modes of Preprocessing.Crop.
const (
	// CropCenterSquare centre-crops to a square whose side is the shorter
	// edge (offset rounded down when the difference is odd).
	CropCenterSquare = "center-square"
	// CropNone feeds the whole image, stretched to the square input.
	CropNone = "none"
)

// Resize methods of Preprocessing.Resize.
const (
	// ResizeArea is PyTorch's interpolate(mode="area"), i.e. adaptive
	// average pooling: output pixel i along an axis of n source pixels
	// resized to m is the plain mean of source pixels floor(i·n/m) …
	// ceil((i+1)·n/m)−1 (neighbouring bins may share a pixel). This is what
	// the engines' training and reference pipelines used: on the reference
	// files it lands 10–30× closer to the reference probabilities than exact
	// fractional weights (largest gap 0.0004 against 0.012 for the k224
	// engine on dx-chest-implicit-le-8bit.dcm). Upsampling by an integer
	// factor replicates pixels.
	ResizeArea = "area"
	// ResizeAreaExact is a box filter with exact fractional-area weights
	// (OpenCV INTER_AREA, Pillow BOX): each output pixel is the mean of the
	// source area it covers, partly covered pixels weighted by the fraction
	// covered.
	ResizeAreaExact = "area-exact"
)

// Preprocessing says how an Image becomes the model's input plane.
type Preprocessing struct {
	// Crop is "center-square" or "none".
	Crop string `yaml:"crop"`
	// Size is the side of the square input, in pixels (224).
	Size int `yaml:"size"`
	// Resize is the resampling method: "area" (PyTorch's area mode, what
	// training used) or "area-exact" (exact fractional-area box filter).
	Resize string `yaml:"resize"`
}

// Validate checks the values.
func (p Preprocessing) Validate() error {
	if p.Crop != CropCenterSquare && p.Crop != CropNone {
		return fmt.Errorf("crop %q: want %q or %q", p.Crop, CropCenterSquare, CropNone)
	}
	if p.Size < 1 || p.Size > 4096 {
		return fmt.Errorf("size %d: want 1..4096", p.Size)
	}
	if p.Resize != ResizeArea && p.Resize != ResizeAreaExact {
		return fmt.Errorf("resize %q: want %q or %q", p.Resize, ResizeArea, ResizeAreaExact)
	}
	return nil
}

// CropRect returns the part of a w×h image the model sees, in the image's
// own pixel coordinates.
func (p Preprocessing) CropRect(w, h int) image.Rectangle {
	if p.Crop != CropCenterSquare {
		return image.Rect(0, 0, w, h)
	}
	side := min(w, h)
	x0, y0 := (w-side)/2, (h-side)/2
	return image.Rect(x0, y0, x0+side, y0+side)
}

// Preprocess crops img and area-resizes it into dst, which must hold
// Size×Size values (one [1,Size,Size] slice of the input tensor). It returns
// the crop rectangle in img's coordinates. An image Decode keeps as stored
// words is resized straight from them through its lookup table, row by row,
// without building the full-size plane; the result is the same as resizing
// Image.Plane().
func (p Preprocessing) Preprocess(img *Image, dst []float32) (image.Rectangle, error) {
	if err := p.Validate(); err != nil {
		return image.Rectangle{}, err
	}
	if !img.consistent() {
		return image.Rectangle{}, fmt.Errorf("preprocess: empty or inconsistent image")
	}
	if len(dst) != p.Size*p.Size {
		return image.Rectangle{}, fmt.Errorf("preprocess: destination holds %d values, want %d", len(dst), p.Size*p.Size)
	}
	r := p.CropRect(img.Width, img.Height)
	resizeRows(img.adder(r), r, dst, p.Size, p.Size, p.Resize == ResizeAreaExact)
	return r, nil
}

// axisTaps are the box-filter taps of one axis: output i averages source
// samples start[i] … start[i]+n-1 with weights w[off[i]:off[i+1]] (n of
// them, summing to 1).
type axisTaps struct {
	start []int
	off   []int
	w     []float64
}

func (a *axisTaps) taps(i int) []float64 { return a.w[a.off[i]:a.off[i+1]] }

// boxWeights returns the taps of one axis: PyTorch area bins, or exact
// fractional-area weights.
func boxWeights(in, out int, exact bool) axisTaps {
	aw := axisTaps{start: make([]int, out), off: make([]int, out+1), w: make([]float64, 0, in+2*out)}
	if !exact {
		for i := 0; i < out; i++ {
			k0 := i * in / out
			k1 := ((i+1)*in + out - 1) / out
			for range k1 - k0 {
				aw.w = append(aw.w, 1/float64(k1-k0))
			}
			aw.start[i], aw.off[i+1] = k0, len(aw.w)
		}
		return aw
	}
	scale := float64(in) / float64(out)
	var ws []float64
	for i := 0; i < out; i++ {
		a, b := float64(i)*scale, float64(i+1)*scale
		k0 := int(math.Floor(a))
		k1 := int(math.Ceil(b))
		if k1 > in {
			k1 = in
		}
		if k1 <= k0 {
			k1 = k0 + 1
		}
		ws = ws[:0]
		var sum float64
		for k := k0; k < k1; k++ {
			ov := math.Min(b, float64(k+1)) - math.Max(a, float64(k))
			if ov < 0 {
				ov = 0
			}
			ws = append(ws, ov)
			sum += ov
		}
		for j := range ws {
			ws[j] /= sum
		}
		// Drop zero taps at the ends (exact integer boundaries).
		for len(ws) > 1 && ws[0] == 0 {
			ws, k0 = ws[1:], k0+1
		}
		for len(ws) > 1 && ws[len(ws)-1] == 0 {
			ws = ws[:len(ws)-1]
		}
		aw.w = append(aw.w, ws...)
		aw.start[i], aw.off[i+1] = k0, len(aw.w)
	}
	return aw
}

// Resize resamples the rectangle r of src (a plane with the given row
// stride) into dst (dw×dh, row-major) by area averaging: PyTorch's area
// bins (ResizeArea), or with exact fractional-area weights when exact
// (ResizeAreaExact). See resizeRows.
func Resize(src []float32, stride int, r image.Rectangle, dst []float32, dw, dh int, exact bool) {
	resizeRows(planeAdder(src, stride, r), r, dst, dw, dh, exact)
}

// A rowAdder adds w × (source row y, columns r.Min.X … r.Max.X-1) into acc,
// which holds r.Dx() values. y is absolute.
type rowAdder func(y int, w float64, acc []float64)

// planeAdder reads the rows of a float32 plane.
func planeAdder(src []float32, stride int, r image.Rectangle) rowAdder {
	return func(y int, w float64, acc []float64) {
		row := src[y*stride+r.Min.X : y*stride+r.Min.X+len(acc)]
		for x, v := range row {
			acc[x] += w * float64(v)
		}
	}
}

// resizeScratch is resizeRows' working memory, pooled.
type resizeScratch struct{ col []float64 }

var resizeScratchPool = sync.Pool{New: func() any { return new(resizeScratch) }}

// resizeRows resamples the rectangle r of the source that add reads into
// dst (dw×dh). The filter is separable and done vertical pass first: for
// each output row, the source rows of its bin are added, weighted, into one
// float64 row of r's width (one pass over the source, each row read once
// per bin it belongs to, the running sums in L1), then that row gets the
// horizontal taps. Every product and sum is float64 and the result is
// rounded to float32 once, so it differs from the horizontal-first order
// (which rounds its intermediate rows to float32) by float32 rounding only.
func resizeRows(add rowAdder, r image.Rectangle, dst []float32, dw, dh int, exact bool) {
	rw, rh := r.Dx(), r.Dy()
	wx := boxWeights(rw, dw, exact)
	wy := boxWeights(rh, dh, exact)
	sc := resizeScratchPool.Get().(*resizeScratch)
	defer resizeScratchPool.Put(sc)
	if cap(sc.col) < rw {
		sc.col = make([]float64, rw)
	}
	col := sc.col[:rw]
	for i := 0; i < dh; i++ {
		clear(col)
		y0 := r.Min.Y + wy.start[i]
		for k, w := range wy.taps(i) {
			add(y0+k, w, col)
		}
		drow := dst[i*dw : (i+1)*dw]
		for j := range drow {
			ws := wx.taps(j)
			s := col[wx.start[j]:]
			s = s[:len(ws)]
			var acc float64
			for k, w := range ws {
				acc += w * s[k]
			}
			drow[j] = float32(acc)
		}
	}
}
