package scoring

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/radgate/radgate/inference"
)

// Printer writes Lines as JSON lines or as text for a person, and counts
// them.
type Printer struct {
	W    io.Writer
	JSON bool
	// Total, Failed and Marked count the lines printed.
	Total, Failed, Marked int
}

// Print writes one line.
func (p *Printer) Print(l Line) error {
	p.Total++
	if l.Error != nil {
		p.Failed++
	} else if l.Marked != nil && *l.Marked {
		p.Marked++
	}
	if p.JSON {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.W, "%s\n", b)
		return err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n", l.File)
	uid := "(unknown SOP Instance UID)"
	if l.SOPInstanceUID != nil {
		uid = *l.SOPInstanceUID
	}
	if l.Error != nil {
		fmt.Fprintf(&s, "    FAILED  %s\n    error:   %s\n", uid, *l.Error)
	} else {
		mark := "not marked"
		if *l.Marked {
			mark = "marked"
		}
		fmt.Fprintf(&s, "    %-4s %5.1f%%  p=%.6f  %s  %s\n", *l.Tier, *l.ConfidencePercent, *l.Probability, mark, uid)
		if l.Heatmap != nil {
			fmt.Fprintf(&s, "    heatmap: %s\n", *l.Heatmap)
		}
	}
	if l.Warning != nil {
		fmt.Fprintf(&s, "    warning: %s\n", *l.Warning)
	}
	_, err := io.WriteString(p.W, s.String())
	return err
}

// Summary closes text output with the counts and the engine's disclaimer;
// JSON output has none.
func (p *Printer) Summary(m *inference.Manifest) error {
	if p.JSON {
		return nil
	}
	_, err := fmt.Fprintf(p.W, "\n%d file(s) with %s %s: %d scored (%d marked), %d failed.\n%s\n",
		p.Total, m.ID, m.Version, p.Total-p.Failed, p.Marked, p.Failed, m.Disclaimer)
	return err
}
