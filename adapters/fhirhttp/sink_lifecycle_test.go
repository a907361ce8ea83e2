package fhirhttp

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/fhir"
)

// lifecycleResult is a scored result of a fresh order and engine version on
// the real server, so that tests do not share Devices or reports.
func lifecycleResult(t *testing.T, s *Sink) radgate.Result {
	t.Helper()
	acc := "ACC-" + unique(t)
	patient, sr, is := createOrder(t, s.Client, acc, "1.2.826.0.1.3680043.8.498.80")
	r := testResult(t, radgate.OutcomeScored)
	r.ID = "r-" + unique(t)
	r.Order.ID = unique(t)
	r.Engine.Version = "1.0.0-" + unique(t)
	r.Order.ServiceRequest = &radgate.Reference{Reference: sr}
	r.Order.ImagingStudy = &radgate.Reference{Reference: is}
	r.Order.Patient = &radgate.Reference{Reference: patient}
	r.Order.Accession = &radgate.Identifier{System: "urn:oid:1.2.3.4.5", Value: acc}
	return r
}

func amendedOf(r radgate.Result, rev int) radgate.Result {
	r.Status, r.Revision = radgate.ResultAmended, rev
	r.Probability, r.Tier = 0.42, "Mid"
	return r
}

func retractionOf(r radgate.Result) radgate.Result {
	r.Status = radgate.ResultRetracted
	r.RetractReason = "order cancelled: FHIR ServiceRequest status revoked"
	return r
}

