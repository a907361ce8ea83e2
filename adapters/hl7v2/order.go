package hl7v2

import (
	"fmt"
	"strings"
	"time"

	"github.com/radgate/radgate"
)

// Source is OrderEvent.Source for events this adapter produces.
const Source = "hl7v2"

// OrderOptions tune the mapping of ORM/OMI messages to order events.
type OrderOptions struct {
	// AccessionSystem is the identifier system given to accession numbers
	// that arrive without an assigning authority (OBR-18 is a plain string;
	// IPC-1 may lack one). Set it to the system the EHR's FHIR
	// ServiceRequests use for the same accession numbers, so events from
	// both intakes merge into one order (radgate.OrderKey includes the
	// system).
	AccessionSystem string
	// Authorities maps assigning-authority namespaces to identifier
	// systems (patient ids, placer order numbers, accession numbers).
	Authorities Authorities
	// Now stamps OrderEvent.ReceivedAt; nil leaves it zero, for the
	// pipeline to stamp.
	Now func() time.Time
}

// OrderEvent maps an ORM^O01 or OMI^O23 holding one order (one ORC group)
// to routing's order event, with default options. See
// OrderOptions.OrderEvents for the field mapping.
func OrderEvent(msg *Message) (radgate.OrderEvent, error) {
	return OrderOptions{}.OrderEvent(msg)
}

// OrderEvent is OrderEvents for a message holding exactly one order.
func (o OrderOptions) OrderEvent(msg *Message) (radgate.OrderEvent, error) {
	evs, err := o.OrderEvents(msg)
	if err != nil {
		return radgate.OrderEvent{}, err
	}
	if len(evs) != 1 {
		return radgate.OrderEvent{}, &Error{Loc: Location{Segment: "ORC", Seq: 2}, Code: CodeSegmentSequence,
			Msg: fmt.Sprintf("the message holds %d orders; map it with OrderEvents", len(evs)), Err: radgate.ErrInvalidOrder}
	}
	return evs[0], nil
}

