package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// running is radgate serve started in-process against the real peers.
type running struct {
	url  string
	cfg  config.Config
	logs *testenv.LogBuffer
	env  *demo.Env
}

func startRadgate(t *testing.T, mutate func(*config.Config)) *running {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	lib := testenv.ONNXRuntimeLib(t)

	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1"
	// Studies stored after their order settle in 1 s, waiting orders are
	// looked at every 200 ms to 2 s (defaults: 60 s; 30 s to 15 min).
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.DataDir = t.TempDir()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = lib
	cfg.PACS.DICOMwebURL = pacs.DICOMweb
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_E2E_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_E2E_PACS_PASSWORD"
	cfg.FHIR.BaseURL = fhirSrv.URL
	cfg.Orders.RetryMin = config.Duration(100 * time.Millisecond)
	cfg.Orders.RetryMax = config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(20 * time.Second)
	if mutate != nil {
		mutate(&cfg)
	}

	logs := &testenv.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, "", logger, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("serve exited before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("serve not ready in 60s\n%s", logs.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Error("serve did not stop within 40s of SIGTERM-equivalent")
		}
		if t.Failed() {
			t.Logf("radgate log:\n%s", logs.String())
		}
	})

	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	return &running{url: "http://" + addr, cfg: cfg, logs: logs,
		env: &demo.Env{RadgateURL: "http://" + addr, FHIR: fc, PACS: pc}}
}

// reference reads testdata/cxr-dicom/reference.csv: file → probability.
func reference(t *testing.T) map[string]float64 {
	t.Helper()
	f, err := os.Open(testenv.Testdata("cxr-dicom", "reference.csv"))
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, r := range rows[1:] {
		p, err := strconv.ParseFloat(r[3], 64)
		require.NoError(t, err)
		out[r[0]] = p
	}
	return out
}

