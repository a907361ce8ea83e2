package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3.1).
const (
	pduAssociateRQ byte = 0x01
	pduAssociateAC byte = 0x02
	pduAssociateRJ byte = 0x03
	pduPData       byte = 0x04
	pduReleaseRQ   byte = 0x05
	pduReleaseRP   byte = 0x06
	pduAbort       byte = 0x07
)

// Item types inside A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3, annex D).
const (
	itemAppContext     byte = 0x10
	itemPresContextRQ  byte = 0x20
	itemPresContextAC  byte = 0x21
	itemAbstractSyntax byte = 0x30
	itemTransferSyntax byte = 0x40
	itemUserInfo       byte = 0x50
	subMaxLength       byte = 0x51
	subImplClassUID    byte = 0x52
	subAsyncOps        byte = 0x53
	subRoleSelection   byte = 0x54
	subImplVersion     byte = 0x55
	subUserIdentityRQ  byte = 0x58
	subUserIdentityAC  byte = 0x59
)

// ApplicationContext is the DICOM application context name, the only one
// PS3.7 annex A defines.
const ApplicationContext = "1.2.840.10008.3.1.1.1"

// pduHeaderLength is the fixed part of every PDU: type, reserved, length.
const pduHeaderLength = 6

// minPDULength is the smallest bound readPDU accepts, so that an
// A-ASSOCIATE-RQ with a few hundred presentation contexts always fits even
// when the negotiated P-DATA length is small.
const minPDULength = 64 << 10

// ProtocolError is a violation of PS3.8 by the peer: a PDU that cannot be
// parsed, one that arrives where it may not, or a value out of range. The
// association is aborted with Reason.
type ProtocolError struct {
	Reason AbortReason
	Msg    string
}

func (e *ProtocolError) Error() string { return "dimse: " + e.Msg + " (" + e.Reason.String() + ")" }

