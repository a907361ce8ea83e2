package console

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"

	"github.com/radgate/radgate/billing"
)

// Usage reads a month's analyses per facility × engine (billing.UsageMeter).
type Usage interface {
	Month(ctx context.Context, month string) ([]billing.UsageRow, error)
}

var monthRE = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)

// usageRows reads the month and facility filters (the month defaults to
// the current one, UTC) and the rows they select, as `radgate usage
// --month M --facility F` selects them.
func (c *Console) usageRows(w http.ResponseWriter, r *http.Request) (month, facility string, rows []billing.UsageRow, ok bool) {
	if c.o.Usage == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Usage", "This radgate has no usage meter.")
		return "", "", nil, false
	}
	month = strings.TrimSpace(r.URL.Query().Get("month"))
	if month == "" {
		month = c.o.Now().UTC().Format("2006-01")
	}
	if !monthRE.MatchString(month) {
		c.message(w, r, http.StatusBadRequest, "Usage", "The month "+month+" is not YYYY-MM.")
		return "", "", nil, false
	}
	facility = strings.TrimSpace(r.URL.Query().Get("facility"))
	rows, err := c.o.Usage.Month(r.Context(), month)
	if err != nil {
		c.log.Error("console usage read failed", "month", month, "error", err)
		c.message(w, r, http.StatusInternalServerError, "Usage", "The usage could not be read: "+err.Error())
		return "", "", nil, false
	}
	return month, facility, billing.OfFacility(rows, facility), true
}

func (c *Console) usagePage(w http.ResponseWriter, r *http.Request) {
	month, facility, rows, ok := c.usageRows(w, r)
	if !ok {
		return
	}
	var total uint64
	for _, row := range rows {
		total += row.Analyses
	}
	c.render(w, r, http.StatusOK, "usage", map[string]any{"Month": month, "Facility": facility, "Rows": rows, "Total": total})
}

// usageCSV answers the same bytes as `radgate usage --csv` for the same
// month and facility (billing.WriteUsage).
func (c *Console) usageCSV(w http.ResponseWriter, r *http.Request) {
	month, _, rows, ok := c.usageRows(w, r)
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := billing.WriteUsage(&b, month, rows, billing.UsageCSV); err != nil {
		c.message(w, r, http.StatusInternalServerError, "Usage", "The CSV could not be written: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="radgate-usage-`+month+`.csv"`)
	_, _ = w.Write(b.Bytes())
}