// OrderEvents maps an ORM^O01 or OMI^O23 to one order event per order
// (per ORC group: an ORC and the OBR, TQ1, IPC and ZDS segments after it).
//
// The fields (first non-empty source wins):
//
//   - Accession: OMI: IPC-1 (EI; system from its assigning authority), then
//     OBR-18. ORM: OBR-18 (the IHE Scheduled Workflow accession number).
//     The system is AccessionSystem unless the EI names an authority.
//   - StudyInstanceUID: OMI: IPC-3; ORM: ZDS-1 (IHE's Z-segment), also
//     read in OMI. Must be a DICOM UID ("urn:oid:" is stripped).
//   - An order needs an accession number or a study UID.
//   - Patient: PID-3, by identifier only (never a name): the repetition
//     whose identifier type (CX-5) is MR, else the first non-empty one;
//     the system from CX-4.
//   - ServiceRequest: by identifier, the placer order number ORC-2, then
//     OBR-2 (EI; system from its authority). The filler order number
//     (ORC-3, else OBR-3) has no place in the event; it only names the
//     order in an acknowledgement (NewIntakeHandler).
//   - ProcedureCodes: OBR-4 (CWE), its primary and alternate codings; the
//     coding system names become FHIR URIs (LN → http://loinc.org, …).
//   - Modalities: OMI: IPC-5 of each IPC; then OBR-24, which IHE uses for
//     the DICOM modality, when it is one (table 0074 sections such as RAD
//     are not modalities and are ignored; NMR, NMS and the ultrasound
//     sections map to MR, NM and US).
//   - Priority: TQ1-9, then ORC-7-6, then OBR-27-6 (table 0485), as a FHIR
//     request priority: S, TS → stat; A, TA → asap; R, TR → routine; T, P →
//     urgent; other codes are left out.
//   - Facility: ORC-21-1 (ordering facility name), then MSH-4.
//   - Age: the patient's age (radgate.PatientAge) from PID-7 (date of
//     birth, at least YYYYMMDD: a year or month alone is too coarse for an
//     age range in whole years) at the order's date: OBR-7 (the exam),
//     else TQ1-7 (its start), else ORC-9 (the transaction), else MSH-7,
//     else when the message came. Only the age is kept, never the birth
//     date; a PID-7 that is not such a date, or is after the order's
//     date, gives no age (the image's own age decides, else the route's
//     unknown_age) and never refuses the order.
//
// Text is taken as UTF-8 (ASCII being HL7's default), or converted from
// ISO 8859-1 when MSH-18 says 8859/1.
//
// What the event asks (ORC-1, table 0119 order control; ORC-5, table 0038
// order status; OBR-25, table 0123 result status):
//
//   - Place or update the order (Action zero): ORC-1 NW (new order), XO
//     (change order request), XX (order changed, unsolicited), SC (status
//     changed), SN (send order number).
//   - Cancel it (Action radgate.ActionCancel, Reason "HL7 ORC-1 CA"): ORC-1
//     CA (cancel request) and DC (discontinue request) from the placer, OC
//     (order cancelled) and OD (order discontinued) from the filler, CR and
//     DR (cancelled / discontinued as requested: the filler's answer to CA
//     and DC, all a copy of the filler's feed may show). Also ORC-1 SC with
//     ORC-5 CA or DC (Reason "HL7 ORC-1 SC, ORC-5 CA"): the filler's status
//     notice that the order was cancelled or discontinued. A cancellation
//     names its order as a new order does (accession number, else study
//     UID: one order key); it needs no procedure code.
//   - StudyComplete, on an order or update: ORC-5 CM (table 0038: "order is
//     completed"), or OBR-25 R, P, F or C (table 0123: results stored,
//     preliminary, final, corrected — a report exists, so the exam was
//     performed and its images taken). Not OBR-25 O, I or S ("no results
//     available": order received, procedure incomplete, procedure scheduled
//     but not done), nor A (some results available), nor ORC-5 IP, SC, A
//     (in process, scheduled, some results): the images may still come.
//     HL7 v2 orders announce no instance count (InstanceCount stays 0).
//
// Any other order control (HD hold, RP replace, …) gives an error wrapping
// ErrOrderControl.
//
// Errors are *Error values naming the field, and wrap
// radgate.ErrInvalidOrder (or ErrUnsupportedMessage for another message
// type).
func (o OrderOptions) OrderEvents(msg *Message) ([]radgate.OrderEvent, error) {
	mos, err := o.orders(msg)
	if err != nil {
		return nil, err
	}
	evs := make([]radgate.OrderEvent, len(mos))
	for i, mo := range mos {
		evs[i] = mo.ev
	}
	return evs, nil
}

// orders is OrderEvents, keeping what names each order in an
// acknowledgement.
func (o OrderOptions) orders(msg *Message) ([]mappedOrder, error) {
	t := msg.Type()
	var resource string
	switch {
	case t.Is("ORM", "O01"):
		resource = "ORM"
	case t.Is("OMI", "O23"):
		resource = "OMI"
	default:
		code := CodeUnsupportedMessageType
		if t.Code == "ORM" || t.Code == "OMI" {
			code = CodeUnsupportedEventCode
		}
		return nil, &Error{Loc: Location{Segment: "MSH", Seq: 1, Field: 9}, Line: 1, Code: code, Err: ErrUnsupportedMessage,
			Msg: fmt.Sprintf("message type %s: want ORM^O01 or OMI^O23", quotePrefix(t.Code+"^"+t.Trigger, 12))}
	}
	w := newWalker(msg)
	pid := w.first("PID")
	if pid == nil {
		return nil, invalid(Location{Segment: "PID"}, CodeSegmentSequence, "segment missing")
	}
	patient, patientLoc, err := o.patient(pid)
	if err != nil {
		return nil, err
	}
	if isLatin1(msg.Charset()) {
		patient.Identifier.System, patient.Identifier.Value = latin1(patient.Identifier.System), latin1(patient.Identifier.Value)
	}
	if err := checkIdentifier(patientLoc, *patient.Identifier, 4); err != nil {
		return nil, err
	}
	groups := w.groups("ORC")
	if len(groups) == 0 {
		return nil, invalid(Location{Segment: "ORC"}, CodeSegmentSequence, "segment missing")
	}
	var out []mappedOrder
	for _, g := range groups {
		ev, locs, err := o.order(msg, resource, g)
		if err != nil {
			return nil, err
		}
		ev.Patient = patient
		ev.Age = orderAge(msg, pid, g, ev.ReceivedAt)
		if isLatin1(msg.Charset()) {
			latin1Event(&ev)
		}
		if err := locs.check(ev); err != nil {
			return nil, err
		}
		mo := mappedOrder{ev: ev, keyLoc: locs.accession}
		if ev.Accession == nil {
			mo.keyLoc = locs.study
		}
		// The filler order number only names the order in an
		// acknowledgement: one that fails the identifier checks is left out.
		orc := g[0]
		filler, floc := o.ei(orc.Segment, 3, ""), orc.loc(3)
		if filler == nil {
			if obr := find(g, "OBR"); obr != nil {
				filler, floc = o.ei(obr.Segment, 3, ""), obr.loc(3)
			}
		}
		if filler != nil {
			if isLatin1(msg.Charset()) {
				filler.Value = latin1(filler.Value)
			}
			if checkIdentifier(floc, *filler, 0) == nil {
				mo.filler = filler.Value
			}
		}
		out = append(out, mo)
	}
	return out, nil
}

