package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// proofCase is one labelled image of a facility's set, ordered as a study
// of its own.
type proofCase struct {
	*demo.Case
	positive bool
}

// parallel runs f(0..n-1) on workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// loadLabelled clones the first n images of testdata/<set> (labels.csv)
// as new studies (seed+i), edits their headers (set, when not empty) and
// stores them in the PACS, eight at a time.
func loadLabelled(t *testing.T, rg *running, set string, n, seed int, edit []demo.Element) []proofCase {
	t.Helper()
	dir := testenv.Testdata(set)
	labels, err := evaluation.ReadLabels(filepath.Join(dir, "labels.csv"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(labels), n)
	out := make([]proofCase, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) {
		src, err := os.ReadFile(filepath.Join(dir, labels[i].File))
		if err == nil {
			src, _, err = demo.Clone(src, seed+i)
		}
		if err == nil && len(edit) > 0 {
			src, _, err = demo.SetElements(src, edit)
		}
		var m *inference.Meta
		if err == nil {
			m, err = inference.ReadHeader(src)
		}
		if err == nil {
			_, err = rg.env.PACS.Store(t.Context(), src)
		}
		out[i] = proofCase{Case: &demo.Case{File: labels[i].File, Meta: m, Path: demo.ViaDirectPost}, positive: labels[i].Positive}
		errs[i] = err
	})
	for i, err := range errs {
		require.NoError(t, err, labels[i].File)
	}
	return out
}

// orderAll posts each case's ServiceRequest (no requester: the facility
// comes from the study's Institution Name), sixteen at a time.
func orderAll(t *testing.T, rg *running, cases []proofCase) []*demo.Case {
	t.Helper()
	errs := make([]error, len(cases))
	parallel(len(cases), 16, func(i int) {
		c := cases[i]
		subject := map[string]any{"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-P-" + c.Meta.AccessionNumber}}
		status, body := postFHIR(rg.url+"/fhir/ServiceRequest", demo.ServiceRequest(c.Meta, subject))
		if status != http.StatusAccepted {
			errs[i] = fmt.Errorf("ServiceRequest %s: HTTP %d: %s", c.Meta.AccessionNumber, status, body)
		}
		key, err := radgate.OrderKey(radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber}})
		if err != nil {
			errs[i] = err
		}
		c.OrderID = radgate.OrderID(key)
	})
	out := make([]*demo.Case, len(cases))
	for i, err := range errs {
		require.NoError(t, err)
		out[i] = cases[i].Case
	}
	return out
}

// postFHIR POSTs a FHIR resource (safe in goroutines: no require).
func postFHIR(url string, v any) (int, string) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.Post(url, "application/fhir+json", bytes.NewReader(b))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

const (
	sctPneumonia = "233604007"
	sctAbsent    = "373572006"
)

func verdictCode(positive bool) string {
	if positive {
		return sctPneumonia
	}
	return sctAbsent
}

// readerReport is a radiologist's final DiagnosticReport for an accession
// with a coded conclusion (SNOMED CT), as the RIS files it.
func readerReport(accession, code string) map[string]any {
	return map[string]any{"resourceType": "DiagnosticReport", "id": "read-" + accession, "status": "final",
		"identifier": []any{map[string]any{"type": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}}}, "system": demo.AccessionSystem, "value": accession}},
		"code":               map[string]any{"text": "XR chest"},
		"resultsInterpreter": []any{map[string]any{"reference": "Practitioner/dr-lee"}},
		"conclusionCode":     []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}}}}
}

