package fhir

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
)

//go:embed codesystems/*.json
var codeSystemFiles embed.FS

// CodeSystemResource is a CodeSystem radgate publishes.
type CodeSystemResource struct {
	// ID is the logical id to PUT it under ("radgate-ai-confidence-tier").
	ID string
	// URL is its canonical url (CodeSystemTier, CodeSystemRadgate).
	URL string
	// JSON is the CodeSystem resource.
	JSON []byte
}

// CodeSystems returns the code systems radgate's results use:
// CodeSystemTier and CodeSystemRadgate, as R4 CodeSystem JSON, sorted by id.
func CodeSystems() []CodeSystemResource {
	files, err := codeSystemFiles.ReadDir("codesystems")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []CodeSystemResource
	for _, f := range files {
		b, err := codeSystemFiles.ReadFile("codesystems/" + f.Name())
		if err != nil {
			panic(err)
		}
		var head struct {
			ID  string `json:"id"`
			URL string `json:"url"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			panic(fmt.Sprintf("embedded %s: %v", f.Name(), err))
		}
		out = append(out, CodeSystemResource{ID: head.ID, URL: head.URL, JSON: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