// mappedOrder is one order of a message as mapped, with what an
// acknowledgement names it by.
type mappedOrder struct {
	ev radgate.OrderEvent
	// keyLoc is where the order's key came from: the accession number's
	// field, else the study UID's.
	keyLoc Location
	// filler is the filler order number (ORC-3, else OBR-3), when it
	// passed the identifier checks.
	filler string
}

// name names the order by its identifiers only (never patient data), for
// an acknowledgement: "accession ACC-1, placer order PLC-1, filler order
// FIL-2" (the study UID when there is no accession number).
func (mo mappedOrder) name() string {
	var parts []string
	if a := mo.ev.Accession; a != nil {
		parts = append(parts, "accession "+a.Value)
	} else if mo.ev.StudyInstanceUID != "" {
		parts = append(parts, "Study Instance UID "+mo.ev.StudyInstanceUID)
	}
	if id := refID(mo.ev.ServiceRequest); id != nil {
		parts = append(parts, "placer order "+id.Value)
	}
	if mo.filler != "" {
		parts = append(parts, "filler order "+mo.filler)
	}
	return strings.Join(parts, ", ")
}

// idLocations are where an event's identifiers came from, for the checks
// that follow the mapping (after any conversion to UTF-8).
type idLocations struct {
	accession, serviceRequest, study, facility Location
	// accessionAuthority and serviceRequestAuthority are the EI component
	// holding the first part of the assigning authority (2), or 0 when the
	// system is configured rather than read.
	accessionAuthority, serviceRequestAuthority int
}

// check runs radgate's identifier rules (radgate.CheckIdentifier,
// radgate.CheckUID) on every identifier the event gives the order: no
// control characters (whatever escape sequence carried them), valid UTF-8,
// at most radgate.MaxIdentifierLength characters (a system at most
// radgate.MaxSystemLength), a study UID as DICOM wants it.
func (l idLocations) check(ev radgate.OrderEvent) error {
	if ev.Accession != nil {
		if err := checkIdentifier(l.accession, *ev.Accession, l.accessionAuthority); err != nil {
			return err
		}
	}
	if ev.ServiceRequest != nil && ev.ServiceRequest.Identifier != nil {
		if err := checkIdentifier(l.serviceRequest, *ev.ServiceRequest.Identifier, l.serviceRequestAuthority); err != nil {
			return err
		}
	}
	if ev.StudyInstanceUID != "" {
		if err := idError(l.study, radgate.CheckUID(l.study.String(), ev.StudyInstanceUID)); err != nil {
			return err
		}
	}
	if ev.Facility != "" {
		if err := idError(l.facility, radgate.CheckIdentifier(l.facility.String(), ev.Facility, 0)); err != nil {
			return err
		}
	}
	return nil
}

