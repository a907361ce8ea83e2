package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/pipeline"
)

// TestShadowLabelsAndActivationOnRealPeers is issue 14 part 2 on the real
// peers: a route with acceptance minimums keeps the engine in shadow (its
// results reach no FHIR server, the order says shadow); verdicts recorded
// through governance.Labels (the recorder the intakes are given) make the
// engine look poor, so `radgate engines activate` refuses, printing each
// figure against its minimum; the same reads corrected make it good, the
// activation goes through and is written as an AuditEvent, and the next
// order is delivered.
func TestShadowLabelsAndActivationOnRealPeers(t *testing.T) {
	natsAddr := freeAddr(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `routes:
  - name: adult-chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [`+config.DefaultEngine+`]
    destinations: [fhir]
    read: {request: always, group: CareTeam/chest-readers}
    acceptance: {min_cases: 4, auc_lower_95: 0.80, sensitivity_at: Mid, min_sensitivity: 0.90}
`)
	rg := startRadgate(t, func(c *config.Config) {
		c.NATS.EmbeddedListen = natsAddr
		c.RoutesFile = routesFile
	})
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 3
	// Two Mid and two Low scores (testdata/cxr-dicom/reference.csv).
	cases := loadRouted(t, rg, seed, "cr-chest-header-mono1-jpeg-baseline.dcm", "dx-chest-implicit-le-8bit.dcm",
		"cr-chest-pa-jpeg-baseline.dcm", "cr-chest-mono1-10bit-explicit-le.dcm")
	for _, c := range cases {
		orderFrom(t, rg, c, "Adult Clinic", "routine")
	}
	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))
	version := engineVersion(t, rg)
	reports := func(c *demo.Case) int {
		return countByIdentifier(t, rg.env.FHIR, "DiagnosticReport",
			fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version})))
	}
	for _, c := range cases {
		st := c.Status
		require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
		eng := st.Engines[config.DefaultEngine]
		require.Equal(t, radgate.EngineShadow, eng.Mode, "GET /orders/{id} says shadow")
		require.Contains(t, eng.Reason, "shadow: scored and recorded for measurement, not delivered")
		require.Empty(t, eng.Deliveries)
		require.Zero(t, reports(c), "no DiagnosticReport in shadow")
		require.Zero(t, countByIdentifier(t, rg.env.FHIR, "Task", fhir.Identifier{System: fhir.SystemReadRequest, Value: c.OrderID}), "no read Task")
	}

	// The verdicts, as the intakes hand them over: the Mid-scored studies
	// read healthy, the Low-scored ones pneumonia.
	js, closeNATS, err := connectJetStream(dlqConfig(t, natsAddr, rg.cfg.DataDir), "governance-test")
	require.NoError(t, err)
	t.Cleanup(closeNATS)
	topo, err := broker.BindTopology(ctx, js)
	require.NoError(t, err)
	labels := governance.New(governance.Options{Topology: topo}).Labels()
	record := func(present ...bool) []radgate.VerdictReceipt {
		var out []radgate.VerdictReceipt
		for i, c := range cases {
			finding := radgate.FindingAbsent
			if present[i] {
				finding = radgate.FindingPresent
			}
			rc, err := labels.Record(ctx, radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "DiagnosticReport/read-" + c.OrderID,
				Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber}, Finding: finding,
				Reader: &radgate.Reference{Reference: "Practitioner/dr-reads"}, ReceivedAt: time.Now()})
			require.NoError(t, err)
			require.Equal(t, c.OrderID, rc.OrderID)
			out = append(out, rc)
		}
		return out
	}
	record(false, false, true, true)

	engines := func(args ...string) (string, error) {
		var out bytes.Buffer
		resetFlags()
		rootCmd.SetOut(&out)
		rootCmd.SetArgs(append([]string{"engines"}, args...))
		t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
		err := rootCmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := engines("state", "--server", rg.url)
	require.NoError(t, err)
	require.Regexp(t, `Adult Clinic\s+adult-chest\s+`+config.DefaultEngine+`\s+`+version+`\s+shadow`, out)

	activate := []string{"activate", "--server", rg.url, "--facility", "Adult Clinic", "--route", "adult-chest", "--engine", config.DefaultEngine}
	out, err = engines(activate...)
	require.Error(t, err, "refused: the engine is poor on this facility's cases\n%s", out)
	require.Contains(t, err.Error(), "409")
	require.Contains(t, out, "labelled cases 4 (2 with the finding, 2 without) ≥ minimum 4")
	require.Contains(t, out, "AUC 0.00 (95 % CI 0.00–0.00): lower bound 0.00 < minimum 0.80")
	require.Contains(t, out, "sensitivity at Mid 0.00 (0/2) < minimum 0.90")

	// The same reads corrected: each label replaced, none added.
	for _, rc := range record(true, true, false, false) {
		require.True(t, rc.Replaced)
	}
	require.True(t, record(true, true, false, false)[0].Duplicate, "a redelivered verdict counts once")
	out, err = engines(activate...)
	require.NoError(t, err, out)
	require.Contains(t, out, "AUC 1.00 (95 % CI 1.00–1.00): lower bound 1.00 ≥ minimum 0.80")
	require.Contains(t, out, "shadow → active (by ")
	ref := ""
	for _, line := range strings.Split(out, "\n") {
		if r, ok := strings.CutPrefix(line, "audit: "); ok {
			ref = r
		}
	}
	require.True(t, strings.HasPrefix(ref, "AuditEvent/"), out)
	b, err := rg.env.FHIR.Read(ctx, ref)
	require.NoError(t, err)
	var audit map[string]any
	require.NoError(t, json.Unmarshal(b, &audit))
	require.Equal(t, "active", audit["subtype"].([]any)[0].(map[string]any)["code"])
	require.Contains(t, audit["outcomeDesc"], `engine `+config.DefaultEngine+` version `+version+` on route adult-chest at facility "Adult Clinic": shadow → active`)
	require.Contains(t, mustJSON(audit["entity"]), "lower bound 1.00")

	// Active now: the next order is delivered, with its read Task.
	next := loadRouted(t, rg, seed+10, "dx-chest-implicit-le-8bit.dcm")
	orderFrom(t, rg, next[0], "Adult Clinic", "routine")
	require.NoError(t, rg.env.Wait(ctx, next, 2*time.Minute))
	st := next[0].Status
	require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
	require.Empty(t, st.Engines[config.DefaultEngine].Mode)
	require.Equal(t, 1, reports(next[0]))
	require.Zero(t, reports(cases[0]), "what was scored in shadow stays undelivered")
}