// readerORU is the RIS's ORU^R01 with the read of an accession: a coded
// OBX (SNOMED CT as SCT) from a radiologist (OBR-32, OBX-16).
func readerORU(accession, code string) []string {
	display := "Pneumonia"
	if code != sctPneumonia {
		display = "Clinical finding absent"
	}
	return []string{
		`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240201101500||ORU^R01^ORU_R01|V` + accession + `|P|2.5.1`,
		`PID|1||MRN-` + accession + `^^^HOSP^MR`,
		`ORC|RE||FIL-` + accession + `^RIS||CM`,
		`OBR|1||FIL-` + accession + `^RIS|36643-5^XR Chest 2 Views^LN|||20240131150000|||||||||||` + accession +
			`||||20240201101000||RAD|F|||||||RAD-17&House&Gregory`,
		`OBX|1|CWE|18782-3^Radiology Study observation^LN||` + code + `^` + display + `^SCT||||||F|||20240201101000||RAD-17^House^Gregory`,
	}
}

// sendORUs sends messages with one mllp_send run and returns the ACKs.
func sendORUs(t *testing.T, port string, msgs [][]string) []hl7v2.Ack {
	t.Helper()
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(strings.Join(m, "\n") + "\n")
	}
	file := filepath.Join(t.TempDir(), "orus.hl7")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o600))
	cmd := exec.CommandContext(t.Context(), mllpSend, "--loose", "-p", port, "-f", file, "127.0.0.1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "mllp_send: %s", stderr.String())
	fr := hl7v2.NewFrameReader(&stdout, 0)
	var acks []hl7v2.Ack
	for range msgs {
		raw, err := fr.ReadFrame()
		require.NoError(t, err, "ACK %d of %d", len(acks)+1, len(msgs))
		m, err := hl7v2.Parse(raw)
		require.NoError(t, err)
		a, err := hl7v2.ReadACK(m)
		require.NoError(t, err)
		acks = append(acks, a)
	}
	return acks
}

// feedVerdicts sends the reads of cases back: even ones as final
// DiagnosticReports to radgate's FHIR intake, odd ones as ORU^R01 from the
// HL7 peer.
func feedVerdicts(t *testing.T, rg *running, port string, cases []proofCase) {
	t.Helper()
	errs := make([]error, len(cases))
	parallel(len(cases)/2+len(cases)%2, 8, func(j int) {
		c := cases[2*j]
		status, body := postFHIR(rg.url+"/fhir/DiagnosticReport", readerReport(c.Meta.AccessionNumber, verdictCode(c.positive)))
		if status != http.StatusCreated {
			errs[2*j] = fmt.Errorf("verdict for %s: HTTP %d: %s", c.Meta.AccessionNumber, status, body)
		}
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	var msgs [][]string
	for i := 1; i < len(cases); i += 2 {
		msgs = append(msgs, readerORU(cases[i].Meta.AccessionNumber, verdictCode(cases[i].positive)))
	}
	for i, a := range sendORUs(t, port, msgs) {
		require.Equal(t, hl7v2.AA, a.Code, "ORU %d: %+v", i, a)
	}
}

// pacsSeries counts the series of a study in the PACS.
func pacsSeries(t *testing.T, pacs testenv.PACS, studyUID string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimRight(pacs.DICOMweb, "/")+"/studies/"+studyUID+"/series", nil)
	require.NoError(t, err)
	req.SetBasicAuth(pacs.Username, pacs.Password)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var series []any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&series))
	return len(series)
}

var aucLine = regexp.MustCompile(`AUC (\d\.\d\d) \(95 % CI (\d\.\d\d)–(\d\.\d\d)\): lower bound`)

