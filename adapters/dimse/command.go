package dimse

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Command element numbers in group 0000 (PS3.7 annex E).
const (
	TagCommandGroupLength        uint16 = 0x0000
	TagAffectedSOPClassUID       uint16 = 0x0002
	TagRequestedSOPClassUID      uint16 = 0x0003
	TagCommandField              uint16 = 0x0100
	TagMessageID                 uint16 = 0x0110
	TagMessageIDBeingRespondedTo uint16 = 0x0120
	TagMoveDestination           uint16 = 0x0600
	TagPriority                  uint16 = 0x0700
	TagCommandDataSetType        uint16 = 0x0800
	TagStatus                    uint16 = 0x0900
	TagOffendingElement          uint16 = 0x0901
	TagErrorComment              uint16 = 0x0902
	TagErrorID                   uint16 = 0x0903
	TagAffectedSOPInstanceUID    uint16 = 0x1000
	TagRequestedSOPInstanceUID   uint16 = 0x1001
	TagNumberOfRemainingSubops   uint16 = 0x1020
	TagNumberOfCompletedSubops   uint16 = 0x1021
	TagNumberOfFailedSubops      uint16 = 0x1022
	TagNumberOfWarningSubops     uint16 = 0x1023
	TagMoveOriginatorAETitle     uint16 = 0x1030
	TagMoveOriginatorMessageID   uint16 = 0x1031
)

// Command field values (PS3.7 E.1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CGetRQ    uint16 = 0x0010
	CGetRSP   uint16 = 0x8010
	CFindRQ   uint16 = 0x0020
	CFindRSP  uint16 = 0x8020
	CMoveRQ   uint16 = 0x0021
	CMoveRSP  uint16 = 0x8021
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
	CCancelRQ uint16 = 0x0FFF
)

// Command data set type values: any value but DataSetAbsent means a data
// set follows.
const (
	DataSetAbsent  uint16 = 0x0101
	DataSetPresent uint16 = 0x0000
)

// Priorities of C-STORE, C-FIND, C-MOVE and C-GET requests.
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// maxCommandLength bounds a command set as it is reassembled from PDVs; a
// real one is a few hundred bytes.
const maxCommandLength = 64 << 10

// Command is a DIMSE command set: the elements of group 0000, by element
// number, with their values as encoded (Implicit VR Little Endian, PS3.7
// 6.3.1). Encode computes CommandGroupLength.
type Command struct {
	elems map[uint16][]byte
}

// commandVR is the value representation of each known element, which
// decides padding and how values read back.
var commandVR = map[uint16]string{
	TagCommandGroupLength:        "UL",
	TagAffectedSOPClassUID:       "UI",
	TagRequestedSOPClassUID:      "UI",
	TagCommandField:              "US",
	TagMessageID:                 "US",
	TagMessageIDBeingRespondedTo: "US",
	TagMoveDestination:           "AE",
	TagPriority:                  "US",
	TagCommandDataSetType:        "US",
	TagStatus:                    "US",
	TagOffendingElement:          "AT",
	TagErrorComment:              "LO",
	TagErrorID:                   "US",
	TagAffectedSOPInstanceUID:    "UI",
	TagRequestedSOPInstanceUID:   "UI",
	TagNumberOfRemainingSubops:   "US",
	TagNumberOfCompletedSubops:   "US",
	TagNumberOfFailedSubops:      "US",
	TagNumberOfWarningSubops:     "US",
	TagMoveOriginatorAETitle:     "AE",
	TagMoveOriginatorMessageID:   "US",
}

// NewCommand returns a command with its command field, message ID (or
// message ID being responded to, for a response) and data set type.
func NewCommand(field uint16) *Command {
	c := &Command{elems: map[uint16][]byte{}}
	c.SetUint16(TagCommandField, field)
	c.SetUint16(TagCommandDataSetType, DataSetAbsent)
	return c
}

// Has reports whether the element is present.
func (c *Command) Has(el uint16) bool { _, ok := c.elems[el]; return ok }

// Raw returns the element's value as encoded.
func (c *Command) Raw(el uint16) ([]byte, bool) { v, ok := c.elems[el]; return v, ok }

