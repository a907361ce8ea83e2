package routing_test

import (
	"errors"
	"fmt"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/routing"
)

func ExampleSet_Decide() {
	reg := routing.Registry{Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir", "ris"}}
	set, err := routing.Load("routes.yaml", []byte(`
routes:
  - name: chest-xray
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir, ris]
    read: {request: from_tier, from_tier: Mid, group: CareTeam/chest-readers}
`), reg)
	if err != nil {
		panic(err)
	}
	d := set.Decide(routing.Facts{Modalities: []string{"DX"}, BodyParts: []string{"CHEST"}, Priority: "routine"})
	fmt.Println(d.Routes, d.Engines, d.Destinations, d.Read.Wanted("Low"), d.Read.Wanted("High"))
	d = set.Decide(routing.Facts{Modalities: []string{"CT"}, BodyParts: []string{"HEAD"}, Facilities: []string{"Clinic B"}})
	fmt.Println(d.Matched, d.Reason)
	// Output:
	// [chest-xray] [cxr-pneumonia-densenet121] [fhir ris] false true
	// false no route matches: modality CT, body part HEAD, facility "Clinic B", priority routine; nearest route "chest-xray" wants modality CR or DX and body part CHEST
}

func ExampleLoad_errors() {
	reg := routing.Registry{Engines: []string{"cxr-pneumonia-densenet121"}, Destinations: []string{"fhir"}}
	_, err := routing.Load("routes.yaml", []byte(`routes:
  - name: chest-xray
    when: {modality: CR}
    engines: [cxr-pneumonia-densenet12]
    destinations: [fhir]
`), reg)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Println(e)
		}
	}
	// Output:
	// routes.yaml:3:22: route "chest-xray": when.modality: expected a list, got "CR"
	// routes.yaml:4:15: route "chest-xray": engines: unknown engine "cxr-pneumonia-densenet12" (did you mean "cxr-pneumonia-densenet121"? registered: cxr-pneumonia-densenet121)
}
