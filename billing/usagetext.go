package billing

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// UsageFormat is how WriteUsage writes a month's rows.
type UsageFormat int

const (
	// UsageTable is a table for a person, closed by the month's total.
	UsageTable UsageFormat = iota
	// UsageCSV is CSV with the header month,facility,engine,analyses.
	UsageCSV
	// UsageJSON is one object per facility × engine per line (keys month,
	// facility, engine, analyses).
	UsageJSON
)

// WriteUsage writes a month's usage rows (as Month returns them) in format.
func WriteUsage(w io.Writer, month string, rows []UsageRow, format UsageFormat) error {
	switch format {
	case UsageCSV:
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"month", "facility", "engine", "analyses"})
		for _, r := range rows {
			_ = cw.Write([]string{month, r.Facility, r.Engine, strconv.FormatUint(r.Analyses, 10)})
		}
		cw.Flush()
		return cw.Error()
	case UsageJSON:
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(struct {
				Month string `json:"month"`
				UsageRow
			}{month, r}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MONTH\tFACILITY\tENGINE\tANALYSES\n")
	var total uint64
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", month, r.Facility, r.Engine, r.Analyses)
		total += r.Analyses
	}
	fmt.Fprintf(tw, "%s\tall\tall\t%d\n", month, total)
	return tw.Flush()
}

// OfFacility keeps the rows of one facility (all when facility is ""):
// `radgate usage --facility` and the console's usage filter.
func OfFacility(rows []UsageRow, facility string) []UsageRow {
	if facility == "" {
		return rows
	}
	var out []UsageRow
	for _, r := range rows {
		if r.Facility == facility {
			out = append(out, r)
		}
	}
	return out
}