// checkIdentifier checks an identifier read at loc (a CX or EI field);
// authority is the component its assigning authority starts at (0: the
// system was not read from the message).
func checkIdentifier(loc Location, id radgate.Identifier, authority int) error {
	if err := idError(loc, radgate.CheckIdentifier(loc.String(), id.Value, 0)); err != nil {
		return err
	}
	if id.System == "" || authority == 0 {
		return nil
	}
	aloc := loc
	aloc.Comp = authority
	return idError(aloc, radgate.CheckIdentifier(aloc.String(), id.System, radgate.MaxSystemLength))
}

// idError turns an error of radgate.CheckIdentifier or CheckUID about the
// field at loc into an *Error at loc: code 102 (data type error: control
// characters, too long, not UTF-8, not a UID), or 101 for an empty value.
// Those errors never quote the value.
func idError(loc Location, err error) error {
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), radgate.ErrInvalidOrder.Error()+": ")
	msg = strings.TrimPrefix(msg, loc.String()+" ")
	code := CodeDataTypeError
	if strings.HasSuffix(msg, "is empty") {
		code = CodeRequiredFieldMissing
	}
	return &Error{Loc: loc, Code: code, Msg: msg, Err: radgate.ErrInvalidOrder}
}

// isLatin1 reports whether MSH-18 declares ISO 8859-1, the one 8-bit
// character set radgate converts (to UTF-8); anything else is taken as
// UTF-8 (or its ASCII subset, HL7's default).
func isLatin1(charset string) bool {
	switch strings.ToUpper(strings.TrimSpace(charset)) {
	case "8859/1", "ISO IR100", "ISO-8859-1":
		return true
	}
	return false
}

func latin1(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			r := make([]rune, len(s))
			for j := 0; j < len(s); j++ {
				r[j] = rune(s[j])
			}
			return string(r)
		}
	}
	return s
}

// latin1Event converts an event's text (but the patient, shared by the
// events of a message), read from an ISO 8859-1 message, to UTF-8.
func latin1Event(ev *radgate.OrderEvent) {
	for _, id := range []*radgate.Identifier{ev.Accession, refID(ev.ServiceRequest)} {
		if id != nil {
			id.System, id.Value = latin1(id.System), latin1(id.Value)
		}
	}
	for i := range ev.ProcedureCodes {
		c := &ev.ProcedureCodes[i]
		c.System, c.Code, c.Display = latin1(c.System), latin1(c.Code), latin1(c.Display)
	}
	ev.Facility = latin1(ev.Facility)
}

func refID(r *radgate.Reference) *radgate.Identifier {
	if r == nil {
		return nil
	}
	return r.Identifier
}

func invalid(loc Location, code ErrorCode, format string, args ...any) *Error {
	if loc.Seq == 0 {
		loc.Seq = 1
	}
	return &Error{Loc: loc, Code: code, Msg: fmt.Sprintf(format, args...), Err: radgate.ErrInvalidOrder}
}

// walker knows each segment's occurrence number, for error locations.
type walker struct {
	segs []*Segment
	occ  []int
}

type located struct {
	*Segment
	seq int
}

func (l located) loc(field int) Location { return Location{Segment: l.name, Seq: l.seq, Field: field} }

func newWalker(m *Message) *walker {
	w := &walker{segs: m.segs, occ: make([]int, len(m.segs))}
	seen := map[string]int{}
	for i, s := range m.segs {
		seen[s.name]++
		w.occ[i] = seen[s.name]
	}
	return w
}

func (w *walker) first(name string) *located {
	for i, s := range w.segs {
		if s.name == name {
			return &located{s, w.occ[i]}
		}
	}
	return nil
}

// groups splits the segments into groups each starting with a segment
// named start.
func (w *walker) groups(start string) [][]located {
	var out [][]located
	for i, s := range w.segs {
		if s.name == start {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], located{s, w.occ[i]})
		}
	}
	return out
}

func find(g []located, name string) *located {
	for i := range g {
		if g[i].name == name {
			return &g[i]
		}
	}
	return nil
}

