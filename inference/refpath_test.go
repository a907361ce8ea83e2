package inference

// The reference pipeline, as it was before Decode kept stored words and
// Preprocess resized from them: kept verbatim so that tests can compare the
// fast path with it, and benchmarks can time old against new in one run.

import (
	"image"
	"math"
)

// refAxisWeights are the box-filter taps of one axis: output i averages source
// samples start[i] … start[i]+len(w[i])-1 with weights w[i] (summing to 1).
type refAxisWeights struct {
	start []int
	w     [][]float64
}

// refBoxWeights returns the taps of one axis: PyTorch area bins, or exact
// fractional-area weights.
func refBoxWeights(in, out int, exact bool) refAxisWeights {
	aw := refAxisWeights{start: make([]int, out), w: make([][]float64, out)}
	if !exact {
		for i := 0; i < out; i++ {
			k0 := i * in / out
			k1 := ((i+1)*in + out - 1) / out
			ws := make([]float64, k1-k0)
			for j := range ws {
				ws[j] = 1 / float64(k1-k0)
			}
			aw.start[i], aw.w[i] = k0, ws
		}
		return aw
	}
	scale := float64(in) / float64(out)
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
		ws := make([]float64, 0, k1-k0)
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
		aw.start[i], aw.w[i] = k0, ws
	}
	return aw
}

// referenceResize resamples the rectangle r of src (a plane with the given row
// stride) into dst (dw×dh, row-major) by area averaging: PyTorch's area
// bins (ResizeArea), or with exact fractional-area weights when exact
// (ResizeAreaExact). It is separable: one horizontal pass into a dw-wide
// float32 scratch of r's height, then a vertical pass accumulated in
// float64.
func referenceResize(src []float32, stride int, r image.Rectangle, dst []float32, dw, dh int, exact bool) {
	rw, rh := r.Dx(), r.Dy()
	wx := refBoxWeights(rw, dw, exact)
	wy := refBoxWeights(rh, dh, exact)
	tmp := make([]float32, rh*dw)
	for y := 0; y < rh; y++ {
		row := src[(r.Min.Y+y)*stride+r.Min.X : (r.Min.Y+y)*stride+r.Max.X]
		trow := tmp[y*dw : (y+1)*dw]
		for j := 0; j < dw; j++ {
			s := row[wx.start[j]:]
			var acc float64
			for k, w := range wx.w[j] {
				acc += w * float64(s[k])
			}
			trow[j] = float32(acc)
		}
	}
	acc := make([]float64, dw)
	for i := 0; i < dh; i++ {
		clear(acc)
		k0 := wy.start[i]
		for k, w := range wy.w[i] {
			trow := tmp[(k0+k)*dw : (k0+k+1)*dw]
			for j, v := range trow {
				acc[j] += w * float64(v)
			}
		}
		drow := dst[i*dw : (i+1)*dw]
		for j := range drow {
			drow[j] = float32(acc[j])
		}
	}
}
