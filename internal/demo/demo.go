// Package demo plays the hospital around radgate: a PACS that receives the
// sample radiographs, an EHR that files chest X-ray orders (on its FHIR
// server, which notifies radgate through a Subscription, or posted straight
// to radgate), and a clinician who reads the resulting reports back. The
// demo command and the end-to-end test both drive radgate through it.
package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/inference"
)

// AccessionSystem is the demo hospital's accession number namespace.
const AccessionSystem = "http://hospital.example.org/fhir/accession"

// Path says how an order reaches radgate.
type Path string

const (
	// ViaSubscription: the EHR creates ServiceRequest and ImagingStudy on its
	// FHIR server; the server's rest-hook Subscription notifies radgate.
	ViaSubscription Path = "subscription"
	// ViaDirectPost: the ServiceRequest and ImagingStudy are POSTed to radgate.
	ViaDirectPost Path = "direct"
	// ViaBundle: one transaction Bundle with both is POSTed to radgate.
	ViaBundle Path = "bundle"
)

// Case is one radiograph to order and score.
type Case struct {
	File string
	// Data, when set, is the file's content (File then only names it).
	Data []byte
	Path Path
	// Patient is the patient's display name (synthetic; never logged by radgate).
	Patient string
	// Priority is the ServiceRequest's priority ("stat", …; "" routine).
	Priority string

	Meta *inference.Meta

	OrderID string
	Status  radgate.OrderStatus
	Report  *Report
}

// Report is what a clinician's viewer reads back from the FHIR server.
type Report struct {
	Ref         string
	Raw         map[string]any
	Observation map[string]any
	Media       map[string]any
	Confidence  float64
	Tier        string
	Conclusion  string
	// Heatmap is the Media's picture (HeatmapType its content type: the
	// preview JPEG radgate writes), saved as HeatmapFile.
	Heatmap     []byte
	HeatmapType string
	HeatmapFile string
}

// Env is the running hospital around radgate.
type Env struct {
	RadgateURL string // radgate's intake base, http://127.0.0.1:8080
	FHIR       *fhirhttp.Client
	PACS       *dicomweb.Client
	HTTP       *http.Client
}

// LoadImages stores the files in the PACS over STOW-RS and reads their
// headers.
func (e *Env) LoadImages(ctx context.Context, cases []*Case) error {
	for _, c := range cases {
		b := c.Data
		if b == nil {
			var err error
			if b, err = os.ReadFile(c.File); err != nil {
				return err
			}
		}
		var err error
		if c.Meta, err = inference.ReadHeader(b); err != nil {
			return fmt.Errorf("%s: %w", c.File, err)
		}
		if _, err := e.PACS.Store(ctx, b); err != nil {
			return fmt.Errorf("storing %s in the PACS: %w", filepath.Base(c.File), err)
		}
	}
	return nil
}

// Subscribe makes the FHIR server notify radgate of new orders.
func (e *Env) Subscribe(ctx context.Context) error {
	if _, err := e.FHIR.EnsureSubscriptions(ctx, e.RadgateURL+"/fhir/notify"); err != nil {
		return fmt.Errorf("subscribing radgate: %w", err)
	}
	return nil
}

// Order files each case's order along its path and records the order id.
func (e *Env) Order(ctx context.Context, cases []*Case) error {
	for i, c := range cases {
		if c.Meta == nil {
			return fmt.Errorf("%s: images not loaded", c.File)
		}
		if err := e.order(ctx, i, c); err != nil {
			return fmt.Errorf("ordering %s (%s): %w", filepath.Base(c.File), c.Path, err)
		}
	}
	return nil
}

