package evaluation

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Plot size in pixels (both plots are square).
const (
	PlotSize = 720
	// ss is the supersampling factor: everything is drawn at ss× and
	// averaged down, which smooths the lines.
	ss = 2
)

// Curve is one scorer's ROC curve on a plot.
type Curve struct {
	// Label names the curve in the legend.
	Label  string
	Points []ROCPoint
	// Marks are operating points drawn as rings on the curve.
	Marks []Mark
}

// Mark is a labelled point on a ROC curve.
type Mark struct {
	Label    string
	FPR, TPR float64
}

// Curve returns the report's ROC curve, labelled with label and its AUC,
// with its operating points as marks.
func (r *Report) Curve(label string) Curve {
	c := Curve{
		Label:  fmt.Sprintf("%s  AUC %.4f (%.4f-%.4f)", label, r.AUC.AUC, r.AUC.CI[0], r.AUC.CI[1]),
		Points: r.ROC,
	}
	for _, op := range r.Operating {
		c.Marks = append(c.Marks, Mark{
			Label: strconv.FormatFloat(op.Cutoff, 'f', -1, 64),
			FPR:   1 - op.Specificity,
			TPR:   op.Sensitivity,
		})
	}
	return c
}

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{0, 0, 0, 255}
	grid      = color.RGBA{225, 225, 225, 255}
	gridDark  = color.RGBA{150, 150, 150, 255}
	barFill   = color.RGBA{158, 197, 230, 255}
	barLine   = color.RGBA{60, 110, 170, 255}
	redDot    = color.RGBA{200, 40, 40, 255}
	palette   = []color.RGBA{{31, 119, 180, 255}, {230, 120, 20, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255}, {140, 86, 75, 255}}
	errNoData = errors.New("evaluation: nothing to plot")
)

// PlotROC writes a PNG of the ROC curves (PlotSize² pixels): the diagonal,
// a 0.1 grid, each curve with its marks, a legend, and — when every curve's
// area is at least 0.9 — an inset magnifying the top-left corner (false
// positive rate 0–0.2, true positive rate 0.8–1).
func PlotROC(w io.Writer, title string, curves []Curve) error {
	if len(curves) == 0 {
		return errNoData
	}
	c := newCanvas(PlotSize, PlotSize)
	p := c.panel(90, 60, PlotSize-30, PlotSize-80, 0, 1, 0, 1)
	p.grid(0.1, 0.2, "%.1f")
	p.dashed(0, 0, 1, 1, gridDark, 1.5)
	inset := true
	for i, cv := range curves {
		col := palette[i%len(palette)]
		p.polyline(cv.Points, col, 2.5)
		for _, m := range cv.Marks {
			p.ring(m.FPR, m.TPR, 5, col)
		}
		if a := trapezoid(cv.Points); a < 0.9 {
			inset = false
		}
	}
	p.frame()
	c.text(title, PlotSize/2, 28, 2, black, alignCenter)
	c.text("1 - specificity (false positive rate)", (p.x0+p.x1)/2, PlotSize-30, 1.5, black, alignCenter)
	c.vtext("sensitivity (true positive rate)", 22, (p.y0+p.y1)/2, 1.5, black)

	// Legend, bottom right of the panel; marks explained once.
	const charW, lineH = 7.0, 20.0
	marks := ""
	if len(curves[0].Marks) > 0 {
		marks = "operating points (cut-offs " + markNames(curves[0].Marks) + ")"
	}
	textW := float64(len(marks))
	for _, cv := range curves {
		textW = math.Max(textW, float64(len(cv.Label)))
	}
	lx := math.Max(p.x0+10, p.x1-12-32-textW*charW)
	ly := p.y1 - 14 - lineH*float64(len(curves))
	for i, cv := range curves {
		col := palette[i%len(palette)]
		y := ly + lineH*float64(i)
		c.line(lx, y, lx+25, y, col, 3)
		c.text(cv.Label, lx+32, y, 1, black, alignLeft)
	}
	if marks != "" {
		y := ly - lineH
		c.ring(lx+12, y, 5, black)
		c.text(marks, lx+32, y, 1, black, alignLeft)
	}

	if inset {
		q := c.panel(p.px(0.42), p.py(0.80), p.px(0.97), p.py(0.40), 0, 0.2, 0.8, 1)
		q.fill(white)
		q.grid(0.05, 0.1, "%.1f")
		for i, cv := range curves {
			col := palette[i%len(palette)]
			q.polyline(cv.Points, col, 2.5)
			for _, m := range cv.Marks {
				if m.FPR <= 0.2 && m.TPR >= 0.8 {
					q.ring(m.FPR, m.TPR, 5, col)
				}
			}
		}
		q.frame()
		c.text("top-left corner, magnified", (q.x0+q.x1)/2, q.y0-10, 1, black, alignCenter)
	}
	return c.encode(w)
}

