package service

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/config"
)

// pacs.dimse becomes the Dialer the DIMSE PACS source calls with: AE
// titles, timeout, PDU length, and DICOM TLS only when tls is set.
func TestPACSDialer(t *testing.T) {
	p := config.PACSDIMSE{Host: "pacs", Port: 104, CalledAE: "MAINPACS", CallingAE: "RADGATE", Retrieve: config.RetrieveCMove,
		Timeout: config.Duration(7 * time.Second), MaxPDULength: 65536}
	d, err := pacsDialer(p)
	require.NoError(t, err)
	require.Equal(t, "RADGATE", d.CallingAE)
	require.Equal(t, "MAINPACS", d.CalledAE)
	require.Equal(t, 7*time.Second, d.Timeout)
	require.Equal(t, uint32(65536), d.MaxPDULength)
	require.Nil(t, d.TLS)

	p.TLS = &config.ClientTLS{}
	d, err = pacsDialer(p)
	require.NoError(t, err)
	require.NotNil(t, d.TLS)
	require.Equal(t, uint16(tls.VersionTLS12), d.TLS.MinVersion, "BCP 195")

	p.TLS = &config.ClientTLS{CAFile: "/nonexistent/ca.pem"}
	_, err = pacsDialer(p)
	require.ErrorContains(t, err, "pacs.dimse.tls.ca_file")
}
