package dimse

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
)

func init() { radgate.RegisterDestination(DestinationType()) }

// DefaultCallingAE is the calling AE title of a dimse destination without
// calling_ae: dimse.ae_title's default. A destination does not see the
// dimse section, so a radgate whose dimse.ae_title is another sets
// calling_ae to it where the PACS knows radgate by its AE title.
const DefaultCallingAE = "RADGATE"

// DestinationType is the "dimse" destination: the derived objects stored
// into the original study with C-STORE (Secondary Capture, Comprehensive 3D
// SR, the CAM as a Parametric Map when parametric_map is set, the PDF
// report as Encapsulated PDF when pdf_report is set; the IOCM rejection
// notes of amended and retracted results).
func DestinationType() radgate.DestinationType {
	return radgate.DestinationType{
		Name:    "dimse",
		Summary: "PACS over DICOM C-STORE: Secondary Capture, SR, Encapsulated PDF into the study, rejection notes",
		Keys:    []string{"host", "port", "called_ae", "calling_ae", "sc", "sr", "sc_when_unmarked", "parametric_map"},
		Check:   check,
		TLS:     true,
		New: func(dc radgate.DestinationContext) (radgate.Sink, error) {
			d := dc.Config
			return NewSink(SinkOptions{
				Name: dc.Name, Addr: address(d), Dialer: dialer(d, dc.TLS),
				SC: d.StoreSC(), SR: d.StoreSR(), ParametricMap: d.ParametricMap, SCWhenUnmarked: d.SCWhenUnmarked, PDF: dc.PDF,
				Images: dc.Images, JetStream: dc.JetStream, SentMaxAge: sentMaxAge(dc.Retention), Logger: dc.Logger,
			})
		},
		ProbeDoes: "C-ECHO",
		Probe: func(ctx context.Context, dc radgate.DestinationContext) error {
			return Echo(ctx, dialer(dc.Config, dc.TLS), address(dc.Config))
		},
	}
}

func check(d config.Destination) []radgate.KeyError {
	var errs []radgate.KeyError
	if d.Host == "" {
		errs = append(errs, radgate.KeyError{Message: "host must be set for a dimse destination (the PACS's DICOM host)"})
	}
	if d.Port < 1 || d.Port > 65535 {
		key := "port"
		if d.Port == 0 {
			key = ""
		}
		errs = append(errs, radgate.KeyError{Key: key, Message: fmt.Sprintf("port must be set to the PACS's DICOM port, 1 to 65535 (got %d)", d.Port)})
	}
	if d.CalledAE == "" {
		errs = append(errs, radgate.KeyError{Message: "called_ae must be set for a dimse destination (the PACS's AE title)"})
	} else if err := config.CheckAETitle(d.CalledAE); err != nil {
		errs = append(errs, radgate.KeyError{Key: "called_ae", Message: err.Error()})
	}
	if d.CallingAE != "" {
		if err := config.CheckAETitle(d.CallingAE); err != nil {
			errs = append(errs, radgate.KeyError{Key: "calling_ae", Message: err.Error()})
		}
	}
	if err := derived.CheckSCWhenUnmarked(d.SCWhenUnmarked); err != nil {
		errs = append(errs, radgate.KeyError{Key: "sc_when_unmarked", Message: err.Error()})
	}
	if !d.StoreSC() && !d.StoreSR() && !d.PDFReport && !d.ParametricMap {
		errs = append(errs, radgate.KeyError{Message: "stores nothing: set sc, sr, parametric_map or pdf_report"})
	}
	return errs
}

func address(d config.Destination) string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// dialer calls the destination's PACS; with tc (its tls key), over DICOM TLS.
func dialer(d config.Destination, tc *tls.Config) Dialer {
	calling := d.CallingAE
	if calling == "" {
		calling = DefaultCallingAE
	}
	return Dialer{CalledAE: d.CalledAE, CallingAE: calling, Timeout: d.RequestTimeout(), TLS: tc}
}

// sentMaxAge is how long BucketSent keeps what was stored: as long as an
// order can still be cancelled — its state is kept (retention.order_state,
// never shorter than retention.results) — since a retraction then needs
// it. 0 (either kept forever) keeps it forever.
func sentMaxAge(r config.Retention) time.Duration {
	a, b := r.Results.MaxAge.D(), r.OrderState.MaxAge.D()
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// Echo opens an association with d at addr, sends a C-ECHO and releases
// it: radgate check --connect for a dimse destination.
func Echo(ctx context.Context, d Dialer, addr string) error {
	as, err := d.Dial(ctx, addr, StoreContexts(nil))
	if err != nil {
		return err
	}
	if err := as.Echo(ctx); err != nil {
		_ = as.Abort()
		return err
	}
	return as.Release(ctx)
}
