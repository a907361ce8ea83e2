package main

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
	"github.com/radgate/radgate/service"
)

// testClock is a clock the test moves by whole days.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// labelledFiles reads a testdata set's labels.csv (file, label, …); with
// reference (file, label, encoding, probability) it keeps the files the
// engine calls right (probability ≥ 0.5 exactly when label 1).
func labelledFiles(t *testing.T, dir, reference string) (files []string, present map[string]bool) {
	t.Helper()
	name := "labels.csv"
	if reference != "" {
		name = reference
	}
	f, err := os.Open(testenv.Testdata(dir, name))
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	present = map[string]bool{}
	for _, r := range rows[1:] {
		pos := r[1] == "1"
		if reference != "" {
			p, err := strconv.ParseFloat(r[3], 64)
			require.NoError(t, err)
			if (p >= 0.5) != pos {
				continue
			}
		}
		files = append(files, r[0])
		present[r[0]] = pos
	}
	return files, present
}

// TestDriftAlertSuspendsOnRealPeers is issue 14 part 4's drift proof on the
// real peers with an injected clock: a facility's first simulated days are
// paediatric (PneumoniaMNIST validation images the engine calls right,
// labelled from labels.csv), the engine is activated on them; its next days
// are adult (NIH images, labels.csv), the engine disagrees with the
// radiologists, and on the rule's seventh consecutive day the drift alert is
// raised: a FHIR Flag on the FHIR server, radgate_engine_drift_alert 1, the
// engine suspended by the drift rule (audited), and the next order is
// scored but not delivered.
func TestDriftAlertSuspendsOnRealPeers(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	serveOptions = func(o *service.Options) { o.Now, o.DriftEvery = clock.Now, 200*time.Millisecond }
	t.Cleanup(func() { serveOptions = nil })
	natsAddr := freeAddr(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `routes:
  - name: kids-chest
    when: {modality: [CR, DX]}
    engines: [`+config.DefaultEngine+`]
    destinations: [fhir]
    acceptance: {min_cases: 20, auc_lower_95: 0.50}
    drift: {disagreement_days: 7, min_daily_labels: 3, auto_suspend: true}
`)
	rg := startRadgate(t, func(c *config.Config) {
		c.NATS.EmbeddedListen = natsAddr
		c.RoutesFile = routesFile
	})
	ctx := t.Context()
	version := engineVersion(t, rg)
	const facility = "Kids Clinic"
	js, closeNATS, err := connectJetStream(dlqConfig(t, natsAddr, rg.cfg.DataDir), "drift-test")
	require.NoError(t, err)
	t.Cleanup(closeNATS)
	topo, err := broker.BindTopology(ctx, js)
	require.NoError(t, err)
	labels := governance.New(governance.Options{Topology: topo, Now: clock.Now}).Labels()
	client := governance.Client{URL: rg.url}
	seed := int(time.Now().UnixNano()/1e6%9000)*100 + 7

	// day runs one simulated day: the files' studies ordered, scored, and
	// read by the radiologists (labels.csv).
	day := func(d int, dir string, files []string, present map[string]bool) []*demo.Case {
		clock.set(time.Date(2026, 3, 2+d, 9, 0, 0, 0, time.UTC))
		var cases []*demo.Case
		for i, f := range files {
			src, err := os.ReadFile(testenv.Testdata(dir, f))
			require.NoError(t, err)
			b, _, err := demo.Clone(src, seed+d*10+i)
			require.NoError(t, err)
			cases = append(cases, &demo.Case{File: f, Data: b, Path: demo.ViaDirectPost})
		}
		require.NoError(t, rg.env.LoadImages(ctx, cases))
		for _, c := range cases {
			orderFrom(t, rg, c, facility, "routine")
		}
		require.NoError(t, rg.env.Wait(ctx, cases, 2*time.Minute))
		if present == nil {
			return cases
		}
		for _, c := range cases {
			finding := radgate.FindingAbsent
			if present[c.File] {
				finding = radgate.FindingPresent
			}
			_, err := labels.Record(ctx, radgate.Verdict{Source: radgate.SourceFHIR, ReadID: "DiagnosticReport/read-" + c.OrderID,
				Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber}, Finding: finding, ReceivedAt: clock.Now()})
			require.NoError(t, err)
		}
		return cases
	}

	// A paediatric week of 3 studies a day: the engine agrees with every read.
	paed, paedPresent := labelledFiles(t, "pneumoniamnist-val-dicom", "reference.csv")
	var pos, neg []string
	for _, f := range paed {
		if paedPresent[f] {
			pos = append(pos, f)
		} else {
			neg = append(neg, f)
		}
	}
	for d := range 7 {
		day(d, "pneumoniamnist-val-dicom", []string{pos[2*d], neg[d], pos[2*d+1]}, paedPresent)
	}
	var out strings.Builder
	rootCmd.SetOut(&out)
	resetFlags()
	rootCmd.SetArgs([]string{"engines", "activate", "--server", rg.url, "--facility", facility, "--route", "kids-chest", "--engine", config.DefaultEngine})
	t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
	require.NoError(t, rootCmd.ExecuteContext(ctx), out.String())
	require.Contains(t, out.String(), "shadow → active")

	// An adult week of 4 studies a day, until the rule fires (its seventh day).
	adult, adultPresent := labelledFiles(t, "adult-nih-dicom", "")
	var suspendedOn int
	for d := 7; d < 16 && suspendedOn == 0; d++ {
		day(d, "adult-nih-dicom", adult[4*(d-7):4*(d-6)], adultPresent)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && suspendedOn == 0 {
			states, err := client.States(ctx, facility, "kids-chest")
			require.NoError(t, err)
			if len(states) == 1 && states[0].Mode == radgate.EngineSuspended {
				suspendedOn = d
				require.Equal(t, governance.ByDriftRule, states[0].By)
				require.NotEmpty(t, states[0].Drift)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	require.Equal(t, 13, suspendedOn, "suspended on the seventh adult day (day 14), not before")

	// The Flag on the FHIR server, as the alert's record names it.
	e, err := topo.EngineState.Get(ctx, "d."+broker.Token(facility)+".kids-chest."+broker.Token(config.DefaultEngine)+"."+broker.Token(version)+".disagreement")
	require.NoError(t, err)
	var alert governance.DriftAlert
	require.NoError(t, json.Unmarshal(e.Value(), &alert))
	require.True(t, alert.Firing)
	require.True(t, strings.HasPrefix(alert.Flag, "Flag/"), alert.Flag)
	b, err := rg.env.FHIR.Read(ctx, alert.Flag)
	require.NoError(t, err)
	require.Contains(t, string(b), `"code":"disagreement"`)
	require.Contains(t, string(b), "the engine is suspended")

	resp, err := http.Get(rg.url + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), `radgate_engine_drift_alert{engine="`+config.DefaultEngine+`",facility="`+facility+`",rule="disagreement"} 1`)

	// The next order: scored, not delivered; the order says suspended.
	next := day(suspendedOn+1, "pneumoniamnist-val-dicom", []string{pos[20]}, nil)
	st := next[0].Status
	require.Equal(t, radgate.EngineSuspended, st.Engines[config.DefaultEngine].Mode)
	require.Zero(t, countByIdentifier(t, rg.env.FHIR, "DiagnosticReport",
		fhir.ResultIdentifier(pipeline.ResultID(next[0].OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version}))))

	// radgate monitor shows the shift.
	out.Reset()
	resetFlags()
	rootCmd.SetArgs([]string{"monitor", "--server", rg.url, "--facility", facility, "--engine", config.DefaultEngine, "--days", "16", "--out", t.TempDir()})
	require.NoError(t, rootCmd.ExecuteContext(ctx), out.String())
	require.Contains(t, out.String(), `at facility "Kids Clinic"`)
	require.Contains(t, out.String(), "2026-03-15")
}
