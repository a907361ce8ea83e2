package fhir

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testDisclaimer = "AI decision support: confidence of an imaging finding of infectious pneumonia. It does not " +
	"determine whether pneumonia is present, nor its severity or progression. Not a diagnosis."

func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func testInput(t testing.TB, marked bool) ResultInput {
	in := ResultInput{
		ID:                "3f2a9c0e1b7d4a55a1c2e3f4",
		ServiceRequest:    &Reference{Reference: "ServiceRequest/sr-1"},
		ImagingStudy:      &Reference{Reference: "ImagingStudy/is-1"},
		Patient:           &Reference{Reference: "Patient/p-1"},
		Accession:         &Identifier{System: "urn:oid:1.2.3.4.5", Value: "ACC-0001"},
		StudyInstanceUID:  "1.2.826.0.1.3680043.8.498.1",
		SeriesInstanceUID: "1.2.826.0.1.3680043.8.498.1.1",
		SOPInstanceUID:    "1.2.826.0.1.3680043.8.498.1.1.1",
		Engine: Engine{
			ID: "cxr-pneumonia-densenet121", Name: "CXR pneumonia DenseNet-121", Version: "1.0.0",
			Disclaimer: testDisclaimer,
			Finding:    Coding{System: SystemSNOMED, Code: "233604007", Display: "Pneumonia"},
		},
		Probability: 0.12345,
		Tier:        "Low",
		ScoredAt:    time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Issued:      time.Date(2026, 11, 27, 10, 0, 1, 500e6, time.FixedZone("CET", 3600)),
	}
	if marked {
		in.Probability, in.Tier, in.Marked = 0.8765, "High", true
		in.HeatmapPNG = testPNG(t, 64, 48)
	}
	return in
}

// tx is a transaction Bundle as plain JSON, for structural checks.
type tx struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
		Request  struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

func decodeTx(t *testing.T, b []byte) tx {
	t.Helper()
	var out tx
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, "Bundle", out.ResourceType)
	require.Equal(t, "transaction", out.Type)
	return out
}

// byType returns the resources of a bundle by type (one each).
func (b tx) byType(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range b.Entry {
		rt := e.Resource["resourceType"].(string)
		require.NotContains(t, out, rt, "one %s per bundle", rt)
		out[rt] = e.Resource
	}
	return out
}

