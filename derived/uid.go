package derived

import (
	"crypto/sha256"
	"math/big"
)

// UIDs are the Series and SOP Instance UIDs of the objects derived from one
// result. They depend on the result id alone.
type UIDs struct {
	SCSeries, SC   string
	SRSeries, SR   string
	PDFSeries, PDF string
	PMSeries, PM   string
	// PMFrameOfReference is the Parametric Map's own Frame of Reference
	// (for a source that has none), PMDimensions its Dimension
	// Organization UID.
	PMFrameOfReference, PMDimensions string
}

// UIDsFor returns the UIDs of the objects derived from result resultID.
func UIDsFor(resultID string) UIDs {
	return UIDs{
		SCSeries:  hashUID("result/" + resultID + "/sc-series"),
		SC:        hashUID("result/" + resultID + "/sc"),
		SRSeries:  hashUID("result/" + resultID + "/sr-series"),
		SR:        hashUID("result/" + resultID + "/sr"),
		PDFSeries: hashUID("result/" + resultID + "/pdf-series"),
		PDF:       hashUID("result/" + resultID + "/pdf"),
		PMSeries:  hashUID("result/" + resultID + "/pm-series"),
		PM:        hashUID("result/" + resultID + "/pm"),

		PMFrameOfReference: hashUID("result/" + resultID + "/pm-frame-of-reference"),
		PMDimensions:       hashUID("result/" + resultID + "/pm-dimensions"),
	}
}

// hashUID returns a UID under the 2.25 root (PS3.5 B.2): the decimal of a
// 128-bit UUID whose bits come from SHA-256 of "radgate/derived/"+name, with
// the RFC 9562 version (8, custom) and variant bits set. At most 44
// characters.
func hashUID(name string) string {
	sum := sha256.Sum256([]byte("radgate/derived/" + name))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return "2.25." + new(big.Int).SetBytes(b).String()
}

// implementationClassUID identifies radgate's DICOM writer in the file meta
// information.
var implementationClassUID = hashUID("implementation-class")

const implementationVersion = "RADGATE"
