package dimse

import (
	"fmt"
	"net"
	"slices"
)

// AssociateRequest is an A-ASSOCIATE-RQ as the acceptor sees it.
type AssociateRequest struct {
	CallingAE, CalledAE    string
	Remote                 net.Addr
	Contexts               []PresentationContext
	MaxPDULength           uint32 // the requestor's maximum P-DATA-TF length; 0: unlimited
	ImplementationClassUID string
	ImplementationVersion  string
	UserIdentity           *UserIdentity
	// RoleSelections maps an abstract syntax to the roles the requestor
	// proposed for itself.
	RoleSelections map[string]Role
}

// PresentationContext is one presentation context: proposed (ID,
// AbstractSyntax, TransferSyntaxes) or answered (Result, TransferSyntax).
type PresentationContext struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
	Result           byte
	// TransferSyntax is the accepted transfer syntax.
	TransferSyntax string
}

// Presentation context results (PS3.8 9.3.3.2).
const (
	ContextAccepted                  byte = 0
	ContextUserRejection             byte = 1
	ContextNoReason                  byte = 2
	ContextAbstractSyntaxUnsupported byte = 3
	ContextTransferSyntaxUnsupported byte = 4
)

func contextResultString(r byte) string {
	switch r {
	case ContextAccepted:
		return "acceptance"
	case ContextUserRejection:
		return "user-rejection"
	case ContextNoReason:
		return "no-reason (provider rejection)"
	case ContextAbstractSyntaxUnsupported:
		return "abstract-syntax-not-supported"
	case ContextTransferSyntaxUnsupported:
		return "transfer-syntaxes-not-supported"
	}
	return fmt.Sprintf("result %d", r)
}

// Reject is an A-ASSOCIATE-RJ (PS3.8 9.3.4). Use the Reject… values.
type Reject struct {
	Result, Source, Reason byte
}

// A-ASSOCIATE-RJ results and sources.
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	RejectSourceUser             byte = 1 // DICOM UL service-user
	RejectSourceProviderACSE     byte = 2 // DICOM UL service-provider, ACSE related
	RejectSourceProviderPresentn byte = 3 // DICOM UL service-provider, presentation related
)

// The rejections PS3.8 9.3.4 defines, as values to return from
// Server.Accept or to compare with a *RejectError.
var (
	RejectNoReasonGiven              = Reject{RejectPermanent, RejectSourceUser, 1}
	RejectAppContextNotSupported     = Reject{RejectPermanent, RejectSourceUser, 2}
	RejectCallingAENotRecognized     = Reject{RejectPermanent, RejectSourceUser, 3}
	RejectCalledAENotRecognized      = Reject{RejectPermanent, RejectSourceUser, 7}
	RejectProtocolVersionUnsupported = Reject{RejectPermanent, RejectSourceProviderACSE, 2}
	RejectTemporaryCongestion        = Reject{RejectTransient, RejectSourceProviderPresentn, 1}
	RejectLocalLimitExceeded         = Reject{RejectTransient, RejectSourceProviderPresentn, 2}
)

// String names the rejection as PS3.8 does.
func (r Reject) String() string {
	res := fmt.Sprintf("result %d", r.Result)
	switch r.Result {
	case RejectPermanent:
		res = "rejected-permanent"
	case RejectTransient:
		res = "rejected-transient"
	}
	reason := fmt.Sprintf("source %d reason %d", r.Source, r.Reason)
	switch r.Source {
	case RejectSourceUser:
		switch r.Reason {
		case 1:
			reason = "no-reason-given"
		case 2:
			reason = "application-context-name-not-supported"
		case 3:
			reason = "calling-AE-title-not-recognized"
		case 7:
			reason = "called-AE-title-not-recognized"
		}
	case RejectSourceProviderACSE:
		switch r.Reason {
		case 1:
			reason = "no-reason-given (ACSE)"
		case 2:
			reason = "protocol-version-not-supported"
		}
	case RejectSourceProviderPresentn:
		switch r.Reason {
		case 1:
			reason = "temporary-congestion"
		case 2:
			reason = "local-limit-exceeded"
		}
	}
	return res + ": " + reason
}

