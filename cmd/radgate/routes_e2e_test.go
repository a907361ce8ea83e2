package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// loadRouted stores cloned copies of testdata files in the PACS.
func loadRouted(t *testing.T, rg *running, seed int, files ...string) []*demo.Case {
	t.Helper()
	var cases []*demo.Case
	for i, f := range files {
		src, err := os.ReadFile(testenv.Testdata("cxr-dicom", f))
		require.NoError(t, err)
		b, _, err := demo.Clone(src, seed+i)
		require.NoError(t, err)
		cases = append(cases, &demo.Case{File: f, Data: b, Path: demo.ViaDirectPost})
	}
	require.NoError(t, rg.env.LoadImages(t.Context(), cases))
	return cases
}

// orderFrom posts the case's ServiceRequest as the facility's EHR files it:
// requester the facility's Organization, with a priority.
func orderFrom(t *testing.T, rg *running, c *demo.Case, facility, priority string) {
	t.Helper()
	subject := map[string]any{"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-R-" + c.Meta.AccessionNumber}}
	sr := demo.ServiceRequest(c.Meta, subject)
	sr["priority"] = priority
	sr["requester"] = map[string]any{"reference": "Organization/" + strings.ReplaceAll(strings.ToLower(facility), " ", "-"), "display": facility}
	body, err := json.Marshal(sr)
	require.NoError(t, err)
	resp, err := http.Post(rg.url+"/fhir/ServiceRequest", "application/fhir+json", bytes.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber}})
	require.NoError(t, err)
	c.OrderID = radgate.OrderID(key)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path)) // as editors and config management do
}

func countByIdentifier(t *testing.T, c *fhirhttp.Client, resourceType string, id fhir.Identifier) int {
	t.Helper()
	found, err := c.Search(t.Context(), resourceType, map[string][]string{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	return len(found)
}

// metric reads one sample of radgate's /metrics ("name" or `name{labels}`).
func metric(t *testing.T, rg *running, series string) string {
	t.Helper()
	resp, err := http.Get(rg.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestRoutesFacilitiesReadsAndUnmatched is the route language on the real
// peers: two routes (urgent chest studies by both engines with a read
// requested, routine chest studies by one engine), a facility whose results
// go to its own FHIR server, and a study no route matches. Results land at
// the right server, the read Task appears only where asked, the unmatched
// order is answered, and `radgate usage` bills exactly what ran.
func TestRoutesFacilitiesReadsAndUnmatched(t *testing.T) {
	stMary := testenv.StartFHIR(t)
	natsAddr := freeAddr(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `match: first
routes:
  - name: urgent-chest
    when: {modality: [CR, DX], body_part: [CHEST], priority: [stat, urgent]}
    engines: [cxr-pneumonia-densenet121, cxr-pneumonia-densenet121-k224]
    destinations: [fhir]
    read: {request: always, group: CareTeam/chest-readers, display: Chest readers}
  - name: chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir]
facilities:
  "St Mary Hospital":
    destinations: [stmary]
unmatched:
  destinations: [fhir]
`)
	rg := startRadgate(t, func(c *config.Config) {
		c.NATS.EmbeddedListen = natsAddr
		c.RoutesFile = routesFile
		c.Destinations = map[string]config.Destination{"stmary": {Type: config.DestinationFHIR, URL: stMary.URL}}
	})
	stMaryFHIR, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: stMary.URL})
	require.NoError(t, err)
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 7
	cases := loadRouted(t, rg, seed, "dx-chest-implicit-le-8bit.dcm", "cr-chest-mono1-10bit-explicit-le.dcm", "cr-hip-jpeg-lossless.dcm")
	urgent, stm, hip := cases[0], cases[1], cases[2]
	orderFrom(t, rg, urgent, "General Hospital", "stat")
	orderFrom(t, rg, stm, "St Mary Hospital", "routine")
	orderFrom(t, rg, hip, "General Hospital", "routine")
	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))

	version := engineVersion(t, rg)
	resultID := func(c *demo.Case, engine string) fhir.Identifier {
		return fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: engine, Version: version}))
	}
	readTask := func(c *demo.Case) fhir.Identifier {
		return fhir.Identifier{System: fhir.SystemReadRequest, Value: c.OrderID}
	}

	// Urgent, General Hospital: both engines, reports on the main server,
	// one read Task for the study.
	st := urgent.Status
	require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
	require.Equal(t, []string{"urgent-chest"}, st.Route.Routes)
	require.Equal(t, []string{"fhir"}, st.Route.Destinations)
	for _, e := range []string{config.DefaultEngine, k224} {
		require.Equal(t, radgate.StateDelivered, st.Engines[e].State, e)
		require.True(t, strings.HasPrefix(st.Engines[e].Deliveries["fhir"].Report, "DiagnosticReport/"), e)
		require.Equal(t, 1, countByIdentifier(t, rg.env.FHIR, "DiagnosticReport", resultID(urgent, e)), e)
	}
	found, err := rg.env.FHIR.Search(ctx, "Task", map[string][]string{"identifier": {fhir.SystemReadRequest + "|" + urgent.OrderID}})
	require.NoError(t, err)
	require.Len(t, found, 1, "one read Task for the study, whichever engine asked first")
	var task map[string]any
	require.NoError(t, json.Unmarshal(found[0], &task))
	require.Equal(t, "requested", task["status"])
	require.Equal(t, "stat", task["priority"])
	require.Equal(t, "CareTeam/chest-readers", task["owner"].(map[string]any)["reference"])
	require.True(t, strings.HasPrefix(task["focus"].(map[string]any)["reference"].(string), "DiagnosticReport/"))

	// Routine, St Mary: one engine, report on St Mary's own server only, no
	// read requested.
	st = stm.Status
	require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
	require.Equal(t, []string{"chest"}, st.Route.Routes)
	require.Equal(t, "St Mary Hospital", st.Route.Facility)
	require.Equal(t, []string{"stmary"}, st.Route.Destinations)
	require.Len(t, st.Engines, 1)
	require.Equal(t, 1, countByIdentifier(t, stMaryFHIR, "DiagnosticReport", resultID(stm, config.DefaultEngine)))
	require.Zero(t, countByIdentifier(t, rg.env.FHIR, "DiagnosticReport", resultID(stm, config.DefaultEngine)), "not on the main server")
	require.Zero(t, countByIdentifier(t, rg.env.FHIR, "Task", readTask(stm)))
	require.Zero(t, countByIdentifier(t, stMaryFHIR, "Task", readTask(stm)))

	// The hip study matches no route: answered with the reason, not scored.
	st = hip.Status
	require.Equal(t, radgate.StateRejected, st.State)
	require.False(t, st.Route.Matched)
	require.Contains(t, st.Reason, "no route matches: modality CR, body part HIP")
	ans := st.Engines[radgate.RouterEngine]
	require.True(t, strings.HasPrefix(ans.Report, "Task/"), "answered on the FHIR server: %+v", ans)
	b, err := rg.env.FHIR.Read(ctx, ans.Report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &task))
	require.Equal(t, "rejected", task["status"])
	require.Contains(t, mustJSON(task["statusReason"]), "no route matches")

	// Usage bills what ran: per facility × engine.
	month := time.Now().UTC().Format("2006-01")
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"usage", "--config", dlqConfig(t, natsAddr, rg.cfg.DataDir), "--month", month, "--csv"})
	t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
	require.NoError(t, rootCmd.ExecuteContext(ctx))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.ElementsMatch(t, [][]string{
		{"month", "facility", "engine", "analyses"},
		{month, "General Hospital", config.DefaultEngine, "1"},
		{month, "General Hospital", k224, "1"},
		{month, "St Mary Hospital", config.DefaultEngine, "1"},
	}, rows)
}

