package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// parametric_map is a dicomweb destination option, off by default, and is
// enough on its own to give the destination something to store.
func TestLoadDestinationParametricMap(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte(`destinations:
  pacs-maps:
    type: dicomweb
    url: http://127.0.0.1:8042/dicom-web
    sc: false
    sr: false
    parametric_map: true
  pacs-results:
    type: dicomweb
    url: http://127.0.0.1:8042/dicom-web
`))
	require.NoError(t, err)
	require.True(t, cfg.Destinations["pacs-maps"].ParametricMap)
	require.False(t, cfg.Destinations["pacs-results"].ParametricMap, "off by default")

}
