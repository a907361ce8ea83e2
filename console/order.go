package console

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/draw"
	_ "image/jpeg" // previews are JPEG
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	xdraw "golang.org/x/image/draw"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/httpauth"
)

// PictureStore reads the pictures the pipeline keeps of each result (its
// heatmap object store, broker.BucketHeatmaps: Result.HeatmapObject and
// PreviewObject); a jetstream.ObjectStore is one.
type PictureStore interface {
	GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error)
}

// DestinationLink says where a destination's objects can be opened.
type DestinationLink struct {
	// Type is the destination's type (fhir, dicomweb, dimse, hl7v2).
	Type string
	// URL is the FHIR base URL (fhir: a resource opens at URL/Type/id) or
	// the DICOMweb root (dicomweb: an object opens at URL/studies/…, WADO-RS);
	// "" when the destination has none a browser can open.
	URL string
}

// ThumbnailEdge is the longest edge, in pixels, of the heatmap thumbnail
// the order page shows.
const ThumbnailEdge = 320

// orderEngine is one engine of an order page.
type orderEngine struct {
	Name string
	radgate.EngineProgress
	// ModeText is shadow, suspended or active.
	ModeText string
	// Picture: a thumbnail exists (its URL); NoPicture says why there is
	// none.
	Picture   string
	NoPicture string
	Scored    int
	Skipped   int
}

// deliveryView is one destination of one engine.
type deliveryView struct {
	Engine, Name string
	radgate.DeliveryProgress
	Links []objectLink
}

// objectLink is one FHIR resource or DICOM object a destination holds.
type objectLink struct {
	Kind, Text, URL string
}

// timelineRow is one history entry as the timeline shows it.
type timelineRow struct {
	radgate.HistoryEntry
	Stage string
	Who   string
}

// patientRef finds patient references ("Patient/123") in free text: a
// viewer's page shows them as "Patient/…".
var patientRef = regexp.MustCompile(`Patient/[A-Za-z0-9.\-]+`)

func (c *Console) order(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, ok := c.readOrder(w, r, id)
	if !ok {
		return
	}
	hist, err := c.o.Order.History(r.Context(), id)
	if err != nil {
		c.log.Warn("console order history failed", "order", id, "error", err)
	}
	u := userFrom(r)
	phi := u.Has(httpauth.RolePHI)
	redact := func(s string) string { return s }
	if !phi {
		redact = patientScrubber(st.Patient)
		st.Patient = nil
	} else if st.Patient != nil {
		c.log.Info("console PHI view", "subject", u.Name, "order", id)
		if c.o.AuditPHIView != nil {
			c.o.AuditPHIView(r.Context(), u.Name, id)
		}
	}
	st.Reason = redact(st.Reason)
	var engines []orderEngine
	var deliveries []deliveryView
	for _, name := range sortedKeys(st.Engines) {
		e := st.Engines[name]
		e.Reason = redact(e.Reason)
		e.Caveats = redactAll(e.Caveats, redact)
		images := make([]radgate.ImageNote, len(e.Images))
		for i, im := range e.Images {
			im.Reason = redact(im.Reason)
			images[i] = im
		}
		e.Images = images
		v := orderEngine{Name: name, EngineProgress: e, ModeText: modeText(e.Mode), Scored: radgate.ScoredImages(e.Images)}
		v.Skipped = len(e.Images) - v.Scored
		if c.o.Pictures != nil && pictureOf(e) != "" {
			v.Picture = "/console/orders/" + url.PathEscape(id) + "/heatmap/" + url.PathEscape(name)
		} else {
			v.NoPicture = noPictureWhy(e, c.o.Pictures != nil)
		}
		engines = append(engines, v)
		for _, d := range sortedKeys(e.Deliveries) {
			dp := e.Deliveries[d]
			dp.Reason = redact(dp.Reason)
			deliveries = append(deliveries, deliveryView{Engine: name, Name: d, DeliveryProgress: dp, Links: c.links(d, dp)})
		}
	}
	var timeline []timelineRow
	for _, h := range hist {
		h.Reason = redact(h.Reason)
		timeline = append(timeline, timelineRow{HistoryEntry: h, Stage: stageOf(h), Who: whoOf(h)})
	}
	c.render(w, r, http.StatusOK, "order", map[string]any{"O": st, "Timeline": timeline, "HistoryErr": err,
		"Engines": engines, "Deliveries": deliveries})
}

// readOrder reads order id, answering the request itself (and returning
// false) when it cannot.
func (c *Console) readOrder(w http.ResponseWriter, r *http.Request, id string) (radgate.OrderStatus, bool) {
	if c.o.Order == nil {
		c.message(w, r, http.StatusServiceUnavailable, "Order", "This radgate has no order store.")
		return radgate.OrderStatus{}, false
	}
	st, err := c.o.Order.Status(r.Context(), id)
	if errors.Is(err, radgate.ErrOrderNotFound) {
		c.message(w, r, http.StatusNotFound, "Order not found", "No order has the id "+id+".")
		return st, false
	}
	if err != nil {
		c.log.Error("console order read failed", "order", id, "error", err)
		c.message(w, r, http.StatusInternalServerError, "Order", "The order could not be read: "+err.Error())
		return st, false
	}
	return st, true
}

// patientScrubber removes the patient from a free text: any FHIR Patient
// reference, and the order's patient's reference, name and identifier.
func patientScrubber(p *radgate.Reference) func(string) string {
	var values []string
	if p != nil {
		values = append(values, p.Reference, p.Display)
		if p.Identifier != nil {
			values = append(values, p.Identifier.Value)
		}
	}
	return func(s string) string {
		for _, v := range values {
			if v = strings.TrimSpace(v); len(v) >= 3 {
				s = strings.ReplaceAll(s, v, "[patient]")
			}
		}
		return patientRef.ReplaceAllString(s, "Patient/…")
	}
}

