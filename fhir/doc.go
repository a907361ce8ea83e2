// Package fhir reads and writes the FHIR R4 resources radgate exchanges with
// an EHR: plain values in, R4 JSON out, and R4 JSON in, plain values out.
//
// Intake: ParseResource, ParseServiceRequest, ParseImagingStudy and
// ParseBundle read what an EHR posts (or what a rest-hook Subscription
// delivers) and return an OrderResource per ServiceRequest or ImagingStudy.
// Every rejection is a *FieldError naming the offending element
// FHIRPath-style, so it can be answered with an OperationOutcome whose
// expression points at it.
//
// Results: BuildResultBundle and BuildTaskBundle turn a ResultInput into one
// transaction Bundle whose entries are conditional creates
// (request.ifNoneExist) on deterministic identifiers, so posting the same
// result twice leaves one copy of each resource on the server.
//
// Identifier systems and code systems radgate mints live under
// https://radgate.dev/fhir/ (see the System… and CodeSystem… constants); the
// two code systems are published with CodeSystems, which the FHIR adapter
// PUTs to the server.
//
// The package uses github.com/samply/golang-fhir-models for the R4 resources
// it writes. Those structs carry required elements as values, so a zero
// value marshals to an invalid resource without error: every builder here
// fills each required element explicitly, and the tests post the bundles to
// a validating FHIR server.
package fhir

import "github.com/radgate/radgate"

// Code systems and identifier systems radgate reads or writes.
const (
	// SystemV20203 is HL7 v2 table 0203 (identifier type); code ACSN marks an
	// accession number.
	SystemV20203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
	// CodeACSN is the identifier type code of an accession number.
	CodeACSN = "ACSN"
	// SystemDICOMUID is the identifier system of DICOM UIDs; values carry the
	// "urn:oid:" prefix.
	SystemDICOMUID = "urn:dicom:uid"
	// SystemDICOMModality is DICOM's code system (modalities: CR, DX, …).
	SystemDICOMModality = "http://dicom.nema.org/resources/ontology/DCM"
	SystemSNOMED        = "http://snomed.info/sct"
	SystemLOINC         = "http://loinc.org"
	SystemUCUM          = "http://unitsofmeasure.org"
	// SystemObservationCategory is HL7's observation category code system.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	// SystemV20074 is HL7 v2 table 0074 (diagnostic service section).
	SystemV20074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
	// SystemMediaType is HL7's media type code system (image, video, audio).
	SystemMediaType = "http://terminology.hl7.org/CodeSystem/media-type"

	// SystemResult is the identifier system of everything radgate writes for
	// one result (DiagnosticReport, Observation, Media, Task). The value is
	// the result id (deterministic per order × engine × model version),
	// suffixed "/observation" or "/media" for the Observation and the Media,
	// so a redelivered result matches the resources of its first delivery.
	SystemResult = "https://radgate.dev/fhir/sid/result"
	// SystemEngine is the identifier system of an engine's Device; the value
	// is "<engine id>@<model version>".
	SystemEngine = "https://radgate.dev/fhir/sid/engine"

	// CodeSystemTier is the code system of AI confidence tiers, codes "low",
	// "mid" and "high" (displays Low, Mid, High). See CodeSystems.
	CodeSystemTier = "https://radgate.dev/fhir/CodeSystem/ai-confidence-tier"
	// CodeSystemRadgate holds radgate's own concepts: "confidence-tier" (the
	// Observation component that carries the tier) and "ai-analysis" (the
	// Task code of a result that was not scored). See CodeSystems.
	CodeSystemRadgate = "https://radgate.dev/fhir/CodeSystem/radgate"
)

// Codes of CodeSystemRadgate.
const (
	CodeConfidenceTier = "confidence-tier"
	CodeAIAnalysis     = "ai-analysis"
)

// DefaultFinding is the finding coded on an Observation when the engine
// declares none: SNOMED CT 233604007 Pneumonia, the finding of the default
// engine.
var DefaultFinding = Coding{System: SystemSNOMED, Code: "233604007", Display: "Pneumonia"}

// Identifier, Reference and Coding are the core's plain values
// (radgate.Identifier, radgate.Reference, radgate.Coding): what an order
// carries is what the resources are built from.
type (
	Identifier = radgate.Identifier
	Reference  = radgate.Reference
	Coding     = radgate.Coding
)
