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

// orthancDICOM is the shared Orthanc's DICOM port and AE title.
func orthancDICOM(t *testing.T) (port, aet string) {
	t.Helper()
	port, aet = os.Getenv("RADGATE_TEST_ORTHANC_DICOM_PORT"), os.Getenv("RADGATE_TEST_ORTHANC_AET")
	if port == "" || aet == "" {
		if testenv.Required() {
			t.Fatal("RADGATE_TEST_ORTHANC_DICOM_PORT or _AET unset: source testenv/run/env.sh")
		}
		t.Skip("Orthanc's DICOM port unknown")
	}
	return port, aet
}

// dimseDest is the name of the dimse destination of dimseSinkRig.
const dimseDest = "pacs-dimse"

// dimseSinkRig is lcRig whose chest route delivers to the FHIR server and
// to Orthanc over C-STORE (dimseDest) — no DICOMweb destination on the
// route — with findscu allowed to ask Orthanc.
func dimseSinkRig(t *testing.T, mutate func(*config.Config)) (r *rig, port, aet string) {
	t.Helper()
	ps := sharedPeers(t)
	port, aet = orthancDICOM(t)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	registerFindscu(t, ps.pacs)
	r = lcRigWith(t, ps, map[string]map[string]any{dimseDest: {
		"type": "dimse", "host": "127.0.0.1", "port": p, "called_ae": aet, "timeout": "20s",
	}}, mutate)
	routes, err := os.ReadFile(r.cfg.RoutesFile)
	require.NoError(t, err)
	only := strings.Replace(string(routes), "fhir, "+lcPACSDestination+", ", "fhir, ", 1)
	require.Contains(t, only, "destinations: [fhir, "+dimseDest+"]")
	writeFile(t, r.cfg.RoutesFile, only)
	return r, port, aet
}

// requireFound asks Orthanc with findscu for the object and reads it back
// (WADO-RS), checking it with dciodvfy; it returns the file.
func (r *rig) requireFound(t *testing.T, port, aet, study, what, series, sop, iod string) []byte {
	t.Helper()
	found, out := findscu(t, port, aet, study, series)
	require.Equal(t, []string{sop}, found, "findscu finds the %s: %s", what, out)
	b, err := r.pacs.RetrieveInstance(t.Context(), study, series, sop)
	require.NoError(t, err)
	got, _ := testenv.Dciodvfy(t, what+" stored by C-STORE, read back from Orthanc", b)
	require.Equal(t, iod, got)
	return b
}

// TestDIMSEResultsBackOverCStore: a modality pushes a study to radgate's
// Storage SCP; its result goes back to Orthanc as a Secondary Capture and
// an SR over C-STORE, through a destination of type dimse. findscu finds
// both in the study, each valid by dciodvfy; the delivery's receipt names
// the SR.
func TestDIMSEResultsBackOverCStore(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", anyFreePort(t))
	r, port, aet := dimseSinkRig(t, func(c *config.Config) {
		c.Facilities = []config.Facility{{ID: "ward3", Name: "Ward 3", AETitles: []string{modalityAE}}}
		c.DIMSE.Listen = addr
		c.DIMSE.AccessionSystem = demo.AccessionSystem
		c.Orders.StableAfter = config.Duration(2 * time.Second)
	})
	proc := r.start()
	o := makeOrders(t, 1)[0]
	out, ok := dcmtk(t, "storescu", modalityAE, addr, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu: %s", out)
	st := waitState(t, proc, o, 2*time.Minute, radgate.StateDelivered)
	d := st.Engines[config.DefaultEngine].Deliveries[dimseDest]
	require.Equal(t, radgate.StateDelivered, d.State, "%+v", d)
	study := o.meta.StudyInstanceUID
	u := derived.UIDsFor(r.resultID(o), 1)
	require.Equal(t, "studies/"+study+"/series/"+u.SRSeries+"/instances/"+u.SR, d.Report)

	for _, obj := range []struct{ what, series, sop, iod string }{
		{"Secondary Capture", u.SCSeries, u.SC, "SCImage"},
		{"SR", u.SRSeries, u.SR, "Comprehensive3DSR"},
	} {
		b := r.requireFound(t, port, aet, study, obj.what, obj.series, obj.sop, obj.iod)
		require.True(t, bytes.Contains(b, []byte(o.meta.AccessionNumber)), "the %s files into the pushed study (its accession number)", obj.what)
	}
	found, out := findscu(t, port, aet, study, u.PDFSeries)
	require.Empty(t, found, "no PDF: pdf_report is not set: %s", out)
	logs := proc.logs.String()
	require.Contains(t, logs, `msg="dimse: result stored"`)
	require.NotContains(t, logs, o.name, "no patient name in the logs")
	require.Zero(t, invalidTransitions(t, proc))
}

// TestDIMSERetractionOverCStore: an EHR order whose result went to the PACS
// over C-STORE is revoked; the dimse destination stores the IOCM rejection
// note of exactly the SC and SR it stored (remembered in JetStream, since
// DIMSE cannot ask the PACS), found with findscu; a second revoke stores
// nothing more.
func TestDIMSERetractionOverCStore(t *testing.T) {
	r, port, aet := dimseSinkRig(t, nil)
	p := r.start()
	o := makeOrders(t, 1)[0]
	r.store(t.Context(), o)
	submit(t, p, o)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)
	study := o.meta.StudyInstanceUID
	u := derived.UIDsFor(r.resultID(o), 1)
	r.requireFound(t, port, aet, study, "SR", u.SRSeries, u.SR, "Comprehensive3DSR")

	code, body := postCancel(t, p, o, "revoked")
	require.Equal(t, http.StatusAccepted, code, body)
	st := waitState(t, p, o, time.Minute, radgate.StateCancelled)
	d := st.Engines[config.DefaultEngine].Deliveries[dimseDest]
	require.True(t, d.Retracted, "retracted at %s: %s", dimseDest, mustJSON(d))
	kos := r.requireFound(t, port, aet, study, "rejection note", u.KOSSeries, u.KOS, "KeyObjectSelectionDocument")
	ev := dcmdump(t, kos)
	i := strings.Index(ev, "\n(0040,a375)")
	require.Positive(t, i, "the note has a Current Requested Procedure Evidence Sequence")
	ev = ev[i+1:]
	if j := strings.Index(ev, "\n("); j >= 0 {
		ev = ev[:j]
	}
	require.Equal(t, 2, strings.Count(ev, "(0008,1155)"), "the note references two objects: %s", ev)
	require.Contains(t, ev, u.SC)
	require.Contains(t, ev, u.SR)

	code, body = postCancel(t, p, o, "revoked")
	require.Less(t, code, 300, "a second revoke is accepted or ignored: %s", body)
	time.Sleep(3 * time.Second)
	found, out := findscu(t, port, aet, study, u.KOSSeries)
	require.Equal(t, []string{u.KOS}, found, "one rejection note: %s", out)
	require.Zero(t, invalidTransitions(t, p))
}