// TestOrderToResultOnRealPeers is the proof: real Orthanc, the real
// FHIR server (validating every write), embedded NATS, the shipped model.
func TestOrderToResultOnRealPeers(t *testing.T) {
	rg := startRadgate(t, nil)
	ctx := t.Context()
	ref := reference(t)
	manifest, err := inference.LoadManifest(filepath.Join(rg.cfg.ModelsDir, config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)

	files, err := filepath.Glob(testenv.Testdata("cxr-dicom", "*.dcm"))
	require.NoError(t, err)
	files = append(files, testenv.Testdata("dicom-negative", "CT_small.dcm"))
	sort.Strings(files)
	paths := []demo.Path{demo.ViaSubscription, demo.ViaDirectPost, demo.ViaBundle}
	var cases []*demo.Case
	for i, f := range files {
		cases = append(cases, &demo.Case{File: f, Path: paths[i%len(paths)], Patient: fmt.Sprintf("Zyxwa Testpatient%02d", i)})
	}
	require.NoError(t, rg.env.LoadImages(ctx, cases))
	require.NoError(t, rg.env.Subscribe(ctx))
	require.NoError(t, rg.env.Order(ctx, cases))
	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))
	heatmaps := t.TempDir()
	require.NoError(t, rg.env.ReadReports(ctx, cases, heatmaps))

	scored := 0
	for _, c := range cases {
		name := filepath.Base(c.File)
		t.Run(name, func(t *testing.T) {
			m := c.Meta
			chest := strings.EqualFold(m.BodyPartExamined, "CHEST") || (m.BodyPartExamined == "" && m.Modality == "DX")
			switch {
			case m.Modality == "CT" || !chest:
				require.Equal(t, radgate.StateRejected, c.Status.State, "a non-chest study is answered, not scored")
				require.Contains(t, c.Status.Reason, "not scored")
				requireTask(t, rg, c, "rejected")
				return
			case m.Age.Known && m.Age.Years > 5:
				// An adult (cr-chest-mono1-jpeg2000-lossy.dcm, born 1940):
				// outside the paediatric engine's intended use (1–5 y).
				require.Equal(t, radgate.StateRejected, c.Status.State, c.Status.Reason)
				require.Contains(t, c.Status.Reason, "is outside engine "+config.DefaultEngine+"'s intended use: 1–5 y (accepts.age_years)")
				requireTask(t, rg, c, "rejected")
				return
			case errors.Is(decodeErr(t, c.File), inference.ErrUnsupportedTransferSyntax):
				require.Equal(t, radgate.StateFailed, c.Status.State)
				require.Contains(t, c.Status.Reason, m.TransferSyntaxUID, "the failure names the transfer syntax")
				requireTask(t, rg, c, "failed")
				return
			}
			scored++
			require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)
			rep := c.Report
			require.NotNil(t, rep)
			p := *c.Status.Engines[config.DefaultEngine].Probability
			require.InDelta(t, ref[name], p, 0.01, "probability vs reference.csv")
			require.InDelta(t, p*100, rep.Confidence, 0.051, "Observation confidence in %")
			require.Equal(t, string(manifest.Thresholds.Tier(p)), rep.Tier, "tier from the unrounded probability")

			dr := rep.Raw
			require.Equal(t, "final", dr["status"])
			require.Contains(t, mustJSON(dr["category"]), "LP29684-5")
			require.Contains(t, rep.Conclusion, manifest.Disclaimer, "the disclaimer word for word")
			if !m.Age.Known {
				require.Contains(t, rep.Conclusion, "Patient age unknown: engine "+config.DefaultEngine+"'s intended use is 1–5 y", "scored with the caveat")
			}
			require.Contains(t, rep.Conclusion, rep.Tier)
			basedOn := mustJSON(dr["basedOn"])
			if c.Path == demo.ViaSubscription {
				require.Regexp(t, `"reference":"ServiceRequest/[^"]+"`, basedOn, "a literal reference when the order lives on the FHIR server")
				require.Regexp(t, `"reference":"ImagingStudy/[^"]+"`, mustJSON(dr["imagingStudy"]))
			} else {
				require.Contains(t, basedOn, m.AccessionNumber, "by identifier when it does not")
			}
			// Provenance: what produced the report, from which study, which model version.
			resID := pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: manifest.Version})
			pb, err := rg.env.FHIR.Read(t.Context(), "Provenance/"+fhir.ProvenanceID(resID))
			require.NoError(t, err, "each result carries a Provenance")
			var prov map[string]any
			require.NoError(t, json.Unmarshal(pb, &prov))
			require.Contains(t, mustJSON(prov["target"]), `"`+rep.Ref+`"`)
			require.Contains(t, mustJSON(prov["agent"]), `"reference":"Device/`)
			require.Contains(t, mustJSON(prov["policy"]), manifest.Version)
			require.NotEmpty(t, prov["entity"], "the source study")

			obs := rep.Observation
			require.Contains(t, mustJSON(obs["code"]), "233604007")
			require.Equal(t, "%", obs["valueQuantity"].(map[string]any)["code"])
			require.NotEmpty(t, obs["derivedFrom"])
			require.NotEmpty(t, obs["device"])

			if p >= 0.5 {
				require.NotNil(t, rep.Media, "marked at ≥ 50 %%")
				require.Equal(t, "image/jpeg", rep.HeatmapType, "the Media holds the preview")
				img, err := jpeg.Decode(bytes.NewReader(rep.Heatmap))
				require.NoError(t, err)
				w, h := expectedPreviewSize(m.Columns, m.Rows)
				require.Equal(t, w, img.Bounds().Dx())
				require.Equal(t, h, img.Bounds().Dy())
				require.EqualValues(t, w, rep.Media["width"])
				require.EqualValues(t, h, rep.Media["height"])
				require.FileExists(t, rep.HeatmapFile)
			} else {
				require.Nil(t, rep.Media, "no region is marked below 50 %%")
			}
		})
	}
	require.GreaterOrEqual(t, scored, 4, "the native and JPEG Baseline chest files are scored")

	t.Run("the same order posted twice makes one report", func(t *testing.T) {
		var c *demo.Case
		for _, cc := range cases {
			if cc.Report != nil && cc.Path == demo.ViaDirectPost {
				c = cc
			}
		}
		require.NotNil(t, c)
		before := countReports(t, rg, c)
		require.Equal(t, 1, before)
		again := &demo.Case{File: c.File, Path: demo.ViaDirectPost, Meta: c.Meta}
		require.NoError(t, rg.env.Order(ctx, []*demo.Case{again}))
		require.NoError(t, rg.env.Order(ctx, []*demo.Case{{File: c.File, Path: demo.ViaBundle, Meta: c.Meta}}))
		time.Sleep(2 * time.Second) // time for any duplicate to surface
		require.NoError(t, rg.env.Wait(ctx, []*demo.Case{again}, 30*time.Second))
		require.Equal(t, radgate.StateDelivered, again.Status.State)
		require.Equal(t, 1, countReports(t, rg, c))
	})

	t.Run("logs carry identifiers, never patient names", func(t *testing.T) {
		logs := rg.logs.String()
		require.Contains(t, logs, cases[0].OrderID)
		require.NotContains(t, logs, "Zyxwa")
		require.NotContains(t, logs, "Testpatient")
	})
}

