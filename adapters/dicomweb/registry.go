package dicomweb

import (
	"context"
	"errors"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
)

func init() { radgate.RegisterDestination(DestinationType()) }

// DestinationType is the "dicomweb" destination: derived objects stored
// into the original study over STOW-RS (Secondary Capture, Comprehensive 3D
// SR, the CAM as a Parametric Map when parametric_map is set, and the PDF
// report as Encapsulated PDF when pdf_report is set).
func DestinationType() radgate.DestinationType {
	return radgate.DestinationType{
		Name:    "dicomweb",
		Summary: "PACS over DICOMweb (STOW-RS): Secondary Capture, SR, Encapsulated PDF into the study",
		Keys:    []string{"url", "sc", "sr", "sc_when_unmarked", "parametric_map"},
		HTTP:    true,
		Check: func(d config.Destination) []radgate.KeyError {
			var errs []radgate.KeyError
			if d.URL == "" {
				errs = append(errs, radgate.KeyError{Message: "url must be set for a dicomweb destination (the DICOMweb root)"})
			} else if err := config.CheckHTTPURL(d.URL); err != nil {
				errs = append(errs, radgate.KeyError{Key: "url", Message: err.Error()})
			}
			if err := derived.CheckSCWhenUnmarked(d.SCWhenUnmarked); err != nil {
				errs = append(errs, radgate.KeyError{Key: "sc_when_unmarked", Message: err.Error()})
			}
			if !d.StoreSC() && !d.StoreSR() && !d.PDFReport && !d.ParametricMap {
				errs = append(errs, radgate.KeyError{Message: "stores nothing: set sc, sr, parametric_map or pdf_report"})
			}
			return errs
		},
		New: func(dc radgate.DestinationContext) (radgate.Sink, error) {
			c, err := New(Options{BaseURL: dc.Config.URL, HTTPClient: dc.HTTPClient, Timeout: dc.Config.RequestTimeout()})
			if err != nil {
				return nil, err
			}
			o := SinkOptions{SC: dc.Config.StoreSC(), SR: dc.Config.StoreSR(), SCWhenUnmarked: dc.Config.SCWhenUnmarked,
				ParametricMap: dc.Config.ParametricMap, PDF: dc.PDF, Images: dc.Images, Logger: dc.Logger}
			if err := o.Validate(); err != nil {
				return nil, err
			}
			return NewSink(c, o), nil
		},
		ProbeDoes: "QIDO-RS",
		Probe: func(ctx context.Context, dc radgate.DestinationContext) error {
			c, err := New(Options{BaseURL: dc.Config.URL, HTTPClient: dc.HTTPClient})
			if err != nil {
				return err
			}
			return Probe(ctx, c)
		},
	}
}

// Probe asks the archive for a study that does not exist: an answer, even
// "not found", shows it is reachable and accepts radgate's credentials.
func Probe(ctx context.Context, c *Client) error {
	_, err := c.FindStudy(ctx, radgate.StudyQuery{StudyInstanceUID: "2.25.1"})
	if errors.Is(err, radgate.ErrStudyNotFound) {
		return nil
	}
	return err
}