// checkStructure checks what every radgate transaction must satisfy: each
// entry a conditional create on the resource's own identifier — except the
// Provenance, which has no identifier and is a PUT at its deterministic id —
// and every urn:uuid reference resolving to an entry of the bundle.
func checkStructure(t *testing.T, b tx) {
	t.Helper()
	full := map[string]bool{}
	provenances := 0
	for _, e := range b.Entry {
		require.True(t, strings.HasPrefix(e.FullURL, "urn:uuid:"), e.FullURL)
		require.Len(t, e.FullURL, len("urn:uuid:")+36)
		full[e.FullURL] = true
		if e.Resource["resourceType"] == "Provenance" {
			provenances++
			require.Equal(t, "PUT", e.Request.Method)
			require.Equal(t, "Provenance/"+e.Resource["id"].(string), e.Request.URL)
			require.True(t, strings.HasPrefix(e.Resource["id"].(string), "radgate-"))
			require.NotEmpty(t, e.Resource["target"])
			require.Contains(t, fmt.Sprint(e.Resource["agent"]), "Device")
			continue
		}
		require.Equal(t, "POST", e.Request.Method)
		require.Equal(t, e.Resource["resourceType"], e.Request.URL)
		ids := e.Resource["identifier"].([]any)
		require.Len(t, ids, 1)
		id := ids[0].(map[string]any)
		require.Equal(t, IfNoneExist(Identifier{System: id["system"].(string), Value: id["value"].(string)}), e.Request.IfNoneExist)
		require.True(t, strings.HasPrefix(e.Request.IfNoneExist, "identifier=https%3A%2F%2Fradgate.dev%2Ffhir%2Fsid%2F"), e.Request.IfNoneExist)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["reference"].(string); ok && strings.HasPrefix(ref, "urn:") {
				require.True(t, full[ref], "reference %s resolves within the bundle", ref)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, e := range b.Entry {
		walk(e.Resource)
	}
}

func ref(t *testing.T, v any) string {
	t.Helper()
	return v.(map[string]any)["reference"].(string)
}

func TestBuildResultBundleMarked(t *testing.T) {
	in := testInput(t, true)
	raw, err := BuildResultBundle(in)
	require.NoError(t, err)
	b := decodeTx(t, raw)
	checkStructure(t, b)
	res := b.byType(t)
	require.Len(t, res, 5) // Device, Observation, Media, DiagnosticReport, Provenance
	fullURL := map[string]string{}
	for _, e := range b.Entry {
		fullURL[e.Resource["resourceType"].(string)] = e.FullURL
	}

	dr := res["DiagnosticReport"]
	require.Equal(t, "final", dr["status"])
	require.Equal(t, "ServiceRequest/sr-1", ref(t, dr["basedOn"].([]any)[0]))
	require.Equal(t, "ImagingStudy/is-1", ref(t, dr["imagingStudy"].([]any)[0]))
	require.Equal(t, "Patient/p-1", ref(t, dr["subject"]))
	require.Equal(t, fullURL["Observation"], ref(t, dr["result"].([]any)[0]))
	require.Equal(t, fullURL["Media"], ref(t, dr["media"].([]any)[0].(map[string]any)["link"]))
	require.Equal(t, "2026-11-27T10:00:00.000Z", dr["effectiveDateTime"])
	require.Equal(t, "2026-11-27T09:00:01.500Z", dr["issued"])
	cat := dr["category"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)
	require.Equal(t, map[string]any{"system": "http://loinc.org", "code": "LP29684-5", "display": "Radiology"}, cat)
	conclusion := dr["conclusion"].(string)
	require.Equal(t, "Pneumonia: AI confidence 87.7 % (tier High), by CXR pneumonia DenseNet-121 1.0.0. "+
		"The region of interest is marked on the attached heatmap. "+testDisclaimer, conclusion)
	require.Equal(t, []any{map[string]any{"system": SystemResult, "value": in.ID}}, dr["identifier"])

	obs := res["Observation"]
	require.Equal(t, "final", obs["status"])
	require.Equal(t, map[string]any{"value": 87.7, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}, obs["valueQuantity"])
	require.Equal(t, "233604007", obs["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"])
	require.Equal(t, []any{map[string]any{
		"code":                 map[string]any{"coding": []any{map[string]any{"system": CodeSystemRadgate, "code": "confidence-tier", "display": "AI confidence tier"}}, "text": "AI confidence tier"},
		"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": CodeSystemTier, "code": "high", "display": "High"}}, "text": "High"},
	}}, obs["component"])
	require.Equal(t, "ImagingStudy/is-1", ref(t, obs["derivedFrom"].([]any)[0]))
	require.Equal(t, fullURL["Device"], ref(t, obs["device"]))
	require.Equal(t, testDisclaimer, obs["note"].([]any)[0].(map[string]any)["text"])

	media := res["Media"]
	content := media["content"].(map[string]any)
	require.Equal(t, "image/png", content["contentType"])
	data, err := base64.StdEncoding.DecodeString(content["data"].(string))
	require.NoError(t, err)
	require.Equal(t, in.HeatmapPNG, data)
	require.EqualValues(t, 64, media["width"])
	require.EqualValues(t, 48, media["height"])
	require.Equal(t, "ServiceRequest/sr-1", ref(t, media["basedOn"].([]any)[0]))

	dev := res["Device"]
	require.Equal(t, []any{map[string]any{"system": SystemEngine, "value": "cxr-pneumonia-densenet121@1.0.0"}}, dev["identifier"])
	require.Equal(t, []any{map[string]any{"value": "1.0.0"}}, dev["version"])

	again, err := BuildResultBundle(in)
	require.NoError(t, err)
	require.Equal(t, raw, again, "the same input builds the same bytes")
}

func TestBuildResultBundleNotMarked(t *testing.T) {
	in := testInput(t, false)
	in.HeatmapPNG = testPNG(t, 4, 4) // ignored: not marked
	raw, err := BuildResultBundle(in)
	require.NoError(t, err)
	b := decodeTx(t, raw)
	checkStructure(t, b)
	res := b.byType(t)
	require.NotContains(t, res, "Media")
	require.NotContains(t, res["DiagnosticReport"], "media")
	require.Equal(t, "Pneumonia: AI confidence 12.3 % (tier Low), by CXR pneumonia DenseNet-121 1.0.0. "+testDisclaimer,
		res["DiagnosticReport"]["conclusion"])
}

