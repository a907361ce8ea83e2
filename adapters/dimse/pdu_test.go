package dimse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/uid"
)

func sampleRQ() *assocPDU {
	return &assocPDU{
		ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "MODALITY1", AppContext: ApplicationContext,
		Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: StorageSOPClasses[0], TransferSyntaxes: []string{JPEGBaseline8Bit, ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
		},
		User: userInfo{
			MaxPDULength: 16384, ImplClassUID: "1.2.3.4", ImplVersion: "TEST_1",
			HasAsync: true, AsyncInvoked: 5, AsyncPerf: 5,
			Roles:    []RoleSelection{{SOPClassUID: StorageSOPClasses[0], Role: Role{SCU: false, SCP: true}}},
			Identity: &UserIdentity{Type: UserIdentityUsernamePasscode, PositiveResponseRequested: true, Primary: []byte("alice"), Secondary: []byte("s3cret")},
		},
	}
}

func decodeWhole(t *testing.T, b []byte) (byte, []byte) {
	t.Helper()
	typ, body, err := readPDU(bytes.NewReader(b), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return typ, body
}

func TestAssociateRQRoundTrip(t *testing.T) {
	want := sampleRQ()
	typ, body := decodeWhole(t, encodeAssoc(want, true))
	if typ != pduAssociateRQ {
		t.Fatalf("type 0x%02x", typ)
	}
	got, err := decodeAssoc(body, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestAssociateACRoundTrip(t *testing.T) {
	rq := sampleRQ()
	ac := acceptPDU(rq, requestFromPDU(rq, nil), ContextPolicy{}, true, 32768)
	typ, body := decodeWhole(t, encodeAssoc(ac, false))
	if typ != pduAssociateAC {
		t.Fatalf("type 0x%02x", typ)
	}
	got, err := decodeAssoc(body, false)
	if err != nil {
		t.Fatal(err)
	}
	// AC contexts carry no abstract syntax on the wire.
	for i := range ac.Contexts {
		ac.Contexts[i].AbstractSyntax = ""
	}
	if len(got.User.IdentityResponse) == 0 && len(ac.User.IdentityResponse) == 0 {
		got.User.IdentityResponse, ac.User.IdentityResponse = nil, nil
	}
	if !reflect.DeepEqual(got, ac) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ac)
	}
	if !got.User.HasAsync || got.User.AsyncInvoked != 1 || got.User.AsyncPerf != 1 {
		t.Errorf("async window answered %d/%d, want 1/1", got.User.AsyncInvoked, got.User.AsyncPerf)
	}
	if len(got.User.Roles) != 1 || got.User.Roles[0].SCP || got.User.Roles[0].SCU {
		t.Errorf("role selection answered %+v, want SCP refused", got.User.Roles)
	}
	if !got.User.HasIdentityResponse {
		t.Error("positive user identity response missing")
	}
}

func TestSmallPDURoundTrips(t *testing.T) {
	for _, rj := range []Reject{RejectCalledAENotRecognized, RejectCallingAENotRecognized, RejectTemporaryCongestion, RejectLocalLimitExceeded, RejectNoReasonGiven} {
		typ, body := decodeWhole(t, encodeReject(rj))
		got, err := decodeReject(body)
		if typ != pduAssociateRJ || err != nil || got != rj {
			t.Errorf("reject %v: got %v (type %d, %v)", rj, got, typ, err)
		}
	}
	ab := Abort{Source: AbortServiceProvider, Reason: AbortInvalidPDUParameter}
	typ, body := decodeWhole(t, encodeAbort(ab))
	if got, err := decodeAbort(body); typ != pduAbort || err != nil || got != ab {
		t.Errorf("abort: got %v (%v)", got, err)
	}
	for _, rt := range []byte{pduReleaseRQ, pduReleaseRP} {
		typ, body := decodeWhole(t, encodeRelease(rt))
		if typ != rt || len(body) != 4 {
			t.Errorf("release 0x%02x: got 0x%02x, %d bytes", rt, typ, len(body))
		}
	}
	if s := RejectCalledAENotRecognized.String(); !strings.Contains(s, "called-AE-title-not-recognized") || !strings.Contains(s, "permanent") {
		t.Errorf("Reject.String: %s", s)
	}
}

func TestPDataRoundTrip(t *testing.T) {
	var b []byte
	b = appendPDataHeader(b, 5, true, false, 3)
	b = append(b, 1, 2, 3)
	typ, body := decodeWhole(t, b)
	pdvs, err := parsePData(body, nil)
	if typ != pduPData || err != nil || len(pdvs) != 1 {
		t.Fatalf("got %d PDVs, %v", len(pdvs), err)
	}
	if p := pdvs[0]; p.ContextID != 5 || !p.Command || p.Last || !bytes.Equal(p.Data, []byte{1, 2, 3}) {
		t.Errorf("PDV %+v", p)
	}
	// Two PDVs in one PDU.
	body = []byte{0, 0, 0, 3, 1, 0x02, 9, 0, 0, 0, 2, 3, 0x03}
	pdvs, err = parsePData(body, nil)
	if err != nil || len(pdvs) != 2 || !pdvs[0].Last || pdvs[0].Command || !pdvs[1].Command || len(pdvs[1].Data) != 0 {
		t.Errorf("two PDVs: %+v, %v", pdvs, err)
	}
	for name, bad := range map[string][]byte{
		"empty":       {},
		"cut header":  {0, 0, 0},
		"length 1":    {0, 0, 0, 1, 1, 0},
		"beyond":      {0, 0, 0, 9, 1, 0, 1},
		"bad mch":     {0, 0, 0, 2, 1, 0x04},
		"huge length": {0xff, 0xff, 0xff, 0xff, 1, 0},
	} {
		if _, err := parsePData(bad, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadPDUBound(t *testing.T) {
	hdr := appendPDUHeader(nil, pduPData, 1<<30)
	_, _, err := readPDU(bytes.NewReader(hdr), 16384, nil)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Reason != AbortInvalidPDUParameter || !strings.Contains(err.Error(), ErrPDUTooLarge.Error()) {
		t.Fatalf("oversized PDU: %v", err)
	}
	// A length at the bound is read.
	b := append(appendPDUHeader(nil, pduPData, 8), make([]byte, 8)...)
	if _, body, err := readPDU(bytes.NewReader(b), 8, nil); err != nil || len(body) != 8 {
		t.Errorf("PDU at the bound: %v", err)
	}
	if _, _, err := readPDU(bytes.NewReader([]byte{0x09, 0, 0, 0, 0, 0}), 8, nil); !errors.As(err, &pe) || pe.Reason != AbortUnrecognizedPDU {
		t.Errorf("unknown type: %v", err)
	}
	if _, _, err := readPDU(bytes.NewReader(b[:10]), 8, nil); err == nil {
		t.Error("truncated body accepted")
	}
}

func TestCommandRoundTrip(t *testing.T) {
	c := NewCommand(CStoreRQ)
	c.SetUint16(TagMessageID, 7)
	c.SetString(TagAffectedSOPClassUID, StorageSOPClasses[0]) // odd length: padded
	c.SetString(TagAffectedSOPInstanceUID, "1.2.3.4")
	c.SetUint16(TagPriority, PriorityHigh)
	c.SetUint16(TagCommandDataSetType, DataSetPresent)
	c.SetString(TagMoveOriginatorAETitle, "MOVER")
	b := c.Encode()
	if binary.LittleEndian.Uint32(b[8:]) != uint32(len(b)-12) {
		t.Errorf("CommandGroupLength %d, want %d", binary.LittleEndian.Uint32(b[8:]), len(b)-12)
	}
	got, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Error("re-encoding differs")
	}
	if got.Field() != CStoreRQ || got.String(TagAffectedSOPClassUID) != StorageSOPClasses[0] || got.String(TagMoveOriginatorAETitle) != "MOVER" || !got.HasDataSet() {
		t.Errorf("decoded %+v", got)
	}
	if id, _ := got.Uint16(TagMessageID); id != 7 {
		t.Errorf("message ID %d", id)
	}
	for name, bad := range map[string][]byte{
		"wrong group":   {8, 0, 0x16, 0, 0, 0, 0, 0},
		"cut":           b[:len(b)-1],
		"no field":      NewCommandWithout(TagCommandField),
		"bad US length": {0, 0, 0, 1, 1, 0, 0, 0, 1},
	} {
		if _, err := DecodeCommand(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// NewCommandWithout encodes a C-ECHO-RQ without one element.
func NewCommandWithout(el uint16) []byte {
	c := NewCommand(CEchoRQ)
	c.SetUint16(TagMessageID, 1)
	c.Delete(el)
	return c.Encode()
}

func TestStatusClasses(t *testing.T) {
	for _, c := range []struct {
		s                    Status
		ok, warn, fail, pend bool
	}{
		{StatusSuccess, true, false, false, false},
		{StatusAttributeListError, false, true, false, false},
		{StatusCoercionOfDataElements, false, true, false, false},
		{StatusOutOfResources, false, false, true, false},
		{0xA7FF, false, false, true, false},
		{StatusDataSetDoesNotMatch, false, false, true, false},
		{StatusCannotUnderstand, false, false, true, false},
		{StatusPending, false, false, false, true},
	} {
		if c.s.IsSuccess() != c.ok || c.s.IsWarning() != c.warn || c.s.IsFailure() != c.fail || c.s.IsPending() != c.pend {
			t.Errorf("%s: classified wrong", c.s)
		}
	}
	if s := StatusOutOfResources.String(); s != "refused: out of resources (0xA700)" {
		t.Errorf("String: %s", s)
	}
}

func TestNegotiateChoices(t *testing.T) {
	ct := StorageSOPClasses[7]
	proposed := []PresentationContext{
		{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: ct, TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}},
		{ID: 5, AbstractSyntax: ct, TransferSyntaxes: []string{JPEG2000Lossless}},
		{ID: 7, AbstractSyntax: ct, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.100"}}, // MPEG2: not ours
		{ID: 9, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 10, AbstractSyntax: ct, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: ct, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
	}
	want := []struct {
		result byte
		ts     string
	}{
		{ContextAccepted, ImplicitVRLittleEndian},
		{ContextAccepted, ExplicitVRLittleEndian}, // ours first, whatever the proposal's order
		{ContextAccepted, JPEG2000Lossless},       // compressed: as received
		{ContextTransferSyntaxUnsupported, ""},
		{ContextAbstractSyntaxUnsupported, ""},
		{ContextNoReason, ""}, // even ID
	}
	got := negotiate(proposed, ContextPolicy{}, true)
	if len(got) != len(want) {
		t.Fatalf("%d answers for %d distinct IDs: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Result != w.result || (w.result == ContextAccepted && got[i].TransferSyntax != w.ts) {
			t.Errorf("context %d: %s %s, want %s %s", got[i].ID, contextResultString(got[i].Result), got[i].TransferSyntax, contextResultString(w.result), w.ts)
		}
	}
	// Without a StoreHandler storage is refused, verification still accepted.
	got = negotiate(proposed[:2], ContextPolicy{}, false)
	if got[0].Result != ContextAccepted || got[1].Result != ContextAbstractSyntaxUnsupported {
		t.Errorf("no store: %+v", got)
	}
	// A policy preferring Implicit.
	got = negotiate(proposed[1:2], ContextPolicy{TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}}, true)
	if got[0].TransferSyntax != ImplicitVRLittleEndian {
		t.Errorf("policy order ignored: %+v", got)
	}
}

// Every default storage SOP class is a storage SOP class in
// suyashkumar/dicom's dictionary.
func TestStorageSOPClassesKnown(t *testing.T) {
	for _, c := range StorageSOPClasses {
		info, err := uid.Lookup(c)
		if err != nil || !strings.Contains(info.Name, "Storage") {
			t.Errorf("%s: %+v %v", c, info, err)
		}
	}
	for _, ts := range DefaultTransferSyntaxes {
		if info, err := uid.Lookup(ts); err != nil || info.Type != uid.TypeTransferSyntax {
			t.Errorf("%s: %+v %v", ts, info, err)
		}
	}
}