func markNames(ms []Mark) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += m.Label
	}
	return s
}

// trapezoid is the area under a ROC polyline.
func trapezoid(pts []ROCPoint) float64 {
	var a float64
	for i := 1; i < len(pts); i++ {
		a += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
	}
	return a
}

// PlotReliability writes a PNG reliability diagram (PlotSize² pixels): per
// bin a bar up to the observed fraction of positives and a red dot at (mean
// probability, observed fraction), joined by a line, the diagonal of perfect
// calibration, and below it a strip with the number of cases per bin.
func PlotReliability(w io.Writer, title string, bins []Bin) error {
	if len(bins) == 0 {
		return errNoData
	}
	c := newCanvas(PlotSize, PlotSize)
	p := c.panel(90, 76, PlotSize-30, PlotSize-200, 0, 1, 0, 1)
	p.gridY(0.1, 0.2, "%.1f")
	p.gridX(0.1, 0.2, "")
	for _, b := range bins {
		if b.N == 0 {
			continue
		}
		x0, x1 := p.px(b.Low)+2, p.px(b.High)-2
		y0, y1 := p.py(b.ObservedRate), p.py(0)
		c.rect(x0, y0, x1, y1, barFill)
		c.line(x0, y0, x1, y0, barLine, 1.5)
		c.line(x0, y0, x0, y1, barLine, 1.5)
		c.line(x1, y0, x1, y1, barLine, 1.5)
	}
	p.dashed(0, 0, 1, 1, gridDark, 1.5)
	var pts []ROCPoint
	for _, b := range bins {
		if b.N > 0 {
			pts = append(pts, ROCPoint{FPR: b.MeanProbability, TPR: b.ObservedRate})
		}
	}
	p.polyline(pts, redDot, 2)
	for _, q := range pts {
		p.dot(q.FPR, q.TPR, 5, redDot)
	}
	p.frame()

	// The case counts, on a strip below sharing the x axis.
	maxN := 0
	for _, b := range bins {
		maxN = max(maxN, b.N)
	}
	h := c.panel(p.x0, p.y1+22, p.x1, PlotSize-80, 0, 1, 0, float64(max(maxN, 1))*1.3)
	h.gridX(0.1, 0.2, "%.1f")
	for _, b := range bins {
		if b.N == 0 {
			continue
		}
		x0, x1 := h.px(b.Low)+2, h.px(b.High)-2
		y0, y1 := h.py(float64(b.N)), h.py(0)
		c.rect(x0, y0, x1, y1, gridDark)
		c.text(strconv.Itoa(b.N), (x0+x1)/2, y0-8, 1, black, alignCenter)
	}
	h.frame()
	c.text("cases", h.x0-8, (h.y0+h.y1)/2, 1.3, black, alignRight)

	c.text(title, PlotSize/2, 28, 2, black, alignCenter)
	c.text("predicted probability (bins of width "+strconv.FormatFloat(bins[0].High-bins[0].Low, 'f', -1, 64)+")", (p.x0+p.x1)/2, PlotSize-30, 1.5, black, alignCenter)
	c.vtext("observed fraction positive", 22, (p.y0+p.y1)/2, 1.5, black)
	// Legend in one line between the title and the panel.
	lx, ly := p.x0+4, p.y0-14
	c.rect(lx, ly-6, lx+22, ly+6, barFill)
	c.text("observed fraction positive", lx+28, ly, 1, black, alignLeft)
	lx += 28 + 27*7 + 16
	c.dot(lx+11, ly, 5, redDot)
	c.text("bin's mean prediction", lx+28, ly, 1, black, alignLeft)
	lx += 28 + 21*7 + 16
	c.dashedLine(lx, ly, lx+22, ly, gridDark, 1.5)
	c.text("perfect calibration", lx+28, ly, 1, black, alignLeft)
	return c.encode(w)
}

