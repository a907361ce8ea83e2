package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// memoryDestination is a destination type that exists only in this test
// package: it registers itself like an adapter does, and serve and check
// must use it with no change to cmd/.
type memorySink struct {
	mu      sync.Mutex
	results []radgate.Result
}

func (m *memorySink) Deliver(_ context.Context, r radgate.Result) (radgate.Receipt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results = append(m.results, r)
	return radgate.Receipt{Report: "memory/" + r.ID}, nil
}

func (m *memorySink) got() []radgate.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]radgate.Result(nil), m.results...)
}

var (
	memorySinksMu sync.Mutex
	memorySinks   = map[string]*memorySink{} // by the destination's address key
)

func init() {
	radgate.RegisterDestination(radgate.DestinationType{
		Name:    "test-memory",
		Summary: "results kept in this test process",
		Keys:    []string{"address"},
		Check: func(d config.Destination) []radgate.KeyError {
			if d.Address == "" {
				return []radgate.KeyError{{Key: "", Message: "address must be set for a test-memory destination"}}
			}
			return nil
		},
		New: func(dc radgate.DestinationContext) (radgate.Sink, error) {
			memorySinksMu.Lock()
			defer memorySinksMu.Unlock()
			s := &memorySink{}
			memorySinks[dc.Config.Address] = s
			return s, nil
		},
		ProbeDoes: "memory",
		Probe:     func(context.Context, radgate.DestinationContext) error { return nil },
	})
}

func TestRegisteredDestinationTypeIsServedAndChecked(t *testing.T) {
	key := fmt.Sprintf("mem-%d", time.Now().UnixNano())
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, "routes:\n  - name: chest\n    engines: [cxr-pneumonia-densenet121]\n    destinations: [fhir, mem]\n")
	rg := startRadgate(t, func(c *config.Config) {
		c.Destinations = map[string]config.Destination{"mem": {Type: "test-memory", Address: key}}
		c.RoutesFile = routes
	})
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 2
	cases := loadRouted(t, rg, seed, "dx-chest-implicit-le-8bit.dcm")
	orderFrom(t, rg, cases[0], "General Hospital", "routine")
	require.NoError(t, rg.env.Wait(t.Context(), cases, 2*time.Minute))
	require.Equal(t, radgate.StateDelivered, cases[0].Status.State, cases[0].Status.Reason)

	memorySinksMu.Lock()
	sink := memorySinks[key]
	memorySinksMu.Unlock()
	require.NotNil(t, sink, "serve built the test-only destination from the registry")
	got := sink.got()
	require.Len(t, got, 1)
	require.Equal(t, cases[0].OrderID, got[0].Order.ID)
	require.Equal(t, "mem", got[0].Destination)
	require.Equal(t, "memory/"+got[0].ID, cases[0].Status.Engines[config.DefaultEngine].Deliveries["mem"].Report)

	// check builds it too, and probes it with the type's own probe.
	cfgFile := filepath.Join(t.TempDir(), "radgate.yaml")
	writeFile(t, cfgFile, strings.Join([]string{
		"models_dir: " + rg.cfg.ModelsDir,
		"inference: {onnxruntime_library: " + rg.cfg.Inference.ONNXRuntimeLibrary + "}",
		"pacs: {dicomweb_url: " + rg.cfg.PACS.DICOMwebURL + "}",
		"fhir: {base_url: " + rg.cfg.FHIR.BaseURL + "}",
		"routes_file: " + routes,
		"destinations:",
		"  mem: {type: test-memory, address: " + key + "-check}",
	}, "\n")+"\n")
	out, err := runCheckCmd(t, "--config", cfgFile, "--connect=false")
	require.NoError(t, err, out)
	require.Contains(t, out, "ok   destinations: 2 built")
	require.Contains(t, out, "test-memory")

	// A key the type does not read is refused at its position, naming the
	// type's keys.
	writeFile(t, cfgFile, strings.Join([]string{
		"pacs: {dicomweb_url: " + rg.cfg.PACS.DICOMwebURL + "}",
		"fhir: {base_url: " + rg.cfg.FHIR.BaseURL + "}",
		"destinations:",
		"  mem:",
		"    type: test-memory",
		"    address: x",
		"    url: http://example.invalid/",
	}, "\n")+"\n")
	out, err = runCheckCmd(t, "--config", cfgFile, "--connect=false")
	require.Error(t, err)
	require.Contains(t, err.Error(), "radgate.yaml:7:10: destinations.mem.url: url does not apply to a test-memory destination (its keys: [type timeout auth tls pdf_report address])")
}