// SetRaw sets an element's value as encoded (its length must be even).
func (c *Command) SetRaw(el uint16, v []byte) {
	if c.elems == nil {
		c.elems = map[uint16][]byte{}
	}
	c.elems[el] = v
}

// Delete removes an element.
func (c *Command) Delete(el uint16) { delete(c.elems, el) }

// SetUint16 sets a US element.
func (c *Command) SetUint16(el uint16, v uint16) {
	c.SetRaw(el, binary.LittleEndian.AppendUint16(nil, v))
}

// Uint16 returns a US element; ok is false when absent or not 2 bytes.
func (c *Command) Uint16(el uint16) (uint16, bool) {
	v, ok := c.elems[el]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

// SetString sets a UI, AE or LO element, padded to even length as its VR
// wants (UI with NUL, others with a space).
func (c *Command) SetString(el uint16, s string) {
	b := []byte(s)
	if len(b)%2 == 1 {
		if commandVR[el] == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	c.SetRaw(el, b)
}

// String returns a string element without its padding.
func (c *Command) String(el uint16) string {
	return strings.Trim(string(c.elems[el]), "\x00 ")
}

// Field returns the command field (0 when absent).
func (c *Command) Field() uint16 { v, _ := c.Uint16(TagCommandField); return v }

// HasDataSet reports whether a data set follows the command.
func (c *Command) HasDataSet() bool {
	v, ok := c.Uint16(TagCommandDataSetType)
	return ok && v != DataSetAbsent
}

// Status returns the Status element of a response.
func (c *Command) Status() (Status, bool) {
	v, ok := c.Uint16(TagStatus)
	return Status(v), ok
}

// Encode returns the command set in Implicit VR Little Endian, elements
// in ascending order, CommandGroupLength first.
func (c *Command) Encode() []byte {
	els := make([]uint16, 0, len(c.elems))
	n := 0
	for el, v := range c.elems {
		if el == TagCommandGroupLength {
			continue
		}
		els = append(els, el)
		n += 8 + len(v)
	}
	slices.Sort(els)
	b := make([]byte, 0, 12+n)
	b = appendElement(b, TagCommandGroupLength, binary.LittleEndian.AppendUint32(nil, uint32(n)))
	for _, el := range els {
		b = appendElement(b, el, c.elems[el])
	}
	return b
}

func appendElement(b []byte, el uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0000)
	b = binary.LittleEndian.AppendUint16(b, el)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// DecodeCommand parses a command set. Every element must be in group
// 0000, in ascending order, with a length inside the buffer; the group
// length, when present, must match; the command field must be present.
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{elems: map[uint16][]byte{}}
	first := true
	prev := -1
	var groupEnd = -1
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("dimse: command set element header cut at byte %d", off)
		}
		grp := binary.LittleEndian.Uint16(b[off:])
		el := binary.LittleEndian.Uint16(b[off+2:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		if grp != 0 {
			return nil, fmt.Errorf("dimse: command set element (%04x,%04x) is not in group 0000", grp, el)
		}
		if int(el) <= prev {
			return nil, fmt.Errorf("dimse: command set element (0000,%04x) out of order or repeated", el)
		}
		prev = int(el)
		if uint64(n) > uint64(len(b)-off-8) {
			return nil, fmt.Errorf("dimse: command set element (0000,%04x) length %d beyond the %d bytes left", el, n, len(b)-off-8)
		}
		v := b[off+8 : off+8+int(n)]
		if el == TagCommandGroupLength {
			if !first || n != 4 {
				return nil, fmt.Errorf("dimse: CommandGroupLength must come first with 4 bytes")
			}
			groupEnd = off + 12 + int(binary.LittleEndian.Uint32(v))
		} else {
			if vr := commandVR[el]; (vr == "US" && n != 2) || (vr == "UL" && n != 4) {
				return nil, fmt.Errorf("dimse: command element (0000,%04x) of VR %s has %d bytes", el, vr, n)
			}
			c.elems[el] = append([]byte(nil), v...)
		}
		first = false
		off += 8 + int(n)
	}
	if groupEnd >= 0 && groupEnd != len(b) {
		return nil, fmt.Errorf("dimse: CommandGroupLength says the command set ends at byte %d, it has %d", groupEnd, len(b))
	}
	if !c.Has(TagCommandField) {
		return nil, fmt.Errorf("dimse: command set without a CommandField")
	}
	if !c.Has(TagCommandDataSetType) {
		return nil, fmt.Errorf("dimse: command set without a CommandDataSetType")
	}
	return c, nil
}

// Status is a DIMSE status code (PS3.7 annex C).
type Status uint16

// Status values used by C-ECHO and C-STORE (PS3.4 B.2.3, PS3.7 C).
const (
	StatusSuccess                  Status = 0x0000
	StatusAttributeListError       Status = 0x0107 // warning
	StatusAttributeValueOutOfRange Status = 0x0116 // warning
	StatusCoercionOfDataElements   Status = 0xB000 // warning
	StatusElementsDiscarded        Status = 0xB006 // warning
	StatusDataSetDoesNotMatchWarn  Status = 0xB007 // warning
	StatusOutOfResources           Status = 0xA700
	StatusDataSetDoesNotMatch      Status = 0xA900
	StatusCannotUnderstand         Status = 0xC000
	StatusProcessingFailure        Status = 0x0110
	StatusDuplicateSOPInstance     Status = 0x0111
	StatusNoSuchSOPClass           Status = 0x0118
	StatusSOPClassNotSupported     Status = 0x0122
	StatusNotAuthorized            Status = 0x0124
	StatusDuplicateInvocation      Status = 0x0210
	StatusUnrecognizedOperation    Status = 0x0211
	StatusMistypedArgument         Status = 0x0212
	StatusCancel                   Status = 0xFE00
	StatusPending                  Status = 0xFF00
	StatusPendingWarning           Status = 0xFF01
)

// IsSuccess, IsWarning, IsPending, IsFailure classify a status as PS3.7
// C does for C-STORE's codes.
func (s Status) IsSuccess() bool { return s == StatusSuccess }

// IsWarning reports a warning status.
func (s Status) IsWarning() bool {
	return s == StatusAttributeListError || s == StatusAttributeValueOutOfRange || s&0xF000 == 0xB000
}

// IsPending reports a pending status (C-FIND, C-MOVE, C-GET).
func (s Status) IsPending() bool { return s == StatusPending || s == StatusPendingWarning }

// IsFailure reports anything that is neither success, warning, pending
// nor cancel.
func (s Status) IsFailure() bool {
	return !s.IsSuccess() && !s.IsWarning() && !s.IsPending() && s != StatusCancel
}

func (s Status) String() string {
	name := ""
	switch {
	case s == StatusSuccess:
		name = "success"
	case s == StatusAttributeListError:
		name = "warning: attribute list error"
	case s == StatusAttributeValueOutOfRange:
		name = "warning: attribute value out of range"
	case s == StatusCoercionOfDataElements:
		name = "warning: coercion of data elements"
	case s == StatusElementsDiscarded:
		name = "warning: elements discarded"
	case s == StatusDataSetDoesNotMatchWarn:
		name = "warning: data set does not match SOP class"
	case s&0xFF00 == 0xA700:
		name = "refused: out of resources"
	case s&0xFF00 == 0xA900:
		name = "error: data set does not match SOP class"
	case s&0xF000 == 0xC000:
		name = "error: cannot understand"
	case s == StatusProcessingFailure:
		name = "processing failure"
	case s == StatusDuplicateSOPInstance:
		name = "duplicate SOP instance"
	case s == StatusNoSuchSOPClass:
		name = "no such SOP class"
	case s == StatusSOPClassNotSupported:
		name = "SOP class not supported"
	case s == StatusNotAuthorized:
		name = "refused: not authorized"
	case s == StatusDuplicateInvocation:
		name = "duplicate invocation"
	case s == StatusUnrecognizedOperation:
		name = "unrecognized operation"
	case s == StatusMistypedArgument:
		name = "mistyped argument"
	case s == StatusCancel:
		name = "cancel"
	case s.IsPending():
		name = "pending"
	default:
		name = "status"
	}
	return fmt.Sprintf("%s (0x%04X)", name, uint16(s))
}
