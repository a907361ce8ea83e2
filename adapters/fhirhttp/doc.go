// Package fhirhttp is radgate's FHIR R4 adapter: the HTTP intake that takes
// ServiceRequests and ImagingStudies from an EHR (Intake) — and
// radiologists' verdicts: final DiagnosticReports and completed read Tasks
// (verdict.go) — and the REST
// client that writes results back to the EHR's FHIR server (Client, Sink).
//
// The resources themselves are read and written by the top-level fhir
// package; this package does HTTP and maps between those plain values and
// routing's contracts.
package fhirhttp
