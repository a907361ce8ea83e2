package main

// End-to-end proofs of the order lifecycle (issue 11) on the real peers:
// radgate serve as a child process (reliability_harness_test.go), the
// shared Orthanc and FHIR server, the shipped ONNX model, and orders made
// from the PneumoniaMNIST-derived 28² radiographs (scored in milliseconds).
// Timings are shortened (study_wait_window 3 s, stable_after 2–6 s,
// ack_wait 3 s); the assertions are about states and resources, not times.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/billing"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// lcPACSDestination is the DICOMweb destination of lcRig's route: the
// derived SC and SR go back into the study in Orthanc, rejection notes too.
const lcPACSDestination = "pacs-results"

// lcRig is a rig whose chest route delivers to the FHIR server and back into
// the PACS, with ack_wait 3 s and the other lifecycle timings shortened.
func lcRig(t *testing.T, ps peers, mutate func(*config.Config)) *rig {
	t.Helper()
	return lcRigWith(t, ps, nil, mutate)
}

// lcRigWith is lcRig with more destinations (name → YAML keys) on the route.
func lcRigWith(t *testing.T, ps peers, more map[string]map[string]any, mutate func(*config.Config)) *rig {
	t.Helper()
	dests := map[string]any{lcPACSDestination: map[string]any{
		"type": config.DestinationDICOMweb, "url": ps.pacs.DICOMweb,
		"auth": map[string]any{"username": ps.pacs.Username, "password_env": "RADGATE_RELIAB_PACS_PASSWORD"}}}
	names := "fhir, " + lcPACSDestination
	for name, d := range more {
		dests[name] = d
		names += ", " + name
	}
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routes, `routes:
  - name: chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [`+config.DefaultEngine+`]
    destinations: [`+names+`]
`)
	r := newRig(t, ps, func(c *config.Config) {
		c.RoutesFile = routes
		c.Orders.AckWait = config.Duration(3 * time.Second)
		c.Orders.StudyWaitWindow = config.Duration(time.Minute)
		if mutate != nil {
			mutate(c)
		}
	})
	// The destination is written as an operator writes it: a marshalled
	// config.Destination carries every type's keys, which radgate refuses
	// for a dicomweb destination.
	b, err := os.ReadFile(r.cfgPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	doc["destinations"] = dests
	b, err = yaml.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(r.cfgPath, b, 0o600))
	r.cfg, err = config.LoadFile(r.cfgPath)
	require.NoError(t, err, "the configuration written for the test loads")
	return r
}

// status reads GET /orders/{id}.
func (p *proc) status(t *testing.T, o *order) radgate.OrderStatus {
	t.Helper()
	st, err := p.env.OrderStatus(t.Context(), o.id)
	require.NoError(t, err, "GET /orders/%s", o.id)
	return st
}