func (e *Env) order(ctx context.Context, i int, c *Case) error {
	var acsn *radgate.Identifier
	if c.Meta.AccessionNumber != "" {
		acsn = &radgate.Identifier{System: AccessionSystem, Value: c.Meta.AccessionNumber}
	}
	key, err := radgate.OrderKey(radgate.OrderEvent{Accession: acsn, StudyInstanceUID: c.Meta.StudyInstanceUID})
	if err != nil {
		return err
	}
	c.OrderID = radgate.OrderID(key)
	name := c.Patient
	if name == "" {
		name = fmt.Sprintf("Demo Patient %02d", i+1)
	}
	patient := map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": "http://hospital.example.org/mrn", "value": fmt.Sprintf("MRN-%04d", i+1)}},
		"name":       []any{map[string]any{"text": name}}}
	if acsn == nil {
		// No accession number: the study alone is the order (keyed by its UID).
		subject := map[string]any{"identifier": patient["identifier"].([]any)[0], "display": name}
		_, err := e.post(ctx, "/fhir/ImagingStudy", ImagingStudy(c.Meta, subject, nil))
		return err
	}
	switch c.Path {
	case ViaSubscription:
		pref, err := e.createOnFHIR(ctx, patient)
		if err != nil {
			return err
		}
		srRef, err := e.createOnFHIR(ctx, c.serviceRequest(map[string]any{"reference": pref}))
		if err != nil {
			return err
		}
		_, err = e.createOnFHIR(ctx, ImagingStudy(c.Meta, map[string]any{"reference": pref}, map[string]any{"reference": srRef}))
		return err
	case ViaDirectPost:
		subject := map[string]any{"identifier": patient["identifier"].([]any)[0], "display": name}
		if _, err := e.post(ctx, "/fhir/ServiceRequest", c.serviceRequest(subject)); err != nil {
			return err
		}
		_, err := e.post(ctx, "/fhir/ImagingStudy", ImagingStudy(c.Meta, subject, nil))
		return err
	case ViaBundle:
		subject := map[string]any{"identifier": patient["identifier"].([]any)[0], "display": name}
		srURL := "urn:uuid:" + uuidish(c.Meta.SOPInstanceUID)
		bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"fullUrl": srURL, "resource": c.serviceRequest(subject),
				"request": map[string]any{"method": "POST", "url": "ServiceRequest"}},
			map[string]any{"resource": ImagingStudy(c.Meta, subject, map[string]any{"reference": srURL}),
				"request": map[string]any{"method": "POST", "url": "ImagingStudy"}},
		}}
		_, err := e.post(ctx, "/fhir", bundle)
		return err
	}
	return fmt.Errorf("unknown path %q", c.Path)
}

// ServiceRequest is a chest X-ray order as an EHR files it.
func ServiceRequest(m *inference.Meta, subject map[string]any) map[string]any {
	return map[string]any{
		"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"identifier": []any{map[string]any{
			"type":   map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}}},
			"system": AccessionSystem, "value": m.AccessionNumber}},
		"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "36643-5",
			"display": "XR Chest 2 Views"}}, "text": "Chest X-ray"},
		"subject": subject,
	}
}

// serviceRequest is the case's order: ServiceRequest with its priority.
func (c *Case) serviceRequest(subject map[string]any) map[string]any {
	sr := ServiceRequest(c.Meta, subject)
	if c.Priority != "" {
		sr["priority"] = c.Priority
	}
	return sr
}

// ImagingStudy is the study as the PACS/RIS announces it.
func ImagingStudy(m *inference.Meta, subject, basedOn map[string]any) map[string]any {
	ids := []any{map[string]any{"system": "urn:dicom:uid", "value": "urn:oid:" + m.StudyInstanceUID}}
	if m.AccessionNumber != "" {
		ids = append(ids, map[string]any{
			"type":   map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}}},
			"system": AccessionSystem, "value": m.AccessionNumber})
	}
	is := map[string]any{
		"resourceType": "ImagingStudy", "status": "available",
		"identifier": ids,
		"modality":   []any{map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": m.Modality}},
		"subject":    subject,
		"series": []any{map[string]any{"uid": m.SeriesInstanceUID,
			"modality": map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": m.Modality},
			"instance": []any{map[string]any{"uid": m.SOPInstanceUID,
				"sopClass": map[string]any{"system": "urn:ietf:rfc:3986", "code": "urn:oid:" + m.SOPClassUID}}}}},
	}
	if basedOn != nil {
		is["basedOn"] = []any{basedOn}
	}
	return is
}

func uuidish(s string) string {
	h := fmt.Sprintf("%032x", []byte(s))
	h = h[len(h)-32:]
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (e *Env) createOnFHIR(ctx context.Context, res map[string]any) (string, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	return e.FHIR.Create(ctx, b, "")
}

// post sends a FHIR resource to radgate's intake and expects 202 (or 200 for
// a Bundle).
func (e *Env) post(ctx context.Context, path string, res any) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.RadgateURL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := e.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return body, fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return body, nil
}

func (e *Env) client() *http.Client {
	if e.HTTP != nil {
		return e.HTTP
	}
	return http.DefaultClient
}

// OrderStatus reads GET /orders/{id} from radgate.
func (e *Env) OrderStatus(ctx context.Context, id string) (radgate.OrderStatus, error) {
	var st radgate.OrderStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.RadgateURL+"/orders/"+url.PathEscape(id), nil)
	if err != nil {
		return st, err
	}
	resp, err := e.client().Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /orders/%s: HTTP %d", id, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Wait polls each case's order until it is delivered, rejected or failed.
