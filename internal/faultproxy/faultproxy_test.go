package faultproxy_test

import (
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/faultproxy"
	"github.com/radgate/radgate/internal/testenv"
)

// TestFaultsInFrontOfOrthanc: the proxy in front of the real Orthanc answers
// the injected status, cuts a WADO-RS body short (the DICOMweb client sees a
// transient truncation), then passes requests through untouched.
func TestFaultsInFrontOfOrthanc(t *testing.T) {
	pacs := testenv.Orthanc(t)
	src, err := os.ReadFile(testenv.Testdata("pneumoniamnist-val-dicom", "PMV0001.dcm"))
	require.NoError(t, err)
	file, m, err := demo.Clone(src, 2_000_000+int(time.Now().UnixNano()/1e6%1_000_000))
	require.NoError(t, err)
	direct, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	_, err = direct.Store(t.Context(), file)
	require.NoError(t, err)

	px, err := faultproxy.New(pacs.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = px.Close() })
	px.SetRules(
		&faultproxy.Rule{Name: "503", Contains: "/instances/" + m.SOPInstanceUID, Status: http.StatusServiceUnavailable, Times: 1},
		&faultproxy.Rule{Name: "cut", Method: http.MethodGet, Contains: "/instances/" + m.SOPInstanceUID, Truncate: true, Times: 1},
	)
	c, err := dicomweb.New(dicomweb.Options{BaseURL: px.URL() + "/dicom-web", Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)

	_, err = c.RetrieveInstance(t.Context(), m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID)
	var herr *dicomweb.HTTPError
	require.ErrorAs(t, err, &herr)
	require.Equal(t, http.StatusServiceUnavailable, herr.StatusCode)
	require.True(t, radgate.IsTransient(err))

	_, err = c.RetrieveInstance(t.Context(), m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID)
	require.Error(t, err)
	require.True(t, radgate.IsTransient(err), "a body cut short is worth retrying: %v", err)
	require.Contains(t, err.Error(), "cut short")
	require.False(t, errors.Is(err, dicomweb.ErrMalformedResponse))

	got, err := c.RetrieveInstance(t.Context(), m.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID)
	require.NoError(t, err)
	require.Equal(t, file, got, "passed through untouched")
	require.Equal(t, 1, px.Hits("503"))
	require.Equal(t, 1, px.Hits("cut"))
	require.Equal(t, 1, px.Passed())
}
