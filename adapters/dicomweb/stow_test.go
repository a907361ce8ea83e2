package dicomweb

import (
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The happy path is stored in real Orthanc (orthanc_test.go); these cases
// check the request framing and the answers Orthanc does not give.

func TestStoreRequestFraming(t *testing.T) {
	files := [][]byte{fakePart10(10), fakePart10(5000), fakePart10(0)}
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/dicom-web/studies", r.URL.Path)
		require.Equal(t, "application/dicom+json", r.Header.Get("Accept"))
		require.Positive(t, r.ContentLength, "the length is sent, not chunked")
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "multipart/related", mt)
		require.Equal(t, "application/dicom", params["type"])
		mr := multipart.NewReader(r.Body, params["boundary"])
		var items string
		for i := 0; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				require.Equal(t, len(files), i)
				break
			}
			require.NoError(t, err)
			require.Equal(t, "application/dicom", p.Header.Get("Content-Type"))
			b, err := io.ReadAll(p)
			require.NoError(t, err)
			require.Equal(t, files[i], b)
			if items != "" {
				items += ","
			}
			items += `{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]}, "00081155": {"vr": "UI", "Value": ["1.2.3.` + string(rune('1'+i)) + `"]}}`
		}
		w.Header().Set("Content-Type", "application/dicom+json")
		_, _ = w.Write([]byte(`{"00081198": {"vr": "SQ"}, "00081199": {"vr": "SQ", "Value": [` + items + `]}}`))
	})
	res, err := c.Store(t.Context(), files...)
	require.NoError(t, err)
	require.Equal(t, []StoredInstance{
		{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.2.3.1"},
		{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.2.3.2"},
		{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.2.3.3"},
	}, res.Stored)
	require.Empty(t, res.Failed)
}

func TestStoreAnswers(t *testing.T) {
	stored := `{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.1"]}, "00081155": {"vr": "UI", "Value": ["1.2.3.1"]}, "00081196": {"vr": "US", "Value": [45056]}}`
	failed := `{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.1"]}, "00081155": {"vr": "UI", "Value": ["1.2.3.2"]}, "00081197": {"vr": "US", "Value": [272]}}`
	cases := []struct {
		name    string
		status  int
		body    string
		files   int
		wantErr bool
		stored  int
		failed  int
	}{
		{"202 with a warning only", http.StatusAccepted, `{"00081199": {"vr": "SQ", "Value": [` + stored + `]}}`, 1, false, 1, 0},
		{"202 with a failure", http.StatusAccepted, `{"00081199": {"vr": "SQ", "Value": [` + stored + `]}, "00081198": {"vr": "SQ", "Value": [` + failed + `]}}`, 2, true, 1, 1},
		{"409 all failed", http.StatusConflict, `{"00081198": {"vr": "SQ", "Value": [` + failed + `]}}`, 1, true, 0, 1},
		{"200 but one missing", http.StatusOK, `{"00081199": {"vr": "SQ", "Value": [` + stored + `]}}`, 2, true, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/dicom+json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			files := make([][]byte, tc.files)
			for i := range files {
				files[i] = fakePart10(i)
			}
			res, err := c.Store(t.Context(), files...)
			require.Len(t, res.Stored, tc.stored)
			require.Len(t, res.Failed, tc.failed)
			if tc.stored > 0 {
				require.Equal(t, 0xB000, res.Stored[0].WarningReason)
			}
			if tc.failed > 0 {
				require.Equal(t, FailedInstance{SOPClassUID: "1.2.840.10008.5.1.4.1.1.1", SOPInstanceUID: "1.2.3.2", FailureReason: 0x0110}, res.Failed[0])
			}
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrStoreIncomplete)
			requirePermanent(t, err)
			if tc.failed > 0 {
				require.Contains(t, err.Error(), "0x0110")
			}
		})
	}
}