func protoErr(reason AbortReason, format string, args ...any) error {
	return &ProtocolError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ErrPDUTooLarge is wrapped by the error readPDU returns for a PDU whose
// length field is beyond the bound.
var ErrPDUTooLarge = errors.New("PDU length beyond the negotiated maximum")

// readPDU reads one PDU. maxBody bounds the PDU's length field (the body
// after the 6-byte header); a larger length is refused before anything is
// allocated for it. buf is reused when large enough. The returned body
// aliases buf.
func readPDU(r io.Reader, maxBody uint32, buf []byte) (typ byte, body []byte, err error) {
	var hdr [pduHeaderLength]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ = hdr[0]
	n := binary.BigEndian.Uint32(hdr[2:])
	if typ < pduAssociateRQ || typ > pduAbort {
		return typ, nil, protoErr(AbortUnrecognizedPDU, "unknown PDU type 0x%02x", typ)
	}
	if n > maxBody {
		return typ, nil, &ProtocolError{Reason: AbortInvalidPDUParameter,
			Msg: fmt.Sprintf("PDU type 0x%02x length %d: %v %d", typ, n, ErrPDUTooLarge, maxBody)}
	}
	if uint32(cap(buf)) >= n {
		body = buf[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return typ, nil, fmt.Errorf("dimse: PDU type 0x%02x cut after its header: %w", typ, err)
	}
	return typ, body, nil
}

// appendPDUHeader appends a PDU header for a body of n bytes.
func appendPDUHeader(b []byte, typ byte, n int) []byte {
	b = append(b, typ, 0)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// assocPDU is the content of an A-ASSOCIATE-RQ or -AC.
type assocPDU struct {
	ProtocolVersion     uint16
	CalledAE, CallingAE string
	AppContext          string
	// RQ: ID, AbstractSyntax, TransferSyntaxes. AC: ID, Result,
	// TransferSyntax.
	Contexts []PresentationContext
	User     userInfo
}

// userInfo is the user information item and its sub-items.
type userInfo struct {
	MaxPDULength            uint32
	ImplClassUID            string
	ImplVersion             string
	HasAsync                bool
	AsyncInvoked, AsyncPerf uint16
	Roles                   []RoleSelection
	Identity                *UserIdentity // RQ only
	HasIdentityResponse     bool          // AC only
	IdentityResponse        []byte        // AC only
}

// RoleSelection is one SCP/SCU role selection sub-item (PS3.7 D.3.3.4):
// whether the association requestor may act as SCU and as SCP for the SOP
// class.
type RoleSelection struct {
	SOPClassUID string
	Role
}

// Role is a pair of SCP/SCU role selection values, seen from the
// association requestor.
type Role struct {
	SCU, SCP bool
}

// User identity types (PS3.7 D.3.3.7).
const (
	UserIdentityUsername         byte = 1
	UserIdentityUsernamePasscode byte = 2
	UserIdentityKerberos         byte = 3
	UserIdentitySAML             byte = 4
	UserIdentityJWT              byte = 5
)

// UserIdentity is the user identity negotiation sub-item of an
// A-ASSOCIATE-RQ. For UserIdentityUsername Primary is the username; for
// UserIdentityUsernamePasscode Secondary is the passcode; for the other
// types Primary holds the ticket, assertion or token.
type UserIdentity struct {
	Type                      byte
	PositiveResponseRequested bool
	Primary, Secondary        []byte
}

// Username returns the username of a username or username+passcode
// identity, "" otherwise.
func (u *UserIdentity) Username() string {
	if u == nil || (u.Type != UserIdentityUsername && u.Type != UserIdentityUsernamePasscode) {
		return ""
	}
	return string(u.Primary)
}

// String names the identity type and the username, never the passcode.
func (u *UserIdentity) String() string {
	if u == nil {
		return "none"
	}
	switch u.Type {
	case UserIdentityUsername:
		return "username " + string(u.Primary)
	case UserIdentityUsernamePasscode:
		return "username+passcode " + string(u.Primary)
	case UserIdentityKerberos:
		return "kerberos"
	case UserIdentitySAML:
		return "saml"
	case UserIdentityJWT:
		return "jwt"
	}
	return fmt.Sprintf("type %d", u.Type)
}

// trimUID removes the padding some implementations leave on UIDs in items.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// trimAE removes an AE title's padding (leading and trailing spaces are
// insignificant, PS3.5 6.2).
func trimAE(b []byte) string { return strings.Trim(string(b), " \x00") }

// padAE returns an AE title as the 16 bytes of an A-ASSOCIATE header.
func padAE(s string) []byte {
	b := []byte(s + strings.Repeat(" ", 16))
	return b[:16]
}

// checkAE reports whether s can be sent as an AE title.
func checkAE(s string) error {
	if s == "" || len(s) > 16 || strings.Trim(s, " ") == "" {
		return fmt.Errorf("dimse: AE title %q must be 1 to 16 characters, not all spaces", s)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("dimse: AE title %q has a character that is not allowed (control, non-ASCII or backslash)", s)
		}
	}
	return nil
}

// item reads one (type, reserved, length16) item from b.
func nextItem(b []byte) (typ byte, val, rest []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, protoErr(AbortInvalidPDUParameter, "item header cut: %d bytes left", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b)-4 < n {
		return 0, nil, nil, protoErr(AbortInvalidPDUParameter, "item 0x%02x length %d beyond its PDU (%d bytes left)", b[0], n, len(b)-4)
	}
	return b[0], b[4 : 4+n], b[4+n:], nil
}

func appendItem(b []byte, typ byte, val []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(val)))
	return append(b, val...)
}

// decodeAssoc parses the body of an A-ASSOCIATE-RQ (rq true) or -AC.
func decodeAssoc(body []byte, rq bool) (*assocPDU, error) {
	if len(body) < 68 {
		return nil, protoErr(AbortInvalidPDUParameter, "A-ASSOCIATE body is %d bytes, less than the 68 of its fixed fields", len(body))
	}
	p := &assocPDU{
		ProtocolVersion: binary.BigEndian.Uint16(body),
		CalledAE:        trimAE(body[4:20]),
		CallingAE:       trimAE(body[20:36]),
	}
	b := body[68:]
	seenUser := false
	for len(b) > 0 {
		typ, val, rest, err := nextItem(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch {
		case typ == itemAppContext:
			p.AppContext = trimUID(val)
		case typ == itemPresContextRQ && rq, typ == itemPresContextAC && !rq:
			pc, err := decodePresContext(val, rq)
			if err != nil {
				return nil, err
			}
			p.Contexts = append(p.Contexts, pc)
		case typ == itemUserInfo:
			if seenUser {
				return nil, protoErr(AbortUnexpectedPDUParameter, "two user information items")
			}
			seenUser = true
			if err := decodeUserInfo(val, rq, &p.User); err != nil {
				return nil, err
			}
		default:
			return nil, protoErr(AbortUnrecognizedPDUParameter, "unexpected item type 0x%02x in A-ASSOCIATE", typ)
		}
	}
	if p.AppContext == "" {
		return nil, protoErr(AbortInvalidPDUParameter, "A-ASSOCIATE without an application context item")
	}
	return p, nil
}

func decodePresContext(val []byte, rq bool) (PresentationContext, error) {
	if len(val) < 4 {
		return PresentationContext{}, protoErr(AbortInvalidPDUParameter, "presentation context item of %d bytes", len(val))
	}
	pc := PresentationContext{ID: val[0]}
	if !rq {
		pc.Result = val[2]
	}
	b := val[4:]
	for len(b) > 0 {
		typ, v, rest, err := nextItem(b)
		if err != nil {
			return pc, err
		}
		b = rest
		switch {
		case typ == itemAbstractSyntax && rq:
			if pc.AbstractSyntax != "" {
				return pc, protoErr(AbortUnexpectedPDUParameter, "presentation context %d has two abstract syntaxes", pc.ID)
			}
			pc.AbstractSyntax = trimUID(v)
		case typ == itemTransferSyntax && rq:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(v))
		case typ == itemTransferSyntax:
			pc.TransferSyntax = trimUID(v)
		default:
			return pc, protoErr(AbortUnrecognizedPDUParameter, "unexpected sub-item 0x%02x in presentation context %d", typ, pc.ID)
		}
	}
	return pc, nil
}

