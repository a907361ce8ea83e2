package dimse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// orthancREST calls the DIMSE-only Orthanc's REST API and fails the test
// unless it answers 2xx.
func orthancREST(t testing.TB, p testenv.DIMSEOnlyPACS, method, path string, body []byte) []byte {
	t.Helper()
	rq, err := http.NewRequestWithContext(context.Background(), method, p.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	rq.SetBasicAuth(p.Username, p.Password)
	rsp, err := http.DefaultClient.Do(rq)
	require.NoError(t, err)
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	require.Less(t, rsp.StatusCode, 300, "%s %s: %s", method, path, b)
	return b
}

// putInDIMSEPACS stores Part 10 files in the DIMSE-only Orthanc (REST POST
// /instances).
func putInDIMSEPACS(t testing.TB, p testenv.DIMSEOnlyPACS, files ...[]byte) {
	t.Helper()
	for _, f := range files {
		orthancREST(t, p, "POST", "/instances", f)
	}
}

// registerAE makes aet at 127.0.0.1:addr's port a known modality of the
// DIMSE-only Orthanc (a caller it answers and a C-MOVE destination), for
// this test.
func registerAE(t testing.TB, p testenv.DIMSEOnlyPACS, name, aet, addr string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	b, _ := json.Marshal(map[string]any{"AET": aet, "Host": "127.0.0.1", "Port": port})
	orthancREST(t, p, "PUT", "/modalities/"+name, b)
	t.Cleanup(func() { orthancREST(t, p, "DELETE", "/modalities/"+name, nil) })
}

// qrFixture: two testdata radiographs in the DIMSE-only Orthanc, and a
// Storage SCP of ours (memStore) registered there as aet.
type qrFixture struct {
	pacs    testenv.DIMSEOnlyPACS
	files   []part10
	study   string
	acsn    string
	scp     *memStore
	scpLogs *lockedBuffer
	aet     string
}

func newQRFixture(t *testing.T, aet string) *qrFixture {
	t.Helper()
	fx := &qrFixture{pacs: testenv.DIMSEPACS(t), scp: &memStore{}, aet: aet}
	// One study: the samples carry their own study UIDs; take one file.
	files, rec := uniqueStudy(t, "cr-chest-mono1-10bit-explicit-le.dcm", 1)
	fx.study, fx.acsn = rec.StudyInstanceUID, rec.AccessionNumber
	fx.files = []part10{part10FromBytes(t, files[0])}
	putInDIMSEPACS(t, fx.pacs, files[0])
	var addr string
	addr, fx.scpLogs = startServer(t, &Server{AETitle: aet, Store: fx.scp})
	registerAE(t, fx.pacs, "qr-"+aet, aet, addr)
	return fx
}

func (fx *qrFixture) dial(t *testing.T, storeClasses ...string) *Association {
	t.Helper()
	d := &Dialer{CallingAE: fx.aet, CalledAE: fx.pacs.AETitle, Timeout: 20 * time.Second, RoleSelections: GetRoles(storeClasses)}
	as, err := d.Dial(t.Context(), fx.pacs.Addr, QueryRetrieveContexts(storeClasses))
	require.NoError(t, err)
	t.Cleanup(func() { _ = as.Abort() })
	return as
}

// TestFindMoveGetAgainstOrthanc: C-FIND at the three levels by Study
// Instance UID and by Accession Number, C-MOVE of the study to our own SCP
// (which sees radgate's AE as the move originator), C-GET of it on the
// same association, each against the DIMSE-only Orthanc; then the
// failures a PACS answers, named by their status.
func TestFindMoveGetAgainstOrthanc(t *testing.T) {
	fx := newQRFixture(t, "RADGATE_QR")
	f := fx.files[0]
	as := fx.dial(t, f.sopClass)
	ctx := t.Context()

	studies, err := as.Find(ctx, StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagAccessionNumber: fx.acsn, TagStudyInstanceUID: ""}))
	require.NoError(t, err)
	require.Len(t, studies, 1, "one study by accession number %q", fx.acsn)
	assert.Equal(t, fx.study, studies[0].String(TagStudyInstanceUID))
	assert.Equal(t, fx.acsn, studies[0].String(TagAccessionNumber), "values come back without their padding")

	series, err := as.Find(ctx, StudyRootFind, NewIdentifier(LevelSeries, map[Tag]string{TagStudyInstanceUID: fx.study,
		TagSeriesInstanceUID: "", TagModality: "", TagBodyPartExamined: ""}))
	require.NoError(t, err)
	require.Len(t, series, 1)
	assert.Equal(t, "CR", series[0].String(TagModality))
	assert.Equal(t, "CHEST", series[0].String(TagBodyPartExamined))

	images, err := as.Find(ctx, StudyRootFind, NewIdentifier(LevelImage, map[Tag]string{TagStudyInstanceUID: fx.study,
		TagSeriesInstanceUID: series[0].String(TagSeriesInstanceUID), TagSOPInstanceUID: "", TagSOPClassUID: "", TagViewPosition: ""}))
	require.NoError(t, err)
	require.Len(t, images, 1)
	assert.Equal(t, f.sopInstance, images[0].String(TagSOPInstanceUID))
	assert.Equal(t, f.sopClass, images[0].String(TagSOPClassUID))
	assert.NotEmpty(t, images[0].String(TagViewPosition))

	none, err := as.Find(ctx, StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: "1.2.3.4.5.6.7.8.9.404"}))
	require.NoError(t, err)
	assert.Empty(t, none, "no match is success with no pending response")

	res, err := as.Move(ctx, fx.aet, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: fx.study}))
	require.NoError(t, err)
	assert.Equal(t, MoveResult{Completed: 1, Status: StatusSuccess}, res)
	got, ok := fx.scp.get(f.sopInstance)
	require.True(t, ok, "the instance arrived at our SCP")
	assert.Equal(t, fx.aet, got.rq.MoveOriginatorAE, "the PACS names the move's originator")
	assert.Equal(t, fx.pacs.AETitle, got.rq.Association.CallingAE)

	var viaGet memStore
	res, err = as.Get(ctx, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: fx.study}), &viaGet)
	require.NoError(t, err)
	assert.Equal(t, MoveResult{Completed: 1, Status: StatusSuccess}, res)
	s, ok := viaGet.get(f.sopInstance)
	require.True(t, ok, "the C-GET sub-operation reached the handler")
	assert.Equal(t, fx.pacs.AETitle, s.rq.Association.CallingAE)
	assert.Contains(t, []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}, s.rq.TransferSyntaxUID)
	assert.NotEmpty(t, s.data)

	_, err = as.Move(ctx, "NOBODY", NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: fx.study}))
	var se *StatusError
	require.ErrorAs(t, err, &se, "an unknown destination is a failure status")
	assert.True(t, se.Status.IsFailure(), "%v", err)
	assert.Contains(t, err.Error(), fmt.Sprintf("0x%04X", uint16(se.Status)), "the error names the status")

	// The association is still usable after a failure status.
	_, err = as.Find(ctx, StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: fx.study}))
	require.NoError(t, err)
	require.NoError(t, as.Release(ctx))
}

// TestDIMSEPACSChecksCalledAE: the DIMSE-only Orthanc rejects a wrong
// called AE title and aborts a caller it does not know.
func TestDIMSEPACSChecksCalledAE(t *testing.T) {
	p := testenv.DIMSEPACS(t)
	d := &Dialer{CallingAE: "RADGATE_QR", CalledAE: "WRONG", Timeout: 10 * time.Second}
	_, err := d.Dial(t.Context(), p.Addr, QueryRetrieveContexts(nil))
	var rj *RejectError
	require.ErrorAs(t, err, &rj, "a wrong called AE title is rejected")

	d = &Dialer{CallingAE: "UNKNOWN_QR", CalledAE: p.AETitle, Timeout: 10 * time.Second}
	as, err := d.Dial(t.Context(), p.Addr, QueryRetrieveContexts(nil))
	if err == nil {
		defer as.Abort()
		_, err = as.Find(t.Context(), StudyRootFind, NewIdentifier(LevelStudy, map[Tag]string{TagStudyInstanceUID: ""}))
	}
	require.Error(t, err, "an unregistered caller may not query")
	t.Log(err)
}