// decodeErr is what decoding the file here says: the pipeline must agree.
func decodeErr(t *testing.T, file string) error {
	t.Helper()
	_, err := inference.DecodeFile(file)
	return err
}

// expectedPreviewSize is the documented preview size: the source's, or
// scaled so that the long edge is inference.PreviewEdge.
func expectedPreviewSize(w, h int) (int, int) {
	long := max(w, h)
	if long <= inference.PreviewEdge {
		return w, h
	}
	s := float64(inference.PreviewEdge) / float64(long)
	return max(1, int(float64(w)*s+0.5)), max(1, int(float64(h)*s+0.5))
}

func requireTask(t *testing.T, rg *running, c *demo.Case, status string) {
	t.Helper()
	rep := c.Status.Engines[config.DefaultEngine].Report
	if rep == "" { // an order-level answer: no route could be chosen
		rep = c.Status.Engines[radgate.RouterEngine].Report
	}
	require.True(t, strings.HasPrefix(rep, "Task/"), "the order is answered on the FHIR server with a Task, got %q", rep)
	b, err := rg.env.FHIR.Read(t.Context(), rep)
	require.NoError(t, err)
	var task map[string]any
	require.NoError(t, json.Unmarshal(b, &task))
	require.Equal(t, status, task["status"])
	require.Contains(t, mustJSON(task["statusReason"]), strings.SplitN(c.Status.Reason, ": ", 2)[1][:20])
}