// versions counts the versions of ref in its _history.
func versions(t *testing.T, c *Client, ref string) int {
	t.Helper()
	typ, id, _ := strings.Cut(ref, "/")
	resp, err := c.do(t.Context(), "reading history", "GET", typ+"/"+id+"/_history", nil, nil, nil)
	require.NoError(t, err)
	var h struct {
		Total int `json:"total"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &h))
	return h.Total
}

// search returns the resources of a type with an identifier.
func search(t *testing.T, c *Client, typ string, id fhir.Identifier) []map[string]any {
	t.Helper()
	found, err := c.Search(t.Context(), typ, url.Values{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	var out []map[string]any
	for _, raw := range found {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		out = append(out, m)
	}
	return out
}

func refOf(m map[string]any) string { return m["resourceType"].(string) + "/" + m["id"].(string) }

func identifierValues(m map[string]any, system string) []string {
	var out []string
	for _, x := range m["identifier"].([]any) {
		id := x.(map[string]any)
		if id["system"] == system {
			out = append(out, id["value"].(string))
		}
	}
	return out
}

func deviceOf(t *testing.T, s *Sink, r radgate.Result) []map[string]any {
	t.Helper()
	return search(t, s.Client, "Device", fhir.EngineIdentifier(fhir.Engine{ID: r.Engine.ID, Version: r.Engine.Version}))
}

// An amended result corrects the same DiagnosticReport and Observation in
// place (two versions each), names its revision, and is idempotent: the
// same revision again, or the first result again, writes nothing.
func TestRealServerAmend(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	r := lifecycleResult(t, s)
	first, err := s.Deliver(ctx, r)
	require.NoError(t, err)
	dr := readJSON(t, s.Client, first.Report)
	require.Equal(t, "final", dr["status"])
	require.Equal(t, []string{r.ID + "/r1"}, identifierValues(dr, revisionSystem))
	obsRef := dr["result"].([]any)[0].(map[string]any)["reference"].(string)
	mediaRef := dr["media"].([]any)[0].(map[string]any)["link"].(map[string]any)["reference"].(string)

	r2 := amendedOf(r, 2)
	r2.Marked, r2.HeatmapPNG = false, nil // revision 2 marks nothing: the heatmap is withdrawn
	for range 2 {
		second, err := s.Deliver(ctx, r2)
		require.NoError(t, err)
		require.Equal(t, first.Report, second.Report, "the same report")
		require.Equal(t, []radgate.DeliveredObject{{Kind: "DiagnosticReport", Ref: first.Report}, {Kind: "Observation", Ref: obsRef}},
			second.Objects, "the withdrawn heatmap is not listed")
	}
	_, err = s.Deliver(ctx, r)
	require.NoError(t, err, "the first result again")

	require.Equal(t, 2, versions(t, s.Client, first.Report), "history keeps revision 1 and 2, once each")
	dr = readJSON(t, s.Client, first.Report)
	require.Equal(t, "amended", dr["status"])
	require.Equal(t, []string{r.ID}, identifierValues(dr, fhir.SystemResult), "the main identifier stays")
	require.Equal(t, []string{r.ID + "/r2"}, identifierValues(dr, revisionSystem), "the revision identifier names the current revision")
	require.Contains(t, dr["conclusion"], "AI confidence 42.0 % (tier Mid)")
	require.Nil(t, dr["media"])
	require.Equal(t, obsRef, dr["result"].([]any)[0].(map[string]any)["reference"], "the same Observation")

	require.Equal(t, 2, versions(t, s.Client, obsRef))
	obs := readJSON(t, s.Client, obsRef)
	require.Equal(t, "amended", obs["status"])
	require.EqualValues(t, 42.0, obs["valueQuantity"].(map[string]any)["value"])
	require.Equal(t, "entered-in-error", readJSON(t, s.Client, mediaRef)["status"])
	require.Len(t, search(t, s.Client, "DiagnosticReport", fhir.ResultIdentifier(r.ID)), 1)
	require.Len(t, search(t, s.Client, "Observation", fhir.Identifier{System: fhir.SystemResult, Value: r.ID + "/observation"}), 1)

	// Revision 3, and revision 2 arriving late after it: 3 stays.
	_, err = s.Deliver(ctx, amendedOf(r, 3))
	require.NoError(t, err)
	_, err = s.Deliver(ctx, r2)
	require.NoError(t, err)
	require.Equal(t, 3, versions(t, s.Client, first.Report))
	require.Equal(t, []string{r.ID + "/r3"}, identifierValues(readJSON(t, s.Client, first.Report), revisionSystem))
}

// A retraction marks the report, its Observation and Media entered in
// error, cancels the read Task and records one Provenance with the reason,
// however often it is delivered; a result never delivered is nothing to
// retract.
func TestRealServerRetract(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	r := lifecycleResult(t, s)
	r.Read = &radgate.ReadRequest{When: "always", Group: "CareTeam/chest-" + unique(t)}
	rc, err := s.Deliver(ctx, r)
	require.NoError(t, err)
	dr := readJSON(t, s.Client, rc.Report)
	obsRef := dr["result"].([]any)[0].(map[string]any)["reference"].(string)
	mediaRef := dr["media"].([]any)[0].(map[string]any)["link"].(map[string]any)["reference"].(string)
	tasks := search(t, s.Client, "Task", fhir.Identifier{System: fhir.SystemReadRequest, Value: r.Order.ID})
	require.Len(t, tasks, 1)
	require.Equal(t, "requested", tasks[0]["status"])
	// The receipt lists what a person opens (the console links them).
	require.Equal(t, []radgate.DeliveredObject{{Kind: "DiagnosticReport", Ref: rc.Report}, {Kind: "Observation", Ref: obsRef},
		{Kind: "Media", Ref: mediaRef}, {Kind: "Task", Ref: refOf(tasks[0])}}, rc.Objects)

	for range 2 {
		got, err := s.Deliver(ctx, retractionOf(r))
		require.NoError(t, err)
		require.Equal(t, rc.Report, got.Report)
	}
	for _, ref := range []string{rc.Report, obsRef, mediaRef} {
		require.Equal(t, "entered-in-error", readJSON(t, s.Client, ref)["status"], ref)
		require.Equal(t, 2, versions(t, s.Client, ref), "%s: written once, retracted once", ref)
	}
	task := readJSON(t, s.Client, refOf(tasks[0]))
	require.Equal(t, "cancelled", task["status"])
	require.Equal(t, r.ID, "r-"+strings.TrimPrefix(r.ID, "r-"))
	provRef := "Provenance/" + RetractionProvenanceID(r.ID)
	require.Equal(t, 1, versions(t, s.Client, provRef), "one Provenance, written once")
	prov := readJSON(t, s.Client, provRef)
	require.Equal(t, "order cancelled: FHIR ServiceRequest status revoked", prov["reason"].([]any)[0].(map[string]any)["text"])
	require.Equal(t, "NULLIFY", prov["activity"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"])
	var targets []string
	for _, x := range prov["target"].([]any) {
		targets = append(targets, x.(map[string]any)["reference"].(string))
	}
	require.ElementsMatch(t, []string{rc.Report, obsRef, mediaRef, refOf(tasks[0])}, targets)
	devices := deviceOf(t, s, r)
	require.Len(t, devices, 1)
	require.Equal(t, refOf(devices[0]), prov["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)["reference"])

	// An amendment after the retraction is refused, not written over it.
	_, err = s.Deliver(ctx, amendedOf(r, 2))
	require.ErrorContains(t, err, "was retracted")
	require.Equal(t, 2, versions(t, s.Client, rc.Report))

	// Never delivered here: nothing to do.
	never := retractionOf(lifecycleResult(t, s))
	got, err := s.Deliver(ctx, never)
	require.NoError(t, err)
	require.Equal(t, radgate.Receipt{}, got)
	require.Empty(t, search(t, s.Client, "DiagnosticReport", fhir.ResultIdentifier(never.ID)))

	// A result that was not scored: its Task is withdrawn.
	na := lifecycleResult(t, s)
	na.Outcome, na.Reason, na.Marked, na.HeatmapPNG = radgate.OutcomeNotApplicable, "no chest image", false, nil
	rc, err = s.Deliver(ctx, na)
	require.NoError(t, err)
	_, err = s.Deliver(ctx, retractionOf(na))
	require.NoError(t, err)
	require.Equal(t, "entered-in-error", readJSON(t, s.Client, rc.Report)["status"])
}

// Two Devices of the engine's identifier (an older radgate raced): the
// delivery uses the oldest instead of failing on 412 multiple matches.
func TestRealServerDeviceMultipleMatches(t *testing.T) {
	s := realClient(t)
	ctx := t.Context()
	r := lifecycleResult(t, s)
	ident := fhir.EngineIdentifier(fhir.Engine{ID: r.Engine.ID, Version: r.Engine.Version})
	var made []string
	for range 2 {
		ref, err := s.Create(ctx, []byte(`{"resourceType":"Device","identifier":[{"system":"`+ident.System+`","value":"`+ident.Value+`"}]}`), "")
		require.NoError(t, err)
		made = append(made, ref)
	}
	rc, err := s.Deliver(ctx, r)
	require.NoError(t, err)
	obs := readJSON(t, s.Client, readJSON(t, s.Client, rc.Report)["result"].([]any)[0].(map[string]any)["reference"].(string))
	require.Equal(t, made[0], obs["device"].(map[string]any)["reference"], "the oldest Device")
	require.Len(t, deviceOf(t, s, r), 2, "no third Device")
}

// Two radgate processes (two Sinks) deliver the same result at the same
// moment: one report, one Observation, one Media, one Device. Then both
// amend it at once (two versions), then both retract it (one Provenance).
// Twenty rounds, to give a race its chance.
func TestRealServerConcurrentDelivery(t *testing.T) {
	a, b := realClient(t), realClient(t)
	for round := range 20 {
		r := lifecycleResult(t, a)
		both := func(r radgate.Result) [2]radgate.Receipt {
			var wg sync.WaitGroup
			var got [2]radgate.Receipt
			var errs [2]error
			start := make(chan struct{})
			for i, s := range []*Sink{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					got[i], errs[i] = s.Deliver(t.Context(), r)
				}()
			}
			close(start)
			wg.Wait()
			require.NoError(t, errs[0], "round %d", round)
			require.NoError(t, errs[1], "round %d", round)
			return got
		}
		got := both(r)
		require.Equal(t, got[0], got[1], "round %d", round)
		require.Len(t, search(t, a.Client, "DiagnosticReport", fhir.ResultIdentifier(r.ID)), 1, "round %d", round)
		require.Len(t, search(t, a.Client, "Observation", fhir.Identifier{System: fhir.SystemResult, Value: r.ID + "/observation"}), 1, "round %d", round)
		require.Len(t, search(t, a.Client, "Media", fhir.Identifier{System: fhir.SystemResult, Value: r.ID + "/media"}), 1, "round %d", round)
		require.Len(t, deviceOf(t, a, r), 1, "round %d", round)

		both(amendedOf(r, 2))
		require.Equal(t, 2, versions(t, a.Client, got[0].Report), "round %d: one amendment", round)
		both(retractionOf(r))
		require.Equal(t, 3, versions(t, a.Client, got[0].Report), "round %d: one retraction", round)
		require.Equal(t, 1, versions(t, a.Client, "Provenance/"+RetractionProvenanceID(r.ID)), "round %d", round)
	}
}

// The report lists how many images were scored and which were skipped,
// and why.
func TestRealServerImageNotes(t *testing.T) {
	s := realClient(t)
	r := lifecycleResult(t, s)
	r.Images = []radgate.ImageNote{
		{SeriesInstanceUID: "1.2.3.1", SOPInstanceUID: "1.2.3.1.1", View: "PA", Scored: true},
		{SeriesInstanceUID: "1.2.3.1", SOPInstanceUID: "1.2.3.1.2", View: "LL", Reason: "lateral view LL: engine takes PA/AP"},
	}
	rc, err := s.Deliver(t.Context(), r)
	require.NoError(t, err)
	c := readJSON(t, s.Client, rc.Report)["conclusion"].(string)
	require.Contains(t, c, testDisclaimer)
	require.Contains(t, c, "Images: 1 of 2 scored. Skipped (1): 1.2.3.1.2 (view LL): lateral view LL: engine takes PA/AP.")
}

func TestImagesText(t *testing.T) {
	require.Empty(t, imagesText(nil))
	require.Equal(t, "Images: 2 of 2 scored.", imagesText([]radgate.ImageNote{{SOPInstanceUID: "1", Scored: true}, {SOPInstanceUID: "2", Scored: true}}))
	var many []radgate.ImageNote
	for i := range 25 {
		many = append(many, radgate.ImageNote{SOPInstanceUID: fmt.Sprint("1.2.", i), Reason: "too small"})
	}
	txt := imagesText(many)
	require.True(t, strings.HasPrefix(txt, "Images: 0 of 25 scored. Skipped (25): 1.2.0: too small; "), txt)
	require.True(t, strings.HasSuffix(txt, "1.2.19: too small; ….") || strings.HasSuffix(txt, "; …."), txt)
	require.NotContains(t, txt, "1.2.20")
}
