package fhir_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/radgate/radgate/fhir"
)

func ExampleParseServiceRequest() {
	o, err := fhir.ParseServiceRequest([]byte(`{
	  "resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
	  "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
	                  "system": "urn:oid:1.2.3.4.5", "value": "ACC-0001"}],
	  "subject": {"reference": "Patient/p-1"}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(o.Accession.System, o.Accession.Value, o.Self.Reference, o.Subject.Reference)

	_, err = fhir.ParseServiceRequest([]byte(`{"resourceType": "ServiceRequest", "status": "active", "intent": "order"}`))
	fmt.Println(err)
	// Output:
	// urn:oid:1.2.3.4.5 ACC-0001 ServiceRequest/sr-1 Patient/p-1
	// ServiceRequest.identifier: no accession number (identifier with type ACSN)
}

func ExampleBuildResultBundle() {
	bundle, err := fhir.BuildResultBundle(fhir.ResultInput{
		ID:             "3f2a9c0e1b7d4a55a1c2e3f4",
		ServiceRequest: &fhir.Reference{Reference: "ServiceRequest/sr-1"},
		ImagingStudy:   &fhir.Reference{Reference: "ImagingStudy/is-1"},
		Patient:        &fhir.Reference{Reference: "Patient/p-1"},
		Engine: fhir.Engine{ID: "cxr-pneumonia-densenet121", Name: "cxr-pneumonia-densenet121", Version: "1.0.0",
			Disclaimer: "Not a diagnosis.", Finding: fhir.DefaultFinding},
		Probability: 0.42,
		Tier:        "Mid",
		ScoredAt:    time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	var b struct {
		Entry []struct {
			Request struct{ Method, URL, IfNoneExist string }
		}
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		panic(err)
	}
	for _, e := range b.Entry {
		fmt.Println(e.Request.Method, e.Request.URL, e.Request.IfNoneExist)
	}
	// Output:
	// POST Device identifier=https%3A%2F%2Fradgate.dev%2Ffhir%2Fsid%2Fengine%7Ccxr-pneumonia-densenet121%401.0.0
	// POST Observation identifier=https%3A%2F%2Fradgate.dev%2Ffhir%2Fsid%2Fresult%7C3f2a9c0e1b7d4a55a1c2e3f4%2Fobservation
	// POST DiagnosticReport identifier=https%3A%2F%2Fradgate.dev%2Ffhir%2Fsid%2Fresult%7C3f2a9c0e1b7d4a55a1c2e3f4
	// PUT Provenance/radgate-3f2a9c0e1b7d4a55a1c2e3f4
}

func ExampleOutcomeFromError() {
	_, err := fhir.ParseImagingStudy([]byte(`{"resourceType": "ImagingStudy", "status": "available"}`))
	fmt.Println(string(fhir.OutcomeFromError(err, fhir.IssueInvalid).JSON()))
	// Output:
	// {"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required","details":{"coding":[{"system":"https://radgate.dev/CodeSystem/error","code":"invalid-resource"}]},"diagnostics":"ImagingStudy.identifier: no Study Instance UID (system urn:dicom:uid)","expression":["ImagingStudy.identifier"]}]}
}
