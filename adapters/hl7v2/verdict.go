package hl7v2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// VerdictOptions tune the mapping of an ORU^R01 from the RIS to verdicts.
type VerdictOptions struct {
	// Codes is the table of coded conclusions taken as verdicts (OBX-5 of a
	// CE/CWE/CNE OBX, its coding system name mapped by CodingSystemURI:
	// SCT and SNM are SNOMED CT); nil means fhir.DefaultVerdictCodes.
	Codes fhir.VerdictCodes
	// AccessionSystem and Authorities are as in OrderOptions: the system of
	// an accession number in OBR-18, and the systems of assigning
	// authorities (the reader's identifier).
	AccessionSystem string
	Authorities     Authorities
	// OwnApplications are the MSH-3 namespaces of radgate's own ORUs
	// (the hl7v2 destinations' sending_application); nil means
	// {"RADGATE"}, ORU's default. An ORU from one of them, or one with an
	// OBX of radgate's (OBX-18, the engine, assigned by IdentifierNamespace;
	// OBX-3 of CodingSystemRadgate), is never a verdict.
	OwnApplications []string
	// Now stamps Verdict.ReceivedAt; nil means time.Now.
	Now func() time.Time
}

// ErrNotVerdictMessage is matched by the error VerdictsFromORU returns for
// a message that is not a verdict and not wrong either (radgate's own
// ORU); the intake acknowledges it AA, recording nothing.
var ErrNotVerdictMessage = errors.New("not a verdict")

// ORUVerdict is one order's verdict read from an ORU^R01 (one OBR group),
// or why that group is none.
type ORUVerdict struct {
	// Verdict is the verdict; zero when NotVerdict is set.
	Verdict radgate.Verdict
	// NotVerdict says why the group is not a verdict: a result status
	// other than final or corrected (a preliminary report).
	NotVerdict string
	// keyLoc is where the verdict's key came from (OBR-18 or ZDS-1); name
	// names it by its identifiers for an acknowledgement.
	keyLoc Location
	name   string
}

