package console

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate"
)

func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}

// Age renders how long ago t was, coarsely: "40 s", "3 min", "5 h", "2 d".
func Age(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
}

// tierClass is the CSS class of a tier (Low, Mid, High).
func tierClass(t string) string {
	switch strings.ToLower(t) {
	case "low", "mid", "high":
		return "tier-" + strings.ToLower(t)
	}
	return "tier-none"
}

func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"age":       func(t time.Time) string { return Age(now(), t) },
		"tierClass": tierClass,
		"engines":   func(m map[string]radgate.EngineProgress) []string { return sortedKeys(m) },
		"percent": func(p *float64) string {
			if p == nil {
				return "—"
			}
			return fmt.Sprintf("%.1f %%", *p*100)
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format(time.DateOnly)
		},
		"or": func(a, b string) string { return cmp.Or(a, b) },
	}
}
