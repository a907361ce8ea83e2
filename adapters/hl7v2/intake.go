package hl7v2

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// DefaultAcceptTimeout bounds storing one message's orders when
// IntakeOptions.AcceptTimeout is zero.
const DefaultAcceptTimeout = 30 * time.Second

// IntakeOptions configure NewIntakeHandler.
type IntakeOptions struct {
	// Order is the mapping of ORM/OMI to order events; set
	// Order.AccessionSystem to the system the FHIR intake sees for the same
	// accession numbers, so both intakes make one order per study.
	Order OrderOptions
	// AcceptTimeout bounds storing a message's orders (all of its
	// radgate.Intake.Accept calls together). Default DefaultAcceptTimeout.
	AcceptTimeout time.Duration
	// Received, when set, keeps the message's MSH and PID as received for
	// each of its orders: the source of the ORU's PID-5 (patient names are
	// in no order, result or log). A failure to keep them is answered AR,
	// as a failure to store the order is.
	Received *Received
	// Logger receives one line per message: control id, message type and
	// order ids (never patient data); nil discards them.
	Logger *slog.Logger

	// Verdicts records radiologists' verdicts, ORU^R01 from the RIS (see
	// VerdictsFromORU); nil: an ORU^R01 is answered AR ("verdicts are not
	// enabled"), never dropped.
	Verdicts radgate.VerdictRecorder
	// VerdictCodes is the table of coded conclusions taken as verdicts;
	// nil means fhir.DefaultVerdictCodes.
	VerdictCodes fhir.VerdictCodes
	// OwnApplications are the MSH-3 namespaces radgate's own ORUs carry
	// (VerdictOptions.OwnApplications); nil means {"RADGATE"}.
	OwnApplications []string
}