// canvas draws at ss× in final-pixel coordinates.
type canvas struct {
	img  *image.RGBA
	w, h int
}

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w*ss, h*ss)), w: w, h: h}
	for i := range c.img.Pix {
		c.img.Pix[i] = 255
	}
	return c
}

// encode averages the ss×ss blocks down and writes the PNG.
func (c *canvas) encode(w io.Writer) error {
	out := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	for y := range c.h {
		for x := range c.w {
			var sum [3]int
			for dy := range ss {
				for dx := range ss {
					o := c.img.PixOffset(x*ss+dx, y*ss+dy)
					for k := range 3 {
						sum[k] += int(c.img.Pix[o+k])
					}
				}
			}
			o := out.PixOffset(x, y)
			for k := range 3 {
				out.Pix[o+k] = uint8((sum[k] + ss*ss/2) / (ss * ss))
			}
			out.Pix[o+3] = 255
		}
	}
	return png.Encode(w, out)
}

func (c *canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		o := c.img.PixOffset(x, y)
		c.img.Pix[o], c.img.Pix[o+1], c.img.Pix[o+2], c.img.Pix[o+3] = col.R, col.G, col.B, 255
	}
}

// rect fills [x0,x1]×[y0,y1] (final pixels, any order).
func (c *canvas) rect(x0, y0, x1, y1 float64, col color.RGBA) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	for y := int(math.Round(y0 * ss)); y < int(math.Round(y1*ss)); y++ {
		for x := int(math.Round(x0 * ss)); x < int(math.Round(x1*ss)); x++ {
			c.set(x, y, col)
		}
	}
}

// disc fills a disc of radius r (final pixels) centred at (x, y).
func (c *canvas) disc(x, y, r float64, col color.RGBA) {
	cx, cy, rr := x*ss, y*ss, r*ss
	for py := int(math.Floor(cy - rr)); py <= int(math.Ceil(cy+rr)); py++ {
		for px := int(math.Floor(cx - rr)); px <= int(math.Ceil(cx+rr)); px++ {
			dx, dy := float64(px)+0.5-cx, float64(py)+0.5-cy
			if dx*dx+dy*dy <= rr*rr {
				c.set(px, py, col)
			}
		}
	}
}

func (c *canvas) dot(x, y, r float64, col color.RGBA) { c.disc(x, y, r, col) }

// ring draws a circle outline of radius r.
func (c *canvas) ring(x, y, r float64, col color.RGBA) {
	cx, cy, ro, ri := x*ss, y*ss, r*ss, (r-1.5)*ss
	for py := int(math.Floor(cy - ro)); py <= int(math.Ceil(cy+ro)); py++ {
		for px := int(math.Floor(cx - ro)); px <= int(math.Ceil(cx+ro)); px++ {
			dx, dy := float64(px)+0.5-cx, float64(py)+0.5-cy
			if d := dx*dx + dy*dy; d <= ro*ro && d >= ri*ri {
				c.set(px, py, col)
			}
		}
	}
}