func decodeUserInfo(val []byte, rq bool, u *userInfo) error {
	for len(val) > 0 {
		typ, v, rest, err := nextItem(val)
		if err != nil {
			return err
		}
		val = rest
		switch typ {
		case subMaxLength:
			if len(v) != 4 {
				return protoErr(AbortInvalidPDUParameter, "maximum length sub-item of %d bytes", len(v))
			}
			u.MaxPDULength = binary.BigEndian.Uint32(v)
		case subImplClassUID:
			u.ImplClassUID = trimUID(v)
		case subImplVersion:
			u.ImplVersion = strings.TrimRight(string(v), " \x00")
		case subAsyncOps:
			if len(v) != 4 {
				return protoErr(AbortInvalidPDUParameter, "asynchronous operations window sub-item of %d bytes", len(v))
			}
			u.HasAsync = true
			u.AsyncInvoked, u.AsyncPerf = binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:])
		case subRoleSelection:
			if len(v) < 2 {
				return protoErr(AbortInvalidPDUParameter, "role selection sub-item of %d bytes", len(v))
			}
			n := int(binary.BigEndian.Uint16(v))
			if len(v) != 2+n+2 {
				return protoErr(AbortInvalidPDUParameter, "role selection sub-item: UID length %d in %d bytes", n, len(v))
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClassUID: trimUID(v[2 : 2+n]), Role: Role{SCU: v[2+n] == 1, SCP: v[3+n] == 1}})
		case subUserIdentityRQ:
			if !rq {
				return protoErr(AbortUnexpectedPDUParameter, "user identity request in an A-ASSOCIATE-AC")
			}
			id, err := decodeIdentity(v)
			if err != nil {
				return err
			}
			u.Identity = id
		case subUserIdentityAC:
			if rq {
				return protoErr(AbortUnexpectedPDUParameter, "user identity response in an A-ASSOCIATE-RQ")
			}
			if len(v) < 2 || int(binary.BigEndian.Uint16(v)) != len(v)-2 {
				return protoErr(AbortInvalidPDUParameter, "user identity response sub-item of %d bytes", len(v))
			}
			u.HasIdentityResponse = true
			u.IdentityResponse = append([]byte{}, v[2:]...)
		default:
			// Extended negotiation (0x56, 0x57) and unknown sub-items are
			// ignored: not answering them declines them (PS3.7 D.3.3.5).
		}
	}
	return nil
}

func decodeIdentity(v []byte) (*UserIdentity, error) {
	if len(v) < 4 {
		return nil, protoErr(AbortInvalidPDUParameter, "user identity sub-item of %d bytes", len(v))
	}
	id := &UserIdentity{Type: v[0], PositiveResponseRequested: v[1] == 1}
	n := int(binary.BigEndian.Uint16(v[2:]))
	if len(v) < 4+n+2 {
		return nil, protoErr(AbortInvalidPDUParameter, "user identity primary field length %d in %d bytes", n, len(v))
	}
	id.Primary = append([]byte{}, v[4:4+n]...)
	m := int(binary.BigEndian.Uint16(v[4+n:]))
	if len(v) != 4+n+2+m {
		return nil, protoErr(AbortInvalidPDUParameter, "user identity secondary field length %d in %d bytes", m, len(v)-4-n-2)
	}
	id.Secondary = append([]byte{}, v[6+n:]...)
	if id.Type < UserIdentityUsername || id.Type > UserIdentityJWT {
		return nil, protoErr(AbortInvalidPDUParameter, "user identity type %d", id.Type)
	}
	if len(id.Primary) == 0 {
		return nil, protoErr(AbortInvalidPDUParameter, "user identity with an empty primary field")
	}
	return id, nil
}

