package dimse

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
)

// A dimse destination with a tls key reaches a DICOM TLS PACS (its probe, a
// C-ECHO, and its associations use the DestinationContext's TLS); without
// it, the same PACS is not reached.
func TestDestinationOverDICOMTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	addr, _ := startServer(t, &Server{AETitle: "TLS_PACS", ARTIM: time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	typ := DestinationType()
	if !typ.TLS {
		t.Fatal("the dimse type does not take the tls key")
	}
	dc := radgate.DestinationContext{Name: "pacs", Config: config.Destination{Type: "dimse", Host: host, Port: p, CalledAE: "TLS_PACS",
		Timeout: config.Duration(2 * time.Second)}}
	if err := typ.Probe(t.Context(), dc); err == nil {
		t.Error("C-ECHO without TLS reached a TLS-only PACS")
	}
	dc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if err := typ.Probe(t.Context(), dc); err != nil {
		t.Errorf("C-ECHO over DICOM TLS: %v", err)
	}
}
