package evaluation

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotSize is the width and height of both plots in pixels.
const PlotSize = 720

// dpi is the resolution the plots are drawn at: a pixel is 72/dpi points.
const dpi = 96

// px is n pixels as a length.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / dpi }

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
// a 0.1 grid, each curve with its marks (rings at the operating points), a
// legend naming each curve with its AUC and confidence interval, and — when
// every curve's area is at least 0.9 — an inset magnifying the top-left
// corner (false positive rate 0–0.2, true positive rate 0.8–1).
func PlotROC(w io.Writer, title string, curves []Curve) error {
	if len(curves) == 0 {
		return errNoData
	}
	p := newPlot(title, "1 - specificity (false positive rate)", "sensitivity (true positive rate)", 0.1)
	p.Add(diagonal())
	inset := true
	for i, cv := range curves {
		line, rings, err := curvePlotters(cv, palette[i%len(palette)])
		if err != nil {
			return err
		}
		p.Add(line, rings)
		p.Legend.Add(cv.Label, line)
		if trapezoid(cv.Points) < 0.9 {
			inset = false
		}
	}
	if len(curves[0].Marks) > 0 {
		key, err := plotter.NewScatter(plotter.XYs{{X: -1, Y: -1}})
		if err != nil {
			return err
		}
		key.GlyphStyle = ring(black)
		p.Legend.Add("operating points (cut-offs "+markNames(curves[0].Marks)+")", key)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -px(12), px(12)
	fixRange(p, 0, 1, 0, 1)

	c := vgimg.NewWith(vgimg.UseWH(px(PlotSize), px(PlotSize)), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	p.Draw(dc)
	if inset {
		q := newPlot("top-left corner, magnified", "", "", 0.05)
		q.Title.TextStyle.Font.Size = vg.Points(9)
		for i, cv := range curves {
			line, rings, err := curvePlotters(cv, palette[i%len(palette)])
			if err != nil {
				return err
			}
			q.Add(line, rings)
		}
		fixRange(q, 0, 0.2, 0.8, 1)
		da := p.DataCanvas(dc)
		x0, x1 := da.X(0.40), da.X(0.97)
		y0, y1 := da.Y(0.33), da.Y(0.80)
		q.Draw(draw.Crop(da, x0-da.Min.X, x1-da.Max.X, y0-da.Min.Y, y1-da.Max.Y))
	}
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

// newPlot is a plot with the title, axis labels and a grid every step
// (labelled every 2 steps). Its ranges are set by fixRange, after the
// plotters are added (Add widens them to the data).
func newPlot(title, xLabel, yLabel string, step float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.X.Tick.Marker, p.Y.Tick.Marker = steps(step), steps(step)
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = grid, grid
	p.Add(g)
	return p
}

// fixRange sets the plot's axes to [x0, x1] × [y0, y1]; what is outside is
// clipped.
func fixRange(p *plot.Plot, x0, x1, y0, y1 float64) {
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = x0, x1, y0, y1
}

// steps ticks every step, labelling every other one.
type steps float64

func (s steps) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for i := 0; ; i++ {
		v := lo + float64(i)*float64(s)
		if v > hi+1e-9 {
			return ts
		}
		t := plot.Tick{Value: v}
		if i%2 == 0 {
			t.Label = strconv.FormatFloat(v, 'f', 1, 64)
		}
		ts = append(ts, t)
	}
}

// diagonal is the dashed line y = x from (0, 0) to (1, 1).
func diagonal() *plotter.Line {
	l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	l.Color, l.Width, l.Dashes = gridDark, px(1.5), []vg.Length{px(6), px(5)}
	return l
}

func ring(col color.Color) draw.GlyphStyle {
	return draw.GlyphStyle{Color: col, Radius: px(5), Shape: draw.RingGlyph{}}
}

// curvePlotters are a ROC curve's line and the rings at its marks.
func curvePlotters(cv Curve, col color.Color) (*plotter.Line, *plotter.Scatter, error) {
	pts := make(plotter.XYs, len(cv.Points))
	for i, q := range cv.Points {
		pts[i] = plotter.XY{X: q.FPR, Y: q.TPR}
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, nil, err
	}
	line.Color, line.Width = col, px(2.5)
	marks := make(plotter.XYs, len(cv.Marks))
	for i, m := range cv.Marks {
		marks[i] = plotter.XY{X: m.FPR, Y: m.TPR}
	}
	rings, err := plotter.NewScatter(marks)
	if err != nil {
		return nil, nil, err
	}
	rings.GlyphStyle = ring(col)
	return line, rings, nil
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
// calibration, and below it a strip with the number of cases per bin on the
// same probability axis.
func PlotReliability(w io.Writer, title string, bins []Bin) error {
	if len(bins) == 0 {
		return errNoData
	}
	width := strconv.FormatFloat(bins[0].High-bins[0].Low, 'f', -1, 64)
	p := newPlot(title, "", "observed fraction positive", 0.1)
	var observed, counts []plotter.HistogramBin
	var means plotter.XYs
	var labels plotter.XYLabels
	maxN := 0
	for _, b := range bins {
		if b.N == 0 {
			continue
		}
		observed = append(observed, plotter.HistogramBin{Min: b.Low, Max: b.High, Weight: b.ObservedRate})
		counts = append(counts, plotter.HistogramBin{Min: b.Low, Max: b.High, Weight: float64(b.N)})
		means = append(means, plotter.XY{X: b.MeanProbability, Y: b.ObservedRate})
		labels.XYs = append(labels.XYs, plotter.XY{X: (b.Low + b.High) / 2, Y: float64(b.N)})
		labels.Labels = append(labels.Labels, strconv.Itoa(b.N))
		maxN = max(maxN, b.N)
	}
	bars := &plotter.Histogram{Bins: observed, FillColor: barFill, LineStyle: draw.LineStyle{Color: barLine, Width: px(1.5)}}
	line, dots, err := plotter.NewLinePoints(means)
	if err != nil {
		return err
	}
	line.Color, line.Width = redDot, px(2)
	dots.GlyphStyle = draw.GlyphStyle{Color: redDot, Radius: px(5), Shape: draw.CircleGlyph{}}
	diag := diagonal()
	p.Add(bars, diag, line, dots)
	p.Legend.Add("observed fraction positive", bars)
	p.Legend.Add("bin's mean prediction", line, dots)
	p.Legend.Add("perfect calibration", diag)
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = px(10), -px(10)
	fixRange(p, 0, 1, 0, 1)

	h := newPlot("", "predicted probability (bins of width "+width+")", "cases", 0.1)
	h.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: float64(maxN), Label: strconv.Itoa(maxN)}})
	h.Add(&plotter.Histogram{Bins: counts, FillColor: gridDark, LineStyle: draw.LineStyle{Color: gridDark, Width: px(1)}})
	if len(labels.XYs) > 0 {
		nl, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range nl.TextStyle {
			nl.TextStyle[i].XAlign, nl.TextStyle[i].YAlign = -0.5, 0
			nl.TextStyle[i].Font.Size = vg.Points(8)
		}
		nl.Offset = vg.Point{Y: px(3)}
		h.Add(nl)
	}
	fixRange(h, 0, 1, 0, float64(max(maxN, 1))*1.35)

	c := vgimg.NewWith(vgimg.UseWH(px(PlotSize), px(PlotSize)), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	split := dc.Min.Y + px(190)
	top := draw.Crop(dc, 0, 0, split-dc.Min.Y, 0)
	bottom := draw.Crop(dc, 0, 0, 0, split-dc.Max.Y)
	// The strip's data area starts where the diagram's does: one x axis.
	if shift := p.DataCanvas(top).Min.X - h.DataCanvas(bottom).Min.X; shift > 0 {
		bottom = draw.Crop(bottom, shift, 0, 0, 0)
	}
	p.Draw(top)
	h.Draw(bottom)
	_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}
