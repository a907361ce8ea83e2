// Package hl7v2 is radgate's HL7 v2 adapter: a small HL7 v2.5.1 library
// (no maintained Go one exists), the MLLP transport, and the mappings
// between HL7 orders and results and routing's contracts.
//
// # Messages
//
// Parse reads a message with the delimiters its MSH-1 and MSH-2 declare
// (any, not only "|^~\&"; a fifth MSH-2 character is v2.7's truncation
// character). Segments may end with "\r", "\n" or "\r\n"; Encode always
// writes "\r". Values are kept in wire form, so Encode(Parse(x)) gives x
// back byte for byte, save line ends and blank lines. Get reads a value by
// path ("PID-3-1", "OBX(2)-5", "PID-3(2)-4-2") and unescapes it (\F\ \S\
// \T\ \R\ \E\ \P\, \Xhh\, FT's \.br\ …); Set escapes. Parse errors are
// *Error values naming the segment and field, and wrap ErrMalformed.
//
// # Acknowledgements
//
// NewACK answers a message in original mode: MSA-1 AA, AE or AR, MSA-2 the
// message's control id, one ERR (v2.5.1: ERR-2 location, ERR-3 table 0357
// code, ERR-4 severity, ERR-8 user message) per ErrorDetail. ErrorDetailOf
// turns an *Error from Parse or OrderEvent into that detail.
//
// # MLLP
//
// Server listens for MLLP connections and calls a Handler for each message;
// the handler returns the ACK, which the server writes before reading the
// connection's next message. Client sends a message and waits for its ACK,
// reconnecting and retrying (AE and timeouts; never AR).
//
// # Mapping
//
// OrderEvent maps ORM^O01 and OMI^O23 to radgate.OrderEvent (see
// OrderOptions.OrderEvents for which field carries what), checking every
// identifier with radgate.CheckIdentifier and CheckUID; ORU builds the
// ORU^R01 for a radgate.Result. An order event never holds a patient's
// name; PID-5 of an ORU is read when it is sent (PatientSource: the FHIR
// Patient, the ORM's PID kept by Received, or — for a study pushed to
// radgate — the scored image's Patient's Name, decoded by its Specific
// Character Set, one repetition per component group) and never stored.
//
// VerdictsFromORU reads an ORU^R01 from the RIS as radiologists' verdicts
// (radgate.Verdict: accession OBR-18, read OBR-3, reader OBR-32/OBX-16 by
// identifier, finding from a coded OBX through fhir.VerdictCodes, text
// alone unlabelled); the intake handler takes them on the order listener
// when IntakeOptions.Verdicts is set. radgate's own ORU is never one.
//
// # Character sets
//
// Messages are built in UTF-8; the ORU goes on the wire in the character
// set the destination's charset names (Message.Wire, MSH-18): UNICODE
// UTF-8 (the default), ISO IR87 (JIS X 0208 by ISO 2022 escape
// sequences) or ISO IR13 (JIS X 0201 half-width katakana).
//
// # Exposure
//
// ServerOptions.TLS (client certificates), AllowNetworks and the
// connection caps (MaxConnections, MaxConnectionsPerSource) bound who may
// talk MLLP to the server and how much.
package hl7v2