// RejectError is returned by Dialer.Dial when the acceptor rejects the
// association.
type RejectError struct{ Reject Reject }

func (e *RejectError) Error() string { return "dimse: association rejected: " + e.Reject.String() }

// Transfer syntaxes radgate knows by name.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

// DefaultTransferSyntaxes is the acceptor's order of preference: Explicit
// VR Little Endian, Implicit VR Little Endian (the default every
// implementation supports), then the others as received. The compressed
// ones are those radgate's inference package decodes.
var DefaultTransferSyntaxes = []string{
	ExplicitVRLittleEndian,
	ImplicitVRLittleEndian,
	DeflatedExplicitVRLittleEndian,
	ExplicitVRBigEndian,
	JPEGLosslessSV1,
	JPEGLossless,
	JPEGBaseline8Bit,
	JPEGExtended12Bit,
	JPEGLSLossless,
	JPEGLSNearLossless,
	JPEG2000Lossless,
	JPEG2000,
	RLELossless,
}

// VerificationSOPClass is C-ECHO's SOP class.
const VerificationSOPClass = "1.2.840.10008.1.1"

// StorageSOPClasses are the storage SOP classes the acceptor takes by
// default (PS3.4 B.5): images of every modality, structured reports, Key
// Object Selection and Encapsulated PDF.
var StorageSOPClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1",      // Computed Radiography Image Storage
	"1.2.840.10008.5.1.4.1.1.1.1",    // Digital X-Ray Image Storage - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1",  // Digital X-Ray Image Storage - For Processing
	"1.2.840.10008.5.1.4.1.1.1.2",    // Digital Mammography X-Ray Image Storage - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.2.1",  // Digital Mammography X-Ray Image Storage - For Processing
	"1.2.840.10008.5.1.4.1.1.1.3",    // Digital Intra-Oral X-Ray Image Storage - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.3.1",  // Digital Intra-Oral X-Ray Image Storage - For Processing
	"1.2.840.10008.5.1.4.1.1.2",      // CT Image Storage
	"1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT Image Storage
	"1.2.840.10008.5.1.4.1.1.2.2",    // Legacy Converted Enhanced CT Image Storage
	"1.2.840.10008.5.1.4.1.1.3.1",    // Ultrasound Multi-frame Image Storage
	"1.2.840.10008.5.1.4.1.1.4",      // MR Image Storage
	"1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR Image Storage
	"1.2.840.10008.5.1.4.1.1.4.3",    // Enhanced MR Color Image Storage
	"1.2.840.10008.5.1.4.1.1.4.4",    // Legacy Converted Enhanced MR Image Storage
	"1.2.840.10008.5.1.4.1.1.6.1",    // Ultrasound Image Storage
	"1.2.840.10008.5.1.4.1.1.6.2",    // Enhanced US Volume Storage
	"1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture Image Storage
	"1.2.840.10008.5.1.4.1.1.7.1",    // Multi-frame Single Bit Secondary Capture Image Storage
	"1.2.840.10008.5.1.4.1.1.7.2",    // Multi-frame Grayscale Byte Secondary Capture Image Storage
	"1.2.840.10008.5.1.4.1.1.7.3",    // Multi-frame Grayscale Word Secondary Capture Image Storage
	"1.2.840.10008.5.1.4.1.1.7.4",    // Multi-frame True Color Secondary Capture Image Storage
	"1.2.840.10008.5.1.4.1.1.12.1",   // X-Ray Angiographic Image Storage
	"1.2.840.10008.5.1.4.1.1.12.1.1", // Enhanced XA Image Storage
	"1.2.840.10008.5.1.4.1.1.12.2",   // X-Ray Radiofluoroscopic Image Storage
	"1.2.840.10008.5.1.4.1.1.12.2.1", // Enhanced XRF Image Storage
	"1.2.840.10008.5.1.4.1.1.13.1.1", // X-Ray 3D Angiographic Image Storage
	"1.2.840.10008.5.1.4.1.1.13.1.2", // X-Ray 3D Craniofacial Image Storage
	"1.2.840.10008.5.1.4.1.1.13.1.3", // Breast Tomosynthesis Image Storage
	"1.2.840.10008.5.1.4.1.1.20",     // Nuclear Medicine Image Storage
	"1.2.840.10008.5.1.4.1.1.30",     // Parametric Map Storage
	"1.2.840.10008.5.1.4.1.1.66.4",   // Segmentation Storage
	"1.2.840.10008.5.1.4.1.1.77.1.1", // VL Endoscopic Image Storage
	"1.2.840.10008.5.1.4.1.1.77.1.2", // VL Microscopic Image Storage
	"1.2.840.10008.5.1.4.1.1.77.1.4", // VL Photographic Image Storage
	"1.2.840.10008.5.1.4.1.1.77.1.6", // VL Whole Slide Microscopy Image Storage
	"1.2.840.10008.5.1.4.1.1.128",    // Positron Emission Tomography Image Storage
	"1.2.840.10008.5.1.4.1.1.130",    // Enhanced PET Image Storage
	"1.2.840.10008.5.1.4.1.1.481.1",  // RT Image Storage
	"1.2.840.10008.5.1.4.1.1.88.11",  // Basic Text SR Storage
	"1.2.840.10008.5.1.4.1.1.88.22",  // Enhanced SR Storage
	"1.2.840.10008.5.1.4.1.1.88.33",  // Comprehensive SR Storage
	"1.2.840.10008.5.1.4.1.1.88.34",  // Comprehensive 3D SR Storage
	"1.2.840.10008.5.1.4.1.1.88.59",  // Key Object Selection Document Storage
	"1.2.840.10008.5.1.4.1.1.88.67",  // X-Ray Radiation Dose SR Storage
	"1.2.840.10008.5.1.4.1.1.104.1",  // Encapsulated PDF Storage
}