func countReports(t *testing.T, rg *running, c *demo.Case) int {
	t.Helper()
	resID := pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: engineVersion(t, rg)})
	id := fhir.ResultIdentifier(resID)
	found, err := rg.env.FHIR.Search(t.Context(), "DiagnosticReport", map[string][]string{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	return len(found)
}

func engineVersion(t *testing.T, rg *running) string {
	m, err := inference.LoadManifest(filepath.Join(rg.cfg.ModelsDir, config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	return m.Version
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestIntakeRejectsBadRequestsAndKeepsServing sends the bad requests of the
// issue to the real server: each gets its 4xx and an OperationOutcome naming
// the field, and a good order still goes through afterwards.
func TestIntakeRejectsBadRequestsAndKeepsServing(t *testing.T) {
	rg := startRadgate(t, nil)
	for _, tc := range []struct {
		name, path, body string
		status           int
		mention          string
	}{
		{"malformed JSON", "/fhir/ServiceRequest", `{"resourceType": "ServiceRequest",`, 400, "JSON"},
		{"wrong resourceType", "/fhir/ServiceRequest", `{"resourceType":"Patient"}`, 400, "Patient"},
		{"no accession number", "/fhir/ServiceRequest",
			`{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`, 400, "ACSN"},
		{"no study UID", "/fhir/ImagingStudy",
			`{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"}}`, 400, "urn:dicom:uid"},
		{"unknown order", "/orders/0123456789abcdef01234567", "", 404, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPost
			if tc.body == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, rg.url+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			require.Contains(t, string(body), `"resourceType":"OperationOutcome"`)
			require.Contains(t, string(body), tc.mention)
		})
	}
	// Still serving: a good order is accepted and reaches a terminal state.
	// A clone with its own accession number: the sample's own accession is
	// ordered through the Subscription by TestOrderToResultOnRealPeers, and
	// with one shared FHIR server the first report of an order is the one
	// that stays (conditional create), whichever test ran first.
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	clone, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+1)
	require.NoError(t, err)
	c := &demo.Case{File: "still-serving.dcm", Data: clone, Path: demo.ViaDirectPost}
	require.NoError(t, rg.env.LoadImages(t.Context(), []*demo.Case{c}))
	require.NoError(t, rg.env.Order(t.Context(), []*demo.Case{c}))
	require.NoError(t, rg.env.Wait(t.Context(), []*demo.Case{c}, time.Minute))
	require.Equal(t, radgate.StateDelivered, c.Status.State)
}

// TestStudyLateOrNeverInThePACS: an order whose study reaches Orthanc after
// the order is waited for; one whose study never arrives ends failed, with a
// Task on the FHIR server saying why — never silently dropped.
func TestStudyLateOrNeverInThePACS(t *testing.T) {
	rg := startRadgate(t, func(c *config.Config) { c.Orders.StudyWaitWindow = config.Duration(6 * time.Second) })
	ctx := t.Context()
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "cr-chest-mono1-10bit-explicit-le.dcm"))
	require.NoError(t, err)
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 5
	late, lateMeta, err := demo.Clone(src, seed)
	require.NoError(t, err)
	_, neverMeta, err := demo.Clone(src, seed+1)
	require.NoError(t, err)

	lateCase := &demo.Case{File: "late.dcm", Path: demo.ViaDirectPost, Meta: lateMeta}
	neverCase := &demo.Case{File: "never.dcm", Path: demo.ViaDirectPost, Meta: neverMeta}
	require.NoError(t, rg.env.Order(ctx, []*demo.Case{lateCase, neverCase}))
	time.Sleep(1500 * time.Millisecond)
	st, err := rg.env.OrderStatus(ctx, lateCase.OrderID)
	require.NoError(t, err)
	require.False(t, st.State.Terminal(), "still waiting for the study")
	_, err = rg.env.PACS.Store(ctx, late)
	require.NoError(t, err)

	require.NoError(t, rg.env.Wait(ctx, []*demo.Case{lateCase, neverCase}, time.Minute))
	require.Equal(t, radgate.StateDelivered, lateCase.Status.State, lateCase.Status.Reason)
	require.InDelta(t, reference(t)["cr-chest-mono1-10bit-explicit-le.dcm"], *lateCase.Status.Engines[config.DefaultEngine].Probability, 0.01)
	require.Equal(t, radgate.StateFailed, neverCase.Status.State)
	require.Contains(t, neverCase.Status.Reason, "study not found in the PACS within 6s")
	requireTask(t, rg, neverCase, "failed")
}

// TestExternalNATS: with nats.url set, radgate uses that server (a cluster
// in production) instead of starting its own.
func TestExternalNATS(t *testing.T) {
	ext, err := broker.StartEmbedded(t.TempDir(), -1) // stands in for an external server
	require.NoError(t, err)
	t.Cleanup(ext.Shutdown)
	rg := startRadgate(t, func(c *config.Config) { c.NATS.URL = ext.ClientURL() })
	require.NoDirExists(t, filepath.Join(rg.cfg.DataDir, "nats"), "no embedded server when nats.url is set")

	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	clone, _, err := demo.Clone(src, int(time.Now().UnixNano()/1e6%9000)*10+2) // own accession (see above)
	require.NoError(t, err)
	c := &demo.Case{File: "external-nats.dcm", Data: clone, Path: demo.ViaBundle}
	require.NoError(t, rg.env.LoadImages(t.Context(), []*demo.Case{c}))
	require.NoError(t, rg.env.Order(t.Context(), []*demo.Case{c}))
	require.NoError(t, rg.env.Wait(t.Context(), []*demo.Case{c}, time.Minute))
	require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)

	nc, err := broker.Connect(ext.ClientURL(), "", nil)
	require.NoError(t, err)
	defer nc.Close()
	topo, err := broker.EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	info, err := topo.JS.Stream(t.Context(), broker.StreamOrders)
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.CachedInfo().State.Msgs, uint64(2), "the orders went through the external server")
}
