package hl7v2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// fakeRecorder records verdicts as the governance recorder would: known
// accession numbers have a scored result; err, when set, fails every call.
type fakeRecorder struct {
	mu       sync.Mutex
	verdicts []radgate.Verdict
	known    map[string]string // accession value → order id
	err      error
}

func newFakeRecorder() *fakeRecorder {
	return &fakeRecorder{known: map[string]string{"ACC-778899": "ord-1"}}
}

func (f *fakeRecorder) Record(_ context.Context, v radgate.Verdict) (radgate.VerdictReceipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return radgate.VerdictReceipt{}, f.err
	}
	if v.Accession == nil {
		return radgate.VerdictReceipt{}, fmt.Errorf("study %s: %w", v.StudyInstanceUID, radgate.ErrUnknownResult)
	}
	order, ok := f.known[v.Accession.Value]
	if !ok {
		return radgate.VerdictReceipt{}, fmt.Errorf("accession %s: %w", v.Accession.Value, radgate.ErrUnknownResult)
	}
	f.verdicts = append(f.verdicts, v)
	return radgate.VerdictReceipt{OrderID: order, Engines: []string{"pneumonia-cxr"}}, nil
}

func (f *fakeRecorder) Verdicts() []radgate.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]radgate.Verdict(nil), f.verdicts...)
}

var verdictNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestVerdictsFromORU(t *testing.T) {
	vs, err := VerdictsFromORU(edit(t, "oru_r01_ris.hl7"), VerdictOptions{AccessionSystem: "http://hosp.example/acsn", Now: func() time.Time { return verdictNow }})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, radgate.Verdict{
		Source: radgate.SourceHL7v2, ReadID: "FIL-2002", ReceivedAt: verdictNow,
		Accession: &radgate.Identifier{System: "http://hosp.example/acsn", Value: "ACC-778899"},
		Finding:   radgate.FindingPresent,
		Code:      &radgate.Coding{System: fhir.SystemSNOMED, Code: "233604007", Display: "Pneumonia"},
		Reader:    &radgate.Reference{Identifier: &radgate.Identifier{System: "HOSP", Value: "RAD-17"}},
		Text:      "Right lower lobe consolidation.\nNo effusion.",
	}, vs[0].Verdict)

	// Coded absence (SNM, the alternate coding), corrected; reader from
	// OBX-16; read id from ORC-3, then MSH-10.
	vs, err = VerdictsFromORU(edit(t, "oru_r01_ris.hl7", "OBX-5=X^local^99LOC^260413007^None^SNM", "OBR-25=C", "OBR-32=", "OBR-3="), VerdictOptions{})
	require.NoError(t, err)
	v := vs[0].Verdict
	require.Equal(t, radgate.FindingAbsent, v.Finding)
	require.Equal(t, "FIL-2002", v.ReadID)
	require.Equal(t, &radgate.Reference{Identifier: &radgate.Identifier{Value: "RAD-17"}}, v.Reader)
	vs, err = VerdictsFromORU(edit(t, "oru_r01_ris.hl7", "OBR-3=", "ORC-3="), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "ORU0001", vs[0].Verdict.ReadID)

	// Text only: unlabelled, never guessed.
	vs, err = VerdictsFromORU(edit(t, "oru_r01_ris.hl7", "OBX-2=TX", "OBX-5=Pneumonia likely"), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, radgate.FindingUnlabelled, vs[0].Verdict.Finding)
	require.Nil(t, vs[0].Verdict.Code)
	require.Equal(t, "Pneumonia likely\nRight lower lobe consolidation.\nNo effusion.", vs[0].Verdict.Text)

	// Study UID instead of an accession number.
	m := edit(t, "oru_r01_ris.hl7", "OBR-18=")
	z := m.AddSegment("ZDS")
	require.NoError(t, z.SetComponents(1, "1.2.840.99.7"))
	vs, err = VerdictsFromORU(mustParse(t, m.String()), VerdictOptions{})
	require.NoError(t, err)
	require.Equal(t, "1.2.840.99.7", vs[0].Verdict.StudyInstanceUID)

	// Preliminary: not a verdict (yet).
	vs, err = VerdictsFromORU(edit(t, "oru_r01_ris.hl7", "OBR-25=P"), VerdictOptions{})
	require.NoError(t, err)
	require.Contains(t, vs[0].NotVerdict, "result status P")
}

