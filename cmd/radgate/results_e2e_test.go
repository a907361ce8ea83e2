package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
)

// TestResultsToPACSAndRIS: a route sends each result to the FHIR server,
// back into the study in the PACS (Secondary Capture + Comprehensive 3D SR,
// and a Parametric Map of the marked result's CAM) and to the RIS as
// ORU^R01 over MLLP, the PDF report attached everywhere it goes. The
// derived objects are read back by WADO-RS, parse (dcmtk's dsrdump reads
// the SR) and pass dciodvfy without errors; the ORU arrives, is ACKed and
// carries the values of the FHIR result.
func TestResultsToPACSAndRIS(t *testing.T) {
	ris, received := oruReceiver(t)
	pacs := testenv.Orthanc(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `routes:
  - name: chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [fhir, pacs-results, ris]
`)
	t.Setenv("RADGATE_E2E_RESULTS_PACS_PASSWORD", pacs.Password)
	rg := startRadgate(t, func(c *config.Config) {
		c.RoutesFile = routesFile
		c.Destinations = map[string]config.Destination{
			"pacs-results": {Type: config.DestinationDICOMweb, URL: pacs.DICOMweb, PDFReport: true, ParametricMap: true,
				Auth: config.ClientAuth{Username: pacs.Username, PasswordEnv: "RADGATE_E2E_RESULTS_PACS_PASSWORD"}},
			"ris": {Type: config.DestinationHL7v2, Address: ris, PDFReport: true, ReceivingApplication: "RIS"},
		}
	})
	ctx := t.Context()
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 9
	// 0.54 (marked: ≥ 50 %) and 0.009 (not marked).
	cases := loadRouted(t, rg, seed, "dx-chest-implicit-le-8bit.dcm", "cr-chest-mono1-10bit-explicit-le.dcm")
	for _, c := range cases {
		orderFrom(t, rg, c, "General Hospital", "routine")
	}
	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))
	version := engineVersion(t, rg)

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

	for i, c := range cases {
		st := c.Status
		require.Equal(t, radgate.StateDelivered, st.State, st.Reason)
		prog := st.Engines[config.DefaultEngine]
		for _, d := range []string{"fhir", "pacs-results", "ris"} {
			require.Equal(t, radgate.StateDelivered, prog.Deliveries[d].State, d)
		}
		marked := i == 0
		resultID := pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version})

		// FHIR: the report with its PDF.
		raw, err := rg.env.FHIR.Read(ctx, prog.Deliveries["fhir"].Report)
		require.NoError(t, err)
		var rep struct {
			PresentedForm []struct{ ContentType, Data string }
			Result        []struct{ Reference string }
		}
		require.NoError(t, json.Unmarshal(raw, &rep))
		require.Len(t, rep.PresentedForm, 1)
		require.Equal(t, "application/pdf", rep.PresentedForm[0].ContentType)
		pdf, err := base64.StdEncoding.DecodeString(rep.PresentedForm[0].Data)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(pdf, []byte("%PDF-")))
		raw, err = rg.env.FHIR.Read(ctx, rep.Result[0].Reference)
		require.NoError(t, err)
		var obs struct{ ValueQuantity struct{ Value float64 } }
		require.NoError(t, json.Unmarshal(raw, &obs))

		// PACS: the derived image and the SR, read back from the study.
		uids := derived.UIDsFor(resultID, 1)
		sc, err := rg.env.PACS.RetrieveInstance(ctx, c.Meta.StudyInstanceUID, uids.SCSeries, uids.SC)
		require.NoError(t, err)
		ds, err := dicom.Parse(bytes.NewReader(sc), int64(len(sc)), nil, dicom.SkipPixelData())
		require.NoError(t, err)
		require.Equal(t, []string{"DERIVED", "SECONDARY"}, strs(t, ds, tag.ImageType))
		require.Equal(t, []string{"YES"}, strs(t, ds, tag.BurnedInAnnotation))
		require.Equal(t, []string{c.Meta.StudyInstanceUID}, strs(t, ds, tag.StudyInstanceUID))
		testenv.Dciodvfy(t, "SC read back from the PACS", sc)
		sr, err := rg.env.PACS.RetrieveInstance(ctx, c.Meta.StudyInstanceUID, uids.SRSeries, uids.SR)
		require.NoError(t, err)
		srFile := filepath.Join(t.TempDir(), "sr.dcm")
		require.NoError(t, os.WriteFile(srFile, sr, 0o600))
		dump, err := exec.Command("dsrdump", srFile).CombinedOutput()
		require.NoError(t, err, "%s", dump)
		require.Contains(t, string(dump), "Algorithm Version")
		require.Contains(t, string(dump), `"`+fhir.ConfidencePercent(obs.ValueQuantity.Value/100)+`" (%,UCUM`)
		testenv.Dciodvfy(t, "SR read back from the PACS", sr)
		pdfObj, err := rg.env.PACS.RetrieveInstance(ctx, c.Meta.StudyInstanceUID, uids.PDFSeries, uids.PDF)
		require.NoError(t, err)
		require.Contains(t, string(pdfObj), "%PDF-", "the Encapsulated PDF")
		testenv.Dciodvfy(t, "Encapsulated PDF read back from the PACS", pdfObj)
		// The CAM of the marked result travelled with it: a Parametric Map.
		pm, err := rg.env.PACS.RetrieveInstance(ctx, c.Meta.StudyInstanceUID, uids.PMSeries, uids.PM)
		if marked {
			require.NoError(t, err)
			iod, _ := testenv.Dciodvfy(t, "Parametric Map read back from the PACS", pm)
			require.Equal(t, "ParametricMap", iod)
		} else {
			require.Error(t, err, "no map below the marking threshold")
		}

		// RIS: the ORU with the FHIR result's values, ACKed and stored.
		m := orus[c.Meta.AccessionNumber]
		require.NotNil(t, m, "an ORU for accession %s", c.Meta.AccessionNumber)
		require.Equal(t, "ORU", m.Get("MSH-9-1"))
		require.Equal(t, "RIS", m.Get("MSH-5"))
		require.Equal(t, fhir.ConfidencePercent(obs.ValueQuantity.Value/100), m.Get("OBX(1)-5"))
		require.Equal(t, strings.ToLower(prog.Tier), m.Get("OBX(2)-5-1"))
		require.True(t, strings.HasPrefix(prog.Deliveries["ris"].Report, "ORU^R01/"), prog.Deliveries["ris"].Report)
		require.Contains(t, m.String(), "application^pdf^Base64", "the PDF as an ED OBX")
	}
}

func strs(t *testing.T, ds dicom.Dataset, tg tag.Tag) []string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err, "%v", tg)
	var out []string
	for _, v := range dicom.MustGetStrings(e.Value) {
		out = append(out, strings.TrimRight(v, " \x00"))
	}
	return out
}
