package main

// End-to-end proofs of radgate's Storage SCP (issue 13) with dcmtk as the
// modality: echoscu and storescu call radgate serve (a child process), the
// study becomes an order, scored and delivered to the shared FHIR server
// and Orthanc.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
)

const modalityAE = "CR_WARD3"

// dimseRig is lcRig with radgate's Storage SCP on a free port, the ward's
// modality (modalityAE) a facility's, and pushed accession numbers in the
// demo hospital's system.
func dimseRig(t *testing.T, mutate func(*config.Config)) (*rig, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", anyFreePort(t))
	r := lcRig(t, sharedPeers(t), func(c *config.Config) {
		c.Facilities = []config.Facility{{ID: "ward3", Name: "Ward 3", AETitles: []string{modalityAE}}}
		c.DIMSE.Listen = addr
		c.DIMSE.AccessionSystem = demo.AccessionSystem
		c.Orders.StableAfter = config.Duration(4 * time.Second)
		if mutate != nil {
			mutate(c)
		}
	})
	return r, addr
}

// dcmtk runs one of dcmtk's tools against radgate's SCP at addr, calling as
// callingAE (files: what storescu sends), and returns its output and
// whether it exited 0.
func dcmtk(t *testing.T, tool, callingAE, addr string, files ...string) (string, bool) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	require.True(t, ok)
	all := append([]string{"-aet", callingAE, "-aec", "RADGATE", host, port}, files...)
	out, err := exec.Command(tool, all...).CombinedOutput()
	return string(out), err == nil
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(f, b, 0o600))
	return f
}

