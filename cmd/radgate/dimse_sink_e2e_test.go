package main

// End-to-end proof of the dimse destination type (issue 13 item 4): results
// go back to the PACS over C-STORE, found there with dcmtk's findscu.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// findAE is the calling AE title findscu uses: Orthanc answers C-FIND only
// to the modalities it lists, so the test registers it (at run time, under
// a name of its own) and removes it when done.
const findAE = "RG_SINK_FIND"

func registerFindscu(t *testing.T, pacs testenv.PACS) {
	t.Helper()
	do := func(method, body string) {
		rq, err := http.NewRequest(method, pacs.URL+"/modalities/radgate-sink-findscu", strings.NewReader(body))
		require.NoError(t, err)
		rq.SetBasicAuth(pacs.Username, pacs.Password)
		rsp, err := http.DefaultClient.Do(rq)
		require.NoError(t, err)
		rsp.Body.Close()
		require.Equal(t, http.StatusOK, rsp.StatusCode, "%s modality %s in Orthanc", method, findAE)
	}
	do(http.MethodPut, `{"AET":"`+findAE+`","Host":"127.0.0.1","Port":104}`)
	t.Cleanup(func() { do(http.MethodDelete, "") })
}

var findUID = regexp.MustCompile(`\(0008,0018\) UI \[([0-9.]+)[\s\x00]*\]`) // an odd-length UID comes padded, with a NUL or a space

// findscu asks Orthanc (C-FIND, study root, IMAGE level) for the instances
// of a series and returns their SOP Instance UIDs. findscu's exit status
// says nothing of an abort: its E: lines do.
func findscu(t *testing.T, port, aet, study, series string) ([]string, string) {
	t.Helper()
	out, err := exec.Command("findscu", "-S", "-aet", findAE, "-aec", aet,
		"-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID="+series,
		"-k", "SOPInstanceUID", "-k", "SOPClassUID", "127.0.0.1", port).CombinedOutput()
	require.NoError(t, err, "findscu: %s", out)
	for _, l := range strings.Split(string(out), "\n") {
		require.False(t, strings.HasPrefix(l, "E:"), "findscu: %s", out)
	}
	var uids []string
	for _, m := range findUID.FindAllSubmatch(out, -1) {
		uids = append(uids, string(m[1]))
	}
	return uids, string(out)
}

// TestDIMSEResultsBackOverCStore: a modality pushes a study to radgate's
// Storage SCP; its result goes back to Orthanc as a Secondary Capture and
// an SR over C-STORE, through a destination of type dimse — the route names
// no DICOMweb destination. findscu finds both in the study, each valid by
// dciodvfy; the delivery's receipt names the SR.
func TestDIMSEResultsBackOverCStore(t *testing.T) {
	ps := sharedPeers(t)
	port := os.Getenv("RADGATE_TEST_ORTHANC_DICOM_PORT")
	aet := os.Getenv("RADGATE_TEST_ORTHANC_AET")
	if port == "" || aet == "" {
		if testenv.Required() {
			t.Fatal("RADGATE_TEST_ORTHANC_DICOM_PORT or _AET unset: source testenv/run/env.sh")
		}
		t.Skip("Orthanc's DICOM port unknown")
	}
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	registerFindscu(t, ps.pacs)

	const dest = "pacs-dimse"
	addr := fmt.Sprintf("127.0.0.1:%d", anyFreePort(t))
	r := lcRigWith(t, ps, map[string]map[string]any{dest: {
		"type": "dimse", "host": "127.0.0.1", "port": p, "called_ae": aet, "timeout": "20s",
	}}, func(c *config.Config) {
		c.Facilities = []config.Facility{{ID: "ward3", Name: "Ward 3", AETitles: []string{modalityAE}}}
		c.DIMSE.Listen = addr
		c.DIMSE.AccessionSystem = demo.AccessionSystem
		c.Orders.StableAfter = config.Duration(2 * time.Second)
	})
	routes, err := os.ReadFile(r.cfg.RoutesFile)
	require.NoError(t, err)
	only := strings.Replace(string(routes), "fhir, "+lcPACSDestination+", ", "fhir, ", 1)
	require.Contains(t, only, "destinations: [fhir, "+dest+"]")
	writeFile(t, r.cfg.RoutesFile, only)

	proc := r.start()
	o := makeOrders(t, 1)[0]
	out, ok := dcmtk(t, "storescu", modalityAE, addr, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu: %s", out)
	st := waitState(t, proc, o, 2*time.Minute, radgate.StateDelivered)
	d := st.Engines[config.DefaultEngine].Deliveries[dest]
	require.Equal(t, radgate.StateDelivered, d.State, "%+v", d)
	study := o.meta.StudyInstanceUID
	u := derived.UIDsFor(r.resultID(o), 1)
	require.Equal(t, "studies/"+study+"/series/"+u.SRSeries+"/instances/"+u.SR, d.Report)

	for _, obj := range []struct{ what, series, sop, iod string }{
		{"Secondary Capture", u.SCSeries, u.SC, "SCImage"},
		{"SR", u.SRSeries, u.SR, "Comprehensive3DSR"},
	} {
		found, out := findscu(t, port, aet, study, obj.series)
		require.Equal(t, []string{obj.sop}, found, "findscu finds the %s: %s", obj.what, out)
		b, err := r.pacs.RetrieveInstance(t.Context(), study, obj.series, obj.sop)
		require.NoError(t, err)
		iod, _ := testenv.Dciodvfy(t, obj.what+" stored by C-STORE, read back from Orthanc", b)
		require.Equal(t, obj.iod, iod)
		require.True(t, bytes.Contains(b, []byte(o.meta.AccessionNumber)), "the %s files into the pushed study (its accession number)", obj.what)
	}
	found, out := findscu(t, port, aet, study, u.PDFSeries)
	require.Empty(t, found, "no PDF: pdf_report is not set: %s", out)
	logs := proc.logs.String()
	require.Contains(t, logs, `msg="dimse: result stored"`)
	require.NotContains(t, logs, o.name, "no patient name in the logs")
	require.Zero(t, invalidTransitions(t, proc))
}