func TestBuildResultBundleByIdentifier(t *testing.T) {
	in := testInput(t, false)
	in.ServiceRequest, in.ImagingStudy, in.Patient = nil, nil, nil
	in.Engine.Finding = Coding{}
	raw, err := BuildResultBundle(in)
	require.NoError(t, err)
	b := decodeTx(t, raw)
	checkStructure(t, b)
	dr := b.byType(t)["DiagnosticReport"]
	require.Equal(t, map[string]any{"type": "ServiceRequest", "identifier": map[string]any{
		"type":   map[string]any{"coding": []any{map[string]any{"system": SystemV20203, "code": "ACSN", "display": "Accession ID"}}},
		"system": "urn:oid:1.2.3.4.5", "value": "ACC-0001"}}, dr["basedOn"].([]any)[0])
	require.Equal(t, map[string]any{"type": "ImagingStudy", "identifier": map[string]any{
		"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}}, dr["imagingStudy"].([]any)[0])
	require.NotContains(t, dr, "subject")
	obs := b.byType(t)["Observation"]
	require.Equal(t, "233604007", obs["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"], "DefaultFinding")
}

func TestBuildResultBundleErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*ResultInput)
		want string
	}{
		"no id":          {func(in *ResultInput) { in.ID = "" }, "invalid result: ResultInput.ID: empty"},
		"no engine":      {func(in *ResultInput) { in.Engine.ID = "" }, "invalid result: ResultInput.Engine.ID: empty"},
		"no disclaimer":  {func(in *ResultInput) { in.Engine.Disclaimer = " " }, "invalid result: ResultInput.Engine.Disclaimer: empty (every result carries the disclaimer)"},
		"bad tier":       {func(in *ResultInput) { in.Tier = "Medium" }, `invalid result: ResultInput.Tier: "Medium" is not Low, Mid or High`},
		"bad prob":       {func(in *ResultInput) { in.Probability = 1.5 }, "invalid result: ResultInput.Probability: 1.5 is outside 0..1"},
		"marked, no png": {func(in *ResultInput) { in.Marked, in.HeatmapPNG = true, nil }, "invalid result: ResultInput.Preview and HeatmapPNG: empty, but the result is marked"},
		"marked, junk":   {func(in *ResultInput) { in.Marked, in.HeatmapPNG = true, []byte("GIF89a, not a PNG") }, "invalid result: ResultInput.HeatmapPNG: not a PNG: png: invalid format: not a PNG file"},
	} {
		t.Run(name, func(t *testing.T) {
			in := testInput(t, false)
			tc.mod(&in)
			_, err := BuildResultBundle(in)
			require.EqualError(t, err, tc.want)
			require.ErrorIs(t, err, ErrInvalidResult)
		})
	}
}

func TestBuildTaskBundle(t *testing.T) {
	for _, st := range []TaskStatus{TaskRejected, TaskFailed} {
		t.Run(string(st), func(t *testing.T) {
			in := testInput(t, false)
			in.Reason = "no CR or DX chest image in the study (found CT)"
			raw, err := BuildTaskBundle(in, st)
			require.NoError(t, err)
			b := decodeTx(t, raw)
			checkStructure(t, b)
			res := b.byType(t)
			require.Len(t, res, 3) // Device, Task, Provenance
			task := res["Task"]
			require.Equal(t, string(st), task["status"])
			require.Equal(t, "order", task["intent"])
			require.Equal(t, map[string]any{"text": in.Reason}, task["statusReason"])
			require.Equal(t, "ServiceRequest/sr-1", ref(t, task["focus"]))
			require.Equal(t, "Patient/p-1", ref(t, task["for"]))
			require.Equal(t, []any{map[string]any{"system": SystemResult, "value": in.ID}}, task["identifier"])
			require.NotContains(t, task, "input", "samply's Task.input marshals every value[x]: never set it")
		})
	}
	in := testInput(t, false)
	in.ServiceRequest, in.Accession = nil, nil
	in.Reason = "study never arrived"
	raw, err := BuildTaskBundle(in, TaskFailed)
	require.NoError(t, err)
	require.Equal(t, "ImagingStudy/is-1", ref(t, decodeTx(t, raw).byType(t)["Task"]["focus"]))

	_, err = BuildTaskBundle(testInput(t, false), TaskFailed)
	require.EqualError(t, err, "invalid result: ResultInput.Reason: empty (a result that was not scored must say why)")
	_, err = BuildTaskBundle(in, "completed")
	require.ErrorIs(t, err, ErrInvalidResult)
}

