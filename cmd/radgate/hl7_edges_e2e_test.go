package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
)

// TestHL7PatientNameFromTheOrderSource: radgate sends results to a RIS as
// ORU^R01 (the real python3-hl7 receiver) for three orders:
//
//   - a FHIR ServiceRequest whose subject is only a reference to a Patient
//     on the real FHIR server: PID-3 and PID-5 come from that Patient,
//     read when the ORU is sent;
//   - an ORM^O01 sent by python3-hl7's mllp_send: PID-5 comes from the ORM
//     as received;
//   - a ServiceRequest whose Patient has no identifier: the delivery fails
//     for good, with a reason saying so.
//
// Neither name is in any log line, nor in any stream, KV bucket or object
// store of radgate's NATS (the order store, the ORDERS and RESULTS streams,
// the ORU outbox), but for the ORM's MSH and PID kept as received.
func TestHL7PatientNameFromTheOrderSource(t *testing.T) {
	needMLLPSend(t)
	ris, received := oruReceiver(t)
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	writeFile(t, routesFile, `routes:
  - name: chest
    when: {modality: [CR, DX], body_part: [CHEST]}
    engines: [cxr-pneumonia-densenet121]
    destinations: [ris]
`)
	port := freePort(t)
	rg := startRadgate(t, func(c *config.Config) {
		c.RoutesFile = routesFile
		c.Destinations = map[string]config.Destination{
			"ris": {Type: config.DestinationHL7v2, Address: ris, ReceivingApplication: "RIS"},
		}
		c.HL7v2.Listen = "127.0.0.1:" + port
		c.HL7v2.AccessionSystem = demo.AccessionSystem
	})
	ctx := t.Context()
	const (
		fhirFamily, fhirGiven = "Qzxfhirfamily", "Wvfhirgiven"
		hl7Family, hl7Given   = "Kjhl7family", "Pqhl7given"
	)
	seed := int(time.Now().UnixNano()/1e6%9000)*10 + 3
	cases := loadRouted(t, rg, seed, "cr-chest-mono1-10bit-explicit-le.dcm", "dx-chest-implicit-le-8bit.dcm", "cr-chest-mono1-10bit-explicit-le.dcm")
	viaFHIR, viaHL7, noID := cases[0], cases[1], cases[2]

	// 1. A Patient on the FHIR server, and a ServiceRequest naming it only
	// by reference.
	mrn := "MRN-PN-" + viaFHIR.Meta.AccessionNumber
	patient := map[string]any{"resourceType": "Patient",
		"identifier": []any{
			map[string]any{"system": "http://hospital.example.org/other", "value": "OTHER-1"},
			map[string]any{"system": "http://hospital.example.org/mrn", "value": mrn,
				"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}}}}},
		"name": []any{map[string]any{"use": "official", "family": fhirFamily, "given": []any{fhirGiven}}}}
	pref := createOnFHIR(t, rg, patient)
	postServiceRequest(t, rg, viaFHIR, map[string]any{"reference": pref})

	// 2. An ORM with the patient's name in PID-5.
	ack := sendMLLP(t, port,
		`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01^ORM_O01|PNAME0001|P|2.5.1`,
		`PID|1||MRN-PN-HL7^^^HOSP^MR||`+hl7Family+`^`+hl7Given+`||20210315|F`,
		`ORC|NW`,
		`OBR|1|||36643-5^XR Chest 2 Views^LN||||||||||||||`+viaHL7.Meta.AccessionNumber+`||||||DX`)
	require.Equal(t, hl7v2.AA, ack.Code, "%+v", ack)
	viaHL7.OrderID = radgate.OrderID(mustKey(t, radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: viaHL7.Meta.AccessionNumber}}))

	// 3. A Patient without an identifier.
	bare := createOnFHIR(t, rg, map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Nobody"}}})
	postServiceRequest(t, rg, noID, map[string]any{"reference": bare})

	require.NoError(t, rg.env.Wait(ctx, cases, 3*time.Minute))
	require.Equal(t, radgate.StateDelivered, viaFHIR.Status.State, viaFHIR.Status.Reason)
	require.Equal(t, radgate.StateDelivered, viaHL7.Status.State, viaHL7.Status.Reason)
	require.Equal(t, radgate.StateFailed, noID.Status.State)
	reason := noID.Status.Engines[config.DefaultEngine].Deliveries["ris"].Reason
	require.Contains(t, reason, "no patient identifier for PID-3: the order names its patient only as "+bare+", and "+bare+" on the FHIR server has no identifier")

	orus := map[string]*hl7v2.Message{}
	for range 2 {
		select {
		case raw := <-received:
			m, err := hl7v2.Parse(raw)
			require.NoError(t, err)
			orus[m.Get("OBR-18")] = m
		case <-time.After(time.Minute):
			t.Fatal("the RIS received no ORU")
		}
	}
	m := orus[viaFHIR.Meta.AccessionNumber]
	require.NotNil(t, m, "ORU of the FHIR order")
	require.Equal(t, mrn, m.Get("PID-3-1"), "PID-3: the Patient's MR identifier")
	require.Equal(t, fhirFamily+"^"+fhirGiven+"^^^^^L", m.GetRaw("PID-5"), "PID-5: the Patient's official name")
	m = orus[viaHL7.Meta.AccessionNumber]
	require.NotNil(t, m, "ORU of the HL7 order")
	require.Equal(t, "MRN-PN-HL7", m.Get("PID-3-1"))
	require.Equal(t, hl7Family+"^"+hl7Given, m.GetRaw("PID-5"), "PID-5: from the ORM as received")

	logs := rg.logs.String()
	for _, name := range []string{fhirFamily, fhirGiven, hl7Family, hl7Given} {
		require.NotContains(t, logs, name, "a patient name in the log")
	}
	// Every message of every stream, KV bucket and object store.
	contents := natsContents(t, logs, rg.cfg.DataDir)
	kept := 0
	for where, data := range contents {
		if strings.HasPrefix(where, hl7v2.StreamReceived+"/") && strings.Contains(data, hl7Family) {
			kept++
			require.NotContains(t, data, "20210315", "only PID-1, -3 and -5 are kept, not the birth date")
		}
	}
	require.Equal(t, 1, kept, "the ORM's PID is kept once, for its order")
	for where, data := range contents {
		for _, name := range []string{fhirFamily, fhirGiven} {
			require.NotContains(t, data, name, "the FHIR patient's name is stored in %s", where)
		}
		if !strings.HasPrefix(where, hl7v2.StreamReceived+"/") {
			for _, name := range []string{hl7Family, hl7Given} {
				require.NotContains(t, data, name, "the HL7 patient's name is stored in %s", where)
			}
		}
	}
}

// natsContents reads every message of every stream (KV buckets and object
// stores are streams too) of the running radgate's embedded NATS, by
// "stream/sequence", with the credential serve keeps in dataDir.
func natsContents(t *testing.T, logs, dataDir string) map[string]string {
	t.Helper()
	u := regexp.MustCompile(`msg="embedded NATS listening".* url=(nats://\S+)`).FindStringSubmatch(logs)
	require.NotNil(t, u, "the embedded NATS URL is logged")
	cred, err := broker.LoadCredential(broker.CredentialPath(dataDir))
	require.NoError(t, err)
	nc, err := nats.Connect(u[1], cred.Option())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := t.Context()
	out := map[string]string{}
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	require.NoError(t, names.Err())
	require.Contains(t, streams, "KV_radgate_orders", "the order store was read")
	for _, n := range streams {
		st, err := js.Stream(ctx, n)
		require.NoError(t, err)
		info, err := st.Info(ctx)
		require.NoError(t, err)
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			msg, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			var hdr strings.Builder
			for k, vs := range msg.Header {
				hdr.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
			out[fmt.Sprintf("%s/%d", n, seq)] = msg.Subject + "\n" + hdr.String() + string(msg.Data)
		}
	}
	return out
}

func createOnFHIR(t *testing.T, rg *running, resource map[string]any) string {
	t.Helper()
	b, err := json.Marshal(resource)
	require.NoError(t, err)
	ref, err := rg.env.FHIR.Create(t.Context(), b, "")
	require.NoError(t, err)
	return ref
}

// postServiceRequest posts the case's ServiceRequest with subject to
// radgate's FHIR intake.
func postServiceRequest(t *testing.T, rg *running, c *demo.Case, subject map[string]any) {
	t.Helper()
	body, err := json.Marshal(demo.ServiceRequest(c.Meta, subject))
	require.NoError(t, err)
	resp, err := http.Post(rg.url+"/fhir/ServiceRequest", "application/fhir+json", bytes.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	c.OrderID = radgate.OrderID(mustKey(t, radgate.OrderEvent{Accession: &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber}}))
}

// TestServeRefusesAnExposedMLLPListener: with hl7v2.listen beyond loopback
// and HTTP authentication on, radgate serve refuses to start unless the
// MLLP listener requires client certificates, names allow_networks, or
// says allow_any_source (and then warns).
func TestServeRefusesAnExposedMLLPListener(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "ris s3cret-token\n")
	base := func() config.Config {
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.HTTP.Auth.Mode, cfg.HTTP.Auth.TokensFile = config.AuthStatic, tokens
		cfg.HL7v2.Listen = "0.0.0.0:" + freePort(t)
		cfg.DataDir = t.TempDir()
		return cfg
	}
	var logs testenv.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	err := serve(ctx, base(), "", logger, nil)
	require.ErrorContains(t, err, `hl7v2.listen "0.0.0.0:`)
	require.ErrorContains(t, err, "is not a loopback address and MLLP has no authentication: set hl7v2.tls with client_auth require, or hl7v2.allow_networks")
	require.NotContains(t, logs.String(), "HL7 v2 intake listening", "nothing listened")

	// The same through the configuration file: file:line:col.
	_, err = config.Load("radgate.yaml", []byte("hl7v2:\n  listen: 0.0.0.0:2575\n"))
	require.ErrorContains(t, err, "radgate.yaml:2:11: hl7v2.listen: is not a loopback address and MLLP has no authentication")
	_, err = config.Load("radgate.yaml", []byte("hl7v2:\n  listen: 0.0.0.0:2575\n  allow_networks: [10.20.0.0/16, 192.168.1.7]\n"))
	require.NoError(t, err)
	_, err = config.Load("radgate.yaml", []byte("hl7v2:\n  listen: 0.0.0.0:2575\n  allow_networks: [10.20.0.0/16, 10.300.0.0/16]\n"))
	require.ErrorContains(t, err, `radgate.yaml:3:34: hl7v2.allow_networks: "10.300.0.0/16" is not a network in CIDR notation`)
}
