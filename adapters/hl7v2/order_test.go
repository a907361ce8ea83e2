package hl7v2

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/stretchr/testify/require"
)

func TestOrderEventORM(t *testing.T) {
	m := mustParse(t, readFixture(t, "orm_o01.hl7"))
	ev, err := OrderEvent(m)
	require.NoError(t, err)
	require.Equal(t, radgate.OrderEvent{
		Source:           "hl7v2",
		ResourceType:     "ORM",
		Accession:        &radgate.Identifier{Value: "ACC-778899"},
		StudyInstanceUID: "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
		ServiceRequest:   &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.7", Value: "PLC-1001"}},
		Patient:          &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.9", Value: "MRN12345"}},
		ProcedureCodes: []radgate.Coding{
			{System: "http://loinc.org", Code: "36643-5", Display: "XR Chest 2 Views"},
			{System: "http://radlex.org", Code: "RPID2474", Display: "XR CHEST PA AND LAT"},
		},
		Modalities: []string{"CR"},
		Facility:   "Saint Elsewhere Clinic",
		Priority:   "stat",
		// PID-7 19700101 at OBR-7 20240131: the age, not the birth date.
		Age: &radgate.PatientAge{Years: 54, Text: "54 y", From: "HL7 PID-7 at the order's date, OBR-7"},
	}, ev)
	key, err := radgate.OrderKey(ev)
	require.NoError(t, err)
	require.Equal(t, "acsn||ACC-778899", key)

	// Never a name or a birth date.
	b, _ := json.Marshal(ev)
	require.NotContains(t, string(b), "Doe")
	require.NotContains(t, string(b), "Jane")
	require.NotContains(t, string(b), "1970")

	now := time.Date(2024, 2, 1, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	ev, err = OrderOptions{AccessionSystem: "urn:oid:1.2.3.4.5", Authorities: Authorities{"HOSP": "https://hosp.example/mrn"},
		Now: func() time.Time { return now }}.OrderEvent(m)
	require.NoError(t, err)
	require.Equal(t, &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-778899"}, ev.Accession)
	require.Equal(t, "urn:oid:1.2.3.4.9", ev.Patient.Identifier.System, "an ISO OID wins over the namespace")
	require.Equal(t, now.UTC(), ev.ReceivedAt)
}

func TestOrderEventOMI(t *testing.T) {
	m := mustParse(t, readFixture(t, "omi_o23.hl7"))
	ev, err := OrderOptions{AccessionSystem: "urn:unused", Authorities: Authorities{"HOSP": "https://hosp.example/mrn"}}.OrderEvent(m)
	require.NoError(t, err)
	require.Equal(t, radgate.OrderEvent{
		Source:           "hl7v2",
		ResourceType:     "OMI",
		Accession:        &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-778899"},
		StudyInstanceUID: "1.2.3.4.5.6.7.8.9",
		ServiceRequest:   &radgate.Reference{Identifier: &radgate.Identifier{System: "EHR", Value: "PLC-1001"}},
		Patient:          &radgate.Reference{Identifier: &radgate.Identifier{System: "https://hosp.example/mrn", Value: "MRN12345"}},
		ProcedureCodes:   []radgate.Coding{{System: "http://loinc.org", Code: "36643-5", Display: "XR Chest 2 Views"}},
		Modalities:       []string{"DX", "CR"},
		Facility:         "HOSP",
		Priority:         "asap",
	}, ev)
}

// edit applies "PATH=RAW" edits (SetRaw) to a fixture, or removes a segment
// with "-SEG".
func edit(t *testing.T, fixture string, edits ...string) *Message {
	t.Helper()
	m := mustParse(t, readFixture(t, fixture))
	for _, e := range edits {
		if name, ok := strings.CutPrefix(e, "-"); ok {
			m.RemoveSegments(name)
			continue
		}
		path, raw, _ := strings.Cut(e, "=")
		require.NoError(t, m.SetRaw(path, raw), e)
	}
	return mustParse(t, m.String())
}

func TestOrderEventVariants(t *testing.T) {
	ev, err := OrderEvent(edit(t, "orm_o01.hl7", "-ZDS", "ORC-7=", "OBR-27=^^^^^R", "OBR-24=RAD", "ORC-21=", "ORC-2=", "PID-3=~X1^^^&2.16.840.1&ISO"))
	require.NoError(t, err)
	require.Equal(t, "", ev.StudyInstanceUID)
	require.Equal(t, "routine", ev.Priority, "OBR-27-6 when ORC-7 is empty")
	require.Empty(t, ev.Modalities, "RAD is a section, not a modality")
	require.Equal(t, "HOSP", ev.Facility, "MSH-4 without ORC-21")
	require.Equal(t, &radgate.Reference{Identifier: &radgate.Identifier{System: "urn:oid:1.2.3.4.7", Value: "PLC-1001"}}, ev.ServiceRequest, "OBR-2 without ORC-2")
	require.Equal(t, &radgate.Identifier{System: "urn:oid:2.16.840.1", Value: "X1"}, ev.Patient.Identifier, "first non-empty PID-3 without an MR")

	ev, err = OrderEvent(edit(t, "orm_o01.hl7", "OBR-18=", "ZDS-1=urn:oid:1.2.3^^Application^DICOM", "OBR-24=NMR", "ORC-7=^^^^^PRN"))
	require.NoError(t, err)
	require.Nil(t, ev.Accession)
	require.Equal(t, "1.2.3", ev.StudyInstanceUID, "a study UID alone is enough, urn:oid: stripped")
	require.Equal(t, []string{"MR"}, ev.Modalities)
	require.Equal(t, "", ev.Priority, "PRN has no FHIR priority")
	key, err := radgate.OrderKey(ev)
	require.NoError(t, err)
	require.Equal(t, "study|1.2.3", key)

	ev, err = OrderEvent(edit(t, "omi_o23.hl7", "IPC-1=", "IPC(2)-1=", "OBR-18=ACC-FALLBACK", "-TQ1", "ORC-7=^^^^^T"))
	require.NoError(t, err)
	require.Equal(t, &radgate.Identifier{Value: "ACC-FALLBACK"}, ev.Accession, "OMI falls back to OBR-18")
	require.Equal(t, "urgent", ev.Priority)

	// ISO 8859-1 text becomes UTF-8.
	latin := edit(t, "orm_o01.hl7", "MSH-18=8859/1", "ORC-21=Klinik K\xF6ln", "PID-3=M\xDCLLER-1^^^HOSP^MR")
	ev, err = OrderEvent(latin)
	require.NoError(t, err)
	require.Equal(t, "Klinik Köln", ev.Facility)
	require.Equal(t, "MÜLLER-1", ev.Patient.Identifier.Value)

	// Two orders in one message.
	m := mustParse(t, readFixture(t, "orm_o01.hl7"))
	two := mustParse(t, m.String()+"ORC|NW|PLC-2\rOBR|2|PLC-2||71045-5^XR Chest 1 View^LN||||||||||||||ACC-2\r")
	evs, err := OrderOptions{}.OrderEvents(two)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "ACC-2", evs[1].Accession.Value)
	require.Equal(t, "MRN12345", evs[1].Patient.Identifier.Value)
	require.Equal(t, "", evs[1].StudyInstanceUID, "ZDS belongs to the first order")
	_, err = OrderEvent(two)
	require.EqualError(t, err, "ORC(2): the message holds 2 orders; map it with OrderEvents")
}

func TestOrderEventErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		msg     *Message
		want    string
		loc     Location
		code    ErrorCode
		wrapped error
	}{
		{"no accession, no study", edit(t, "orm_o01.hl7", "OBR-18=", "-ZDS"),
			"OBR-18: no accession number (nor a Study Instance UID in ZDS-1)", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"explicit null accession", edit(t, "orm_o01.hl7", `OBR-18=""`, "ZDS-1="),
			"OBR-18: no accession number (nor a Study Instance UID in ZDS-1)", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"OMI without accession or study", edit(t, "omi_o23.hl7", "IPC-1=", "IPC(2)-1=", "IPC-3=", "IPC(2)-3="),
			"IPC-1: no accession number (nor a Study Instance UID in IPC-3)", Location{Segment: "IPC", Seq: 1, Field: 1}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"bad study UID", edit(t, "orm_o01.hl7", "ZDS-1=1.2.abc"),
			"ZDS-1: is not a DICOM UID: character 5 is not a digit or a dot", Location{Segment: "ZDS", Seq: 1, Field: 1}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"study UID with a leading zero", edit(t, "orm_o01.hl7", "ZDS-1=1.02.3"),
			`ZDS-1: is not a DICOM UID: component "02" has a leading zero`, Location{Segment: "ZDS", Seq: 1, Field: 1}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"IPC study UID too long", edit(t, "omi_o23.hl7", "IPC-3=1."+strings.Repeat("2", 70)),
			"IPC-3: is 72 characters long; a DICOM UID has at most 64", Location{Segment: "IPC", Seq: 1, Field: 3}, CodeDataTypeError, radgate.ErrInvalidOrder},
		// Identifiers: radgate.CheckIdentifier after unescaping.
		{"NUL in OBR-18", edit(t, "orm_o01.hl7", `OBR-18=ACC\X00\1`),
			"OBR-18: contains the control character U+0000 at character 4", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"start block in OBR-18", edit(t, "orm_o01.hl7", `OBR-18=ACC\X0B\1`),
			"OBR-18: contains the control character U+000B at character 4", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"end block and CR in OBR-18", edit(t, "orm_o01.hl7", `OBR-18=ACC\X1C0D\1`),
			"OBR-18: contains the control character U+001C at character 4", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"1 MB OBR-18", edit(t, "orm_o01.hl7", "OBR-18="+strings.Repeat("A", 1<<20)),
			"OBR-18: is 1048576 characters long; at most 64 are accepted", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"Latin-1 control character", edit(t, "orm_o01.hl7", "MSH-18=8859/1", `OBR-18=ACC\X85\`),
			"OBR-18: contains the control character U+0085 at character 4", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"invalid UTF-8", edit(t, "orm_o01.hl7", `OBR-18=ACC\XFF\`),
			"OBR-18: is not valid UTF-8", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"IPC-1 too long", edit(t, "omi_o23.hl7", "IPC-1="+strings.Repeat("9", 65), "IPC(2)-1="),
			"IPC-1: is 65 characters long; at most 64 are accepted", Location{Segment: "IPC", Seq: 1, Field: 1}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"IPC-1 authority with a control character", edit(t, "omi_o23.hl7", `IPC-1=ACC-1^RIS\X07\`, "IPC(2)-1="),
			"IPC-1-2: contains the control character U+0007 at character 4", Location{Segment: "IPC", Seq: 1, Field: 1, Comp: 2}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"placer order number with a tab", edit(t, "orm_o01.hl7", `ORC-2=PLC\X09\1^EHR`),
			"ORC-2: contains the control character U+0009 at character 4", Location{Segment: "ORC", Seq: 1, Field: 2}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"OBR-2 too long", edit(t, "orm_o01.hl7", "ORC-2=", "OBR-2="+strings.Repeat("P", 100)),
			"OBR-2: is 100 characters long; at most 64 are accepted", Location{Segment: "OBR", Seq: 1, Field: 2}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"patient identifier with a NUL", edit(t, "orm_o01.hl7", `PID-3=MRN\X00\^^^HOSP^MR`),
			"PID-3: contains the control character U+0000 at character 4", Location{Segment: "PID", Seq: 1, Field: 3}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"patient identifier too long, second repetition", edit(t, "orm_o01.hl7", "PID-3=~"+strings.Repeat("M", 65)+"^^^HOSP^MR"),
			"PID-3(2): is 65 characters long; at most 64 are accepted", Location{Segment: "PID", Seq: 1, Field: 3, Rep: 2}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"patient assigning authority too long", edit(t, "orm_o01.hl7", "PID-3=MRN1^^^&1."+strings.Repeat("1", 300)+"&ISO^MR"),
			"PID-3-4: is 310 characters long; at most 255 are accepted", Location{Segment: "PID", Seq: 1, Field: 3, Comp: 4}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"ordering facility with a control character", edit(t, "orm_o01.hl7", `ORC-21=Saint\X1B\Elsewhere`),
			"ORC-21: contains the control character U+001B at character 6", Location{Segment: "ORC", Seq: 1, Field: 21}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"sending facility too long", edit(t, "orm_o01.hl7", "ORC-21=", "MSH-4="+strings.Repeat("H", 80)),
			"MSH-4: is 80 characters long; at most 64 are accepted", Location{Segment: "MSH", Seq: 1, Field: 4}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"conflicting IPC", edit(t, "omi_o23.hl7", "IPC(2)-3=1.2.3"),
			"IPC(2)-3: Study Instance UID differs from that of IPC-3: one order, one study", Location{Segment: "IPC", Seq: 2, Field: 3}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"conflicting accession", edit(t, "omi_o23.hl7", "IPC(2)-1=OTHER"),
			"IPC(2)-1: accession number differs from that of IPC-1: one order, one accession", Location{Segment: "IPC", Seq: 2, Field: 1}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"bad modality", edit(t, "omi_o23.hl7", "IPC-5=Chest X-ray"),
			`IPC-5: modality "CHEST X-RAY" is not a DICOM modality code`, Location{Segment: "IPC", Seq: 1, Field: 5}, CodeDataTypeError, radgate.ErrInvalidOrder},
		{"no patient id", edit(t, "orm_o01.hl7", "PID-3=^^^HOSP^MR"),
			"PID-3: no patient identifier", Location{Segment: "PID", Seq: 1, Field: 3}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"no PID", edit(t, "orm_o01.hl7", "-PID"),
			"PID: segment missing", Location{Segment: "PID", Seq: 1}, CodeSegmentSequence, radgate.ErrInvalidOrder},
		{"no ORC", edit(t, "orm_o01.hl7", "-ORC"),
			"ORC: segment missing", Location{Segment: "ORC", Seq: 1}, CodeSegmentSequence, radgate.ErrInvalidOrder},
		{"no OBR", edit(t, "orm_o01.hl7", "-OBR"),
			"OBR: segment missing after ORC", Location{Segment: "OBR", Seq: 1}, CodeSegmentSequence, radgate.ErrInvalidOrder},
		{"no procedure code", edit(t, "orm_o01.hl7", "OBR-4=^XR Chest"),
			"OBR-4: no procedure code", Location{Segment: "OBR", Seq: 1, Field: 4}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"no order control", edit(t, "orm_o01.hl7", "ORC-1="),
			"ORC-1: missing order control", Location{Segment: "ORC", Seq: 1, Field: 1}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"hold", edit(t, "orm_o01.hl7", "ORC-1=HD"),
			`ORC-1: order control "HD" is not a new, changed or cancelled order (NW, XO, XX, SC, SN; CA, DC, OC, OD, CR, DR)`, Location{Segment: "ORC", Seq: 1, Field: 1}, CodeUnsupportedEventCode, ErrOrderControl},
		{"cancel without accession or study", edit(t, "orm_o01.hl7", "ORC-1=CA", "OBR-18=", "-ZDS"),
			"OBR-18: no accession number (nor a Study Instance UID in ZDS-1)", Location{Segment: "OBR", Seq: 1, Field: 18}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"status change without order status", edit(t, "orm_o01.hl7", "ORC-1=SC", "ORC-5=", "OBR-4="),
			"OBR-4: no procedure code", Location{Segment: "OBR", Seq: 1, Field: 4}, CodeRequiredFieldMissing, radgate.ErrInvalidOrder},
		{"ADT", edit(t, "orm_o01.hl7", "MSH-9=ADT^A01"),
			`MSH-9: message type "ADT^A01": want ORM^O01 or OMI^O23`, Location{Segment: "MSH", Seq: 1, Field: 9}, CodeUnsupportedMessageType, ErrUnsupportedMessage},
		{"ORM of another event", edit(t, "orm_o01.hl7", "MSH-9=ORM^O02"),
			`MSH-9: message type "ORM^O02": want ORM^O01 or OMI^O23`, Location{Segment: "MSH", Seq: 1, Field: 9}, CodeUnsupportedEventCode, ErrUnsupportedMessage},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := OrderEvent(c.msg)
			require.EqualError(t, err, c.want)
			require.ErrorIs(t, err, c.wrapped)
			var e *Error
			require.True(t, errors.As(err, &e))
			require.Equal(t, c.loc, e.Loc)
			require.Equal(t, c.code, e.Code)
		})
	}
}

// TestOrderEventCancel: ORC-1 CA, DC, OC, OD, CR and DR (and SC with
// ORC-5 CA or DC) cancel the very order the NW placed: same order key.
func TestOrderEventCancel(t *testing.T) {
	opts := OrderOptions{AccessionSystem: "http://hosp.example/acsn"}
	key := func(ev radgate.OrderEvent) string {
		t.Helper()
		k, err := radgate.OrderKey(ev)
		require.NoError(t, err)
		return k
	}
	nw, err := opts.OrderEvent(mustParse(t, readFixture(t, "orm_o01.hl7")))
	require.NoError(t, err)
	require.Equal(t, radgate.ActionOrder, nw.Action)
	require.Empty(t, nw.Reason)

	for _, c := range []struct {
		edits  []string
		reason string
	}{
		{[]string{"ORC-1=CA"}, "HL7 ORC-1 CA"},
		{[]string{"ORC-1=dc"}, "HL7 ORC-1 DC"},
		{[]string{"ORC-1=OC", "ORC-5=CA"}, "HL7 ORC-1 OC"},
		{[]string{"ORC-1=OD"}, "HL7 ORC-1 OD"},
		{[]string{"ORC-1=CR"}, "HL7 ORC-1 CR"},
		{[]string{"ORC-1=DR"}, "HL7 ORC-1 DR"},
		{[]string{"ORC-1=SC", "ORC-5=CA"}, "HL7 ORC-1 SC, ORC-5 CA"},
		{[]string{"ORC-1=SC", "ORC-5=DC"}, "HL7 ORC-1 SC, ORC-5 DC"},
		// A bare cancellation: identifiers, no procedure, no priority.
		{[]string{"ORC-1=CA", "OBR-4=", "ORC-7=", "OBR-24=", "ORC-5=", "-PV1"}, "HL7 ORC-1 CA"},
	} {
		t.Run(c.reason+" "+strings.Join(c.edits, " "), func(t *testing.T) {
			ev, err := opts.OrderEvent(edit(t, "orm_o01.hl7", c.edits...))
			require.NoError(t, err)
			require.Equal(t, radgate.ActionCancel, ev.Action)
			require.Equal(t, c.reason, ev.Reason)
			require.Equal(t, key(nw), key(ev), "the same order as the NW")
			require.Equal(t, nw.ServiceRequest, ev.ServiceRequest)
			require.Equal(t, nw.StudyInstanceUID, ev.StudyInstanceUID)
			require.False(t, ev.StudyComplete)
		})
	}

	// OMI: keyed by IPC-1, as its NW.
	omiNW, err := opts.OrderEvent(mustParse(t, readFixture(t, "omi_o23.hl7")))
	require.NoError(t, err)
	omiCA, err := opts.OrderEvent(edit(t, "omi_o23.hl7", "ORC-1=DC", "OBR-4="))
	require.NoError(t, err)
	require.Equal(t, radgate.ActionCancel, omiCA.Action)
	require.Equal(t, "HL7 ORC-1 DC", omiCA.Reason)
	require.Equal(t, key(omiNW), key(omiCA))

	// Keyed by the study UID when there is no accession number.
	byUID, err := opts.OrderEvent(edit(t, "orm_o01.hl7", "ORC-1=CA", "OBR-18="))
	require.NoError(t, err)
	require.Equal(t, "study|1.2.840.113619.2.55.3.604688119.969.1268071029.320", key(byUID))

	// Several orders, one cancelled.
	m := mustParse(t, readFixture(t, "orm_o01.hl7")+"ORC|CA|PLC-2\rOBR|2|PLC-2||||||||||||||||ACC-2\r")
	evs, err := opts.OrderEvents(m)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, radgate.ActionOrder, evs[0].Action)
	require.Equal(t, radgate.ActionCancel, evs[1].Action)
	require.Equal(t, "ACC-2", evs[1].Accession.Value)
}

// TestOrderEventStatus: which ORC-5 (table 0038) and OBR-25 (table 0123)
// codes announce the study complete; XO is an update; S is urgent.
func TestOrderEventStatus(t *testing.T) {
	for _, c := range []struct {
		edits    []string
		complete bool
	}{
		{nil, false}, // the fixture: NW, ORC-5 SC (scheduled)
		{[]string{"ORC-1=SC", "ORC-5=CM"}, true},
		{[]string{"ORC-1=SC", "ORC-5=cm"}, true},
		{[]string{"ORC-1=XO", "ORC-5=CM"}, true},
		{[]string{"ORC-1=SC", "ORC-5=IP"}, false},
		{[]string{"ORC-1=SC", "ORC-5=A"}, false},
		{[]string{"ORC-1=SC", "ORC-5=SC"}, false},
		{[]string{"ORC-1=SC", "ORC-5=HD"}, false},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=R"}, true},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=P"}, true},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=F"}, true},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=C"}, true},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=S"}, false}, // scheduled, not done
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=I"}, false}, // procedure incomplete
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=O"}, false},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=A"}, false},
		{[]string{"ORC-1=SC", "ORC-5=", "OBR-25=X"}, false},
		{[]string{"ORC-1=SC", "ORC-5=SC", "OBR-25=F"}, true},
	} {
		t.Run(strings.Join(c.edits, " "), func(t *testing.T) {
			ev, err := OrderEvent(edit(t, "orm_o01.hl7", c.edits...))
			require.NoError(t, err)
			require.Equal(t, radgate.ActionOrder, ev.Action, "a status update, not a cancellation")
			require.Equal(t, c.complete, ev.StudyComplete)
			require.Zero(t, ev.InstanceCount, "HL7 v2 orders announce no instance count")
		})
	}

	// OMI too.
	ev, err := OrderEvent(edit(t, "omi_o23.hl7", "ORC-1=SC", "ORC-5=CM"))
	require.NoError(t, err)
	require.True(t, ev.StudyComplete)

	// XO changes the order: an update with the new values.
	nw, err := OrderEvent(mustParse(t, readFixture(t, "orm_o01.hl7")))
	require.NoError(t, err)
	xo, err := OrderEvent(edit(t, "orm_o01.hl7", "ORC-1=XO", "OBR-4=71045-5^XR Chest 1 View^LN", "ORC-7=^^^^^R"))
	require.NoError(t, err)
	require.Equal(t, radgate.ActionOrder, xo.Action)
	require.Empty(t, xo.Reason)
	require.Equal(t, "71045-5", xo.ProcedureCodes[0].Code)
	require.Equal(t, "routine", xo.Priority)
	k1, _ := radgate.OrderKey(nw)
	k2, _ := radgate.OrderKey(xo)
	require.Equal(t, k1, k2, "the same order")

	// Priority S (stat) is urgent, wherever it is given.
	for _, edits := range [][]string{
		{"ORC-7=^^^^^S"},
		{"ORC-7=", "OBR-27=^^^^^S"},
		{"ORC-7=^^^^^R", "OBR-27=^^^^^R", "ORC-1=SC"},
	} {
		ev, err := OrderEvent(edit(t, "orm_o01.hl7", edits...))
		require.NoError(t, err)
		want := radgate.PriorityUrgent
		if edits[0] == "ORC-7=^^^^^R" {
			want = radgate.PriorityRoutine
		}
		require.Equal(t, want, radgate.PriorityClass(ev.Priority), "%v: %q", edits, ev.Priority)
	}
	ev, err = OrderEvent(edit(t, "omi_o23.hl7", "TQ1-9=S"))
	require.NoError(t, err)
	require.Equal(t, "stat", ev.Priority)
	require.Equal(t, radgate.PriorityUrgent, radgate.PriorityClass(ev.Priority), "TQ1-9 S")
}

// The patient's age comes from PID-7 at the order's date (OBR-7, else
// TQ1-7, else ORC-9, else MSH-7); a birth date too coarse, unreadable or
// after that date gives none and never refuses the order.
func TestOrderEventAge(t *testing.T) {
	fixture := readFixture(t, "orm_o01.hl7")
	for _, tc := range []struct {
		name     string
		edit     func(string) string
		want     *radgate.PatientAge
		received time.Time
	}{
		{"a child of 4 at OBR-7", pid7("20191115"), &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, OBR-7"}, time.Time{}},
		{"5 y 11 m is 5", pid7("20180301"), &radgate.PatientAge{Years: 5, Text: "5 y", From: "HL7 PID-7 at the order's date, OBR-7"}, time.Time{}},
		{"with a time and zone", pid7("201911150830+0100"), &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, OBR-7"}, time.Time{}},
		{"an infant: months", pid7("20230615"), &radgate.PatientAge{Years: 0, Text: "7 m", From: "HL7 PID-7 at the order's date, OBR-7"}, time.Time{}},
		{"no OBR-7: ORC-9", func(s string) string {
			s = pid7("20191115")(s)
			s = strings.Replace(s, "|||20240131150000||||||Cough", "|||||||||Cough", 1)
			return strings.Replace(s, "||||||||||||||Saint", "||20240301||||||||||||Saint", 1)
		}, &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, ORC-9"}, time.Time{}},
		{"no order date: MSH-7", func(s string) string {
			return strings.Replace(pid7("20191115")(s), "|||20240131150000||||||Cough", "|||||||||Cough", 1)
		}, &radgate.PatientAge{Years: 4, Text: "4 y", From: "HL7 PID-7 at the order's date, MSH-7"}, time.Time{}},
		{"a year alone is too coarse", pid7("2019"), nil, time.Time{}},
		{"not a date", pid7("2019111X"), nil, time.Time{}},
		{"born after the order", pid7("20250101"), nil, time.Time{}},
		{"no PID-7", pid7(""), nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.edit(fixture)
			ev, err := OrderEvent(mustParse(t, src))
			require.NoError(t, err, "a birth date never refuses an order")
			require.Equal(t, tc.want, ev.Age)
			b, _ := json.Marshal(ev)
			require.NotContains(t, string(b), "2019", "never the birth date")
		})
	}
}

// pid7 replaces the fixture's PID-7.
func pid7(v string) func(string) string {
	return func(s string) string { return strings.Replace(s, "||19700101|F", "||"+v+"|F", 1) }
}