func TestConfidencePercent(t *testing.T) {
	for p, want := range map[float64]string{0: "0.0", 1: "100.0", 0.0087: "0.9", 0.30: "30.0", 0.64999: "65.0", 0.12345: "12.3", 0.00049: "0.0"} {
		require.Equal(t, want, ConfidencePercent(p), p)
	}
}

func TestCodeSystems(t *testing.T) {
	cs := CodeSystems()
	require.Len(t, cs, 3)
	urls := map[string]bool{}
	for _, c := range cs {
		var res struct {
			ResourceType, ID, URL, Status, Content string
			Concept                                []struct{ Code string }
		}
		require.NoError(t, json.Unmarshal(c.JSON, &res))
		require.Equal(t, "CodeSystem", res.ResourceType)
		require.Equal(t, c.ID, res.ID)
		urls[res.URL] = true
		if res.URL == CodeSystemTier {
			for _, tier := range []string{"Low", "Mid", "High"} {
				coding, ok := TierCoding(tier)
				require.True(t, ok)
				require.Contains(t, res.Concept, struct{ Code string }{coding.Code})
			}
		}
		if res.URL == CodeSystemReadVerdict {
			for _, code := range []string{CodeVerdictAgreement, CodeVerdictFinding, CodeVerdictEngine, "agree", "disagree", "present", "absent"} {
				require.Contains(t, res.Concept, struct{ Code string }{code})
			}
		}
		if res.URL == CodeSystemRadgate {
			require.Contains(t, res.Concept, struct{ Code string }{CodeConfidenceTier})
			require.Contains(t, res.Concept, struct{ Code string }{CodeAIAnalysis})
		}
	}
	require.Equal(t, map[string]bool{CodeSystemTier: true, CodeSystemRadgate: true, CodeSystemReadVerdict: true}, urls)
}

// The Media carries the preview JPEG when there is one, not the full-size
// heatmap PNG beside it.
func TestBuildResultBundleMediaPreview(t *testing.T) {
	in := testInput(t, true)
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	in.Preview = buf.Bytes()
	raw, err := BuildResultBundle(in)
	require.NoError(t, err)
	var b tx
	require.NoError(t, json.Unmarshal(raw, &b))
	var media map[string]any
	for _, e := range b.Entry {
		if e.Resource["resourceType"] == "Media" {
			media = e.Resource
		}
	}
	require.NotNil(t, media)
	content := media["content"].(map[string]any)
	require.Equal(t, "image/jpeg", content["contentType"])
	data, err := base64.StdEncoding.DecodeString(content["data"].(string))
	require.NoError(t, err)
	require.Equal(t, in.Preview, data)
	require.EqualValues(t, 40, media["width"], "read from the JPEG")
	require.EqualValues(t, 30, media["height"])
	require.NotContains(t, string(raw), base64.StdEncoding.EncodeToString(in.HeatmapPNG)[:40], "the PNG stays out")

	in.Preview = []byte("GIF89a")
	_, err = BuildResultBundle(in)
	require.ErrorContains(t, err, "ResultInput.Preview: not a JPEG")
}

// A result scored with a caveat (an unknown patient age) carries it as an
// Observation note before the disclaimer, and as a sentence of the
// DiagnosticReport conclusion between the finding and the disclaimer.
func TestBuildResultBundleCaveats(t *testing.T) {
	const caveat = "patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y (accepts.age_years); the result was not checked against it"
	in := testInput(t, false)
	in.Caveats = []string{caveat}
	raw, err := BuildResultBundle(in)
	require.NoError(t, err)
	b := decodeTx(t, raw)
	checkStructure(t, b)
	res := b.byType(t)
	require.Equal(t, []any{map[string]any{"text": caveat}, map[string]any{"text": testDisclaimer}}, res["Observation"]["note"])
	require.Equal(t, "Pneumonia: AI confidence 12.3 % (tier Low), by CXR pneumonia DenseNet-121 1.0.0. "+
		"Patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y (accepts.age_years); the result was not checked against it. "+testDisclaimer,
		res["DiagnosticReport"]["conclusion"])
}
