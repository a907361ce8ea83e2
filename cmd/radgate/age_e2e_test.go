package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// TestIntendedUseByAge is issue 14's proof of the age rule, on the real
// peers with the shipped engine (intended use 1–5 y): the study of a
// patient born in 1940 is not scored, its answer (FHIR Task, ORU) naming
// the rule; a 4-year-old's is scored with no caveat; a study without an age
// is scored with the caveat in the Observation, the DiagnosticReport's
// conclusion, the PDF and the ORU; and under a route that says
// unknown_age: reject the same kind of study is refused, naming it.
func TestIntendedUseByAge(t *testing.T) {
	ris, received := oruReceiver(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `routes:
  - name: strict
    when: {facility: [Strict Clinic]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir, ris]
    unknown_age: reject
  - name: chest
    when: {modality: [CR, DX]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir, ris]
`)
	rg := startRadgate(t, func(c *config.Config) {
		c.RoutesFile = routesFile
		c.Destinations = map[string]config.Destination{
			"ris": {Type: config.DestinationHL7v2, Address: ris, PDFReport: true, ReceivingApplication: "RIS"},
		}
	})
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 7
	read := func(name string) []byte {
		b, err := os.ReadFile(testenv.Testdata("cxr-dicom", name))
		require.NoError(t, err)
		return b
	}
	fourYearOld, _, err := demo.SetElements(read("dx-chest-implicit-le-8bit.dcm"), []demo.Element{
		{Tag: 0x00101010, VR: "AS", Value: "004Y"}, // Patient's Age (its "81" has no unit: unknown)
	})
	require.NoError(t, err)
	files := []struct {
		name     string
		data     []byte
		facility string
	}{
		{"cr-chest-mono1-jpeg2000-lossy.dcm", read("cr-chest-mono1-jpeg2000-lossy.dcm"), "General Hospital"}, // born 1940
		{"dx-chest-implicit-le-8bit.dcm (004Y)", fourYearOld, "General Hospital"},
		{"cr-chest-mono1-10bit-explicit-le.dcm", read("cr-chest-mono1-10bit-explicit-le.dcm"), "General Hospital"}, // no age
		{"cr-chest-mono1-10bit-rle.dcm", read("cr-chest-mono1-10bit-rle.dcm"), "Strict Clinic"},                    // no age
	}
	var cases []*demo.Case
	for i, f := range files {
		b, _, err := demo.Clone(f.data, seed+i)
		require.NoError(t, err)
		cases = append(cases, &demo.Case{File: f.name, Data: b, Path: demo.ViaDirectPost})
	}
	require.NoError(t, rg.env.LoadImages(ctx, cases))
	for i, c := range cases {
		orderFrom(t, rg, c, files[i].facility, "routine")
	}
	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))
	orus := map[string]*hl7v2.Message{} // by accession number
	for range cases {
		select {
		case raw := <-received:
			m, err := hl7v2.Parse(raw)
			require.NoError(t, err)
			orus[m.Get("OBR-18")] = m
		case <-time.After(time.Minute):
			t.Fatal("the RIS received no ORU")
		}
	}
	const rule = "is outside engine cxr-pneumonia-densenet121's intended use: 1–5 y (accepts.age_years)"
	const caveat = "patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y (accepts.age_years); the result was not checked against it"
	adult, child, unknown, strict := cases[0], cases[1], cases[2], cases[3]

	t.Run("born 1940: not scored, the answer names the rule", func(t *testing.T) {
		require.Equal(t, radgate.StateRejected, adult.Status.State, adult.Status.Reason)
		require.Regexp(t, `patient age \d+ y \(Patient's Birth Date and Study Date\) `+regexp.QuoteMeta(rule), adult.Status.Reason)
		requireTask(t, rg, adult, "rejected")
		task := readTask(t, rg, adult)
		require.Contains(t, mustJSON(task["statusReason"]), rule)
		oru := orus[adult.Meta.AccessionNumber]
		require.NotNil(t, oru)
		require.Contains(t, oru.String(), rule, "the ORU's NTE names the rule")
		require.Equal(t, "X", oru.Get("OBR-25"), "no result")
	})

	t.Run("4 years old: scored, no caveat", func(t *testing.T) {
		require.Equal(t, radgate.StateDelivered, child.Status.State, child.Status.Reason)
		rep := readReport(t, rg, child)
		require.NotContains(t, rep.conclusion, "Patient age unknown")
		require.NotContains(t, mustJSON(rep.obs["note"]), "patient age")
		require.NotContains(t, orus[child.Meta.AccessionNumber].String(), "caveat^")
	})

	t.Run("no age: scored, the caveat in every output", func(t *testing.T) {
		require.Equal(t, radgate.StateDelivered, unknown.Status.State, unknown.Status.Reason)
		rep := readReport(t, rg, unknown)
		// Observation: a note, before the disclaimer.
		notes := rep.obs["note"].([]any)
		require.Len(t, notes, 2)
		require.Contains(t, notes[0].(map[string]any)["text"], caveat)
		// DiagnosticReport: the conclusion, before the disclaimer.
		require.Contains(t, rep.conclusion, "Patient age unknown: engine cxr-pneumonia-densenet121's intended use is 1–5 y")
		// The PDF report.
		pdfFile := filepath.Join(t.TempDir(), "report.pdf")
		require.NoError(t, os.WriteFile(pdfFile, rep.pdf, 0o600))
		out, err := exec.Command("pdftotext", "-enc", "UTF-8", pdfFile, "-").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, strings.Join(strings.Fields(string(out)), " "), "Caveat "+caveat)
		// The ORU: an FT OBX.
		oru := orus[unknown.Meta.AccessionNumber]
		require.NotNil(t, oru)
		require.Equal(t, "caveat", oru.Get("OBX(4)-3"))
		require.Contains(t, oru.Get("OBX(4)-5"), caveat)
	})

	t.Run("unknown_age: reject refuses the same kind of study", func(t *testing.T) {
		require.Equal(t, radgate.StateRejected, strict.Status.State, strict.Status.Reason)
		require.Contains(t, strict.Status.Reason, "patient age unknown (no Patient's Age, and no Patient's Birth Date with a Study Date; the order gives none)")
		require.Contains(t, strict.Status.Reason, "(unknown_age: reject)")
		requireTask(t, rg, strict, "rejected")
	})

	t.Run("logs never carry the age with the patient", func(t *testing.T) {
		require.NotContains(t, rg.logs.String(), "1940")
	})
}

