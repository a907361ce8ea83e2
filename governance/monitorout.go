package governance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/radgate/radgate/evaluation"
)

// Monitor asks radgate serve for q's figures (GET /engines/monitor).
func (c Client) Monitor(ctx context.Context, q MonitorQuery) (*Monitor, error) {
	v := url.Values{"facility": {q.Facility}, "engine": {q.Engine}}
	if q.Version != "" {
		v.Set("version", q.Version)
	}
	if q.Days > 0 {
		v.Set("days", strconv.Itoa(q.Days))
	}
	var m Monitor
	if err := c.do(ctx, http.MethodGet, "/engines/monitor?"+v.Encode(), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteMonitor writes the figures for a person.
func WriteMonitor(w io.Writer, m *Monitor) error {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %s version %s at facility %q, %s to %s\n", m.Engine, cmpOr(m.Version, strings.Join(m.Versions, ", ")), m.Facility, m.From, m.To)
	fmt.Fprintf(&b, "  results: %d (%d scored, %d of them outside the intended use in shadow; %d not scored)\n", m.Results, m.Scored, m.OutOfScope, m.NotScored)
	var mix []string
	for _, t := range m.TierMix {
		mix = append(mix, fmt.Sprintf("%s %d (%.0f %%)", t.Tier, t.Count, 100*t.Proportion))
	}
	fmt.Fprintf(&b, "  tier mix: %s\n", strings.Join(mix, ", "))
	if m.Reference != nil && m.PSI != nil {
		fmt.Fprintf(&b, "  PSI %.3f against the reference (%s, n %d): %s\n", m.PSI.PSI, m.Reference.Dataset, m.Reference.N, psiWord(m.PSI.PSI))
	} else if m.Reference == nil {
		fmt.Fprintf(&b, "  PSI not measured: no reference distribution in the engine's manifest\n")
	}
	fmt.Fprintf(&b, "  score histogram (10 bins from 0): %v\n", m.Histogram)
	for _, in := range []struct {
		name string
		c    map[string]int
	}{{"modality", m.Inputs.Modality}, {"manufacturer", m.Inputs.Manufacturer}, {"age band", m.Inputs.AgeBand}} {
		fmt.Fprintf(&b, "  %s: %s\n", in.name, counts(in.c))
	}
	if m.Agreement != nil {
		fmt.Fprintf(&b, "  labelled: %d, agreeing %s (95 %% CI %s–%s), disagreeing %d\n", m.Labelled, f2(m.Agreement.Rate), f2(m.Agreement.Lower), f2(m.Agreement.Upper), m.Disagreeing)
	} else {
		fmt.Fprintf(&b, "  labelled: none\n")
	}
	if m.AUC != nil {
		fmt.Fprintf(&b, "  AUC %s (95 %% CI %s–%s, DeLong)\n", f2(*m.AUC), f2(m.AUCCI[0]), f2(m.AUCCI[1]))
	} else if m.AUCNote != "" {
		fmt.Fprintf(&b, "  AUC not measurable: %s\n", m.AUCNote)
	}
	for _, t := range m.AtTiers {
		fmt.Fprintf(&b, "  at tier %s: sensitivity %s (%d/%d), specificity %s (%d/%d)\n", t.Tier, f2(t.Sensitivity), t.TP, t.TP+t.FN, f2(t.Specificity), t.TN, t.TN+t.FP)
	}
	if m.ECE != nil {
		fmt.Fprintf(&b, "  calibration: ECE %.3f\n", *m.ECE)
	}
	fmt.Fprintf(&b, "  %-10s %8s %8s %11s %7s\n", "day", "results", "labelled", "disagreeing", "PSI")
	for _, d := range m.Daily {
		psi := "-"
		if d.PSI != nil {
			psi = strconv.FormatFloat(*d.PSI, 'f', 3, 64)
		}
		fmt.Fprintf(&b, "  %-10s %8d %8d %11d %7s\n", d.Day, d.Results, d.Labelled, d.Disagreeing, psi)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func psiWord(psi float64) string {
	switch {
	case psi < evaluation.PSISlight:
		return "stable"
	case psi < evaluation.PSIMajor:
		return "slight shift"
	}
	return "major shift"
}

func counts(c map[string]int) string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(out, ", ")
}

// Monitor plot kinds (MonitorPlot).
const (
	PlotHistogram   = "histogram"   // the score histogram against the reference
	PlotAgreement   = "agreement"   // agreement, disagreement and PSI per day
	PlotROC         = "roc"         // the ROC curve on the labelled results
	PlotReliability = "reliability" // the reliability diagram (calibration)
)

// PlotKinds are the kinds of MonitorPlot, in the order WriteMonitorPlots
// writes them.
var PlotKinds = []string{PlotHistogram, PlotAgreement, PlotROC, PlotReliability}

// ErrNoPlotData: the figures hold no data for that plot.
var ErrNoPlotData = errors.New("no data to plot")

// MonitorPlot draws one of the figures' plots as PNG (the drawing radgate
// eval uses); ErrNoPlotData when the figures have none for it.
func MonitorPlot(w io.Writer, m *Monitor, kind string) error {
	name := m.Engine + " at " + m.Facility
	switch kind {
	case PlotHistogram:
		if m.Scored == 0 {
			return ErrNoPlotData
		}
		var ref []float64
		if m.Reference != nil {
			if d := m.Reference.distribution(); d != nil {
				ref = d.Proportions
			}
		}
		return evaluation.PlotHistogram(w, "scores vs reference: "+name, m.Histogram, ref)
	case PlotAgreement:
		var agree, disagree, psi []evaluation.SeriesPoint
		for i, d := range m.Daily {
			if d.Labelled > 0 {
				r := float64(d.Disagreeing) / float64(d.Labelled)
				agree = append(agree, evaluation.SeriesPoint{X: float64(i), Label: d.Day, Y: 1 - r})
				disagree = append(disagree, evaluation.SeriesPoint{X: float64(i), Label: d.Day, Y: r})
			}
			if d.PSI != nil {
				psi = append(psi, evaluation.SeriesPoint{X: float64(i), Label: d.Day, Y: min(*d.PSI, 1)})
			}
		}
		if len(agree) == 0 && len(psi) == 0 {
			return ErrNoPlotData
		}
		return evaluation.PlotSeries(w, "agreement over time: "+name, "rate (PSI capped at 1)",
			[]string{"agreement", "disagreement", "PSI"}, [][]evaluation.SeriesPoint{agree, disagree, psi})
	case PlotROC:
		if len(m.ROC) == 0 || m.AUC == nil {
			return ErrNoPlotData
		}
		var pts []evaluation.ROCPoint
		for _, p := range m.ROC {
			pts = append(pts, evaluation.ROCPoint{FPR: p.FPR, TPR: p.TPR})
		}
		return evaluation.PlotROC(w, "ROC on labelled results: "+name, []evaluation.Curve{{
			Label: fmt.Sprintf("%s  AUC %.4f (%.4f-%.4f)", m.Engine, *m.AUC, m.AUCCI[0], m.AUCCI[1]), Points: pts}})
	case PlotReliability:
		if len(m.Reliability) == 0 {
			return ErrNoPlotData
		}
		return evaluation.PlotReliability(w, "calibration on labelled results: "+name, m.Reliability)
	}
	return fmt.Errorf("unknown plot %q (known: %s)", kind, strings.Join(PlotKinds, ", "))
}

// WriteMonitorPlots writes the figures' plots into dir as PNG (the score
// histogram against the reference, agreement and disagreement over time,
// the ROC curve, the reliability diagram), each that has data, and returns
// their paths.
func WriteMonitorPlots(dir string, m *Monitor) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	var errs []error
	for _, kind := range PlotKinds {
		path := filepath.Join(dir, "monitor-"+kind+".png")
		f, err := os.Create(path)
		if err != nil {
			return paths, err
		}
		err = MonitorPlot(f, m, kind)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		switch {
		case errors.Is(err, ErrNoPlotData):
			os.Remove(path)
		case err != nil:
			os.Remove(path)
			errs = append(errs, fmt.Errorf("plotting %s: %w", filepath.Base(path), err))
		default:
			paths = append(paths, path)
		}
	}
	return paths, errors.Join(errs...)
}
