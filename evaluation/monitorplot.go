package evaluation

import (
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotHistogram writes a PNG (PlotSize² pixels) of live scores against a
// reference: the live proportions per bin as bars, the reference's as a
// red step line, on equal-width bins over [0, 1] (live and reference have
// the same number of bins).
func PlotHistogram(w io.Writer, title string, live []int, reference []float64) error {
	n := 0
	for _, c := range live {
		n += c
	}
	if n == 0 || len(live) == 0 {
		return errNoData
	}
	width := 1 / float64(len(live))
	p := newPlot(title, "probability", "share of scores", 0.1)
	var bars []plotter.HistogramBin
	top := 0.0
	for i, c := range live {
		share := float64(c) / float64(n)
		bars = append(bars, plotter.HistogramBin{Min: float64(i) * width, Max: float64(i+1) * width, Weight: share})
		top = math.Max(top, share)
	}
	h := &plotter.Histogram{Bins: bars, FillColor: barFill, LineStyle: draw.LineStyle{Color: barLine, Width: px(1.5)}}
	p.Add(h)
	p.Legend.Add("live scores", h)
	if len(reference) == len(live) {
		var pts plotter.XYs
		for i, r := range reference {
			pts = append(pts, plotter.XY{X: float64(i) * width, Y: r}, plotter.XY{X: float64(i+1) * width, Y: r})
			top = math.Max(top, r)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = redDot, px(2.5)
		p.Add(l)
		p.Legend.Add("reference", l)
	}
	p.Legend.Top = true
	fixRange(p, 0, 1, 0, math.Min(1, math.Ceil(top*11)/10))
	return writePNG(w, p)
}

// SeriesPoint is one day of a series plot.
type SeriesPoint struct {
	// X is the day's index (0 the first), Label its name.
	X     float64
	Label string
	Y     float64
}

// PlotSeries writes a PNG (PlotSize² pixels) of daily rates in [0, 1]:
// one line with dots per series (named by names), the days named on the x
// axis.
func PlotSeries(w io.Writer, title, yLabel string, names []string, series [][]SeriesPoint) error {
	if len(series) == 0 {
		return errNoData
	}
	p := newPlot(title, "day", yLabel, 0.1)
	var ticks []plot.Tick
	seen := map[float64]bool{}
	xMax := 0.0
	for i, s := range series {
		var pts plotter.XYs
		for _, pt := range s {
			pts = append(pts, plotter.XY{X: pt.X, Y: pt.Y})
			if !seen[pt.X] {
				seen[pt.X] = true
				ticks = append(ticks, plot.Tick{Value: pt.X, Label: pt.Label})
			}
			xMax = math.Max(xMax, pt.X)
		}
		if len(pts) == 0 {
			continue
		}
		l, d, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		col := palette[i%len(palette)]
		l.Color, l.Width = col, px(2)
		d.GlyphStyle = draw.GlyphStyle{Color: col, Radius: px(4), Shape: draw.CircleGlyph{}}
		p.Add(l, d)
		if i < len(names) {
			p.Legend.Add(names[i], l, d)
		}
	}
	if len(ticks) == 0 {
		return errNoData
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	p.Legend.Top = true
	fixRange(p, -0.5, xMax+0.5, 0, 1)
	return writePNG(w, p)
}

func writePNG(w io.Writer, p *plot.Plot) error {
	c := vgimg.NewWith(vgimg.UseWH(px(PlotSize), px(PlotSize)), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}