// TestGovernanceProofOnRealPeers is issue 14's proof on the real peers
// (FHIR server, Orthanc, the python3-hl7 peer): the Adult Clinic's 200
// orders are scored in shadow and reach no clinical destination; the
// radiologists' verdicts come back half as DiagnosticReports, half as
// ORUs; `radgate engines activate` refuses with the measured AUC and `radgate
// eval --from-verdicts` prints the same AUC. The Children's Hospital, fed
// the same way, is activated and its next order delivered. Bad verdicts
// through the real intakes are refused naming what was wrong, and change
// no count.
func TestGovernanceProofOnRealPeers(t *testing.T) {
	needMLLPSend(t)
	const k224 = "cxr-pneumonia-densenet121-k224"
	start := time.Now()
	ris, received := oruReceiver(t)
	pacs := testenv.Orthanc(t)
	natsAddr, hl7Port := freeAddr(t), freePort(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	// The adult clinic's chest studies by both engines (28-pixel
	// PneumoniaMNIST images are below the k224 engine's matrix, so the
	// children's hospital has the one engine that reads them).
	writeFile(t, routesFile, `routes:
  - name: adult-chest
    when: {facility: [Adult Clinic], modality: [CR, DX], body_part: [CHEST]}
    engines: [`+config.DefaultEngine+`, `+k224+`]
    destinations: [fhir, pacs-results, ris]
    read: {request: always, group: CareTeam/chest-readers}
    acceptance: &minimums {min_cases: 100, auc_lower_95: 0.80, sensitivity_at: Mid, min_sensitivity: 0.90}
  - name: paediatric-chest
    when: {facility: ["Children's Hospital"], modality: [CR, DX], body_part: [CHEST]}
    engines: [`+config.DefaultEngine+`]
    destinations: [fhir, pacs-results, ris]
    read: {request: always, group: CareTeam/chest-readers}
    acceptance: *minimums
`)
	t.Setenv("RADGATE_E2E_PROOF_PACS_PASSWORD", pacs.Password)
	rg := startRadgate(t, func(c *config.Config) {
		c.NATS.EmbeddedListen = natsAddr
		c.RoutesFile = routesFile
		c.HL7v2.Listen = "127.0.0.1:" + hl7Port
		c.HL7v2.AccessionSystem = demo.AccessionSystem
		c.HTTP.Limits.OrdersPerSecond = 0 // one EHR handing in whole sets at once
		c.Destinations = map[string]config.Destination{
			"pacs-results": {Type: config.DestinationDICOMweb, URL: pacs.DICOMweb,
				Auth: config.ClientAuth{Username: pacs.Username, PasswordEnv: "RADGATE_E2E_PROOF_PACS_PASSWORD"}},
			"ris": {Type: config.DestinationHL7v2, Address: ris, ReceivingApplication: "RIS"},
		}
		c.Facilities = []config.Facility{
			{ID: "adult-clinic", Name: "Adult Clinic", InstitutionNames: []string{"Adult Clinic"}},
			{ID: "childrens-hospital", Name: "Children's Hospital", InstitutionNames: []string{"Children's Hospital"}},
		}
	})
	ctx := t.Context()
	version := engineVersion(t, rg)
	seed := int(time.Now().UnixNano()/1e6%3990) * 250
	evalCfg := dlqConfig(t, natsAddr, rg.cfg.DataDir)
	models := filepath.Join(testenv.RepoRoot(), "models")
	evalVerdicts := func(facility string, more ...string) string {
		t.Helper()
		out, stderr, err := runEvalCmd(t, append([]string{"--from-verdicts", "--config", evalCfg, "--models", models, "--facility", facility}, more...)...)
		require.NoError(t, err, stderr)
		return out
	}
	engines := func(args ...string) (string, error) {
		var out bytes.Buffer
		resetFlags()
		rootCmd.SetOut(&out)
		rootCmd.SetArgs(append([]string{"engines"}, args...))
		t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
		err := rootCmd.ExecuteContext(ctx)
		return out.String(), err
	}
	activate := func(facility, route string) (string, error) {
		return engines("activate", "--server", rg.url, "--facility", facility, "--route", route, "--engine", config.DefaultEngine)
	}
	resultID := func(c *demo.Case) string {
		return pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version})
	}
	reports := func(c *demo.Case) int {
		return countByIdentifier(t, rg.env.FHIR, "DiagnosticReport", fhir.ResultIdentifier(resultID(c)))
	}
	noORU := func(when string) {
		select {
		case raw := <-received:
			t.Fatalf("%s: an ORU reached the RIS: %q", when, raw)
		default:
		}
	}

	// Shadow at the Adult Clinic: 200 orders scored, nothing delivered.
	adults := loadLabelled(t, rg, "adult-nih-dicom", 200, seed, nil)
	adultCases := orderAll(t, rg, adults)
	require.NoError(t, rg.env.Wait(ctx, adultCases, 3*time.Minute))
	t.Logf("200 adult orders scored in shadow after %s", time.Since(start).Round(time.Second))
	for _, c := range adultCases {
		st := c.Status
		require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
		require.Equal(t, "adult-clinic", st.FacilityID, "the facility comes from the Institution Name")
		for _, e := range []string{config.DefaultEngine, k224} {
			eng := st.Engines[e]
			require.Equal(t, radgate.EngineShadow, eng.Mode, c.OrderID)
			require.Empty(t, eng.Deliveries, "shadow: no destination, FHIR, PACS or RIS")
		}
	}
	for _, c := range adultCases[:20] {
		require.Zero(t, reports(c), "no DiagnosticReport in shadow")
		require.Zero(t, countByIdentifier(t, rg.env.FHIR, "Observation", fhir.Identifier{System: fhir.SystemResult, Value: resultID(c) + "/observation"}), "no Observation")
		require.Zero(t, countByIdentifier(t, rg.env.FHIR, "Task", fhir.Identifier{System: fhir.SystemReadRequest, Value: c.OrderID}), "no read Task")
		require.Equal(t, 1, pacsSeries(t, pacs, c.Meta.StudyInstanceUID), "only the radiograph's series: no SC, no SR")
	}
	noORU("adult shadow")

	feedVerdicts(t, rg, hl7Port, adults)
	out, err := activate("adult-clinic", "adult-chest")
	require.Error(t, err, "refused: the paediatric engine is poor on adults\n%s", out)
	require.Contains(t, err.Error(), "409")
	require.Contains(t, out, "labelled cases 200 (100 with the finding, 100 without) ≥ minimum 100")
	m := aucLine.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Contains(t, out, "< minimum 0.80", "the AUC's lower bound against the minimum")
	t.Logf("activate at the Adult Clinic:\n%s", out)

	table := evalVerdicts("adult-clinic")
	t.Logf("eval --from-verdicts at the Adult Clinic:\n%s", table)
	require.Contains(t, table, "200 labelled case(s), 100 positive, 100 negative")
	evalAUC := regexp.MustCompile(`(?m)^AUC\s+(\d\.\d{4})\s*$`).FindStringSubmatch(table)
	evalCI := regexp.MustCompile(`(?m)^  95% CI \(DeLong\)\s+(\d\.\d{4})-(\d\.\d{4})\s*$`).FindStringSubmatch(table)
	require.NotNil(t, evalAUC, table)
	require.NotNil(t, evalCI, table)
	for i, s := range []string{evalAUC[1], evalCI[1], evalCI[2]} {
		v, _ := strconv.ParseFloat(s, 64)
		require.Equal(t, m[i+1], strconv.FormatFloat(v, 'f', 2, 64), "eval --from-verdicts and activate measure the same AUC")
	}

	// Both engines on the same reads: the paired comparison.
	plots := t.TempDir()
	paired := evalVerdicts("adult-clinic", "--engine", config.DefaultEngine, "--engine", k224, "--out", plots)
	for _, f := range []string{"roc.png", "reliability-" + config.DefaultEngine + ".png", "reliability-" + k224 + ".png"} {
		require.FileExists(t, filepath.Join(plots, f))
	}
	t.Logf("eval --from-verdicts, two engines:\n%s", paired)
	require.Contains(t, paired, "Paired comparison of AUCs (DeLong's test for correlated ROC curves):")
	require.Contains(t, paired, config.DefaultEngine+" − "+k224+", 200 cases scored by both:")

	// Bad verdicts through the real intakes: each refused naming what was
	// wrong; nothing counted.
	t.Run("bad verdicts", func(t *testing.T) {
		known := adults[0].Meta.AccessionNumber
		status, body := postFHIR(rg.url+"/fhir/DiagnosticReport", readerReport("NOSUCH-ACC-1", sctPneumonia))
		require.Equal(t, http.StatusConflict, status, body)
		require.Contains(t, body, "NOSUCH-ACC-1")
		require.Contains(t, body, fhir.DetailUnknownResult)
		status, body = postFHIR(rg.url+"/fhir/DiagnosticReport", readerReport(known, "60046008"))
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		require.Contains(t, body, "60046008")
		require.Contains(t, body, "DiagnosticReport.conclusionCode")

		// An order whose study is not in the PACS yet: no result to label.
		early := adults[1]
		meta := *early.Meta
		meta.AccessionNumber, meta.StudyInstanceUID = "EARLY"+strconv.Itoa(seed), meta.StudyInstanceUID+".9"
		status, body = postFHIR(rg.url+"/fhir/ServiceRequest", demo.ServiceRequest(&meta, map[string]any{"identifier": map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-EARLY"}}))
		require.Equal(t, http.StatusAccepted, status, body)
		status, body = postFHIR(rg.url+"/fhir/DiagnosticReport", readerReport(meta.AccessionNumber, sctAbsent))
		require.Equal(t, http.StatusConflict, status, body)
		require.Contains(t, body, meta.AccessionNumber)

		acks := sendORUs(t, hl7Port, [][]string{
			readerORU("NOSUCH-ACC-2", sctPneumonia),
			readerORU(known, "60046008"),
			readerORU(meta.AccessionNumber, sctPneumonia),
		})
		for i, want := range []string{"NOSUCH-ACC-2", "OBX-5: code 60046008 (SCT) is not a known verdict code", meta.AccessionNumber} {
			require.Equal(t, hl7v2.AE, acks[i].Code, "%+v", acks[i])
			require.Contains(t, mustJSON(acks[i]), want)
		}
		require.Equal(t, table, evalVerdicts("adult-clinic"), "nothing counted")
	})

	// The Children's Hospital: 4-year-olds of PneumoniaMNIST's validation
	// set (the engine's own model-selection set: optimistic), fed the same
	// way, is activated; its next order is delivered.
	child := []demo.Element{{Tag: 0x00080080, VR: "LO", Value: "Children's Hospital"}, {Tag: 0x00101010, VR: "AS", Value: "004Y"}}
	kids := loadLabelled(t, rg, "pneumoniamnist-val-dicom", 101, seed+200, child)
	next, kids := kids[100], kids[:100]
	kidCases := orderAll(t, rg, kids)
	require.NoError(t, rg.env.Wait(ctx, kidCases, 3*time.Minute))
	for _, c := range kidCases {
		require.Equal(t, "childrens-hospital", c.Status.FacilityID)
		require.Equal(t, radgate.EngineShadow, c.Status.Engines[config.DefaultEngine].Mode)
	}
	noORU("children's shadow")
	feedVerdicts(t, rg, hl7Port, kids)
	out, err = activate("childrens-hospital", "paediatric-chest")
	require.NoError(t, err, out)
	require.Contains(t, out, "labelled cases 100")
	require.Contains(t, out, "shadow → active (by ")
	t.Logf("activate at the Children's Hospital:\n%s", out)
	t.Logf("eval --from-verdicts at the Children's Hospital:\n%s", evalVerdicts("childrens-hospital"))

	nextCases := orderAll(t, rg, []proofCase{next})
	require.NoError(t, rg.env.Wait(ctx, nextCases, 2*time.Minute))
	st := nextCases[0].Status
	require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
	eng := st.Engines[config.DefaultEngine]
	require.Empty(t, eng.Mode, "active")
	for _, d := range []string{"fhir", "pacs-results", "ris"} {
		require.Equal(t, radgate.StateDelivered, eng.Deliveries[d].State, d)
	}
	require.Equal(t, 1, reports(nextCases[0]))
	select {
	case raw := <-received:
		oru, err := hl7v2.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, next.Meta.AccessionNumber, oru.Get("OBR-18"))
	case <-time.After(time.Minute):
		t.Fatal("the RIS received no ORU for the active engine's order")
	}
	t.Logf("proof done in %s", time.Since(start).Round(time.Second))
}
