package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
	"github.com/radgate/radgate/governance"
)

// EngineInfo is what the engines page shows of one engine's manifest
// (model.yaml) and model card (MODEL_CARD.md).
type EngineInfo struct {
	ID, Name, Version            string
	Modalities, BodyParts, Views []string
	// Accepts are the intended-use rules in words ("age 1–5 y", "at
	// least 28 × 28 pixels").
	Accepts []string
	// Finding is the coded finding ("Pneumonia (http://snomed.info/sct
	// 233604007)").
	Finding                 string
	TierMid, TierHigh, Mark float64
	IntendedUse             string
	// Metrics are the manifest's measured figures in words, one a line.
	Metrics []string
	// Card is the model card's Markdown ("" without one).
	Card string
}

// Governor is engine governance as the console uses it
// (governance.Governance): the same States, Change and Monitor behind
// `radgate engines state|activate|suspend|shadow` and GET /engines/monitor.
type Governor interface {
	States(ctx context.Context, facility, route string) ([]governance.State, error)
	Change(ctx context.Context, req governance.ChangeRequest) (governance.ChangeResult, error)
	Monitor(ctx context.Context, q governance.MonitorQuery) (*governance.Monitor, error)
}

// CardSection is a titled part of a model card summary.
type CardSection struct {
	Title string
	Lines []string
}

// cardSections are the model card sections the summary keeps (by a word
// of their heading), each cut to its first cardLines lines.
var cardSections = []string{"population", "intended use", "limits"}

const cardLines = 8

// CardSummary is a model card's summary: the paragraphs before its first
// section (the title left out) and its Population, Intended use and
// Limits sections, each cut to its first lines; Markdown emphasis is
// dropped.
func CardSummary(md string) []CardSection {
	var out []CardSection
	cur := &CardSection{}
	keep := true
	flush := func() {
		if keep && len(cur.Lines) > 0 {
			out = append(out, *cur)
		}
	}
	for _, l := range strings.Split(md, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "# "):
			continue
		case strings.HasPrefix(t, "## "):
			flush()
			title := strings.TrimSpace(strings.TrimPrefix(t, "## "))
			cur = &CardSection{Title: title}
			keep = slices.ContainsFunc(cardSections, func(s string) bool { return strings.Contains(strings.ToLower(title), s) })
			continue
		case t == "" || strings.HasPrefix(t, "|") || strings.HasPrefix(t, "```"):
			continue
		}
		if keep && len(cur.Lines) < cardLines {
			cur.Lines = append(cur.Lines, strings.NewReplacer("**", "", "`", "").Replace(t))
		}
	}
	flush()
	return out
}

// engineView is one engine on the engines page.
type engineView struct {
	EngineInfo
	Summary []CardSection
	States  []governance.State
	Live    []liveView
}

// liveView is an engine's live figures at one facility.
type liveView struct {
	Facility string
	M        *governance.Monitor
	Err      string
	Drift    template.HTML
	Plots    []plotView
}

type plotView struct {
	Kind, Alt, URL string
}

// monitorDays is the live figures' window.
const monitorDays = 14

func plotURL(facility, engine, kind string) string {
	v := url.Values{"facility": {facility}, "engine": {engine}, "kind": {kind}}
	return "/console/engines/plot?" + v.Encode()
}

func (c *Console) enginesPage(w http.ResponseWriter, r *http.Request) {
	var infos []EngineInfo
	if c.o.Engines != nil {
		infos = c.o.Engines()
	}
	var states []governance.State
	var stateErr error
	if c.o.Governance != nil {
		states, stateErr = c.o.Governance.States(r.Context(), "", "")
		if stateErr != nil {
			c.log.Warn("console engine states not read", "error", stateErr)
		}
	}
	extra := strings.TrimSpace(r.URL.Query().Get("facility"))
	var views []engineView
	for _, e := range infos {
		v := engineView{EngineInfo: e, Summary: CardSummary(e.Card)}
		var facilities []string
		for _, s := range states {
			if s.Engine == e.ID {
				v.States = append(v.States, s)
				if !slices.Contains(facilities, s.Facility) {
					facilities = append(facilities, s.Facility)
				}
			}
		}
		if extra != "" && !slices.Contains(facilities, extra) {
			facilities = append(facilities, extra)
		}
		if c.o.Governance != nil {
			for _, f := range facilities {
				v.Live = append(v.Live, c.live(r.Context(), f, e.ID))
			}
		}
		views = append(views, v)
	}
	c.render(w, r, http.StatusOK, "engines", map[string]any{"Engines": views, "StateErr": stateErr,
		"Operator": userFrom(r).Has(httpauth.RoleOperator), "Facility": extra, "Days": monitorDays,
		"Modes": []radgate.EngineMode{radgate.EngineActive, radgate.EngineShadow, radgate.EngineSuspended}})
}