func (e *Env) Wait(ctx context.Context, cases []*Case, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, c := range cases {
		for {
			st, err := e.OrderStatus(ctx, c.OrderID)
			if err == nil && st.State.Terminal() {
				c.Status = st
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("order %s (%s) not finished after %s (state %q, last error %v)",
					c.OrderID, filepath.Base(c.File), timeout, st.State, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// ReadReports reads each delivered order's DiagnosticReport, Observation and
// Media back from the FHIR server, writing heatmaps into heatmapDir.
func (e *Env) ReadReports(ctx context.Context, cases []*Case, heatmapDir string) error {
	for _, c := range cases {
		var ref string
		for _, p := range c.Status.Engines {
			if strings.HasPrefix(p.Report, "DiagnosticReport/") {
				ref = p.Report
			}
		}
		if ref == "" {
			continue
		}
		rep, err := e.readReport(ctx, ref)
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		if len(rep.Heatmap) > 0 && heatmapDir != "" {
			if err := os.MkdirAll(heatmapDir, 0o755); err != nil {
				return err
			}
			ext := ".jpg"
			if rep.HeatmapType == "image/png" {
				ext = ".png"
			}
			rep.HeatmapFile = filepath.Join(heatmapDir, strings.TrimSuffix(filepath.Base(c.File), ".dcm")+ext)
			if err := os.WriteFile(rep.HeatmapFile, rep.Heatmap, 0o644); err != nil {
				return err
			}
		}
		c.Report = rep
	}
	return nil
}

func (e *Env) readJSON(ctx context.Context, ref string) (map[string]any, error) {
	b, err := e.FHIR.Read(ctx, ref)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func (e *Env) readReport(ctx context.Context, ref string) (*Report, error) {
	dr, err := e.readJSON(ctx, ref)
	if err != nil {
		return nil, err
	}
	rep := &Report{Ref: ref, Raw: dr}
	rep.Conclusion, _ = dr["conclusion"].(string)
	for _, r := range list(dr["result"]) {
		obs, err := e.readJSON(ctx, refOf(r))
		if err != nil {
			return nil, err
		}
		if vq, ok := obs["valueQuantity"].(map[string]any); ok {
			rep.Observation = obs
			rep.Confidence, _ = vq["value"].(float64)
			for _, comp := range list(obs["component"]) {
				cc, _ := comp.(map[string]any)["valueCodeableConcept"].(map[string]any)
				for _, cd := range list(cc["coding"]) {
					if d, ok := cd.(map[string]any)["display"].(string); ok {
						rep.Tier = d
					}
				}
			}
		}
	}
	for _, m := range list(dr["media"]) {
		link, _ := m.(map[string]any)["link"]
		media, err := e.readJSON(ctx, refOf(link))
		if err != nil {
			return nil, err
		}
		rep.Media = media
		content, _ := media["content"].(map[string]any)
		data, _ := content["data"].(string)
		rep.HeatmapType, _ = content["contentType"].(string)
		if rep.Heatmap, err = base64.StdEncoding.DecodeString(data); err != nil {
			return nil, fmt.Errorf("media data: %w", err)
		}
	}
	if rep.Observation == nil {
		return nil, errors.New("report has no Observation with a confidence")
	}
	return rep, nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

// Print writes one line per case: what a clinician would see. A report
// scored without a known patient age is marked "[age unknown: caveat]" (its
// conclusion carries the caveat); a study refused for the engine's intended
// use shows the reason, which names the rule.
func Print(w io.Writer, cases []*Case) {
	fmt.Fprintf(w, "%-44s %-12s %-10s %10s  %-5s %s\n", "FILE", "VIA", "STATE", "CONFIDENCE", "TIER", "REPORT / REASON")
	for _, c := range cases {
		name := filepath.Base(c.File)
		switch {
		case c.Report != nil:
			extra := c.Report.Ref
			if c.Report.HeatmapFile != "" {
				extra += "  heatmap: " + c.Report.HeatmapFile
			}
			if strings.Contains(c.Report.Conclusion, "Patient age unknown") {
				extra += "  [age unknown: caveat]"
			}
			fmt.Fprintf(w, "%-44s %-12s %-10s %9.1f%%  %-5s %s\n", name, c.Path, c.Status.State, c.Report.Confidence, c.Report.Tier, extra)
		default:
			fmt.Fprintf(w, "%-44s %-12s %-10s %10s  %-5s %s\n", name, c.Path, c.Status.State, "-", "-", c.Status.Reason)
		}
	}
}
