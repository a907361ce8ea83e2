package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/routing"
)

// RouteStatus is the running route file and the last reload's result.
type RouteStatus struct {
	// File is the route file's path ("" for the built-in route); Source
	// the bytes the running set was loaded from (nil for the built-in).
	File   string
	Source []byte
	// Digest is the running set's sha256 (routing.Set.Digest); LoadedAt
	// when it was loaded.
	Digest   string
	LoadedAt time.Time
	// Last is the last reload's result; nil when none was tried since
	// start.
	Last *ReloadResult
}

// ReloadResult is what one reload of the route file did.
type ReloadResult struct {
	At      time.Time
	Trigger string // "SIGHUP", "file changed"
	Result  string // "success", "unchanged", "failure"
	Error   string
	// Findings are the route file's lint findings when it did not load
	// (each at file:line:col).
	Findings config.Errors
}

// Routes is the route set in force and its reload status (radgate serve's
// route reloader).
type Routes interface {
	RouteSet() *routing.Set
	RouteStatus() RouteStatus
}

// sourceLine is one numbered line of the route file.
type sourceLine struct {
	N    int
	Text string
}

func numbered(src []byte) []sourceLine {
	if len(src) == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
	out := make([]sourceLine, len(lines))
	for i, l := range lines {
		out[i] = sourceLine{N: i + 1, Text: l}
	}
	return out
}

// splitList reads a form field of comma- or space-separated values.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// routeFacts reads the which-route form: the facts `radgate test`'s cases
// give (modality, body_part, sop_class, procedure_code as system|code or
// a bare code, facility, priority).
func routeFacts(v url.Values) routing.Facts {
	f := routing.Facts{Modalities: splitList(v.Get("modality")), BodyParts: splitList(v.Get("body_part")),
		SOPClasses: splitList(v.Get("sop_class")), Facilities: splitList(v.Get("facility")),
		Priority: strings.ToLower(strings.TrimSpace(v.Get("priority")))}
	for _, c := range splitList(v.Get("procedure_code")) {
		sys, code, ok := strings.Cut(c, "|")
		if !ok {
			sys, code = "", c
		}
		f.ProcedureCodes = append(f.ProcedureCodes, routing.Code{System: strings.TrimSpace(sys), Code: strings.TrimSpace(code)})
	}
	return f
}

// routesPage shows the running route file, its reload status and the
// which-route form; with decide=1 the form's facts are decided by the
// running set (routing.Set.Decide, as `radgate test` decides a case).
func (c *Console) routesPage(w http.ResponseWriter, r *http.Request) {
	if c.o.Routes == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Routes", "This radgate has no route set.")
		return
	}
	set, st := c.o.Routes.RouteSet(), c.o.Routes.RouteStatus()
	v := r.URL.Query()
	data := map[string]any{"S": st, "Lines": numbered(st.Source), "Form": v, "Routes": set.Routes(),
		"MatchAll": set.MatchAll(), "Priorities": []string{"routine", "urgent", "asap", "stat"}}
	if v.Get("decide") != "" {
		f := routeFacts(v)
		d := set.Decide(f)
		data["Facts"], data["Decision"] = f, d
	}
	c.render(w, r, http.StatusOK, "routes", data)
}