// VerdictsFromORU reads an ORU^R01 from the RIS as radiologists' verdicts,
// one per order (per OBR group: an OBR, the ORC before it, the OBX, NTE
// and ZDS segments after it):
//
//   - Not a verdict (an error matching ErrNotVerdictMessage): radgate's own
//     ORU (MSH-3 one of OwnApplications, or an OBX as ORU writes them: OBX-18
//     assigned by IdentifierNamespace, or OBX-3 of CodingSystemRadgate). A group whose OBR-25 (table 0123) is not F
//     (final) or C (corrected: replaces the final) has ORUVerdict.NotVerdict
//     set: a preliminary read is not a verdict yet.
//   - Which result: the accession number OBR-18 (AccessionSystem), else the
//     Study Instance UID ZDS-1 (as in an ORM); one is required.
//   - ReadID: the filler order number OBR-3, else ORC-3, else MSH-10 (with
//     "/2", "/3"… for the groups after the first).
//   - Reader: OBR-32 (principal result interpreter, its ID number and
//     assigning authority), else the first OBX-16 (responsible observer);
//     by identifier only, never a name; required.
//   - Finding: the codes of CE, CWE and CNE OBX values (OBX-5, primary and
//     alternate coding) looked up in Codes. A known code decides (codes
//     disagreeing are refused); coded values none of which is known are
//     refused, naming the first ("OBX-5: code X (SCT) is not a known
//     verdict code", table 0357 code 103); TX, FT and ST values alone give
//     radgate.FindingUnlabelled, their text kept in Verdict.Text (lines
//     joined by "\n"). Other value types (NM, ED…) are not read.
//
// Errors are *Error values naming the field (wrapping
// radgate.ErrInvalidVerdict), or ErrUnsupportedMessage for a message
// other than ORU^R01.
func VerdictsFromORU(msg *Message, opts VerdictOptions) ([]ORUVerdict, error) {
	if t := msg.Type(); !t.Is("ORU", "R01") {
		return nil, &Error{Loc: Location{Segment: "MSH", Seq: 1, Field: 9}, Line: 1, Code: CodeUnsupportedMessageType, Err: ErrUnsupportedMessage,
			Msg: fmt.Sprintf("message type %s: want ORU^R01", quotePrefix(t.Code+"^"+t.Trigger, 12))}
	}
	own := opts.OwnApplications
	if own == nil {
		own = []string{"RADGATE"}
	}
	if app := strings.TrimSpace(msg.SendingApplication().Namespace); app != "" && slices.Contains(own, app) {
		return nil, fmt.Errorf("%w: radgate's own ORU (MSH-3 %s)", ErrNotVerdictMessage, truncate(app, 20))
	}
	for _, obx := range msg.Segments("OBX") {
		if value(obx, 18, 1, 2, 1) == IdentifierNamespace || value(obx, 3, 1, 3, 1) == CodingSystemRadgate {
			return nil, fmt.Errorf("%w: radgate's own ORU (an OBX of radgate's: OBX-18 assigned by %s or OBX-3 of coding system %s)",
				ErrNotVerdictMessage, IdentifierNamespace, CodingSystemRadgate)
		}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	latin := isLatin1(msg.Charset())
	conv := func(s string) string {
		if latin {
			return latin1(s)
		}
		return s
	}
	w := newWalker(msg)
	groups := oruGroups(w)
	if len(groups) == 0 {
		return nil, verdictError(Location{Segment: "OBR", Seq: 1}, CodeSegmentSequence, "segment missing: an ORU^R01 verdict has an OBR per order")
	}
	var out []ORUVerdict
	for gi, g := range groups {
		obr := g.obr
		var ov ORUVerdict
		status := strings.ToUpper(value(obr.Segment, 25, 1, 1, 1))
		switch status {
		case "F", "C":
		case "":
			return nil, verdictError(obr.loc(25), CodeRequiredFieldMissing, "no result status: a verdict is a final (F) or corrected (C) result")
		default:
			ov.NotVerdict = fmt.Sprintf("result status %s (%s) is not a final read (F or C)", truncate(status, 4), obr.loc(25))
			out = append(out, ov)
			continue
		}
		v := radgate.Verdict{Source: radgate.SourceHL7v2, ReceivedAt: now().UTC()}

		// Which result.
		var names []string
		if a := value(obr.Segment, 18, 1, 1, 1); a != "" {
			v.Accession = &radgate.Identifier{System: opts.AccessionSystem, Value: conv(a)}
			ov.keyLoc = obr.loc(18)
			if err := checkIdentifier(ov.keyLoc, *v.Accession, 0); err != nil {
				return nil, asVerdictError(err)
			}
			names = append(names, "accession "+v.Accession.Value)
		}
		if g.zds != nil {
			if uid := radgate.StripUIDPrefix(value(g.zds.Segment, 1, 1, 1, 1)); uid != "" {
				if err := idError(g.zds.loc(1), radgate.CheckUID(g.zds.loc(1).String(), uid)); err != nil {
					return nil, asVerdictError(err)
				}
				v.StudyInstanceUID = uid
				if v.Accession == nil {
					ov.keyLoc = g.zds.loc(1)
					names = append(names, "Study Instance UID "+uid)
				}
			}
		}
		if v.Accession == nil && v.StudyInstanceUID == "" {
			return nil, verdictError(obr.loc(18), CodeRequiredFieldMissing, "no accession number (nor a Study Instance UID in ZDS-1): radgate cannot tell which AI result the verdict is about")
		}

		// The read.
		readLoc := obr.loc(3)
		read := value(obr.Segment, 3, 1, 1, 1)
		if read == "" && g.orc != nil {
			readLoc, read = g.orc.loc(3), value(g.orc.Segment, 3, 1, 1, 1)
		}
		if read != "" {
			read = conv(read)
			if err := idError(readLoc, radgate.CheckIdentifier(readLoc.String(), read, 0)); err != nil {
				return nil, asVerdictError(err)
			}
			names = append(names, "filler order "+read)
		} else {
			read = msg.ControlID()
			if gi > 0 {
				read = fmt.Sprintf("%s/%d", read, gi+1)
			}
			if err := idError(Location{Segment: "MSH", Seq: 1, Field: 10}, radgate.CheckIdentifier("MSH-10", read, 0)); err != nil {
				return nil, asVerdictError(err)
			}
		}
		v.ReadID = read
		ov.name = strings.Join(names, ", ")

		// The reader.
		reader, err := oruReader(g, opts.Authorities, conv)
		if err != nil {
			return nil, err
		}
		v.Reader = reader

		// The finding.
		if err := oruFinding(g, opts.Codes, conv, &v); err != nil {
			return nil, err
		}
		ov.Verdict = v
		out = append(out, ov)
	}
	return out, nil
}

// oruGroup is one order of an ORU: its OBR, the ORC before it, and the
// OBX and ZDS segments after it.
type oruGroup struct {
	orc, obr, zds *located
	obx           []located
}

func oruGroups(w *walker) []oruGroup {
	var out []oruGroup
	var orc *located
	for i, s := range w.segs {
		l := located{s, w.occ[i]}
		switch s.name {
		case "ORC":
			orc = &l
		case "OBR":
			out = append(out, oruGroup{orc: orc, obr: &l})
			orc = nil
		case "OBX":
			if len(out) > 0 {
				out[len(out)-1].obx = append(out[len(out)-1].obx, l)
			}
		case "ZDS":
			if len(out) > 0 && out[len(out)-1].zds == nil {
				out[len(out)-1].zds = &l
			}
		}
	}
	return out
}

// oruReader reads the reader's identifier: OBR-32-1 (CNN: ID number,
// assigning authority in subcomponents 9–11), else OBX-16 (XCN: ID number,
// assigning authority in component 9).
func oruReader(g oruGroup, auth Authorities, conv func(string) string) (*radgate.Reference, error) {
	check := func(loc Location, id radgate.Identifier) (*radgate.Reference, error) {
		id.Value, id.System = conv(id.Value), conv(id.System)
		if err := checkIdentifier(loc, id, 0); err != nil {
			return nil, asVerdictError(err)
		}
		return &radgate.Reference{Identifier: &id}, nil
	}
	if id := value(g.obr.Segment, 32, 1, 1, 1); id != "" {
		h := HD{Namespace: value(g.obr.Segment, 32, 1, 1, 9), UniversalID: value(g.obr.Segment, 32, 1, 1, 10), UniversalIDType: value(g.obr.Segment, 32, 1, 1, 11)}
		return check(g.obr.loc(32), radgate.Identifier{System: auth.System(h), Value: id})
	}
	for _, obx := range g.obx {
		if id := value(obx.Segment, 16, 1, 1, 1); id != "" {
			h := HD{Namespace: value(obx.Segment, 16, 1, 9, 1), UniversalID: value(obx.Segment, 16, 1, 9, 2), UniversalIDType: value(obx.Segment, 16, 1, 9, 3)}
			return check(obx.loc(16), radgate.Identifier{System: auth.System(h), Value: id})
		}
	}
	return nil, verdictError(g.obr.loc(32), CodeRequiredFieldMissing,
		"no reader: neither the principal result interpreter (OBR-32) nor a responsible observer (OBX-16) has an ID number; a verdict is a radiologist's read")
}

// maxVerdictText bounds the free text of one verdict.
const maxVerdictText = 64 << 10

// oruFinding reads the group's OBX values into v's Finding, Code and Text.
func oruFinding(g oruGroup, codes fhir.VerdictCodes, conv func(string) string, v *radgate.Verdict) error {
	type hit struct {
		vc  fhir.VerdictCode
		loc Location
	}
	var known *hit
	var firstUnknown error
	var lines []string
	for _, obx := range g.obx {
		loc := obx.loc(5)
		switch strings.ToUpper(value(obx.Segment, 2, 1, 1, 1)) {
		case "CE", "CWE", "CNE":
			for _, c := range []int{1, 4} {
				code := conv(value(obx.Segment, 5, 1, c, 1))
				if code == "" {
					continue
				}
				name := conv(value(obx.Segment, 5, 1, c+2, 1))
				vc, ok := codes.Lookup(CodingSystemURI(name), code)
				if !ok {
					if firstUnknown == nil {
						firstUnknown = verdictError(loc, CodeTableValueNotFound, "code %s (%s) is not a known verdict code",
							truncate(code, 64), truncate(orNoSystem(name), 64))
					}
					continue
				}
				if known != nil && known.vc.Finding != vc.Finding {
					return verdictError(loc, CodeDataTypeError, "code %s says %s where %s says %s (%s): one read, one finding",
						vc.Code, vc.Finding, known.loc, known.vc.Finding, known.vc.Code)
				}
				if known == nil {
					known = &hit{vc, loc}
				}
			}
		case "TX", "FT", "ST":
			for r := 1; r <= max(obx.Reps(5), 1); r++ {
				if t := strings.TrimSpace(conv(obx.Value(5, r, 1, 1))); t != "" {
					lines = append(lines, t)
				}
			}
		}
	}
	v.Text = strings.Join(lines, "\n")
	if len(v.Text) > maxVerdictText {
		return verdictError(Location{Segment: "OBX", Seq: 1, Field: 5}, CodeDataTypeError, "the report's text is longer than %d bytes", maxVerdictText)
	}
	switch {
	case known != nil:
		v.Finding = known.vc.Finding
		v.Code = &radgate.Coding{System: known.vc.System, Code: known.vc.Code, Display: known.vc.Display}
	case firstUnknown != nil:
		return firstUnknown
	case v.Text != "":
		v.Finding = radgate.FindingUnlabelled
	default:
		loc := Location{Segment: "OBX", Seq: 1, Field: 5}
		if len(g.obx) == 0 {
			loc = Location{Segment: "OBX"}
		}
		return verdictError(loc, CodeRequiredFieldMissing, "no coded (CE, CWE) or text (TX, FT, ST) observation value: a verdict needs the reader's conclusion")
	}
	return nil
}

func orNoSystem(s string) string {
	if s == "" {
		return "no coding system"
	}
	return s
}

func verdictError(loc Location, code ErrorCode, format string, args ...any) *Error {
	if loc.Seq == 0 && loc.Segment != "" {
		loc.Seq = 1
	}
	return &Error{Loc: loc, Code: code, Msg: fmt.Sprintf(format, args...), Err: radgate.ErrInvalidVerdict}
}

// asVerdictError makes an identifier check's *Error (which wraps
// radgate.ErrInvalidOrder) wrap radgate.ErrInvalidVerdict.
func asVerdictError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		out := *e
		out.Err = radgate.ErrInvalidVerdict
		return &out
	}
	return err
}

