package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestPACSDIMSEDefaults(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte(`
facilities: [{id: ward3, ae_titles: [CR_WARD3]}]
dimse:
  listen: 127.0.0.1:11112
  ae_title: RG1
pacs:
  timeout: 12s
  dimse:
    host: pacs.example.org
    port: 104
    called_ae: MAINPACS
`))
	require.NoError(t, err)
	d, ok := cfg.PACSDIMSE()
	require.True(t, ok)
	require.Equal(t, PACSDIMSE{Host: "pacs.example.org", Port: 104, CalledAE: "MAINPACS", CallingAE: "RG1",
		Retrieve: RetrieveCMove, Timeout: Duration(12 * time.Second), MaxPDULength: Default().DIMSE.MaxPDULength}, d)
	require.Equal(t, "pacs.example.org:104", d.Addr())

	_, ok = Default().PACSDIMSE()
	require.False(t, ok, "off by default: the PACS is reached over DICOMweb")
}

func TestPACSDIMSEC_GETNeedsNoSCP(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte("pacs:\n  dimse: {host: 127.0.0.1, port: 4242, called_ae: PACS, retrieve: c-get, calling_ae: RGQR}\n"))
	require.NoError(t, err)
	d, _ := cfg.PACSDIMSE()
	require.Equal(t, RetrieveCGet, d.Retrieve)
	require.Equal(t, "RGQR", d.CallingAE)
	require.Nil(t, d.TLS, "plain TCP unless tls is set")

	cfg, err = Load("radgate.yaml", []byte("pacs:\n  dimse: {host: pacs, port: 2762, called_ae: PACS, retrieve: c-get, tls: {}}\n"))
	require.NoError(t, err)
	d, _ = cfg.PACSDIMSE()
	require.Equal(t, &ClientTLS{}, d.TLS, "tls: {} is DICOM TLS with the system's roots")
}

func TestPACSDIMSEErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "c-move without radgate's SCP",
			yaml: "pacs:\n  dimse:\n    host: pacs\n    port: 104\n    called_ae: PACS\n",
			want: []string{`radgate.yaml:3:5: pacs.dimse.retrieve: c-move sends the study to radgate's own Storage SCP, and dimse.listen is not set (set it, or use retrieve: c-get)`},
		},
		{
			name: "every key wrong",
			yaml: "pacs:\n  dimse:\n    host: \"\"\n    port: 70000\n    called_ae: \"A\\\\B\"\n    calling_ae: MUCH_TOO_LONG_AE_TITLE\n    retrieve: c-fetch\n    timeout: -1s\n    max_pdu_length: 100\n",
			want: []string{
				`radgate.yaml:3:11: pacs.dimse.host: must be set (the PACS's DICOM host name or address)`,
				`radgate.yaml:4:11: pacs.dimse.port: must be 1-65535, got 70000`,
				`radgate.yaml:5:16: pacs.dimse.called_ae: AE title "A\\B" has a character outside the DICOM default repertoire or a backslash (the PACS's AE title)`,
				`radgate.yaml:6:17: pacs.dimse.calling_ae: "MUCH_TOO_LONG_AE_TITLE" is not an AE title (1 to 16 characters)`,
				`radgate.yaml:7:15: pacs.dimse.retrieve: "c-fetch" is not c-move or c-get`,
				`radgate.yaml:8:14: pacs.dimse.timeout: must be positive`,
				`radgate.yaml:9:21: pacs.dimse.max_pdu_length: must be between 4 KiB and 2 GiB, got 100`,
			},
		},
		{
			name: "half a client certificate",
			yaml: "pacs:\n  dimse:\n    host: pacs\n    port: 2762\n    called_ae: PACS\n    retrieve: c-get\n    tls:\n      cert_file: /etc/radgate/c.pem\n",
			want: []string{`radgate.yaml:8:7: pacs.dimse.tls: cert_file and key_file go together: set both or neither`},
		},
		{
			name: "unknown key",
			yaml: "pacs:\n  dimse:\n    hostname: pacs\n",
			want: []string{`radgate.yaml:3:5: unknown key "hostname" in pacs.dimse (known: host, port, called_ae, calling_ae, retrieve, timeout, max_pdu_length, tls)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("radgate.yaml", []byte(tc.yaml))
			require.Error(t, err)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestPACSDIMSEMarshalsAway: a configuration written back (yaml.Marshal, as
// tests and tools do) without pacs.dimse loads again.
func TestPACSDIMSEMarshalsAway(t *testing.T) {
	b, err := yaml.Marshal(Default())
	require.NoError(t, err)
	require.NotContains(t, string(b), "dimse: null")
	_, err = Load("radgate.yaml", b)
	require.NoError(t, err)
}