func redactAll(in []string, redact func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = redact(s)
	}
	return out
}

// modeText names an engine's mode on the order: shadow and suspended
// results are withheld from every destination; "" is active.
func modeText(m radgate.EngineMode) string {
	if m == "" {
		return "active"
	}
	return string(m)
}

// pictureOf is the object the thumbnail is drawn from: the preview (the
// picture a clinician sees beside the score, drawn as the SC's heatmap
// is), else the heatmap at the image's resolution.
func pictureOf(e radgate.EngineProgress) string {
	if e.PreviewObject != "" {
		return e.PreviewObject
	}
	return e.HeatmapObject
}

// noPictureWhy says why an engine has no thumbnail.
func noPictureWhy(e radgate.EngineProgress, store bool) string {
	switch {
	case !store:
		return "No heatmap: this console cannot read the heatmap store."
	case e.Mode != "":
		return "No heatmap: the result was " + string(e.Mode) + " (withheld from every destination), so no picture was drawn."
	case e.Probability == nil:
		return "No heatmap: nothing was scored."
	case !e.Marked:
		return "No heatmap: no region is marked below the engine's mark threshold."
	}
	return "No heatmap: no destination shows one."
}

// links lists what destination dest holds of a result, as links where the
// destination's URL is known.
func (c *Console) links(dest string, dp radgate.DeliveryProgress) []objectLink {
	objs := dp.Objects
	if len(objs) == 0 && dp.Report != "" {
		kind, _, _ := strings.Cut(dp.Report, "/")
		if kind == "studies" {
			kind = "report"
		}
		objs = []radgate.DeliveredObject{{Kind: kind, Ref: dp.Report}}
	}
	dl := c.o.Destinations[dest]
	base := strings.TrimSuffix(dl.URL, "/")
	var out []objectLink
	for _, o := range objs {
		l := objectLink{Kind: o.Kind, Text: o.Ref}
		if o.UID != "" {
			l.Text = o.UID
		}
		if base != "" && (dl.Type == "fhir" || dl.Type == "dicomweb") {
			l.URL = base + "/" + o.Ref
		}
		out = append(out, l)
	}
	return out
}

// stageOf names the stage that makes a history entry's change (the entry
// does not record it; it follows from the event and what moved).
func stageOf(h radgate.HistoryEntry) string {
	switch {
	case h.Destination != "" && h.To == radgate.StateScored:
		return "inference" // the result published to the destination
	case h.Destination != "":
		return "delivery"
	case h.Event == radgate.EvAccepted, h.Event == radgate.EvCancelled && h.Engine == "":
		return "intake"
	case h.Event == radgate.EvReplayed:
		return "dlq replay"
	case h.Event == radgate.EvScored, h.Event == radgate.EvSuperseded:
		return "inference"
	case h.Event == radgate.EvDelivered, h.Event == radgate.EvRetracted:
		return "delivery"
	case h.Event == radgate.EvFailed && h.From == radgate.StateScored:
		return "delivery"
	case h.Event == radgate.EvFailed && h.From == radgate.StateRouted:
		return "inference"
	}
	return "router"
}

// whoOf says what moved: the order, an engine, or an engine's result at a
// destination.
func whoOf(h radgate.HistoryEntry) string {
	switch {
	case h.Destination != "":
		return h.Engine + " → " + h.Destination
	case h.Engine != "":
		return "engine " + h.Engine
	}
	return "order"
}

// heatmap serves an engine's picture of an order as a small PNG.
func (c *Console) heatmap(w http.ResponseWriter, r *http.Request) {
	id, engine := r.PathValue("id"), r.PathValue("engine")
	st, ok := c.readOrder(w, r, id)
	if !ok {
		return
	}
	e, ok := st.Engines[engine]
	name := pictureOf(e)
	if !ok || name == "" || c.o.Pictures == nil {
		c.message(w, r, http.StatusNotFound, "No heatmap", "Order "+id+" has no heatmap of engine "+engine+".")
		return
	}
	b, err := c.o.Pictures.GetBytes(r.Context(), name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		c.message(w, r, http.StatusNotFound, "No heatmap", "The heatmap of engine "+engine+" is no longer kept (retention).")
		return
	}
	if err != nil {
		c.log.Error("console heatmap read failed", "order", id, "engine", engine, "error", err)
		c.message(w, r, http.StatusInternalServerError, "Heatmap", "The heatmap could not be read.")
		return
	}
	out, err := thumbnail(b, ThumbnailEdge)
	if err != nil {
		c.log.Error("console heatmap unreadable", "order", id, "engine", engine, "object", name, "error", err)
		c.message(w, r, http.StatusInternalServerError, "Heatmap", "The heatmap could not be decoded.")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(out)
}

// thumbnail decodes a PNG or JPEG and encodes it as a PNG at most edge
// pixels on its long side (aspect kept; a smaller picture keeps its size).
// Re-encoding keeps only the pixels: no metadata of the source travels.
func thumbnail(b []byte, edge int) ([]byte, error) {
	src, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	w, h := sw, sh
	if max(sw, sh) > edge {
		if sw >= sh {
			w, h = edge, max(1, sh*edge/sw)
		} else {
			w, h = max(1, sw*edge/sh), edge
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if w == sw && h == sh {
		draw.Draw(dst, dst.Bounds(), src, src.Bounds().Min, draw.Src)
	} else {
		xdraw.BiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), xdraw.Src, nil)
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
