package console

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// pageOrders is fakeOrders with a full history.
type pageOrders struct {
	fakeOrders
	hist []radgate.HistoryEntry
}

func (p *pageOrders) History(context.Context, string) ([]radgate.HistoryEntry, error) {
	return p.hist, nil
}

// pictures is a PictureStore over a map.
type pictures map[string][]byte

func (p pictures) GetBytes(_ context.Context, name string, _ ...jetstream.GetObjectOpt) ([]byte, error) {
	if b, ok := p[name]; ok {
		return b, nil
	}
	return nil, jetstream.ErrObjectNotFound
}

// fullOrder is a delivered order with two engines (one active and marked,
// one in shadow), images scored and skipped, deliveries to a FHIR server,
// a DICOMweb PACS and a DIMSE PACS (one failed), and reasons that name the
// patient's FHIR reference.
func fullOrder() radgate.OrderStatus {
	o := order()
	o.Patient = &radgate.Reference{Reference: "Patient/pat-secret-77", Display: "Zyxwa Testpatient", Identifier: &radgate.Identifier{Value: "MRN-77"}}
	p, q := 0.87, 0.12
	o.Engines = map[string]radgate.EngineProgress{
		"cxr": {State: radgate.StateFailed, Probability: &p, Tier: "High", Revision: 1, Marked: true,
			Caveats:       []string{"patient age unknown: engine cxr's intended use is 1–5 y (accepts.age_years)"},
			PreviewObject: "res-1.jpg", HeatmapObject: "res-1.png",
			Images: []radgate.ImageNote{
				{SeriesInstanceUID: "1.2.3", SOPInstanceUID: "1.2.3.1", View: "PA", Scored: true},
				{SeriesInstanceUID: "1.2.3", SOPInstanceUID: "1.2.3.2", View: "LL", Reason: "view LL is outside engine cxr's intended use: PA/AP (views)"},
			},
			Deliveries: map[string]radgate.DeliveryProgress{
				"fhir": {State: radgate.StateDelivered, Revision: 1, Report: "DiagnosticReport/7", Objects: []radgate.DeliveredObject{
					{Kind: "DiagnosticReport", Ref: "DiagnosticReport/7"}, {Kind: "Observation", Ref: "Observation/8"}, {Kind: "Media", Ref: "Media/9"}}},
				"pacs": {State: radgate.StateDelivered, Revision: 1, Objects: []radgate.DeliveredObject{
					{Kind: "SC", Ref: "studies/1.2/series/1.2.9/instances/1.2.9.1", UID: "1.2.9.1"},
					{Kind: "SR", Ref: "studies/1.2/series/1.2.8/instances/1.2.8.1", UID: "1.2.8.1"}}},
				"modality": {State: radgate.StateFailed, Revision: 1, Reason: "C-STORE refused by PACS2 (Patient/pat-secret-77 unknown)",
					Objects: []radgate.DeliveredObject{{Kind: "SR", Ref: "studies/1.2/series/1.2.7/instances/1.2.7.1", UID: "1.2.7.1"}}},
			}},
		"bone-age": {State: radgate.StateDelivered, Probability: &q, Tier: "Low", Mode: radgate.EngineShadow,
			Reason: "shadow: scored and recorded for measurement, not delivered"},
	}
	return o
}

func fullHistory(id string) []radgate.HistoryEntry {
	at := now.Add(-3 * time.Minute)
	return []radgate.HistoryEntry{
		{At: at, Order: id, Event: radgate.EvAccepted, To: radgate.StateReceived},
		{At: at.Add(time.Second), Order: id, Event: radgate.EvStudyStable, From: radgate.StateReceived, To: radgate.StateRouted, Instances: 2},
		{At: at.Add(2 * time.Second), Order: id, Engine: "cxr", Event: radgate.EvScored, From: radgate.StateRouted, To: radgate.StateScored, Revision: 1},
		{At: at.Add(3 * time.Second), Order: id, Engine: "cxr", Destination: "modality", Event: radgate.EvFailed, From: radgate.StateScored,
			To: radgate.StateFailed, Revision: 1, Reason: "C-STORE refused by PACS2 (Patient/pat-secret-77 unknown)"},
		{At: at.Add(4 * time.Second), Order: id, Event: radgate.EvFailed, From: radgate.StateScored, To: radgate.StateFailed,
			Reason: "Zyxwa Testpatient MRN-77 is not known here (Patient/other-9)"},
	}
}

type orderEnv struct {
	*env
	mu      sync.Mutex
	audited []string
}