// NewIntakeHandler returns the Server handler of radgate's HL7 v2 order
// intake: it maps each ORM^O01 or OMI^O23 to one order event per order (per
// ORC group, see OrderOptions.OrderEvents), hands each to in.Accept, and
// answers:
//
//   - AA once every Accept returned nil, that is once every order of the
//     message is durably stored (radgate.Intake's contract).
//   - AA for a cancellation (ORC-1 CA, DC, OC, …; see
//     OrderOptions.OrderEvents) once Accept stored it, and for one of an
//     order already cancelled (Accept returns nil, or
//     radgate.ErrOrderCancelled: either way the order is cancelled, as the
//     sender asks).
//   - AE with ERR-3 204 (unknown key identifier), ERR-2 the field the
//     order's key came from (OBR-18, IPC-1 or ZDS-1), for an order radgate
//     never received (radgate.ErrUnknownOrder: a cancellation, say). ERR-8
//     names the order by its accession, placer and filler order numbers
//     (identifiers only): "no such order: accession ACC-1, placer order
//     PLC-1, filler order FIL-2".
//   - AE with ERR-3 207 for an update of an order already cancelled
//     (radgate.ErrOrderCancelled): ERR-8 is Accept's error text and the
//     order's identifiers.
//   - AR, with an ERR naming MSH-9, for a message type other than ORM^O01
//     and OMI^O23, and for an order control (ORC-1) that radgate does not
//     act on (HD, RP, …): radgate will never process them, and sending
//     them again does not help.
//   - AE, with an ERR naming the field (ERR-2) and its table 0357 code
//     (101 required field missing, 102 data type error, …), for an order
//     that cannot be mapped or that Accept refuses as invalid
//     (radgate.ErrInvalidOrder). No order of such a message is stored.
//   - AR with ERR-3 207 (application internal error) and ERR-4 E when
//     storing failed for another reason (the message broker is down or
//     slow, the intake is shutting down): HL7 table 0008's AR, rejected for
//     a reason unrelated to its content; the message was fine and the
//     sender should send it again later. Orders stored before the failure
//     are stored again harmlessly (events are deduplicated and merge into
//     the same order). AE is kept for content the sender must fix.
//
// An ORU^R01 on the same listener is a radiologist's verdict
// (VerdictsFromORU), handed to IntakeOptions.Verdicts and answered:
//
//   - AA once every verdict of the message is recorded (the recorder's
//     Record returned nil: durable). AA with an informational ERR
//     (severity I) for an ORU that is not a verdict: radgate's own, or a
//     group whose OBR-25 is not F or C (a preliminary read); nothing of
//     it is recorded.
//   - AE, with ERR-2 the field and its table 0357 code, for content the
//     sender must fix: "OBX-5: code X (SCT) is not a known verdict code"
//     (103), no accession number, no reader, no conclusion (101); AE with
//     204 (unknown key identifier) at OBR-18 for a verdict naming no AI
//     result (radgate.ErrUnknownResult): AE, not AR, because the message
//     itself is fine and the same verdict may be taken once its study is
//     scored. Nothing of that verdict is recorded or counted.
//   - AR with 207 when recording failed for another reason (transient, as
//     for orders: send it again later); AR with 200 at MSH-9 when this
//     radgate records no verdicts (IntakeOptions.Verdicts nil).
//
// All mapping happens before the first Accept, so a bad order in a
// message with several stores none of them. An AE from Accept (invalid,
// unknown or cancelled order) leaves the message's orders before it
// stored; sent again after a fix, they merge into the same orders.
//
// A cancellation does not replace the MSH and PID kept for its order
// (IntakeOptions.Received): the ORU's PID-5 stays the one of the order.
func NewIntakeHandler(in radgate.Intake, opts IntakeOptions) Handler {
	if opts.AcceptTimeout <= 0 {
		opts.AcceptTimeout = DefaultAcceptTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "hl7v2-intake")
	return func(ctx context.Context, msg *Message) *Message {
		l := log.With("control_id", msg.ControlID(), "type", msg.Type().String())
		if msg.Type().Is("ORU", "R01") {
			return verdictMessage(ctx, msg, opts, l)
		}
		orders, err := opts.Order.orders(msg)
		if err != nil {
			code := AE
			if errors.Is(err, ErrUnsupportedMessage) || errors.Is(err, ErrOrderControl) {
				code = AR
			}
			// *Error messages never quote patient data (see Error).
			l.Warn("HL7 order not accepted", "ack", code, "error", err)
			return NewACK(msg, code, ErrorDetailOf(err))
		}
		actx, cancel := context.WithTimeout(ctx, opts.AcceptTimeout)
		defer cancel()
		ids := make([]string, 0, len(orders))
		var keep []string // orders whose MSH and PID are kept: not the cancelled ones
		var cancelled []string
		for i, mo := range orders {
			ev := mo.ev
			st, err := in.Accept(actx, ev)
			if err == nil || (ev.Action == radgate.ActionCancel && errors.Is(err, radgate.ErrOrderCancelled)) {
				if err != nil {
					l.Info("HL7 cancellation of an order already cancelled", "order", i+1, "order_id", st.ID, "error", err)
				}
				if ev.Action == radgate.ActionCancel {
					cancelled = append(cancelled, st.ID)
				} else {
					keep = append(keep, st.ID)
				}
				ids = append(ids, st.ID)
				continue
			}
			switch {
			case errors.Is(err, radgate.ErrInvalidOrder):
				d := ErrorDetailOf(err)
				var he *Error
				if !errors.As(err, &he) {
					d.Code = CodeRequiredFieldMissing
				}
				l.Warn("HL7 order refused as invalid", "ack", AE, "order", i+1, "accepted_before", ids, "error", err)
				return NewACK(msg, AE, d)
			case errors.Is(err, radgate.ErrUnknownOrder):
				l.Warn("HL7 message for an unknown order", "ack", AE, "order", i+1, "action", ev.Action, "reason", ev.Reason,
					"accepted_before", ids, "error", err)
				return NewACK(msg, AE, ErrorDetail{Loc: mo.keyLoc, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
					Message: "no such order: " + mo.name()})
			case errors.Is(err, radgate.ErrOrderCancelled):
				l.Warn("HL7 update of a cancelled order", "ack", AE, "order", i+1, "accepted_before", ids, "error", err)
				return NewACK(msg, AE, ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
					Message: radgate.Public(err) + " (" + mo.name() + ")"})
			}
			l.Error("HL7 order not stored; the sender should retry", "ack", AR, "order", i+1,
				"accepted_before", ids, "error", err)
			return NewACK(msg, AR, ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
				Message: "the order could not be stored now (temporary failure, not the message's content); send the message again later"})
		}
		if opts.Received != nil {
			for _, id := range keep {
				if err := opts.Received.Keep(actx, id, msg); err != nil {
					l.Error("HL7 order message not kept; the sender should retry", "ack", AR, "order_ids", ids, "error", err)
					return NewACK(msg, AR, ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
						Message: "the order could not be stored now (temporary failure, not the message's content); send the message again later"})
				}
			}
		}
		l.Info("HL7 orders accepted", "order_ids", ids, "cancelled", cancelled)
		return NewACK(msg, AA)
	}
}
