package dicomweb

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewValidatesWithoutIO(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want []string // every fragment must appear in the error
	}{
		{"empty base URL", Options{}, []string{"base URL is empty"}},
		{"relative base URL", Options{BaseURL: "/dicom-web"}, []string{`scheme "" is not http or https`, "names no host"}},
		{"ftp", Options{BaseURL: "ftp://pacs/dicom-web"}, []string{`scheme "ftp"`}},
		{"credentials in the URL", Options{BaseURL: "http://u:topsecret@pacs/dicom-web"}, []string{"user information"}},
		{"query", Options{BaseURL: "http://pacs/dicom-web?x=1"}, []string{"query or fragment"}},
		{"token and password", Options{BaseURL: "http://pacs", BearerToken: "t", Username: "u", Password: "p"}, []string{"not both"}},
		{"password without user", Options{BaseURL: "http://pacs", Password: "p"}, []string{"username is empty"}},
		{"negative limits", Options{BaseURL: "http://pacs", Timeout: -time.Second, MaxInstanceBytes: -1, MaxInstancesPerStudy: -1},
			[]string{"timeout -1s is negative", "max instance bytes -1", "max instances per study -1"}},
		{"all at once", Options{BaseURL: "ftp://", Password: "p", Timeout: -1}, []string{"scheme", "username is empty", "timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			require.Error(t, err)
			require.Nil(t, c)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "topsecret")
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Options{BaseURL: " https://pacs.example:8443/dicom-web/ ", Username: "u", Password: "p"})
	require.NoError(t, err)
	require.Equal(t, "https://pacs.example:8443/dicom-web", c.base.String())
	require.Equal(t, DefaultTimeout, c.timeout)
	require.Equal(t, DefaultMaxInstanceBytes, c.maxInstance)
	require.Equal(t, DefaultMaxInstancesPerStudy, c.maxInstances)
	require.True(t, strings.HasPrefix(c.auth, "Basic "))
	require.NotNil(t, c.hc)
	require.Equal(t, "https://pacs.example:8443/dicom-web/studies/1.2/series", c.endpoint(nil, "studies", "1.2", "series").String())
}
