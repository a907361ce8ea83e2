package derived

import (
	"crypto/sha256"
	"math/big"
	"strconv"
)

// UIDs are the Series and SOP Instance UIDs of the objects derived from one
// revision of one result. They depend on the result id and the revision
// alone.
type UIDs struct {
	SCSeries, SC   string
	SRSeries, SR   string
	PDFSeries, PDF string
	PMSeries, PM   string
	// PMFrameOfReference is the Parametric Map's own Frame of Reference
	// (for a source that has none), PMDimensions its Dimension
	// Organization UID.
	PMFrameOfReference, PMDimensions string
	// KOSSeries and KOS are the series and instance of the IOCM rejection
	// note (Key Object Selection) that withdraws this revision's objects
	// (RejectionNote).
	KOSSeries, KOS string
}

// UIDsFor returns the UIDs of the objects derived from revision revision of
// result resultID.
//
// Revision 1 (and 0, a result without revision) gives the UIDs radgate has
// always given, so objects stored before revisions existed are still
// recognised as revision 1. Revision 2 and later give new SOP Instance UIDs;
// the Parametric Map's Frame of Reference and Dimension Organization stay
// (the map of every revision lies on the same source grid).
//
// Series Instance UIDs stay per result, not per revision: a viewer shows one
// "AI heatmap" (SR, PDF, map) series per result whose instances are its
// revisions (Instance Number = revision), and an IOCM-aware PACS that hides
// the rejected revision leaves the current one in the same place, where a
// per-revision series would leave an empty series behind and a new one
// appear. The rejection notes have a series of their own per result.
func UIDsFor(resultID string, revision int) UIDs {
	base := "result/" + resultID + "/"
	sop := func(kind string) string {
		if revision <= 1 {
			return hashUID(base + kind)
		}
		// "#r" cannot end a revision-1 name (kinds hold no '#'), so no
		// result's revision N name is another result's revision-1 name.
		return hashUID(base + kind + "#r" + strconv.Itoa(revision))
	}
	return UIDs{
		SCSeries:  hashUID(base + "sc-series"),
		SC:        sop("sc"),
		SRSeries:  hashUID(base + "sr-series"),
		SR:        sop("sr"),
		PDFSeries: hashUID(base + "pdf-series"),
		PDF:       sop("pdf"),
		PMSeries:  hashUID(base + "pm-series"),
		PM:        sop("pm"),

		PMFrameOfReference: hashUID(base + "pm-frame-of-reference"),
		PMDimensions:       hashUID(base + "pm-dimensions"),

		KOSSeries: hashUID(base + "kos-series"),
		KOS:       hashUID(base + "kos#r" + strconv.Itoa(max(revision, 1))),
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