func newOrderEnv(t *testing.T) *orderEnv {
	t.Helper()
	o := fullOrder()
	f := &pageOrders{fakeOrders: fakeOrders{orders: []radgate.OrderStatus{o}}, hist: fullHistory(o.ID)}
	pics := pictures{"res-1.jpg": jpegOf(t, 640, 480), "res-1.png": pngOf(t, 100, 200)}
	e := &orderEnv{}
	con, err := New(Options{Auth: staticAuth(t), Sessions: sessions(t), Orders: f, Order: f, Now: func() time.Time { return now },
		Pictures: pics,
		Destinations: map[string]DestinationLink{
			"fhir":     {Type: "fhir", URL: "https://ehr.example/fhir/"},
			"pacs":     {Type: "dicomweb", URL: "https://pacs.example/dicom-web"},
			"modality": {Type: "dimse"},
		},
		AuditPHIView: func(_ context.Context, subject, orderID string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.audited = append(e.audited, subject+" "+orderID)
		}})
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.env = &env{srv: srv, c: c, orders: &f.fakeOrders}
	return e
}

func jpegOf(t *testing.T, w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, nil))
	return b.Bytes()
}

func pngOf(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// The order page shows each engine's confidence, tier, mode, caveats,
// images and heatmap, each destination's state, last error and objects
// (linked where the destination's URL is known), and the timeline with the
// stage of each change.
func TestOrderPageShowsEngineImagesDeliveriesAndTimeline(t *testing.T) {
	e := newOrderEnv(t)
	e.signIn(t, "tok-viewer")
	id := order().ID
	r, body := e.get(t, "/console/orders/"+id)
	require.Equal(t, http.StatusOK, r.StatusCode)

	// Engines.
	assert.Contains(t, body, "87.0 %")
	assert.Contains(t, body, `class="tier tier-high">High<`)
	assert.Contains(t, body, `class="tier tier-low">Low<`)
	assert.Contains(t, body, "patient age unknown: engine cxr&#39;s intended use is 1–5 y (accepts.age_years)")
	assert.Contains(t, body, "shadow — withheld from every destination")
	assert.Contains(t, body, `<img src="/console/orders/`+id+`/heatmap/cxr"`)
	assert.Contains(t, body, "Region marked (confidence at or above the engine&#39;s mark threshold")
	assert.Contains(t, body, "No heatmap: the result was shadow (withheld from every destination)")
	// Images.
	assert.Contains(t, body, "Images: 1 scored, 1 skipped")
	assert.Contains(t, body, "1.2.3.2")
	assert.Contains(t, body, "view LL is outside engine cxr&#39;s intended use: PA/AP (views)")
	// Deliveries: FHIR links from the base URL, WADO-RS links, a DIMSE UID as text.
	assert.Contains(t, body, `href="https://ehr.example/fhir/DiagnosticReport/7"`)
	assert.Contains(t, body, `href="https://ehr.example/fhir/Observation/8"`)
	assert.Contains(t, body, `href="https://ehr.example/fhir/Media/9"`)
	assert.Contains(t, body, `href="https://pacs.example/dicom-web/studies/1.2/series/1.2.9/instances/1.2.9.1" rel="noreferrer">1.2.9.1</a>`)
	assert.Contains(t, body, `<code>1.2.7.1</code>`)
	assert.Contains(t, body, `<span class="error">C-STORE refused by PACS2 ([patient] unknown)</span>`)
	// Timeline: every change with its time and stage, oldest first.
	for _, s := range []string{"<td>intake</td><td>order</td>", "<td>router</td><td>order</td>", "<td>inference</td><td>engine cxr</td>",
		"<td>delivery</td><td>cxr → modality</td>", "2026-12-03 11:57:03 UTC", "scored → failed", "[patient] [patient] is not known here (Patient/…)"} {
		assert.Contains(t, body, s)
	}
	assert.Less(t, bytes.Index([]byte(body), []byte("11:57:00 UTC")), bytes.Index([]byte(body), []byte("11:57:04 UTC")), "newest last")
}

// A viewer sees no patient reference anywhere (not in reasons either) and
// is not audited; a phi user sees it, and the view is audited.
func TestOrderPagePHIAndAudit(t *testing.T) {
	e := newOrderEnv(t)
	e.signIn(t, "tok-viewer")
	_, body := e.get(t, "/console/orders/"+order().ID)
	assert.NotContains(t, body, "pat-secret-77")
	assert.NotContains(t, body, "Zyxwa")
	assert.NotContains(t, body, "MRN-77")
	assert.Empty(t, e.audited, "a viewer saw no patient data")

	p := newOrderEnv(t)
	p.signIn(t, "tok-phi")
	_, body = p.get(t, "/console/orders/"+order().ID)
	assert.Contains(t, body, "Patient/pat-secret-77 MRN-77 — Zyxwa Testpatient")
	assert.Contains(t, body, "Zyxwa Testpatient MRN-77 is not known here (Patient/other-9)", "reasons as they are")
	assert.Equal(t, []string{"phi-bob " + order().ID}, p.audited)
}

// The heatmap thumbnail is a PNG at most ThumbnailEdge pixels on its long
// side, not cached; an engine without one, or an unknown engine, is 404;
// signed out it is the sign-in page.
func TestHeatmapThumbnail(t *testing.T) {
	e := newOrderEnv(t)
	id := order().ID
	r, _ := e.get(t, "/console/orders/"+id+"/heatmap/cxr")
	assert.Equal(t, http.StatusSeeOther, r.StatusCode)
	assert.Equal(t, "/console/signin", r.Header.Get("Location"))

	e.signIn(t, "tok-viewer")
	r, body := e.get(t, "/console/orders/"+id+"/heatmap/cxr")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, "image/png", r.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	img, err := png.Decode(bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 320, 240), img.Bounds(), "the 640×480 preview scaled to 320 px")

	for _, eng := range []string{"bone-age", "nope"} {
		r, _ = e.get(t, "/console/orders/"+id+"/heatmap/"+eng)
		assert.Equal(t, http.StatusNotFound, r.StatusCode, eng)
	}
	r, _ = e.get(t, "/console/orders/ffffffffffffffffffffffff/heatmap/cxr")
	assert.Equal(t, http.StatusNotFound, r.StatusCode)
}