func findAll(g []located, name string) []located {
	var out []located
	for _, s := range g {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// value returns a trimmed value, with HL7's explicit null `""` read as
// empty.
func value(s *Segment, field, rep, comp, sub int) string {
	if s == nil {
		return ""
	}
	v := strings.TrimSpace(s.Value(field, rep, comp, sub))
	if v == `""` {
		return ""
	}
	return v
}

func (o OrderOptions) patient(pid *located) (*radgate.Reference, Location, error) {
	best := 0
	for r := 1; r <= pid.Reps(3); r++ {
		if value(pid.Segment, 3, r, 1, 1) == "" {
			continue
		}
		if best == 0 {
			best = r
		}
		if strings.EqualFold(value(pid.Segment, 3, r, 5, 1), "MR") {
			best = r
			break
		}
	}
	if best == 0 {
		return nil, Location{}, invalid(pid.loc(3), CodeRequiredFieldMissing, "no patient identifier")
	}
	h := HD{Namespace: value(pid.Segment, 3, best, 4, 1), UniversalID: value(pid.Segment, 3, best, 4, 2),
		UniversalIDType: value(pid.Segment, 3, best, 4, 3)}
	loc := pid.loc(3)
	if best > 1 {
		loc.Rep = best
	}
	return &radgate.Reference{Identifier: &radgate.Identifier{System: o.Authorities.System(h), Value: value(pid.Segment, 3, best, 1, 1)}}, loc, nil
}

// ei reads an EI field (entity id^namespace^universal id^type) as an
// identifier; nil when empty.
func (o OrderOptions) ei(s *Segment, field int, defaultSystem string) *radgate.Identifier {
	v := value(s, field, 1, 1, 1)
	if v == "" {
		return nil
	}
	sys := o.Authorities.System(HD{Namespace: value(s, field, 1, 2, 1), UniversalID: value(s, field, 1, 3, 1), UniversalIDType: value(s, field, 1, 4, 1)})
	if sys == "" {
		sys = defaultSystem
	}
	return &radgate.Identifier{System: sys, Value: v}
}

// orderControls are the ORC-1 codes (table 0119) of a new or changed
// order; cancelControls those of a cancelled or discontinued one.
var (
	orderControls  = map[string]bool{"NW": true, "XO": true, "XX": true, "SC": true, "SN": true}
	cancelControls = map[string]bool{"CA": true, "DC": true, "OC": true, "OD": true, "CR": true, "DR": true}
	// completeResults are the OBR-25 codes (table 0123) saying results
	// exist: the exam was performed.
	completeResults = map[string]bool{"R": true, "P": true, "F": true, "C": true}
)

func (o OrderOptions) order(msg *Message, resource string, g []located) (ev radgate.OrderEvent, locs idLocations, err error) {
	orc := g[0]
	ev = radgate.OrderEvent{Source: Source, ResourceType: resource}
	if o.Now != nil {
		ev.ReceivedAt = o.Now().UTC()
	}
	oc := strings.ToUpper(value(orc.Segment, 1, 1, 1, 1))
	status := strings.ToUpper(value(orc.Segment, 5, 1, 1, 1))
	switch {
	case oc == "":
		return ev, locs, invalid(orc.loc(1), CodeRequiredFieldMissing, "missing order control")
	case cancelControls[oc]:
		ev.Action, ev.Reason = radgate.ActionCancel, "HL7 ORC-1 "+oc
	case oc == "SC" && (status == "CA" || status == "DC"):
		ev.Action, ev.Reason = radgate.ActionCancel, "HL7 ORC-1 SC, ORC-5 "+status
	case !orderControls[oc]:
		return ev, locs, &Error{Loc: orc.loc(1), Code: CodeUnsupportedEventCode, Err: ErrOrderControl,
			Msg: fmt.Sprintf("order control %s is not a new, changed or cancelled order (NW, XO, XX, SC, SN; CA, DC, OC, OD, CR, DR)", quotePrefix(oc, 4))}
	}
	cancel := ev.Action == radgate.ActionCancel
	obrp := find(g, "OBR")
	if obrp == nil {
		return ev, locs, invalid(Location{Segment: "OBR", Seq: orc.seq}, CodeSegmentSequence, "segment missing after ORC")
	}
	obr := *obrp
	ipcs := findAll(g, "IPC")

	// Accession number and Study Instance UID.
	accLoc := obr.loc(18)
	if resource == "OMI" && len(ipcs) > 0 {
		accLoc = ipcs[0].loc(1)
		for _, ipc := range ipcs {
			id := o.ei(ipc.Segment, 1, o.AccessionSystem)
			switch {
			case id == nil:
			case ev.Accession == nil:
				ev.Accession = id
				locs.accession, locs.accessionAuthority = ipc.loc(1), 2
			case *id != *ev.Accession:
				return ev, locs, invalid(ipc.loc(1), CodeDataTypeError, "accession number differs from that of %s: one order, one accession", accLoc)
			}
		}
	}
	if ev.Accession == nil {
		if v := value(obr.Segment, 18, 1, 1, 1); v != "" {
			ev.Accession = &radgate.Identifier{System: o.AccessionSystem, Value: v}
			locs.accession = obr.loc(18)
		}
	}
	uidLoc := Location{Segment: "ZDS", Seq: 1, Field: 1}
	for _, ipc := range ipcs {
		v := radgate.StripUIDPrefix(value(ipc.Segment, 3, 1, 1, 1))
		if v == "" {
			continue
		}
		if err := idError(ipc.loc(3), radgate.CheckUID(ipc.loc(3).String(), v)); err != nil {
			return ev, locs, err
		}
		if ev.StudyInstanceUID != "" && v != ev.StudyInstanceUID {
			return ev, locs, invalid(ipc.loc(3), CodeDataTypeError, "Study Instance UID differs from that of %s: one order, one study", uidLoc)
		}
		ev.StudyInstanceUID, uidLoc = v, ipc.loc(3)
	}
	if resource == "OMI" && len(ipcs) > 0 && ev.StudyInstanceUID == "" {
		uidLoc = ipcs[0].loc(3)
	}
	if zds := find(g, "ZDS"); zds != nil && ev.StudyInstanceUID == "" {
		uidLoc = zds.loc(1)
		if v := radgate.StripUIDPrefix(value(zds.Segment, 1, 1, 1, 1)); v != "" {
			if err := idError(zds.loc(1), radgate.CheckUID(zds.loc(1).String(), v)); err != nil {
				return ev, locs, err
			}
			ev.StudyInstanceUID = v
		}
	}
	locs.study = uidLoc
	if ev.Accession == nil && ev.StudyInstanceUID == "" {
		return ev, locs, invalid(accLoc, CodeRequiredFieldMissing, "no accession number (nor a Study Instance UID in %s)", uidLoc)
	}

	// The order: placer order number.
	if id := o.ei(orc.Segment, 2, ""); id != nil {
		ev.ServiceRequest = &radgate.Reference{Identifier: id}
		locs.serviceRequest, locs.serviceRequestAuthority = orc.loc(2), 2
	} else if id := o.ei(obr.Segment, 2, ""); id != nil {
		ev.ServiceRequest = &radgate.Reference{Identifier: id}
		locs.serviceRequest, locs.serviceRequestAuthority = obr.loc(2), 2
	}

	// Procedure: OBR-4, primary and alternate codings (a cancellation
	// names its order by identifiers and needs none).
	if value(obr.Segment, 4, 1, 1, 1) == "" && !cancel {
		return ev, locs, invalid(obr.loc(4), CodeRequiredFieldMissing, "no procedure code")
	}
	for _, c := range []int{1, 4} {
		if code := value(obr.Segment, 4, 1, c, 1); code != "" {
			ev.ProcedureCodes = append(ev.ProcedureCodes, toCoding(code, value(obr.Segment, 4, 1, c+1, 1), value(obr.Segment, 4, 1, c+2, 1)))
		}
	}

	// Modalities.
	addModality := func(m string) {
		for _, have := range ev.Modalities {
			if have == m {
				return
			}
		}
		ev.Modalities = append(ev.Modalities, m)
	}
	for _, ipc := range ipcs {
		v := strings.ToUpper(value(ipc.Segment, 5, 1, 1, 1))
		if v == "" {
			continue
		}
		if !modalityCode(v) {
			return ev, locs, invalid(ipc.loc(5), CodeDataTypeError, "modality %s is not a DICOM modality code", quotePrefix(v, 16))
		}
		addModality(v)
	}
	if m, ok := modalityOf(strings.ToUpper(value(obr.Segment, 24, 1, 1, 1))); ok {
		addModality(m)
	}

	// Priority.
	prio := ""
	if tq1 := find(g, "TQ1"); tq1 != nil {
		prio = value(tq1.Segment, 9, 1, 1, 1)
	}
	if prio == "" {
		prio = value(orc.Segment, 7, 1, 6, 1)
	}
	if prio == "" {
		prio = value(obr.Segment, 27, 1, 6, 1)
	}
	ev.Priority = priorities[strings.ToUpper(prio)]

	// The exam is done: ORC-5 CM, or a result status saying results exist.
	if !cancel && (status == "CM" || completeResults[strings.ToUpper(value(obr.Segment, 25, 1, 1, 1))]) {
		ev.StudyComplete = true
	}

	// Facility.
	ev.Facility = value(orc.Segment, 21, 1, 1, 1)
	locs.facility = orc.loc(21)
	if ev.Facility == "" {
		h := msg.SendingFacility()
		ev.Facility = strings.TrimSpace(h.Namespace)
		locs.facility = Location{Segment: "MSH", Seq: 1, Field: 4}
		if ev.Facility == "" {
			ev.Facility = strings.TrimSpace(h.UniversalID)
		}
	}
	return ev, locs, nil
}

// priorities maps table 0485 (TQ1-9, TQ-6) to FHIR request priorities.
var priorities = map[string]string{
	"S": "stat", "TS": "stat",
	"A": "asap", "TA": "asap",
	"R": "routine", "TR": "routine",
	"T": "urgent", "P": "urgent",
}

// dicomModalities are DICOM's modality codes (PS3.3 C.7.3.1.1.1).
var dicomModalities = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DOC DX ECG EPS ES FID GM HC HD IO
		IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN POS PR
		PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR
		SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC`) {
		dicomModalities[m] = true
	}
}

// modalityOf reads OBR-24: a DICOM modality, or a table 0074 section that
// names one.
func modalityOf(v string) (string, bool) {
	switch v {
	case "NMR":
		return "MR", true
	case "NMS":
		return "NM", true
	case "RUS", "OUS", "CUS", "VUS":
		return "US", true
	}
	return v, dicomModalities[v]
}

// modalityCode reports whether v looks like a DICOM modality code (CS:
// capitals, digits, underscore, at most 16).
func modalityCode(v string) bool {
	if v == "" || len(v) > 16 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// orderAge is the patient's age from PID-7 at the order's date (see
// OrderEvents), or nil.
func orderAge(msg *Message, pid *located, g []located, received time.Time) *radgate.PatientAge {
	raw := strings.TrimSpace(value(pid.Segment, 7, 1, 1, 1))
	if digits, _, _ := strings.Cut(raw, "+"); len(strings.SplitN(digits, "-", 2)[0]) < 8 {
		return nil
	}
	birth, err := ParseTime(raw)
	if err != nil {
		return nil
	}
	at, field := received, "the time it came"
	for _, c := range []struct {
		seg   string
		field int
	}{{"OBR", 7}, {"TQ1", 7}, {"ORC", 9}} {
		if s := find(g, c.seg); s != nil {
			if t, err := ParseTime(value(s.Segment, c.field, 1, 1, 1)); err == nil {
				at, field = t, fmt.Sprintf("%s-%d", c.seg, c.field)
				break
			}
		}
	}
	if field == "the time it came" {
		if msh := msg.Segment("MSH"); msh != nil {
			if t, err := ParseTime(value(msh, 7, 1, 1, 1)); err == nil {
				at, field = t, "MSH-7"
			}
		}
	}
	if at.IsZero() {
		return nil
	}
	a, err := radgate.AgeAt(birth, at, "HL7 PID-7 at the order's date, "+field)
	if err != nil {
		return nil
	}
	return &a
}