// waitState polls GET /orders/{id} every 50 ms until the order is in state
// want, failing after limit with the order as radgate shows it.
func waitState(t *testing.T, p *proc, o *order, limit time.Duration, want radgate.OrderState) radgate.OrderStatus {
	t.Helper()
	deadline := time.Now().Add(limit)
	var st radgate.OrderStatus
	var err error
	for {
		st, err = p.env.OrderStatus(t.Context(), o.id)
		if err == nil && st.State == want {
			o.status = st
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s not %s within %s (err %v); GET /orders/%s:\n%s", o.id, want, limit, err, o.id, mustJSON(st))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resultID is the order's result id for the default engine.
func (r *rig) resultID(o *order) string {
	return pipeline.ResultID(o.id, radgate.EngineInfo{ID: config.DefaultEngine, Version: r.version})
}

// report reads the order's one DiagnosticReport from the FHIR server
// (failing unless there is exactly one) and its reference.
func (r *rig) report(t *testing.T, o *order) (map[string]any, string) {
	t.Helper()
	id := fhir.ResultIdentifier(r.resultID(o))
	found, err := r.fhir.Search(t.Context(), "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	require.Len(t, found, 1, "exactly one DiagnosticReport for order %s", o.id)
	var dr map[string]any
	require.NoError(t, json.Unmarshal(found[0], &dr))
	return dr, "DiagnosticReport/" + dr["id"].(string)
}

// readJSON reads a FHIR resource by reference.
func (r *rig) readJSON(t *testing.T, ref string) map[string]any {
	t.Helper()
	b, err := r.fhir.Read(t.Context(), ref)
	require.NoError(t, err, "reading %s", ref)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// versions counts the versions in a FHIR resource's _history (0 when the
// resource does not exist).
func (r *rig) versions(t *testing.T, ref string) int {
	t.Helper()
	resp, err := http.Get(r.cfg.FHIR.BaseURL + "/" + ref + "/_history")
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return 0
	}
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s/_history: %s", ref, b)
	var bundle struct {
		Entry []json.RawMessage `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(b, &bundle))
	return len(bundle.Entry)
}

// qidoInstances lists the SOP Instance UIDs Orthanc has in one series of a
// study (none: the series does not exist).
func (r *rig) qidoInstances(t *testing.T, study, series string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		r.cfg.PACS.DICOMwebURL+"/studies/"+study+"/series/"+series+"/instances", nil)
	require.NoError(t, err)
	pacs := testenv.Orthanc(t)
	req.SetBasicAuth(pacs.Username, pacs.Password)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "QIDO-RS instances: %s", b)
	var list []map[string]struct {
		Value []any `json:"Value"`
	}
	require.NoError(t, json.Unmarshal(b, &list))
	var out []string
	for _, ds := range list {
		if v := ds["00080018"].Value; len(v) > 0 {
			out = append(out, fmt.Sprint(v[0]))
		}
	}
	return out
}

// dcmdump is DCMTK's dump of a DICOM object.
func dcmdump(t *testing.T, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, data, 0o600))
	out, err := exec.Command("dcmdump", "+P", "all", "-q", f).CombinedOutput()
	if err != nil { // older dcmdump without +P: the plain dump
		out, err = exec.Command("dcmdump", f).CombinedOutput()
	}
	require.NoError(t, err, "dcmdump: %s", out)
	return string(out)
}

// requireRejectionNote reads the IOCM rejection note radgate stored for
// revision rev of the order's result and checks it: a Key Object Selection
// titled (113037, DCM) referencing that revision's SC and SR, without
// dciodvfy errors; and that it is the only note of that revision.
func (r *rig) requireRejectionNote(t *testing.T, o *order, rev int) {
	t.Helper()
	u := derived.UIDsFor(r.resultID(o), rev)
	kos, err := r.pacs.RetrieveInstance(t.Context(), o.meta.StudyInstanceUID, u.KOSSeries, u.KOS)
	require.NoError(t, err, "the rejection note of revision %d is in Orthanc", rev)
	dump := dcmdump(t, kos)
	require.Contains(t, dump, "KeyObjectSelectionDocumentStorage")
	require.Contains(t, dump, "[113037]", "titled Rejected for Patient Safety Reasons")
	require.Contains(t, dump, "[DCM]")
	require.Contains(t, dump, u.SC, "references the rejected SC")
	require.Contains(t, dump, u.SR, "references the rejected SR")
	iod, _ := testenv.Dciodvfy(t, fmt.Sprintf("rejection note of revision %d read back from Orthanc", rev), kos)
	require.Equal(t, "KeyObjectSelectionDocument", iod)
	notes := r.qidoInstances(t, o.meta.StudyInstanceUID, u.KOSSeries)
	require.Equal(t, []string{u.KOS}, notes, "one rejection note in the result's note series")
}

// invalidTransitions is radgate_order_invalid_transitions_total of p.
func invalidTransitions(t *testing.T, p *proc) float64 {
	t.Helper()
	v, err := p.metric(t.Context(), "radgate_order_invalid_transitions_total")
	require.NoError(t, err)
	return v
}

// postCancel POSTs the order's ServiceRequest with the status given
// (revoked, entered-in-error) to radgate's intake.
func postCancel(t *testing.T, p *proc, o *order, status string) (int, string) {
	t.Helper()
	sr := o.serviceRequestMap()
	sr["status"] = status
	b, err := json.Marshal(sr)
	require.NoError(t, err)
	code, body, err := post(t.Context(), p.url, b)
	require.NoError(t, err)
	return code, string(body)
}

// dcmodifyFile runs DCMTK's dcmodify (no backup) on a copy of data.
func dcmodifyFile(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "obj.dcm")
	require.NoError(t, os.WriteFile(f, data, 0o600))
	out, err := exec.Command("dcmodify", append(append([]string{"-nb"}, args...), f)...).CombinedOutput()
	require.NoError(t, err, "dcmodify: %s", out)
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	return b
}

// anotherFrontal is one more PA image of the order's study: the same
// series, a new SOP Instance UID.
func anotherFrontal(t *testing.T, o *order) ([]byte, string) {
	t.Helper()
	b := dcmodifyFile(t, o.data, "-gin")
	return b, sopUID(t, b)
}

// lateralOf makes a lateral (View Position LL) for the order's study from a
// testdata/cxr-dicom chest radiograph: the order's patient, study and
// accession number, a series and SOP Instance UID of its own.
func lateralOf(t *testing.T, o *order) ([]byte, string) {
	t.Helper()
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	ds, err := dicom.Parse(bytes.NewReader(o.data), int64(len(o.data)), nil, dicom.SkipPixelData())
	require.NoError(t, err)
	b := dcmodifyFile(t, src, "-gse", "-gin",
		"-i", "(0020,000d)="+o.meta.StudyInstanceUID,
		"-i", "(0008,0050)="+o.meta.AccessionNumber,
		"-i", "(0010,0020)="+strs(t, ds, tag.PatientID)[0],
		"-i", "(0010,0010)="+strs(t, ds, tag.PatientName)[0],
		"-i", "(0018,5101)=LL",
		"-i", "(0008,1030)=XR CHEST LAT")
	return b, sopUID(t, b)
}

func sopUID(t *testing.T, b []byte) string {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(b), int64(len(b)), nil, dicom.SkipPixelData())
	require.NoError(t, err)
	return strs(t, ds, tag.SOPInstanceUID)[0]
}

func (r *rig) storeBytes(t *testing.T, what string, b []byte) {
	t.Helper()
	_, err := r.pacs.Store(t.Context(), b)
	require.NoError(t, err, "storing %s", what)
}

// ---------------------------------------------------------------- 1. late study

// TestLifecycleStudyAfterTheWindowReopensTheOrder: an order whose study is
// stored twice the wait window after it ends failed first, then is re-opened
// by the study and delivered, with one DiagnosticReport.
func TestLifecycleStudyAfterTheWindowReopensTheOrder(t *testing.T) {
	const window = 3 * time.Second
	r := lcRig(t, sharedPeers(t), func(c *config.Config) { c.Orders.StudyWaitWindow = config.Duration(window) })
	p := r.start()
	o := makeOrders(t, 1)[0]
	posted := time.Now()
	submit(t, p, o)
	waitState(t, p, o, 10*time.Second, radgate.StateWaiting)
	failed := waitState(t, p, o, window+10*time.Second, radgate.StateFailed)
	require.Contains(t, failed.Reason, "study not found in the PACS within 3s")
	time.Sleep(time.Until(posted.Add(2 * window)))
	r.store(t.Context(), o)

	st := waitState(t, p, o, time.Minute, radgate.StateDelivered)
	require.NotNil(t, st.Engines[config.DefaultEngine].Probability, "scored")
	dr, _ := r.report(t, o)
	require.Equal(t, "final", dr["status"])
	require.Zero(t, invalidTransitions(t, p))
}

// ---------------------------------------------------------------- 2. study in pieces

// TestLifecycleStudyInPiecesScoredOnce: a PA, a lateral and another frontal
// stored 3 s apart into a study that the order waited for, stable_after 6 s:
// one DiagnosticReport scored on all three instances' worth of the study,
// the lateral named as skipped with its reason.
func TestLifecycleStudyInPiecesScoredOnce(t *testing.T) {
	r := lcRig(t, sharedPeers(t), func(c *config.Config) { c.Orders.StableAfter = config.Duration(6 * time.Second) })
	p := r.start()
	o := makeOrders(t, 1)[0]
	lateral, lateralUID := lateralOf(t, o)
	frontal2, _ := anotherFrontal(t, o)
	submit(t, p, o)
	waitState(t, p, o, 10*time.Second, radgate.StateWaiting)

	r.storeBytes(t, "the PA", o.data)
	waitState(t, p, o, 10*time.Second, radgate.StateStabilising)
	time.Sleep(3 * time.Second)
	r.storeBytes(t, "the lateral", lateral)
	time.Sleep(3 * time.Second)
	require.Equal(t, radgate.StateStabilising, p.status(t, o).State, "not scored while pieces keep coming")
	r.storeBytes(t, "the second frontal", frontal2)

	st := waitState(t, p, o, time.Minute, radgate.StateDelivered)
	require.NotNil(t, st.Study)
	require.Equal(t, 3, st.Study.Scored, "scored on the study of three instances")
	require.Equal(t, 1, st.Engines[config.DefaultEngine].Revision, "scored once")
	dr, _ := r.report(t, o)
	require.Equal(t, "final", dr["status"])
	conclusion, _ := dr["conclusion"].(string)
	require.Contains(t, conclusion, "Images: 2 of 3 scored.")
	require.Contains(t, conclusion, lateralUID+" (view LL)", "the lateral is named")
	require.Contains(t, conclusion, "PA/AP", "with the reason it was skipped")
	time.Sleep(3 * time.Second) // a second scoring would show by now
	require.Equal(t, 1, p.status(t, o).Engines[config.DefaultEngine].Revision)
	r.report(t, o)
	require.Zero(t, invalidTransitions(t, p))
}

// ---------------------------------------------------------------- 3. waiting orders block nothing

// TestLifecycleWaitingOrdersBlockNothing: 100 orders waiting for images and
// one whose study is in the PACS: that one is delivered while the 100 still
// wait (they hold no consumer slot).
func TestLifecycleWaitingOrdersBlockNothing(t *testing.T) {
	r := lcRig(t, sharedPeers(t), func(c *config.Config) {
		c.Orders.StudyWaitWindow = config.Duration(10 * time.Minute)
		c.Orders.PollMin, c.Orders.PollMax = config.Duration(time.Second), config.Duration(5*time.Second)
	})
	p := r.start()
	orders := makeOrders(t, 101)
	waiting, ready := orders[:100], orders[100]
	submit(t, p, waiting...)
	for _, o := range waiting {
		waitState(t, p, o, time.Minute, radgate.StateWaiting)
	}
	r.store(t.Context(), ready)
	submit(t, p, ready)
	waitState(t, p, ready, time.Minute, radgate.StateDelivered)
	r.report(t, ready)
	for _, o := range waiting {
		require.Equal(t, radgate.StateWaiting, p.status(t, o).State, "order %s still waits", o.id)
	}
	require.Zero(t, invalidTransitions(t, p))
}

// ---------------------------------------------------------------- 4. cancel

// TestLifecycleCancel: a ServiceRequest revoked before images scores
// nothing; revoked after delivery retracts the result on the FHIR server
// (entered-in-error, one Provenance) and in Orthanc (one IOCM rejection
// note); a second revoke changes nothing; a revoke for an order radgate
// never had is answered 404 naming it.
func TestLifecycleCancel(t *testing.T) {
	r := lcRig(t, sharedPeers(t), nil)
	p := r.start()
	orders := makeOrders(t, 2)
	before, after := orders[0], orders[1]

	t.Run("before images: nothing scored", func(t *testing.T) {
		submit(t, p, before)
		waitState(t, p, before, 10*time.Second, radgate.StateWaiting)
		code, body := postCancel(t, p, before, "revoked")
		require.Equal(t, http.StatusAccepted, code, body)
		st := waitState(t, p, before, 10*time.Second, radgate.StateCancelled)
		require.NotNil(t, st.Cancelled)
		require.Contains(t, st.Cancelled.Reason, "revoked")
		r.store(t.Context(), before) // the images come anyway
		time.Sleep(4 * time.Second)  // poll_max 2 s: looked at twice if still watched
		st = p.status(t, before)
		require.Equal(t, radgate.StateCancelled, st.State)
		require.Nil(t, st.Engines[config.DefaultEngine].Probability, "not scored")
		n, err := r.reports(t.Context(), before)
		require.NoError(t, err)
		require.Zero(t, n, "no DiagnosticReport")
	})

	t.Run("after delivery: retracted everywhere, once", func(t *testing.T) {
		r.store(t.Context(), after)
		submit(t, p, after)
		waitState(t, p, after, time.Minute, radgate.StateDelivered)
		dr, ref := r.report(t, after)
		require.Equal(t, "final", dr["status"])

		code, body := postCancel(t, p, after, "revoked")
		require.Equal(t, http.StatusAccepted, code, body)
		st := waitState(t, p, after, time.Minute, radgate.StateCancelled)
		for dest, d := range st.Engines[config.DefaultEngine].Deliveries {
			require.True(t, d.Retracted, "retracted at %s: %s", dest, mustJSON(d))
		}
		dr, _ = r.report(t, after)
		require.Equal(t, "entered-in-error", dr["status"])
		results, _ := dr["result"].([]any)
		require.NotEmpty(t, results)
		obsRef := results[0].(map[string]any)["reference"].(string)
		require.Equal(t, "entered-in-error", r.readJSON(t, obsRef)["status"])
		provRef := "Provenance/" + fhirhttp.RetractionProvenanceID(r.resultID(after))
		prov := r.readJSON(t, provRef)
		require.Contains(t, mustJSON(prov["target"]), ref)
		require.Contains(t, mustJSON(prov), "revoked", "the Provenance says why")
		require.Equal(t, 1, r.versions(t, provRef))
		r.requireRejectionNote(t, after, 1)

		// Cancel twice: idempotent, no second retraction.
		code, body = postCancel(t, p, after, "revoked")
		require.Less(t, code, 300, "a second revoke is accepted or ignored: %s", body)
		code, body = postCancel(t, p, after, "entered-in-error")
		require.Less(t, code, 300, "so is entered-in-error after revoked: %s", body)
		time.Sleep(3 * time.Second)
		require.Equal(t, radgate.StateCancelled, p.status(t, after).State)
		require.Equal(t, 1, r.versions(t, provRef), "one Provenance")
		require.Equal(t, 2, r.versions(t, ref), "the report written, then retracted: nothing more")
		r.requireRejectionNote(t, after, 1)
	})

	t.Run("unknown order: 404 naming it", func(t *testing.T) {
		unknown := makeOrders(t, 1)[0]
		code, body := postCancel(t, p, unknown, "revoked")
		require.Equal(t, http.StatusNotFound, code, body)
		require.Contains(t, body, `"resourceType":"OperationOutcome"`)
		require.Contains(t, body, unknown.meta.AccessionNumber, "names the order")
		_, err := p.env.OrderStatus(t.Context(), unknown.id)
		require.Error(t, err, "no order was made of it")
	})
	require.Zero(t, invalidTransitions(t, p))
}

// ---------------------------------------------------------------- 5. amendment

// TestLifecycleImageAddedAmends: one more frontal stored after the result →
// the DiagnosticReport is amended (same resource, two versions), revision 2's
// SR names revision 1's as predecessor, a rejection note withdraws revision
// 1's SC and SR, and usage bills one analysis.
func TestLifecycleImageAddedAmends(t *testing.T) {
	natsAddr := freeAddr(t)
	r := lcRig(t, sharedPeers(t), func(c *config.Config) {
		c.Orders.StableAfter = config.Duration(2 * time.Second)
		c.NATS.EmbeddedListen = natsAddr
	})
	p := r.start()
	o := makeOrders(t, 1)[0]
	r.store(t.Context(), o)
	submit(t, p, o)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)
	_, ref := r.report(t, o)
	require.Equal(t, 1, r.versions(t, ref))

	more, _ := anotherFrontal(t, o)
	r.storeBytes(t, "a frontal added after the result", more)
	waitFor(t, time.Minute, "revision 2 delivered", func() bool {
		st, err := p.env.OrderStatus(t.Context(), o.id)
		return err == nil && st.State == radgate.StateDelivered && st.Engines[config.DefaultEngine].Revision == 2
	})
	// (st.Study.Scored is not checked here: it counts radgate's own SC and
	// SR stored into the study, see TestLifecycleOwnResultsAreNotNewImages.)

	dr, ref2 := r.report(t, o)
	require.Equal(t, ref, ref2, "the same DiagnosticReport")
	require.Equal(t, "amended", dr["status"])
	require.Equal(t, 2, r.versions(t, ref), "its history holds both versions")

	res := r.resultID(o)
	u1, u2 := derived.UIDsFor(res, 1), derived.UIDsFor(res, 2)
	sr, err := r.pacs.RetrieveInstance(t.Context(), o.meta.StudyInstanceUID, u2.SRSeries, u2.SR)
	require.NoError(t, err, "revision 2's SR is in Orthanc")
	dump := dcmdump(t, sr)
	require.Contains(t, dump, "(0040,a360)", "Predecessor Documents Sequence")
	require.Contains(t, dump, u1.SR, "naming revision 1's SR")
	testenv.Dciodvfy(t, "revision 2's SR", sr)
	r.requireRejectionNote(t, o, 1)

	month := time.Now().UTC().Format("2006-01")
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"usage", "--config", dlqConfig(t, natsAddr, r.cfg.DataDir), "--month", month, "--csv"})
	t.Cleanup(func() { rootCmd.SetArgs(nil); rootCmd.SetOut(nil) })
	require.NoError(t, rootCmd.ExecuteContext(t.Context()))
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"month", "facility", "engine", "analyses"},
		{month, billing.UnknownFacility, config.DefaultEngine, "1"},
	}, rows, "a re-score of the same order × engine is not billed again")
	require.Zero(t, invalidTransitions(t, p))
}

// ---------------------------------------------------------------- 7. two processes

// TestLifecycleTwoProcessesBothWork: two radgate processes on one NATS
// server, 20 orders posted to them alternately: each process handled
// messages in the router or inference stage, and each order has exactly one
// DiagnosticReport.
func TestLifecycleTwoProcessesBothWork(t *testing.T) {
	natsDir := t.TempDir()
	ext := startExternalNATS(t, natsDir)
	ps := sharedPeers(t)
	mk := func() *rig {
		return newRig(t, ps, func(c *config.Config) {
			c.NATS.URL = ext
			c.Orders.AckWait = config.Duration(3 * time.Second)
		})
	}
	ra, rb := mk(), mk()
	a, b := ra.start(), rb.start()
	orders := makeOrders(t, 20)
	ra.store(t.Context(), orders...)
	for i, o := range orders {
		submit(t, []*proc{a, b}[i%2], o)
	}
	waitTerminal(t, a, 3*time.Minute, orders...)
	ra.requireOneReportEach(t, orders...)

	work := map[string]float64{}
	for name, p := range map[string]*proc{"A": a, "B": b} {
		for _, stage := range []string{"router", "inference"} {
			v, err := p.metric(t.Context(), "radgate_stage_messages_total", `stage="`+stage+`"`)
			require.NoError(t, err)
			work[name+" "+stage] = v
		}
		require.Zero(t, invalidTransitions(t, p))
	}
	t.Logf("messages handled: %v", work)
	require.Positive(t, work["A router"]+work["A inference"], "process A did work")
	require.Positive(t, work["B router"]+work["B inference"], "process B did work")
}

// startExternalNATS runs a NATS server both radgate processes connect to
// (the hospital's cluster) and returns its client URL.
func startExternalNATS(t *testing.T, dir string) string {
	t.Helper()
	ext, err := broker.StartEmbedded(dir, -1)
	require.NoError(t, err)
	t.Cleanup(ext.Shutdown)
	return ext.ClientURL()
}

// TestLifecycleOwnResultsAreNotNewImages: the SC and SR radgate stores
// into the study are not images added after the result: the order stays at
// revision 1, its DiagnosticReport at one version, long past stable_after
// and several looks of the watcher.
func TestLifecycleOwnResultsAreNotNewImages(t *testing.T) {
	r := lcRig(t, sharedPeers(t), func(c *config.Config) { c.Orders.StableAfter = config.Duration(time.Second) })
	p := r.start()
	o := makeOrders(t, 1)[0]
	r.store(t.Context(), o)
	submit(t, p, o)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)
	time.Sleep(8 * time.Second) // poll_max 2 s, stable_after 1 s: an amendment would be delivered by now
	// Found on the code as written: the watcher counts every instance of
	// the study, radgate's own SC and SR included, so each delivery into
	// the study's PACS looks like images added after the result and the
	// order is re-scored and amended again and again (revision 3 within
	// 7 s here) until orders.watch_after ends.
	st := p.status(t, o)
	require.Equal(t, radgate.StateDelivered, st.State, "GET /orders/%s: %s", o.id, mustJSON(st))
	require.Equal(t, 1, st.Engines[config.DefaultEngine].Revision, "not re-scored: GET /orders/%s: %s", o.id, mustJSON(st))
	_, ref := r.report(t, o)
	require.Equal(t, 1, r.versions(t, ref), "the DiagnosticReport was not amended")
}