func TestVerdictsFromORURefusals(t *testing.T) {
	for name, c := range map[string]struct {
		edits []string
		want  ErrorDetail
	}{
		"unknown code": {[]string{"OBX-5=60046008^Pleural effusion^SCT"},
			ErrorDetail{Loc: Location{Segment: "OBX", Seq: 1, Field: 5}, Code: CodeTableValueNotFound, Message: "OBX-5: code 60046008 (SCT) is not a known verdict code"}},
		"conflict": {[]string{"OBX(2)-2=CWE", "OBX(2)-5=373572006^Clinical finding absent^SCT"},
			ErrorDetail{Loc: Location{Segment: "OBX", Seq: 2, Field: 5}, Code: CodeDataTypeError,
				Message: "OBX(2)-5: code 373572006 says absent where OBX-5 says present (233604007): one read, one finding"}},
		"no key": {[]string{"OBR-18="},
			ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeRequiredFieldMissing,
				Message: "OBR-18: no accession number (nor a Study Instance UID in ZDS-1): radgate cannot tell which AI result the verdict is about"}},
		"no reader": {[]string{"OBR-32=", "OBX-16="},
			ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 32}, Code: CodeRequiredFieldMissing,
				Message: "OBR-32: no reader: neither the principal result interpreter (OBR-32) nor a responsible observer (OBX-16) has an ID number; a verdict is a radiologist's read"}},
		"no status": {[]string{"OBR-25="},
			ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 25}, Code: CodeRequiredFieldMissing,
				Message: "OBR-25: no result status: a verdict is a final (F) or corrected (C) result"}},
		"no conclusion": {[]string{"-OBX"},
			ErrorDetail{Loc: Location{Segment: "OBX", Seq: 1}, Code: CodeRequiredFieldMissing,
				Message: "OBX: no coded (CE, CWE) or text (TX, FT, ST) observation value: a verdict needs the reader's conclusion"}},
		"control char": {[]string{`OBR-18=ACC\X00\1`},
			ErrorDetail{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeDataTypeError, Message: "OBR-18: contains the control character U+0000 at character 4"}},
	} {
		_, err := VerdictsFromORU(edit(t, "oru_r01_ris.hl7", c.edits...), VerdictOptions{})
		require.ErrorIs(t, err, radgate.ErrInvalidVerdict, name)
		d := ErrorDetailOf(err)
		d.Severity = ""
		require.Equal(t, c.want, d, name)
	}
}

func TestVerdictsFromORUOwn(t *testing.T) {
	// radgate's own ORU, as ORU() writes it: never a verdict, whatever its
	// sending application.
	own, err := ORU(sampleResult(), ORUOptions{Time: time.Unix(0, 0)})
	require.NoError(t, err)
	_, err = VerdictsFromORU(own, VerdictOptions{})
	require.ErrorIs(t, err, ErrNotVerdictMessage)
	renamed, err := ORU(sampleResult(), ORUOptions{Time: time.Unix(0, 0), SendingApplication: HD{Namespace: "AI-GW"}})
	require.NoError(t, err)
	_, err = VerdictsFromORU(renamed, VerdictOptions{})
	require.ErrorIs(t, err, ErrNotVerdictMessage, "OBR-20 is a radgate result id")
	_, err = VerdictsFromORU(edit(t, "oru_r01_ris.hl7", "MSH-3=AI-GW"), VerdictOptions{OwnApplications: []string{"AI-GW"}})
	require.ErrorIs(t, err, ErrNotVerdictMessage)
}

func verdictHandler(rec radgate.VerdictRecorder, logs *bytes.Buffer) Handler {
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := IntakeOptions{Logger: logger, Order: OrderOptions{AccessionSystem: "http://hosp.example/acsn"}}
	if rec != nil {
		opts.Verdicts = rec
	}
	return NewIntakeHandler(&fakeIntake{}, opts)
}