// line draws a segment of the given width (final pixels).
func (c *canvas) line(x0, y0, x1, y1 float64, col color.RGBA, width float64) {
	n := int(math.Ceil(math.Hypot(x1-x0, y1-y0)*ss*2)) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		c.disc(x0+t*(x1-x0), y0+t*(y1-y0), width/2, col)
	}
}

func (c *canvas) dashedLine(x0, y0, x1, y1 float64, col color.RGBA, width float64) {
	l := math.Hypot(x1-x0, y1-y0)
	const dash, gap = 6.0, 5.0
	for s := 0.0; s < l; s += dash + gap {
		e := math.Min(s+dash, l)
		c.line(x0+(x1-x0)*s/l, y0+(y1-y0)*s/l, x0+(x1-x0)*e/l, y0+(y1-y0)*e/l, col, width)
	}
}

type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// textMask renders s with basicfont's 7×13 face into an alpha mask.
func textMask(s string) *image.Alpha {
	face := basicfont.Face7x13
	wd := font.MeasureString(face, s).Ceil()
	m := image.NewAlpha(image.Rect(0, 0, max(wd, 1), face.Height))
	d := font.Drawer{Dst: m, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(s)
	return m
}

// text draws s scaled by scale, vertically centred on y, anchored at x.
func (c *canvas) text(s string, x, y, scale float64, col color.RGBA, a align) {
	m := textMask(s)
	k := scale * ss
	w, h := float64(m.Rect.Dx())*k, float64(m.Rect.Dy())*k
	ox := x * ss
	switch a {
	case alignCenter:
		ox -= w / 2
	case alignRight:
		ox -= w
	}
	oy := y*ss - h/2
	for py := 0; py < int(math.Ceil(h)); py++ {
		for px := 0; px < int(math.Ceil(w)); px++ {
			if m.AlphaAt(int(float64(px)/k), int(float64(py)/k)).A > 127 {
				c.set(int(ox)+px, int(oy)+py, col)
			}
		}
	}
}

// vtext draws s rotated a quarter turn counter-clockwise, centred on (x, y).
func (c *canvas) vtext(s string, x, y, scale float64, col color.RGBA) {
	m := textMask(s)
	k := scale * ss
	w, h := float64(m.Rect.Dx())*k, float64(m.Rect.Dy())*k
	ox, oy := x*ss-h/2, y*ss+w/2 // bottom-left of the rotated text
	for ty := 0; ty < int(math.Ceil(h)); ty++ {
		for tx := 0; tx < int(math.Ceil(w)); tx++ {
			if m.AlphaAt(int(float64(tx)/k), int(float64(ty)/k)).A > 127 {
				c.set(int(ox)+ty, int(oy)-tx, col)
			}
		}
	}
}

// panel maps data coordinates [dx0,dx1]×[dy0,dy1] onto the pixel rectangle
// (x0,y0)–(x1,y1), y up.
type panel struct {
	c                  *canvas
	x0, y0, x1, y1     float64
	dx0, dx1, dy0, dy1 float64
}

func (c *canvas) panel(x0, y0, x1, y1, dx0, dx1, dy0, dy1 float64) *panel {
	return &panel{c: c, x0: x0, y0: y0, x1: x1, y1: y1, dx0: dx0, dx1: dx1, dy0: dy0, dy1: dy1}
}

func (p *panel) px(x float64) float64 { return p.x0 + (x-p.dx0)/(p.dx1-p.dx0)*(p.x1-p.x0) }
func (p *panel) py(y float64) float64 { return p.y1 - (y-p.dy0)/(p.dy1-p.dy0)*(p.y1-p.y0) }

func (p *panel) fill(col color.RGBA) { p.c.rect(p.x0-40, p.y0-18, p.x1+1, p.y1+24, col) }

// grid draws grid lines every step on both axes and labels every label
// step.
func (p *panel) grid(step, label float64, format string) {
	p.gridX(step, label, format)
	p.gridY(step, label, format)
}

// ticks calls f for every step from lo to hi, saying whether v is a
// multiple of label from lo.
func ticks(lo, hi, step, label float64, f func(v float64, labelled bool)) {
	for i := 0; ; i++ {
		v := lo + float64(i)*step
		if v > hi+1e-9 {
			return
		}
		r := math.Round((v-lo)/label) * label
		f(v, math.Abs(r-(v-lo)) < 1e-9)
	}
}

// gridX draws vertical grid lines; format "" leaves them unlabelled.
func (p *panel) gridX(step, label float64, format string) {
	ticks(p.dx0, p.dx1, step, label, func(v float64, labelled bool) {
		x := p.px(v)
		p.c.line(x, p.y0, x, p.y1, grid, 1)
		if labelled && format != "" {
			p.c.text(fmt.Sprintf(format, v), x, p.y1+14, 1.3, black, alignCenter)
		}
	})
}

// gridY draws horizontal grid lines; format "" leaves them unlabelled.
func (p *panel) gridY(step, label float64, format string) {
	ticks(p.dy0, p.dy1, step, label, func(v float64, labelled bool) {
		y := p.py(v)
		p.c.line(p.x0, y, p.x1, y, grid, 1)
		if labelled && format != "" {
			p.c.text(fmt.Sprintf(format, v), p.x0-8, y, 1.3, black, alignRight)
		}
	})
}

func (p *panel) frame() {
	p.c.line(p.x0, p.y0, p.x1, p.y0, black, 1.5)
	p.c.line(p.x0, p.y1, p.x1, p.y1, black, 1.5)
	p.c.line(p.x0, p.y0, p.x0, p.y1, black, 1.5)
	p.c.line(p.x1, p.y0, p.x1, p.y1, black, 1.5)
}

func (p *panel) dashed(x0, y0, x1, y1 float64, col color.RGBA, width float64) {
	p.c.dashedLine(p.px(x0), p.py(y0), p.px(x1), p.py(y1), col, width)
}

// clip returns the segment a–b clipped to the panel's data range (Liang–
// Barsky), and whether any of it is inside.
func (p *panel) clip(a, b ROCPoint) (ROCPoint, ROCPoint, bool) {
	t0, t1 := 0.0, 1.0
	dx, dy := b.FPR-a.FPR, b.TPR-a.TPR
	for _, e := range [][2]float64{{-dx, a.FPR - p.dx0}, {dx, p.dx1 - a.FPR}, {-dy, a.TPR - p.dy0}, {dy, p.dy1 - a.TPR}} {
		q, r := e[0], e[1]
		if q == 0 {
			if r < 0 {
				return a, b, false
			}
			continue
		}
		t := r / q
		if q < 0 {
			t0 = math.Max(t0, t)
		} else {
			t1 = math.Min(t1, t)
		}
		if t0 > t1 {
			return a, b, false
		}
	}
	return ROCPoint{FPR: a.FPR + t0*dx, TPR: a.TPR + t0*dy}, ROCPoint{FPR: a.FPR + t1*dx, TPR: a.TPR + t1*dy}, true
}

// polyline draws the points (FPR as x, TPR as y) joined, clipped to the panel.
func (p *panel) polyline(pts []ROCPoint, col color.RGBA, width float64) {
	for i := 1; i < len(pts); i++ {
		a, b, ok := p.clip(pts[i-1], pts[i])
		if ok {
			p.c.line(p.px(a.FPR), p.py(a.TPR), p.px(b.FPR), p.py(b.TPR), col, width)
		}
	}
}

func (p *panel) inside(x, y float64) bool {
	return x >= p.dx0 && x <= p.dx1 && y >= p.dy0 && y <= p.dy1
}

func (p *panel) ring(x, y, r float64, col color.RGBA) {
	if p.inside(x, y) {
		p.c.ring(p.px(x), p.py(y), r, col)
	}
}

func (p *panel) dot(x, y, r float64, col color.RGBA) {
	if p.inside(x, y) {
		p.c.disc(p.px(x), p.py(y), r, col)
	}
}