// live reads one facility × engine's live figures.
func (c *Console) live(ctx context.Context, facility, engine string) liveView {
	lv := liveView{Facility: facility}
	m, err := c.o.Governance.Monitor(ctx, governance.MonitorQuery{Facility: facility, Engine: engine, Days: monitorDays})
	if err != nil {
		lv.Err = err.Error()
		return lv
	}
	lv.M, lv.Drift = m, driftChart(m.Daily)
	if len(m.ROC) > 0 && m.AUC != nil {
		lv.Plots = append(lv.Plots, plotView{Kind: governance.PlotROC, URL: plotURL(facility, engine, governance.PlotROC),
			Alt: fmt.Sprintf("ROC curve of %s at %s on its labelled results, AUC %.3f", engine, facility, *m.AUC)})
	}
	if len(m.Reliability) > 0 {
		lv.Plots = append(lv.Plots, plotView{Kind: governance.PlotReliability, URL: plotURL(facility, engine, governance.PlotReliability),
			Alt: fmt.Sprintf("Reliability diagram of %s at %s", engine, facility)})
	}
	if m.Scored > 0 {
		lv.Plots = append(lv.Plots, plotView{Kind: governance.PlotHistogram, URL: plotURL(facility, engine, governance.PlotHistogram),
			Alt: fmt.Sprintf("Scores of %s at %s against its reference distribution", engine, facility)})
	}
	return lv
}

// enginePlot serves one of the live figures' plots as PNG, drawn by the
// code radgate eval and radgate engines monitor --plots use.
func (c *Console) enginePlot(w http.ResponseWriter, r *http.Request) {
	if c.o.Governance == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	m, err := c.o.Governance.Monitor(r.Context(), governance.MonitorQuery{Facility: q.Get("facility"), Engine: q.Get("engine"), Days: monitorDays})
	if err != nil {
		http.Error(w, "the figures could not be read: "+err.Error(), http.StatusBadRequest)
		return
	}
	var b bytes.Buffer
	err = governance.MonitorPlot(&b, m, q.Get("kind"))
	if errors.Is(err, governance.ErrNoPlotData) {
		http.Error(w, "no data for this plot yet", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b.Bytes())
}

// changeRequest reads a state change from a form or query.
func changeRequest(v url.Values) governance.ChangeRequest {
	return governance.ChangeRequest{Facility: strings.TrimSpace(v.Get("facility")), Route: strings.TrimSpace(v.Get("route")),
		Engine: strings.TrimSpace(v.Get("engine")), Mode: radgate.EngineMode(strings.ToLower(strings.TrimSpace(v.Get("mode")))),
		Why: strings.TrimSpace(v.Get("why"))}
}

// operatorOnly answers 403 unless the user has the operator role.
func (c *Console) operatorOnly(w http.ResponseWriter, r *http.Request) bool {
	u := userFrom(r)
	if u.Has(httpauth.RoleOperator) {
		return true
	}
	c.log.Info("console action refused: not an operator", "path", r.URL.Path, "subject", u.Name)
	c.message(w, r, http.StatusForbidden, "Forbidden", "Changing an engine's state needs the operator role; you have: "+u.RoleList()+".")
	return false
}

// engineChangeForm is the confirmation page of a state change.
func (c *Console) engineChangeForm(w http.ResponseWriter, r *http.Request) {
	if !c.operatorOnly(w, r) {
		return
	}
	c.render(w, r, http.StatusOK, "engine_change", map[string]any{"Req": changeRequest(r.URL.Query())})
}

// engineChange changes an engine's state through governance.Change, as
// POST /engines/state does: activation measures the facility's labels and
// is refused, each figure against its minimum, unless they meet the
// route's minimums.
func (c *Console) engineChange(w http.ResponseWriter, r *http.Request) {
	if !c.operatorOnly(w, r) {
		return
	}
	if c.o.Governance == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Engines", "This radgate has no engine governance.")
		return
	}
	req := changeRequest(r.PostForm)
	if req.Why == "" {
		c.render(w, r, http.StatusBadRequest, "engine_change", map[string]any{"Req": req, "Error": "Give a reason: it goes into the audit record."})
		return
	}
	u := userFrom(r)
	req.By = u.Name
	res, err := c.o.Governance.Change(r.Context(), req)
	code := http.StatusOK
	switch {
	case err == nil:
		c.log.Info("console engine state change", "subject", u.Name, "facility", req.Facility, "route", req.Route,
			"engine", req.Engine, "mode", req.Mode, "unchanged", res.Unchanged, "audit", res.Audit)
	case errors.Is(err, governance.ErrNotAccepted):
		code = http.StatusConflict
	case errors.Is(err, governance.ErrUnknown):
		code = http.StatusNotFound
	case errors.Is(err, governance.ErrBadRequest):
		code = http.StatusBadRequest
	default:
		c.log.Warn("console engine state change failed", "subject", u.Name, "error", err)
		code = http.StatusServiceUnavailable
	}
	data := map[string]any{"Req": req, "Res": res, "Code": code}
	if err != nil {
		data["Err"] = err.Error()
	}
	c.render(w, r, code, "engine_changed", data)
}

