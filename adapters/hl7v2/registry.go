package hl7v2

import (
	"context"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
)

func init() { radgate.RegisterDestination(DestinationType()) }

// DestinationType is the "hl7v2" destination: ORU^R01 to a RIS over MLLP,
// kept in the JetStream outbox before it is sent (ResultSink).
func DestinationType() radgate.DestinationType {
	return radgate.DestinationType{
		Name:    "hl7v2",
		Summary: "RIS over HL7 v2.5.1 MLLP: ORU^R01 (outbox in JetStream)",
		Keys:    []string{"address", "sending_application", "sending_facility", "receiving_application", "receiving_facility", "charset"},
		Check: func(d config.Destination) []radgate.KeyError {
			var errs []radgate.KeyError
			if err := CheckCharset(d.Charset); err != nil {
				errs = append(errs, radgate.KeyError{Key: "charset", Message: err.Error()})
			}
			if d.Address == "" {
				return append(errs, radgate.KeyError{Message: "address must be set for an hl7v2 destination (host:port of the RIS MLLP listener)"})
			}
			if err := config.CheckHostPort(d.Address); err != nil {
				return append(errs, radgate.KeyError{Key: "address", Message: err.Error()})
			}
			return errs
		},
		New: func(dc radgate.DestinationContext) (radgate.Sink, error) {
			d := dc.Config
			// PID-5 (and PID-3 of an order known by a FHIR Patient
			// reference or by its images alone) are read at send time: from
			// the EHR's FHIR server, the ORM as received, or the scored
			// image.
			var patients *Patients
			if dc.JetStream != nil {
				patients = &Patients{Received: NewReceived(dc.JetStream), Images: dc.Images}
			}
			if dc.EHR.BaseURL != "" && patients != nil {
				ehr, err := fhirClient(dc)
				if err != nil {
					return nil, err
				}
				patients.FHIR, patients.FHIRBase = ehr, dc.EHR.BaseURL
			}
			opts := ResultSinkOptions{JS: dc.JetStream, Address: d.Address, PDF: dc.PDF, Logger: dc.Logger,
				ORU: ORUOptions{
					SendingApplication:   HD{Namespace: d.SendingApplication},
					SendingFacility:      HD{Namespace: d.SendingFacility},
					ReceivingApplication: HD{Namespace: d.ReceivingApplication},
					ReceivingFacility:    HD{Namespace: d.ReceivingFacility},
					Charset:              d.Charset,
				},
				Client: ClientOptions{AckTimeout: d.RequestTimeout()},
				Outbox: OutboxLimits{MaxAge: dc.Retention.HL7Outbox.MaxAge.D(), MaxBytes: int64(dc.Retention.HL7Outbox.MaxBytes)},
			}
			if patients != nil {
				opts.Patients = patients
			}
			return NewResultSink(opts)
		},
		ProbeDoes: "MLLP connection",
		Probe: func(ctx context.Context, dc radgate.DestinationContext) error {
			c, err := NewClient(ClientOptions{Addr: dc.Config.Address, DialTimeout: dc.Config.RequestTimeout()})
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Connect(ctx)
		},
	}
}

// fhirClient is the EHR's FHIR server, where a FHIR order's Patient is read.
func fhirClient(dc radgate.DestinationContext) (*fhirhttp.Client, error) {
	return fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: dc.EHR.BaseURL, HTTPClient: dc.EHR.HTTPClient,
		Timeout: dc.EHR.Timeout, Logger: dc.Logger})
}
