package service

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/report"
)

// pdfReport renders a result's one-page PDF report, with the picture the
// inference stage drew (Result.Preview). A result that is not marked and
// has none (scored before thumbnails were drawn) shows the radiograph
// fetched from the PACS as stored. The
// same result goes to several destinations at about the same time: the last
// few reports are kept, keyed by everything the page shows, so each is
// rendered once.
func pdfReport(pacs radgate.StudySource) func(context.Context, radgate.Result) ([]byte, error) {
	var (
		mu     sync.Mutex
		recent = map[[32]byte][]byte{}
		order  [][32]byte
	)
	const keep = 32
	return func(ctx context.Context, r radgate.Result) ([]byte, error) {
		// What the page shows (report.PDF): the order's progress is not on
		// it, and changes between one destination's delivery and the next.
		k := r
		k.Order, k.Destination, k.Destinations, k.Read = radgate.OrderStatus{}, "", nil, nil
		j, err := json.Marshal(struct {
			R                              radgate.Result
			Accession                      *radgate.Identifier
			ServiceRequest, ImagingStudy   *radgate.Reference
			OrderID, OrderStudyInstanceUID string
		}{k, r.Order.Accession, r.Order.ServiceRequest, r.Order.ImagingStudy, r.Order.ID, r.Order.StudyInstanceUID})
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		h.Write(j)
		h.Write(r.HeatmapPNG)
		h.Write(r.Preview)
		var key [32]byte
		copy(key[:], h.Sum(nil))
		mu.Lock()
		pdf, ok := recent[key]
		mu.Unlock()
		if ok {
			return pdf, nil
		}

		in := report.Input{Result: r}
		if !r.Marked && len(r.Preview) == 0 && pacs != nil && r.SOPInstanceUID != "" {
			// A result scored before thumbnails were drawn at scoring.
			src, err := pacs.RetrieveInstance(ctx, r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
			if err != nil {
				return nil, fmt.Errorf("the report's radiograph: %w", err)
			}
			if in.Thumbnail, err = derived.Thumbnail(src, 768); err != nil {
				return nil, fmt.Errorf("the report's radiograph: %w", err)
			}
		}
		if pdf, err = report.PDF(in); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if _, dup := recent[key]; !dup {
			recent[key] = pdf
			order = append(order, key)
			if len(order) > keep {
				delete(recent, order[0])
				order = order[1:]
			}
		}
		return pdf, nil
	}
}