// driftChart draws a facility's daily series as a small inline SVG line
// chart: agreement and disagreement rates (days with labels) and PSI
// (capped at 1) on a 0–1 scale, one point per day.
func driftChart(days []governance.MonitorDay) template.HTML {
	const w, h, left, right, top, bottom = 520.0, 170.0, 40.0, 12.0, 12.0, 34.0
	n := len(days)
	if n == 0 {
		return ""
	}
	x := func(i int) float64 {
		if n == 1 {
			return left + (w-left-right)/2
		}
		return left + float64(i)*(w-left-right)/float64(n-1)
	}
	y := func(v float64) float64 { return top + (1-min(max(v, 0), 1))*(h-top-bottom) }
	type series struct {
		name, class string
		val         func(governance.MonitorDay) (float64, bool)
	}
	all := []series{
		{"agreement", "agree", func(d governance.MonitorDay) (float64, bool) {
			return 1 - float64(d.Disagreeing)/float64(max(d.Labelled, 1)), d.Labelled > 0
		}},
		{"disagreement", "disagree", func(d governance.MonitorDay) (float64, bool) {
			return float64(d.Disagreeing) / float64(max(d.Labelled, 1)), d.Labelled > 0
		}},
		{"PSI", "psi", func(d governance.MonitorDay) (float64, bool) {
			if d.PSI == nil {
				return 0, false
			}
			return *d.PSI, true
		}},
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img">`, w, h, w, h)
	fmt.Fprintf(&b, `<title>Agreement, disagreement and PSI per day, %s to %s</title>`,
		template.HTMLEscapeString(days[0].Day), template.HTMLEscapeString(days[n-1].Day))
	for _, v := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			left, w-right, y(v), y(v), left-6, y(v)+4, strconv.FormatFloat(v, 'f', -1, 64))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f">%s</text>`, left, h-bottom+16, template.HTMLEscapeString(days[0].Day))
	fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, w-right, h-bottom+16, template.HTMLEscapeString(days[n-1].Day))
	lx := left
	for _, s := range all {
		var pts []string
		for i, d := range days {
			if v, ok := s.val(d); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %.2f</title></circle>`,
					s.class, x(i), y(v), template.HTMLEscapeString(d.Day), s.name, v)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline class="%s" fill="none" points="%s"/>`, s.class, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="10" height="3"/><text class="axis" x="%.1f" y="%.1f">%s</text>`,
			s.class, lx, h-8, lx+14, h-4, s.name)
		lx += 110
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped day names
}

// Pct writes a rate in [0, 1] as a whole percentage ("87").
func (liveView) Pct(x float64) string { return strconv.FormatFloat(x*100, 'f', 0, 64) }

// F3 writes a figure with three decimals, "—" when there is none.
func (liveView) F3(p *float64) string {
	if p == nil {
		return "—"
	}
	return strconv.FormatFloat(*p, 'f', 3, 64)
}