// ContextPolicy says which presentation contexts the acceptor accepts.
type ContextPolicy struct {
	// AbstractSyntaxes accepted. Empty: Verification and
	// StorageSOPClasses. Storage classes are refused anyway when the
	// server has no StoreHandler.
	AbstractSyntaxes []string
	// TransferSyntaxes accepted, most preferred first. Empty:
	// DefaultTransferSyntaxes.
	TransferSyntaxes []string
}

func (p ContextPolicy) abstract() []string {
	if len(p.AbstractSyntaxes) > 0 {
		return p.AbstractSyntaxes
	}
	return append([]string{VerificationSOPClass}, StorageSOPClasses...)
}

func (p ContextPolicy) transfer() []string {
	if len(p.TransferSyntaxes) > 0 {
		return p.TransferSyntaxes
	}
	return DefaultTransferSyntaxes
}

// IsStorageSOPClass reports whether uid is one of StorageSOPClasses.
func IsStorageSOPClass(uid string) bool { return slices.Contains(StorageSOPClasses, uid) }

// negotiate answers each proposed presentation context. Verification is
// always allowed if the policy lists it; storage classes need store. An
// accepted context gets the policy's most preferred transfer syntax among
// those proposed. Contexts with an even or repeated ID are refused
// (no-reason); each ID is answered once, in the order proposed.
func negotiate(proposed []PresentationContext, policy ContextPolicy, store bool) []PresentationContext {
	abstract, transfer := policy.abstract(), policy.transfer()
	out := make([]PresentationContext, 0, len(proposed))
	var seen [256]bool
	for _, pc := range proposed {
		if seen[pc.ID] {
			continue
		}
		seen[pc.ID] = true
		ans := PresentationContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, Result: ContextAccepted}
		switch {
		case pc.ID%2 == 0:
			ans.Result = ContextNoReason
		case !slices.Contains(abstract, pc.AbstractSyntax),
			!store && pc.AbstractSyntax != VerificationSOPClass && IsStorageSOPClass(pc.AbstractSyntax):
			ans.Result = ContextAbstractSyntaxUnsupported
		default:
			ans.Result = ContextTransferSyntaxUnsupported
			for _, ts := range transfer {
				if slices.Contains(pc.TransferSyntaxes, ts) {
					ans.Result, ans.TransferSyntax = ContextAccepted, ts
					break
				}
			}
		}
		if ans.Result != ContextAccepted {
			// The sub-item must be present; its value is not significant.
			ans.TransferSyntax = ImplicitVRLittleEndian
		}
		out = append(out, ans)
	}
	return out
}