// encodeAssoc returns the whole A-ASSOCIATE-RQ or -AC PDU. Values must fit
// their 16-bit lengths; callers build them from validated input.
func encodeAssoc(p *assocPDU, rq bool) []byte {
	body := make([]byte, 0, 256)
	body = binary.BigEndian.AppendUint16(body, p.ProtocolVersion)
	body = append(body, 0, 0)
	body = append(body, padAE(p.CalledAE)...)
	body = append(body, padAE(p.CallingAE)...)
	body = append(body, make([]byte, 32)...)
	body = appendItem(body, itemAppContext, []byte(p.AppContext))
	for _, pc := range p.Contexts {
		var v []byte
		if rq {
			v = []byte{pc.ID, 0, 0, 0}
			v = appendItem(v, itemAbstractSyntax, []byte(pc.AbstractSyntax))
			for _, ts := range pc.TransferSyntaxes {
				v = appendItem(v, itemTransferSyntax, []byte(ts))
			}
			body = appendItem(body, itemPresContextRQ, v)
		} else {
			v = []byte{pc.ID, 0, pc.Result, 0}
			// PS3.8 9.3.3.2: the transfer syntax sub-item is present but
			// not significant when the context is not accepted.
			v = appendItem(v, itemTransferSyntax, []byte(pc.TransferSyntax))
			body = appendItem(body, itemPresContextAC, v)
		}
	}
	body = appendItem(body, itemUserInfo, encodeUserInfo(&p.User, rq))
	typ := pduAssociateAC
	if rq {
		typ = pduAssociateRQ
	}
	out := appendPDUHeader(make([]byte, 0, len(body)+pduHeaderLength), typ, len(body))
	return append(out, body...)
}

func encodeUserInfo(u *userInfo, rq bool) []byte {
	var b []byte
	b = appendItem(b, subMaxLength, binary.BigEndian.AppendUint32(nil, u.MaxPDULength))
	if u.ImplClassUID != "" {
		b = appendItem(b, subImplClassUID, []byte(u.ImplClassUID))
	}
	if u.HasAsync {
		v := binary.BigEndian.AppendUint16(nil, u.AsyncInvoked)
		b = appendItem(b, subAsyncOps, binary.BigEndian.AppendUint16(v, u.AsyncPerf))
	}
	for _, r := range u.Roles {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClassUID)))
		v = append(v, r.SOPClassUID...)
		v = append(v, b2u(r.SCU), b2u(r.SCP))
		b = appendItem(b, subRoleSelection, v)
	}
	if u.ImplVersion != "" {
		b = appendItem(b, subImplVersion, []byte(u.ImplVersion))
	}
	if rq && u.Identity != nil {
		id := u.Identity
		v := []byte{id.Type, b2u(id.PositiveResponseRequested)}
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Primary)))
		v = append(v, id.Primary...)
		v = binary.BigEndian.AppendUint16(v, uint16(len(id.Secondary)))
		v = append(v, id.Secondary...)
		b = appendItem(b, subUserIdentityRQ, v)
	}
	if !rq && u.HasIdentityResponse {
		v := binary.BigEndian.AppendUint16(nil, uint16(len(u.IdentityResponse)))
		b = appendItem(b, subUserIdentityAC, append(v, u.IdentityResponse...))
	}
	return b
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// encodeReject returns an A-ASSOCIATE-RJ PDU.
func encodeReject(r Reject) []byte {
	return append(appendPDUHeader(nil, pduAssociateRJ, 4), 0, r.Result, r.Source, r.Reason)
}

func decodeReject(body []byte) (Reject, error) {
	if len(body) != 4 {
		return Reject{}, protoErr(AbortInvalidPDUParameter, "A-ASSOCIATE-RJ of %d bytes, not 4", len(body))
	}
	return Reject{Result: body[1], Source: body[2], Reason: body[3]}, nil
}

// Abort is the content of an A-ABORT PDU (PS3.8 9.3.8).
type Abort struct {
	Source AbortSource
	Reason AbortReason // significant only when Source is AbortServiceProvider
}

