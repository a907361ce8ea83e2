package service

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// A real order — a radiograph in Orthanc, its order posted to the intake,
// scored by the shipped model, delivered to the real FHIR server — has a
// console page with its tier, caveats, images, timeline stages, a heatmap
// thumbnail that is a PNG, and links to the FHIR resources written; a
// viewer sees no patient data on it, a phi user does.
func TestConsoleOrderPageOfAScoredOrder(t *testing.T) {
	cfg := testConfig(t)
	pacs := testenv.Orthanc(t)
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_CONSOLE_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_CONSOLE_PACS_PASSWORD"
	cfg.Orders.RetryMin, cfg.Orders.RetryMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("ops tok-ops viewer,operator\ndoc tok-doc viewer,phi\n"), 0o600))
	cfg.HTTP.Auth = config.IntakeAuth{Mode: config.AuthStatic, TokensFile: tokens}
	// Results go to the FHIR server and, as SC and SR, into the study in Orthanc.
	cfg.Destinations = map[string]config.Destination{"pacs": {Type: "dicomweb", URL: pacs.DICOMweb,
		Auth: config.ClientAuth{Username: pacs.Username, PasswordEnv: "RADGATE_CONSOLE_PACS_PASSWORD"}}}
	cfg.RoutesFile = filepath.Join(t.TempDir(), "routes.yaml")
	require.NoError(t, os.WriteFile(cfg.RoutesFile, []byte("routes:\n  - name: console\n    engines: ["+config.DefaultEngine+"]\n    destinations: [fhir, pacs]\n"), 0o600))
	reg := radgate.NewRegistry()
	reg.RegisterDestination(fhirhttp.DestinationType())
	reg.RegisterDestination(dicomweb.DestinationType())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs lockedBuffer
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, cfg, Options{Registry: reg, Ready: ready, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	defer func() {
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Error("no stop in 40 s")
		}
		if t.Failed() {
			t.Logf("radgate log:\n%s", logs.String())
		}
	}()
	base := "http://" + addr

	// A fresh study (new UIDs and accession, the pixels of a radiograph the
	// model scores 0.54: Mid, marked) in the PACS, ordered at the intake.
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	file, _, err := demo.Clone(src, int(time.Now().UnixNano()%100_000))
	require.NoError(t, err)
	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	env := &demo.Env{RadgateURL: base, PACS: pc, HTTP: &http.Client{Transport: bearer{token: "tok-ops"}}}
	c := &demo.Case{File: "console.dcm", Data: file, Path: demo.ViaDirectPost, Patient: "Zyxwa Consolepatient"}
	require.NoError(t, env.LoadImages(ctx, []*demo.Case{c}))
	require.NoError(t, env.Order(ctx, []*demo.Case{c}))
	require.NoError(t, env.Wait(ctx, []*demo.Case{c}, 3*time.Minute))
	require.Equal(t, radgate.StateDelivered, c.Status.State, c.Status.Reason)

	signIn := func(token string) *http.Client {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := hc.PostForm(base+"/console/signin", url.Values{"token": {token}})
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		return hc
	}
	get := func(hc *http.Client, path string) (*http.Response, []byte) {
		r, err := hc.Get(base + path)
		require.NoError(t, err)
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, b
	}
	viewer := signIn("tok-ops")
	r, b := get(viewer, "/console/orders/"+c.OrderID)
	require.Equal(t, http.StatusOK, r.StatusCode)
	page := string(b)
	assert.Contains(t, page, `class="tier tier-mid">Mid<`)
	if !c.Meta.Age.Known {
		assert.Regexp(t, `(?i)<li>patient age unknown`, page, "the intended-use caveat")
	}
	assert.Contains(t, page, "Images: 1 scored, 0 skipped")
	for _, stage := range []string{"<td>intake</td>", "<td>router</td>", "<td>inference</td>", "<td>delivery</td>"} {
		assert.Contains(t, page, stage, "the timeline names the stage")
	}
	assert.Regexp(t, `href="`+regexp.QuoteMeta(cfg.FHIR.BaseURL)+`/?DiagnosticReport/[^"]+"`, page, "a link to the report on the FHIR server")
	assert.Regexp(t, `href="`+regexp.QuoteMeta(cfg.FHIR.BaseURL)+`/?Observation/[^"]+"`, page)
	// The PACS objects, as WADO-RS links into the study.
	wado := regexp.QuoteMeta(pacs.DICOMweb + "/studies/" + c.Meta.StudyInstanceUID + "/series/")
	assert.Regexp(t, `<span class="kind">SC</span> <a href="`+wado+`[0-9.]+/instances/[0-9.]+" rel="noreferrer">[0-9.]+</a>`, page)
	assert.Regexp(t, `<span class="kind">SR</span> <a href="`+wado+`[0-9.]+/instances/[0-9.]+" rel="noreferrer">[0-9.]+</a>`, page)
	assert.NotContains(t, page, "Zyxwa", "a viewer sees no patient name")
	assert.NotContains(t, page, "MRN-0001", "nor the patient's identifier")

	thumb := "/console/orders/" + c.OrderID + "/heatmap/" + config.DefaultEngine
	require.Contains(t, page, `<img src="`+thumb+`"`)
	r, b = get(viewer, thumb)
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Equal(t, "image/png", r.Header.Get("Content-Type"))
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.LessOrEqual(t, max(img.Bounds().Dx(), img.Bounds().Dy()), 320)

	doc := signIn("tok-doc")
	_, b = get(doc, "/console/orders/"+c.OrderID)
	assert.Contains(t, string(b), "MRN-0001", "a phi user sees the patient")
	// That view is recorded: a Patient Record AuditEvent on the FHIR server
	// naming the user and the order, without the patient's name.
	var ref []string
	require.Eventually(t, func() bool {
		ref = regexp.MustCompile(`console PHI view audited.*audit=(AuditEvent/\S+)`).FindStringSubmatch(logs.String())
		return ref != nil
	}, 10*time.Second, 50*time.Millisecond, "the PHI view of order %s audited", c.OrderID)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: cfg.FHIR.BaseURL})
	require.NoError(t, err)
	ae, err := fc.Read(t.Context(), ref[1])
	require.NoError(t, err)
	assert.Contains(t, string(ae), `"110110"`)
	assert.Contains(t, string(ae), `"phi-view"`)
	assert.Contains(t, string(ae), `"doc"`)
	assert.Contains(t, string(ae), c.OrderID)
	assert.NotContains(t, string(ae), "Zyxwa")
	_, b = get(viewer, "/console/orders/"+c.OrderID)
	assert.Equal(t, 1, strings.Count(logs.String(), "console PHI view audited"), "a viewer's view shows no patient and is not a PHI view")
	assert.NotContains(t, logs.String(), "Zyxwa", fmt.Sprintf("no patient name in the logs of order %s", c.OrderID))
}