// TestDIMSEPushedStudyIsScoredOnce: a modality echoes radgate, then pushes
// a study in two associations a few seconds apart; it is one order, scored
// once with both images, its result in the FHIR server. A caller that is
// not in the facility list is rejected, and the SCP keeps serving.
func TestDIMSEPushedStudyIsScoredOnce(t *testing.T) {
	r, addr := dimseRig(t, nil)
	p := r.start()
	o := makeOrders(t, 1)[0]
	second, _ := anotherFrontal(t, o)

	out, ok := dcmtk(t, "echoscu", modalityAE, addr)
	require.True(t, ok, "echoscu: %s", out)
	out, ok = dcmtk(t, "echoscu", "STRANGER", addr)
	require.False(t, ok, "a caller not in the facility list is rejected")
	require.Contains(t, out, "Calling AE Title Not Recognized", "echoscu says why: %s", out)

	out, ok = dcmtk(t, "storescu", modalityAE, addr, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu: %s", out)
	st := waitState(t, p, o, 20*time.Second, radgate.StateStabilising)
	require.Contains(t, st.Sources, radgate.SourceDIMSE+":ImagingStudy", "the pushed study is the order")
	time.Sleep(2 * time.Second)
	out, ok = dcmtk(t, "storescu", modalityAE, addr, writeTemp(t, "2.dcm", second))
	require.True(t, ok, "storescu: %s", out)

	st = waitState(t, p, o, time.Minute, radgate.StateDelivered)
	require.Equal(t, 2, st.Study.Scored, "scored on both images")
	require.Equal(t, 1, st.Engines[config.DefaultEngine].Revision, "scored once")
	require.Equal(t, "ward3", st.FacilityID, "attributed to the calling AE title's facility")
	dr, _ := r.report(t, o)
	require.Equal(t, "final", dr["status"])
	time.Sleep(3 * time.Second) // a second scoring would show by now
	require.Equal(t, 1, p.status(t, o).Engines[config.DefaultEngine].Revision)
	require.Zero(t, invalidTransitions(t, p))
	logs := p.logs.String()
	require.Contains(t, logs, "calling AE title is not in the facility list")
	require.NotContains(t, logs, o.name, "no patient name in the logs")
}

// TestDIMSEPushedStudyWaitsForItsOrder: under a route that says pushed:
// with_order, a pushed study is held until the EHR's ServiceRequest for
// the same accession number comes; both make one order and one report.
func TestDIMSEPushedStudyWaitsForItsOrder(t *testing.T) {
	r, addr := dimseRig(t, func(c *config.Config) { c.Orders.StableAfter = config.Duration(time.Second) })
	routes, err := os.ReadFile(r.cfg.RoutesFile)
	require.NoError(t, err)
	writeFile(t, r.cfg.RoutesFile, strings.Replace(string(routes), "    engines:", "    pushed: with_order\n    engines:", 1))
	p := r.start()
	o := makeOrders(t, 1)[0]
	out, ok := dcmtk(t, "storescu", modalityAE, addr, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu: %s", out)
	waitFor(t, 20*time.Second, "the pushed study waits for its order", func() bool {
		st, err := p.env.OrderStatus(t.Context(), o.id)
		return err == nil && st.State == radgate.StateWaiting && strings.Contains(st.Reason, "pushed: with_order")
	})
	time.Sleep(2 * time.Second)
	require.Equal(t, radgate.StateWaiting, p.status(t, o).State, "not scored without its order")

	submit(t, p, o)
	st := waitState(t, p, o, time.Minute, radgate.StateDelivered)
	require.Len(t, st.Sources, 2, "the pushed study and the ServiceRequest are one order: %v", st.Sources)
	r.report(t, o)
	require.Zero(t, invalidTransitions(t, p))
}

// selfSignedPEM writes a self-signed certificate for 127.0.0.1 (its own CA)
// and its key as PEM files; usage is server or client.
func selfSignedPEM(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

// TestDIMSETLSWithDcmtk: the Storage SCP over DICOM TLS with client
// certificates required; dcmtk (BCP 195 non-downgrading profile) echoes and
// stores with its certificate, and is refused without one.
func TestDIMSETLSWithDcmtk(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey := selfSignedPEM(t, dir, "radgate", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := selfSignedPEM(t, dir, "modality", x509.ExtKeyUsageClientAuth)
	r, addr := dimseRig(t, func(c *config.Config) {
		c.DIMSE.TLS = config.ServerTLS{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: cliCert, ClientAuth: config.ClientCertRequire}
	})
	p := r.start()
	o := makeOrders(t, 1)[0]
	withCert := []string{"+tls", cliKey, cliCert, "+cf", srvCert}
	out, ok := dcmtkOpts(t, "echoscu", modalityAE, addr, withCert)
	require.True(t, ok, "echoscu over TLS: %s", out)
	out, ok = dcmtkOpts(t, "storescu", modalityAE, addr, withCert, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu over TLS: %s", out)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)

	out, ok = dcmtkOpts(t, "echoscu", modalityAE, addr, []string{"+tla", "+cf", srvCert})
	require.False(t, ok, "a caller without a client certificate is refused: %s", out)
	out, ok = dcmtk(t, "echoscu", modalityAE, addr)
	require.False(t, ok, "plain TCP is refused: %s", out)
}

// dcmtkOpts is dcmtk with options before the address.
func dcmtkOpts(t *testing.T, tool, callingAE, addr string, opts []string, files ...string) (string, bool) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	require.True(t, ok)
	all := append(append([]string{"-aet", callingAE, "-aec", "RADGATE"}, opts...), host, port)
	out, err := exec.Command(tool, append(all, files...)...).CombinedOutput()
	return string(out), err == nil
}

// TestFacilityAddedWithSIGHUP: a site added to radgate.yaml's facilities
// is in service after a SIGHUP, without a restart: its modality, rejected
// before, is admitted by the Storage SCP and its pushed study is the new
// facility's order. A list that does not check (an AE title given to two
// facilities) is refused with the reason in the log, and the list in
// service stays.
func TestFacilityAddedWithSIGHUP(t *testing.T) {
	const newAE = "CR_WARD7"
	r, addr := dimseRig(t, nil)
	p := r.start()
	out, ok := dcmtk(t, "echoscu", newAE, addr)
	require.False(t, ok, "a caller not in the facility list is rejected")
	require.Contains(t, out, "Calling AE Title Not Recognized", out)

	original, err := os.ReadFile(r.cfgPath)
	require.NoError(t, err)
	addFacility := func(ae string) {
		t.Helper()
		b := original
		var doc map[string]any
		require.NoError(t, yaml.Unmarshal(b, &doc))
		doc["facilities"] = append(doc["facilities"].([]any), map[string]any{"id": "ward7", "name": "Ward 7", "ae_titles": []string{ae}})
		b, err := yaml.Marshal(doc)
		require.NoError(t, err)
		writeFile(t, r.cfgPath, string(b))
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	}

	addFacility(modalityAE) // ward 3's AE title: the list does not check
	waitFor(t, 10*time.Second, "the refused reload is logged", func() bool {
		return strings.Contains(p.logs.String(), "facilities reload failed; the previous list stays in service")
	})
	require.Contains(t, p.logs.String(), `AE title \"`+modalityAE+`\" belongs to both facility`)
	out, ok = dcmtk(t, "echoscu", modalityAE, addr)
	require.True(t, ok, "ward 3 is still served: %s", out)

	addFacility(newAE)
	waitFor(t, 10*time.Second, "the reload is logged", func() bool {
		return strings.Contains(p.logs.String(), "facilities reloaded")
	})
	require.Contains(t, p.logs.String(), "added=ward7")
	out, ok = dcmtk(t, "echoscu", newAE, addr)
	require.True(t, ok, "the new site's modality is admitted: %s", out)
	o := makeOrders(t, 1)[0]
	out, ok = dcmtk(t, "storescu", newAE, addr, writeTemp(t, "1.dcm", o.data))
	require.True(t, ok, "storescu: %s", out)
	st := waitState(t, p, o, time.Minute, radgate.StateDelivered)
	require.Equal(t, "ward7", st.FacilityID, "attributed to the new facility")
	require.NotContains(t, p.logs.String(), o.name, "no patient name in the logs")
}