func (a Abort) String() string {
	if a.Source == AbortServiceProvider {
		return a.Source.String() + ": " + a.Reason.String()
	}
	return a.Source.String()
}

// AbortSource says who aborted.
type AbortSource byte

// A-ABORT sources.
const (
	AbortServiceUser     AbortSource = 0
	AbortServiceProvider AbortSource = 2
)

func (s AbortSource) String() string {
	switch s {
	case AbortServiceUser:
		return "service-user"
	case AbortServiceProvider:
		return "service-provider"
	}
	return fmt.Sprintf("source %d", byte(s))
}

// AbortReason is the reason of a service-provider A-ABORT.
type AbortReason byte

// A-ABORT reasons (source service-provider).
const (
	AbortNotSpecified             AbortReason = 0
	AbortUnrecognizedPDU          AbortReason = 1
	AbortUnexpectedPDU            AbortReason = 2
	AbortUnrecognizedPDUParameter AbortReason = 4
	AbortUnexpectedPDUParameter   AbortReason = 5
	AbortInvalidPDUParameter      AbortReason = 6
)

func (r AbortReason) String() string {
	switch r {
	case AbortNotSpecified:
		return "reason not specified"
	case AbortUnrecognizedPDU:
		return "unrecognized PDU"
	case AbortUnexpectedPDU:
		return "unexpected PDU"
	case AbortUnrecognizedPDUParameter:
		return "unrecognized PDU parameter"
	case AbortUnexpectedPDUParameter:
		return "unexpected PDU parameter"
	case AbortInvalidPDUParameter:
		return "invalid PDU parameter value"
	}
	return fmt.Sprintf("reason %d", byte(r))
}

func encodeAbort(a Abort) []byte {
	return append(appendPDUHeader(nil, pduAbort, 4), 0, 0, byte(a.Source), byte(a.Reason))
}

func decodeAbort(body []byte) (Abort, error) {
	if len(body) != 4 {
		return Abort{}, protoErr(AbortInvalidPDUParameter, "A-ABORT of %d bytes, not 4", len(body))
	}
	return Abort{Source: AbortSource(body[2]), Reason: AbortReason(body[3])}, nil
}

func encodeRelease(typ byte) []byte {
	return append(appendPDUHeader(nil, typ, 4), 0, 0, 0, 0)
}

// pdv is one presentation data value item of a P-DATA-TF PDU.
type pdv struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // bit 1
	Data      []byte
}

// Message control header bits.
const (
	mchCommand byte = 0x01
	mchLast    byte = 0x02
)

// pdvHeaderLength is a PDV item's header: item length (4), presentation
// context ID (1), message control header (1).
const pdvHeaderLength = 6

// parsePData splits a P-DATA-TF body into its PDVs, appending to dst. The
// PDVs' Data alias body.
func parsePData(body []byte, dst []pdv) ([]pdv, error) {
	if len(body) == 0 {
		return dst, protoErr(AbortInvalidPDUParameter, "P-DATA-TF without a PDV")
	}
	for len(body) > 0 {
		if len(body) < pdvHeaderLength {
			return dst, protoErr(AbortInvalidPDUParameter, "PDV item header cut: %d bytes left", len(body))
		}
		n := binary.BigEndian.Uint32(body)
		if n < 2 || uint64(n) > uint64(len(body)-4) {
			return dst, protoErr(AbortInvalidPDUParameter, "PDV item length %d with %d bytes left in the P-DATA-TF", n, len(body)-4)
		}
		mch := body[5]
		if mch&^(mchCommand|mchLast) != 0 {
			return dst, protoErr(AbortInvalidPDUParameter, "PDV message control header 0x%02x", mch)
		}
		dst = append(dst, pdv{ContextID: body[4], Command: mch&mchCommand != 0, Last: mch&mchLast != 0, Data: body[6 : 4+n]})
		body = body[4+n:]
	}
	return dst, nil
}

// appendPDataHeader appends the header of a P-DATA-TF PDU holding one PDV
// of n data bytes, including the PDV's own header.
func appendPDataHeader(b []byte, ctx byte, command, last bool, n int) []byte {
	b = appendPDUHeader(b, pduPData, n+pdvHeaderLength)
	b = binary.BigEndian.AppendUint32(b, uint32(n+2))
	mch := byte(0)
	if command {
		mch |= mchCommand
	}
	if last {
		mch |= mchLast
	}
	return append(b, ctx, mch)
}