// ageReport is what the age test reads back from the FHIR server.
type ageReport struct {
	conclusion string
	obs        map[string]any
	pdf        []byte
}

func readReport(t *testing.T, rg *running, c *demo.Case) ageReport {
	t.Helper()
	ref := c.Status.Engines[config.DefaultEngine].Deliveries["fhir"].Report
	raw, err := rg.env.FHIR.Read(t.Context(), ref)
	require.NoError(t, err)
	var dr struct {
		Conclusion    string
		PresentedForm []struct{ ContentType, Data string }
		Result        []struct{ Reference string }
	}
	require.NoError(t, json.Unmarshal(raw, &dr))
	require.Len(t, dr.PresentedForm, 1, "the PDF report")
	pdf, err := base64.StdEncoding.DecodeString(dr.PresentedForm[0].Data)
	require.NoError(t, err)
	raw, err = rg.env.FHIR.Read(t.Context(), dr.Result[0].Reference)
	require.NoError(t, err)
	var obs map[string]any
	require.NoError(t, json.Unmarshal(raw, &obs))
	return ageReport{conclusion: dr.Conclusion, obs: obs, pdf: pdf}
}

func readTask(t *testing.T, rg *running, c *demo.Case) map[string]any {
	t.Helper()
	b, err := rg.env.FHIR.Read(t.Context(), c.Status.Engines[config.DefaultEngine].Report)
	require.NoError(t, err)
	var task map[string]any
	require.NoError(t, json.Unmarshal(b, &task))
	return task
}