// TestRoutesReload: a broken route file leaves the old routes serving (and
// says so in /metrics); a good one takes effect — on file change and on
// SIGHUP — without dropping the orders in flight, which keep the route they
// were given.
func TestRoutesReload(t *testing.T) {
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	routes := func(name, engine string) string {
		return fmt.Sprintf("routes:\n  - name: %s\n    when: {modality: [CR, DX], body_part: [CHEST]}\n    engines: [%s]\n    destinations: [fhir]\nunmatched:\n  destinations: [fhir]\n", name, engine)
	}
	writeFile(t, routesFile, routes("v1", config.DefaultEngine))
	rg := startRadgate(t, func(c *config.Config) { c.RoutesFile = routesFile })
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 1
	cases := loadRouted(t, rg, seed, "dx-chest-implicit-le-8bit.dcm", "cr-chest-mono1-10bit-explicit-le.dcm",
		"cr-chest-mono1-10bit-rle.dcm", "cr-chest-pa-jpeg-baseline.dcm")
	waitMetric := func(series, want string) {
		t.Helper()
		require.Eventually(t, func() bool { return metric(t, rg, series) == want }, 30*time.Second, 100*time.Millisecond,
			"%s never became %s (is %q)", series, want, metric(t, rg, series))
	}

	// A misspelled engine: refused, the old routes keep serving.
	writeFile(t, routesFile, routes("v2", "cxr-pneumonia-densenet12"))
	waitMetric(`radgate_routes_reloads_total{result="failure"}`, "1")
	require.Equal(t, "1", metric(t, rg, "radgate_routes_reload_error"))
	require.Contains(t, rg.logs.String(), `unknown engine \"cxr-pneumonia-densenet12\"`)
	orderFrom(t, rg, cases[0], "General Hospital", "routine")
	require.NoError(t, rg.env.Wait(ctx, cases[:1], 2*time.Minute))
	require.Equal(t, []string{"v1"}, cases[0].Status.Route.Routes)
	require.Equal(t, radgate.StateDelivered, cases[0].Status.State, cases[0].Status.Reason)

	// Orders in flight while a good file replaces the routes keep theirs.
	orderFrom(t, rg, cases[1], "General Hospital", "routine")
	orderFrom(t, rg, cases[2], "General Hospital", "routine")
	writeFile(t, routesFile, routes("v2", k224))
	waitMetric(`radgate_routes_reloads_total{result="success"}`, "1")
	require.Equal(t, "0", metric(t, rg, "radgate_routes_reload_error"))
	require.NoError(t, rg.env.Wait(ctx, cases[1:3], 2*time.Minute))
	for _, c := range cases[1:3] {
		require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)
		require.Len(t, c.Status.Route.Routes, 1)
		eng := map[string]string{"v1": config.DefaultEngine, "v2": k224}[c.Status.Route.Routes[0]]
		require.Contains(t, c.Status.Engines, eng, "scored by the engine of the route it was given")
	}

	// SIGHUP reloads too (here: the file is unchanged, so nothing changes).
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	waitMetric(`radgate_routes_reloads_total{result="unchanged"}`, "1")
	orderFrom(t, rg, cases[3], "General Hospital", "routine")
	require.NoError(t, rg.env.Wait(ctx, cases[3:], 2*time.Minute))
	require.Equal(t, []string{"v2"}, cases[3].Status.Route.Routes)
	require.Equal(t, radgate.StateDelivered, cases[3].Status.Engines[k224].State)
}
