// Package dimse is radgate's DICOM network protocol: the DICOM upper layer
// (PS3.8) and the DIMSE messages (PS3.7) over TCP or TLS. No maintained Go
// DIMSE library is reachable from this project, so it is written here from
// the standard; pynetdicom and dcmtk were read for behaviour, not copied.
// This file and the protocol files import nothing of radgate's: the
// radgate-side glue (intake, sinks, sources, registration) lives in the
// intake*, sink*, source* and registry* files of the same package.
//
// # Upper layer
//
// Every PDU is read with a hard bound on its length field: the maximum
// P-DATA-TF length this side announced (A-ASSOCIATE-RQ: at least 64 KiB),
// checked before anything is allocated; a longer PDU is answered with
// A-ABORT (service-provider, invalid PDU parameter value). Association
// negotiation covers the application context, presentation contexts,
// maximum length, implementation class UID and version, the asynchronous
// operations window (always answered 1/1), SCP/SCU role selection and user
// identity (username, username+passcode, Kerberos, SAML, JWT: the
// acceptor's Accept hook sees it and may reject). P-DATA-TF carries PDVs;
// messages are fragmented to the peer's maximum length, one PDV per PDU.
//
// # Server
//
// Server is the Verification and Storage SCP. A connection has ARTIM to
// send its A-ASSOCIATE-RQ; then the called AE, the association limits
// (total: temporary-congestion; per calling AE: local-limit-exceeded) and
// Accept decide; then ContextPolicy picks, for each proposed context, the
// most preferred transfer syntax (Explicit VR LE, Implicit VR LE, then the
// compressed syntaxes as received). A C-STORE's data set streams to the
// StoreHandler as its PDVs arrive, never buffered whole; a cut, abort,
// idle timeout or MaxInstanceBytes makes the handler's Read fail and ends
// the association with an A-ABORT, while other associations go on.
// WritePart10 turns what a handler got into a DICOM file.
//
// # Client
//
// Dialer requests associations; Association.Echo and Association.Store
// are the Verification and Storage SCU; Release and Abort end it.
// SplitPart10 takes a file apart for C-STORE, and ExplicitToImplicit
// re-encodes its data set for a peer that accepts only Implicit VR Little
// Endian. radgate's dimse destination (sink*.go) is built on these.
//
// # Commands
//
// Command is a command set (group 0000, Implicit VR Little Endian) by
// element number; Encode computes CommandGroupLength. The message layer
// (readCommand, dataReader, writeCommand, writeDataSet) is general, for
// C-FIND, C-MOVE and C-GET to come.
package dimse