// verdictMessage answers an ORU^R01: see NewIntakeHandler.
func verdictMessage(ctx context.Context, msg *Message, opts IntakeOptions, l *slog.Logger) *Message {
	vopts := VerdictOptions{Codes: opts.VerdictCodes, AccessionSystem: opts.Order.AccessionSystem, Authorities: opts.Order.Authorities,
		OwnApplications: opts.OwnApplications, Now: opts.Order.Now}
	vs, err := VerdictsFromORU(msg, vopts)
	switch {
	case errors.Is(err, ErrNotVerdictMessage):
		l.Info("HL7 ORU is not a verdict; nothing recorded", "reason", err)
		return NewACK(msg, AA, ErrorDetail{Severity: SeverityInformation, Code: CodeSuccess, Message: err.Error() + "; nothing was recorded"})
	case opts.Verdicts == nil:
		l.Warn("HL7 verdict refused: verdicts are not enabled", "ack", AR)
		return NewACK(msg, AR, ErrorDetail{Loc: Location{Segment: "MSH", Seq: 1, Field: 9}, Code: CodeUnsupportedMessageType, Severity: SeverityError,
			Message: "ORU^R01: verdicts are not enabled on this radgate (no verdict recorder is configured); nothing was recorded"})
	case err != nil:
		l.Warn("HL7 verdict refused", "ack", AE, "error", err)
		return NewACK(msg, AE, ErrorDetailOf(err))
	}
	actx, cancel := context.WithTimeout(ctx, opts.AcceptTimeout)
	defer cancel()
	var notes []ErrorDetail
	var recorded []string
	for i, ov := range vs {
		if ov.NotVerdict != "" {
			notes = append(notes, ErrorDetail{Severity: SeverityInformation, Code: CodeSuccess,
				Message: fmt.Sprintf("OBR(%d): not a verdict: %s; nothing was recorded for it", i+1, ov.NotVerdict)})
			continue
		}
		rc, err := opts.Verdicts.Record(actx, ov.Verdict)
		switch {
		case err == nil:
			recorded = append(recorded, rc.OrderID)
			l.Info("HL7 verdict recorded", "read_id", ov.Verdict.ReadID, "order_id", rc.OrderID, "engines", rc.Engines,
				"finding", ov.Verdict.Finding, "replaced", rc.Replaced, "duplicate", rc.Duplicate)
			continue
		case errors.Is(err, radgate.ErrUnknownResult):
			// AE, not AR (table 0008): the message is fine as HL7, its
			// content names no scored result; the RIS may send it again
			// once the study is scored, or fix the accession number.
			l.Warn("HL7 verdict for an unknown result", "ack", AE, "read_id", ov.Verdict.ReadID, "recorded_before", recorded, "error", err)
			return NewACK(msg, AE, append(notes, ErrorDetail{Loc: ov.keyLoc, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
				Message: "no AI result for this verdict (" + ov.name + "): unknown to radgate, or its study not scored yet; nothing was recorded"})...)
		case errors.Is(err, radgate.ErrInvalidVerdict):
			l.Warn("HL7 verdict refused by the recorder", "ack", AE, "read_id", ov.Verdict.ReadID, "error", err)
			return NewACK(msg, AE, append(notes, ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
				Message: radgate.Public(err) + " (" + ov.name + ")"})...)
		}
		l.Error("HL7 verdict not stored; the sender should retry", "ack", AR, "read_id", ov.Verdict.ReadID, "recorded_before", recorded, "error", err)
		return NewACK(msg, AR, ErrorDetail{Code: CodeInternalError, Severity: SeverityError,
			Message: "the verdict could not be stored now (temporary failure, not the message's content); send the message again later"})
	}
	l.Info("HL7 ORU handled", "recorded_order_ids", recorded, "not_verdicts", len(notes))
	return NewACK(msg, AA, notes...)
}
