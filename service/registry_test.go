package service

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// Each destination type checks its own keys, at their positions in
// radgate.yaml; the config package knows none of them.
func TestDestinationTypesCheckTheirKeys(t *testing.T) {
	reg := radgate.DefaultRegistry()
	require.Equal(t, []string{"dicomweb", "dimse", "fhir", "hl7v2"}, reg.DestinationTypes(), "the adapters register at init")
	for _, tc := range []struct{ yaml, want string }{
		{"destinations:\n  b:\n    type: fhir\n    url: http://x/fhir\n    parametric_map: true\n",
			"radgate.yaml:5:21: destinations.b.parametric_map: parametric_map does not apply to a fhir destination (its keys: [type timeout auth tls pdf_report url])"},
		{"destinations:\n  ris:\n    type: hl7v2\n", "radgate.yaml:3:5: destinations.ris: address must be set for an hl7v2 destination"},
		{"destinations:\n  ris:\n    type: hl7v2\n    address: nowhere\n", `radgate.yaml:4:14: destinations.ris.address: "nowhere" is not host:port`},
		{"destinations:\n  p:\n    type: dicomweb\n    url: http://x/dicom-web\n    sc: false\n    sr: false\n",
			"radgate.yaml:3:5: destinations.p: stores nothing: set sc, sr, parametric_map or pdf_report"},
		{"destinations:\n  p:\n    type: dicomweb\n    url: ftp://x\n", `radgate.yaml:4:10: destinations.p.url: "ftp://x" is not a URL with scheme http or https and a host`},
		{"destinations:\n  p:\n    type: dicomweb\n    url: http://x/\n    sc_when_unmarked: never\n", `radgate.yaml:5:23: destinations.p.sc_when_unmarked:`},
		{"destinations:\n  p:\n    type: dimse\n    host: pacs\n    port: 104\n", "radgate.yaml:3:5: destinations.p: called_ae must be set for a dimse destination (the PACS's AE title)"},
		{"destinations:\n  p:\n    type: dimse\n    host: pacs\n    port: 99999\n    called_ae: PACS\n", "radgate.yaml:5:11: destinations.p.port: port must be set to the PACS's DICOM port, 1 to 65535 (got 99999)"},
		{"destinations:\n  p:\n    type: dimse\n    host: pacs\n    port: 104\n    called_ae: PACS\n    calling_ae: 'RAD\\GATE'\n", `radgate.yaml:7:17: destinations.p.calling_ae: AE title "RAD\\GATE" has a character outside`},
		{"destinations:\n  p:\n    type: dimse\n    host: pacs\n    port: 104\n    called_ae: PACS\n    url: http://x/\n", "radgate.yaml:7:10: destinations.p.url: url does not apply to a dimse destination (its keys: [type timeout auth tls pdf_report host port called_ae calling_ae sc sr sc_when_unmarked parametric_map])"},
		{"destinations:\n  p:\n    type: dimse\n    host: pacs\n    port: 104\n    called_ae: PACS\n    auth: {}\n", "radgate.yaml:7:11: destinations.p.auth: auth applies to HTTP destinations only; a dimse destination does not use it"},
		{"destinations:\n  p:\n    type: nomad\n", `radgate.yaml:3:11: destinations.p.type: unknown destination type "nomad" (known: [dicomweb dimse fhir hl7v2])`},
		{"destinations:\n  p:\n    url: http://x/\n", `radgate.yaml:3:5: destinations.p: type must be set (known: [dicomweb dimse fhir hl7v2])`},
	} {
		cfg, err := config.Load("radgate.yaml", []byte(tc.yaml))
		require.NoError(t, err, "config itself accepts %q", tc.yaml)
		errs := reg.CheckConfig(cfg)
		require.Len(t, errs, 1, "%q: %v", tc.yaml, errs)
		require.True(t, strings.HasPrefix(errs[0].Error(), tc.want), "got %q, want %q", errs[0].Error(), tc.want)
	}
}