func TestThumbnailKeepsSmallPicturesAndAspect(t *testing.T) {
	b, err := thumbnail(pngOf(t, 100, 200), 320)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 100, 200), img.Bounds())
	b, err = thumbnail(pngOf(t, 1000, 2000), 320)
	require.NoError(t, err)
	img, err = png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 160, 320), img.Bounds())
	_, err = thumbnail([]byte("not a picture"), 320)
	assert.Error(t, err)
}

func TestStageOf(t *testing.T) {
	for _, c := range []struct {
		h    radgate.HistoryEntry
		want string
	}{
		{radgate.HistoryEntry{Event: radgate.EvAccepted, To: radgate.StateReceived}, "intake"},
		{radgate.HistoryEntry{Event: radgate.EvCancelled, From: radgate.StateRouted, To: radgate.StateCancelled}, "intake"},
		{radgate.HistoryEntry{Event: radgate.EvStudyMissing, From: radgate.StateReceived, To: radgate.StateWaiting}, "router"},
		{radgate.HistoryEntry{Event: radgate.EvNoRoute, From: radgate.StateReceived, To: radgate.StateRejected}, "router"},
		{radgate.HistoryEntry{Event: radgate.EvScored, Engine: "e", From: radgate.StateRouted, To: radgate.StateScored}, "inference"},
		{radgate.HistoryEntry{Event: radgate.EvFailed, Engine: "e", From: radgate.StateRouted, To: radgate.StateFailed}, "inference"},
		{radgate.HistoryEntry{Event: radgate.EvScored, Engine: "e", Destination: "d", To: radgate.StateScored}, "inference"},
		{radgate.HistoryEntry{Event: radgate.EvDelivered, Engine: "e", Destination: "d", From: radgate.StateScored, To: radgate.StateDelivered}, "delivery"},
		{radgate.HistoryEntry{Event: radgate.EvFailed, From: radgate.StateScored, To: radgate.StateFailed}, "delivery"},
		{radgate.HistoryEntry{Event: radgate.EvReplayed, From: radgate.StateFailed, To: radgate.StateReceived}, "dlq replay"},
	} {
		assert.Equal(t, c.want, stageOf(c.h), "%+v", c.h)
	}
}

func TestNoPictureWhy(t *testing.T) {
	p := 0.2
	assert.Contains(t, noPictureWhy(radgate.EngineProgress{Probability: &p}, true), "no region is marked below the engine's mark threshold")
	assert.Contains(t, noPictureWhy(radgate.EngineProgress{State: radgate.StateRejected}, true), "nothing was scored")
	assert.Contains(t, noPictureWhy(radgate.EngineProgress{Probability: &p, Mode: radgate.EngineSuspended}, true), "suspended")
	assert.Contains(t, noPictureWhy(radgate.EngineProgress{}, false), "cannot read the heatmap store")
}
