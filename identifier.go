package radgate

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits on the identifiers an order carries. radgate stores them, puts
// them in subjects' headers, queries the PACS with them and writes them into
// every result, so each must be something every receiver accepts.
const (
	// MaxIdentifierLength bounds an identifier value (accession number,
	// placer/filler order number, patient identifier) in characters: the
	// scale of DICOM's SH/LO values and of what RIS and EHRs issue.
	MaxIdentifierLength = 64
	// MaxSystemLength bounds an identifier's system (a URI or an HL7
	// assigning authority).
	MaxSystemLength = 255
	// MaxUIDLength is DICOM's bound on a UID (PS3.5 §9.1).
	MaxUIDLength = 64
)

// CheckIdentifier reports whether value can be stored and sent on as an
// identifier: valid UTF-8, not blank, at most max characters (0 means
// MaxIdentifierLength), and free of control characters (FHIR R4 string:
// no C0 controls but tab, CR and LF; radgate refuses those three too, since
// no identifier holds them and HL7 and DICOM cannot carry them). field names
// the field in the sender's terms ("ServiceRequest.identifier[ACSN].value",
// "OBR-18"); the error wraps ErrInvalidOrder and never repeats the value.
func CheckIdentifier(field, value string, max int) error {
	if max <= 0 {
		max = MaxIdentifierLength
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidOrder, field)
	}
	n, blank := 0, true
	for i, r := range value {
		n++
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s contains the control character U+%04X at character %d", ErrInvalidOrder, field, r, n)
		}
		if r == utf8.RuneError {
			return fmt.Errorf("%w: %s has an invalid character at byte %d", ErrInvalidOrder, field, i)
		}
		if !unicode.IsSpace(r) {
			blank = false
		}
	}
	if blank {
		return fmt.Errorf("%w: %s is empty", ErrInvalidOrder, field)
	}
	if n > max {
		return fmt.Errorf("%w: %s is %d characters long; at most %d are accepted", ErrInvalidOrder, field, n, max)
	}
	return nil
}

// CheckUID reports whether uid is a DICOM UID (PS3.5 §9.1): at most 64
// characters of digits and dots, components without leading zeros. The
// "urn:oid:" prefix FHIR puts on UIDs must be stripped first
// (StripUIDPrefix). The error wraps ErrInvalidOrder and names field.
func CheckUID(field, uid string) error {
	if uid == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidOrder, field)
	}
	if len(uid) > MaxUIDLength {
		return fmt.Errorf("%w: %s is %d characters long; a DICOM UID has at most %d", ErrInvalidOrder, field, len(uid), MaxUIDLength)
	}
	start := 0
	for i := 0; i <= len(uid); i++ {
		if i < len(uid) && uid[i] != '.' {
			if uid[i] < '0' || uid[i] > '9' {
				return fmt.Errorf("%w: %s is not a DICOM UID: character %d is not a digit or a dot", ErrInvalidOrder, field, i+1)
			}
			continue
		}
		comp := uid[start:i]
		if comp == "" {
			return fmt.Errorf("%w: %s is not a DICOM UID: empty component at character %d", ErrInvalidOrder, field, i+1)
		}
		if len(comp) > 1 && comp[0] == '0' {
			return fmt.Errorf("%w: %s is not a DICOM UID: component %q has a leading zero", ErrInvalidOrder, field, comp)
		}
		start = i + 1
	}
	return nil
}