func ackOf(t *testing.T, h Handler, m *Message) Ack {
	t.Helper()
	a, err := ReadACK(mustParse(t, h(t.Context(), m).String()))
	require.NoError(t, err)
	return a
}

func TestIntakeVerdicts(t *testing.T) {
	rec := newFakeRecorder()
	var logs bytes.Buffer
	h := verdictHandler(rec, &logs)

	a := ackOf(t, h, edit(t, "oru_r01_ris.hl7"))
	require.Equal(t, AA, a.Code, "%v", a.Errors)
	require.Equal(t, "ORU0001", a.ControlID)
	require.Len(t, rec.Verdicts(), 1)

	// Unknown code: AE naming OBX-5, nothing recorded.
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7", "OBX-5=X1^Odd^SCT"))
	require.Equal(t, AE, a.Code)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "OBX", Seq: 1, Field: 5}, Code: CodeTableValueNotFound, Severity: SeverityError,
		Message: "OBX-5: code X1 (SCT) is not a known verdict code"}}, a.Errors)

	// Unknown result: AE 204 at OBR-18, naming it.
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7", "OBR-18=ACC-NONE"))
	require.Equal(t, AE, a.Code)
	require.Equal(t, []ErrorDetail{{Loc: Location{Segment: "OBR", Seq: 1, Field: 18}, Code: CodeUnknownKeyIdentifier, Severity: SeverityError,
		Message: "no AI result for this verdict (accession ACC-NONE, filler order FIL-2002): unknown to radgate, or its study not scored yet; nothing was recorded"}}, a.Errors)

	// Free text: AA, unlabelled.
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7", "-OBX", "OBR-32=RAD-17"))
	require.Equal(t, AE, a.Code, "no OBX at all")
	m := edit(t, "oru_r01_ris.hl7", "OBX-2=FT", "OBX-5=Consolidation\\.br\\likely infection")
	a = ackOf(t, h, m)
	require.Equal(t, AA, a.Code, "%v", a.Errors)
	vs := rec.Verdicts()
	require.Equal(t, radgate.FindingUnlabelled, vs[len(vs)-1].Finding)

	// Preliminary and radgate's own: AA with an informational ERR.
	n := len(rec.Verdicts())
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7", "OBR-25=P"))
	require.Equal(t, AA, a.Code)
	require.Len(t, a.Errors, 1)
	require.Equal(t, SeverityInformation, a.Errors[0].Severity)
	require.Equal(t, CodeSuccess, a.Errors[0].Code)
	require.Contains(t, a.Errors[0].Message, "result status P")
	own, err := ORU(sampleResult(), ORUOptions{Time: time.Unix(0, 0)})
	require.NoError(t, err)
	a = ackOf(t, h, own)
	require.Equal(t, AA, a.Code)
	require.Contains(t, a.Errors[0].Message, "radgate's own ORU")
	require.Len(t, rec.Verdicts(), n, "nothing recorded")

	// Transient: AR, the recorder's text not shown.
	rec.err = errors.New("nats: timeout on radgate_labels")
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7"))
	require.Equal(t, AR, a.Code)
	require.Equal(t, CodeInternalError, a.Errors[0].Code)
	require.NotContains(t, a.Errors[0].Message, "nats")

	// Invalid per the recorder: AE.
	rec.err = fmt.Errorf("%w: engine retired", radgate.ErrInvalidVerdict)
	a = ackOf(t, h, edit(t, "oru_r01_ris.hl7"))
	require.Equal(t, AE, a.Code)
	require.Contains(t, a.Errors[0].Message, "engine retired")

	require.NotContains(t, logs.String(), "Doe", "no patient name in the log")
	require.NotContains(t, logs.String(), "House", "no reader name in the log")
	require.NotContains(t, logs.String(), "consolidation", "no report text in the log")
}

func TestIntakeVerdictsDisabled(t *testing.T) {
	a := ackOf(t, verdictHandler(nil, nil), edit(t, "oru_r01_ris.hl7"))
	require.Equal(t, AR, a.Code)
	require.Equal(t, Location{Segment: "MSH", Seq: 1, Field: 9}, a.Errors[0].Loc)
	require.True(t, strings.Contains(a.Errors[0].Message, "verdicts are not enabled"), a.Errors[0].Message)
}
