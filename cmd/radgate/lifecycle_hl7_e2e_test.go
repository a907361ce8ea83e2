package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/derived"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/faultproxy"
)

// TestLifecycleHL7CancelRetracts: an order delivered to the FHIR server, the
// PACS and the RIS (the real python3-hl7 receiver) is cancelled by an
// ORM^O01 with ORC-1 CA from the real python3-hl7 sender: ACK AA, the RIS
// receives the retraction (OBR-25 X, OBX-11 W on every OBX), the order ends
// cancelled. A CA for an order radgate never had is answered AE naming it.
func TestLifecycleHL7CancelRetracts(t *testing.T) {
	needMLLPSend(t)
	ris, got := oruReceiver(t)
	port := freePort(t)
	r := lcRigWith(t, sharedPeers(t), map[string]map[string]any{
		"ris": {"type": config.DestinationHL7v2, "address": ris, "receiving_application": "RIS"},
	}, func(c *config.Config) {
		c.HL7v2.Listen = "127.0.0.1:" + port
		c.HL7v2.AccessionSystem = demo.AccessionSystem // the FHIR side's: one order per study
	})
	p := r.start()
	orders := makeOrders(t, 2)
	o, unknown := orders[0], orders[1]
	r.store(t.Context(), o)
	submit(t, p, o)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)
	first, err := hl7v2.Parse(received(t, got))
	require.NoError(t, err)
	require.Equal(t, o.meta.AccessionNumber, first.Get("OBR-18"))
	require.Equal(t, "F", first.Get("OBR-25"), "the first result is final")

	cancel := func(acc, control string) hl7v2.Ack {
		return sendMLLP(t, port,
			`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01^ORM_O01|`+control+`|P|2.5.1`,
			`PID|1||MRNQ-1^^^HOSP^MR||Qzwfa^Hl7patient||20210315|F`,
			`ORC|CA`,
			`OBR|1|||36643-5^XR Chest 2 Views^LN||||||||||||||`+acc+`||||||CR`)
	}
	// A CA for an order radgate never had.
	ack := cancel(unknown.meta.AccessionNumber, "LCCA0003")
	require.Equal(t, hl7v2.AE, ack.Code, "%+v", ack)
	require.Len(t, ack.Errors, 1)
	require.Equal(t, hl7v2.CodeUnknownKeyIdentifier, ack.Errors[0].Code)
	require.Contains(t, ack.Errors[0].Message, "no such order: accession "+unknown.meta.AccessionNumber)
	_, err = p.env.OrderStatus(t.Context(), unknown.id)
	require.Error(t, err, "no order was made of it")
	ack = cancel(o.meta.AccessionNumber, "LCCA0001")
	require.Equal(t, hl7v2.AA, ack.Code, "%+v", ack)
	var st radgate.OrderStatus
	waitFor(t, 30*time.Second, "order cancelled, or its retraction at the RIS failed", func() bool {
		st = p.status(t, o)
		return st.State == radgate.StateCancelled || st.Engines[config.DefaultEngine].Deliveries["ris"].State == radgate.StateFailed
	})
	// Found on the code as written: the pipeline's retraction Result
	// carries no Outcome (nor Tier, Probability), the HL7 sink refuses it
	// ("building the ORU^R01: invalid result for ORU^R01: Result.Outcome:
	// \"\" is not scored, not-applicable or failed"), the RIS delivery
	// fails for good and the order stays retracting.
	risProg := st.Engines[config.DefaultEngine].Deliveries["ris"]
	require.NotEqual(t, radgate.StateFailed, risProg.State, "the retraction at the RIS failed: %s", risProg.Reason)
	require.Equal(t, radgate.StateCancelled, st.State)
	require.Contains(t, st.Cancelled.Reason, "CA")

	oru, err := hl7v2.Parse(received(t, got))
	require.NoError(t, err)
	require.Equal(t, "ORU", oru.Get("MSH-9-1"))
	require.Equal(t, o.meta.AccessionNumber, oru.Get("OBR-18"))
	require.Equal(t, "X", oru.Get("OBR-25"), "the RIS is told the result is withdrawn")
	obx := 0
	for i := 1; oru.Get("OBX("+itoa(i)+")-1") != ""; i++ {
		require.Equal(t, "W", oru.Get("OBX("+itoa(i)+")-11"), "OBX %d: wrong, replace", i)
		obx++
	}
	require.Positive(t, obx, "the retraction carries the OBX it withdraws")
	dr, _ := r.report(t, o)
	require.Equal(t, "entered-in-error", dr["status"])
	r.requireRejectionNote(t, o, 1)

	// The same CA again: AA, nothing more sent to the RIS.
	ack = cancel(o.meta.AccessionNumber, "LCCA0002")
	require.Equal(t, hl7v2.AA, ack.Code, "%+v", ack)
	select {
	case raw := <-got:
		m, _ := hl7v2.Parse(raw)
		t.Fatalf("a second retraction reached the RIS: MSH-10 %s OBR-25 %s", m.Get("MSH-10"), m.Get("OBR-25"))
	case <-time.After(3 * time.Second):
	}

	require.Zero(t, invalidTransitions(t, p))
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLifecycleHL7Amendment: a frontal image added to the study after the
// result reaches the RIS as a correction (OBR-25 C, OBX-11 C on every OBX,
// MSH-10 with the revision), and the order's history shows revision 1
// superseded.
func TestLifecycleHL7Amendment(t *testing.T) {
	ris, got := oruReceiver(t)
	r := lcRigWith(t, sharedPeers(t), map[string]map[string]any{
		"ris": {"type": config.DestinationHL7v2, "address": ris, "receiving_application": "RIS"},
	}, func(c *config.Config) {
		c.Orders.StableAfter = config.Duration(2 * time.Second)
	})
	p := r.start()
	o := makeOrders(t, 1)[0]
	r.store(t.Context(), o)
	submit(t, p, o)
	waitState(t, p, o, time.Minute, radgate.StateDelivered)
	first, err := hl7v2.Parse(received(t, got))
	require.NoError(t, err)
	require.Equal(t, "F", first.Get("OBR-25"))

	more, _ := anotherFrontal(t, o)
	r.storeBytes(t, "a frontal added after the result", more)
	var corr *hl7v2.Message
	waitFor(t, time.Minute, "a correction reaches the RIS", func() bool {
		select {
		case raw := <-got:
			m, err := hl7v2.Parse(raw)
			require.NoError(t, err)
			corr = m
			return true
		default:
			return false
		}
	})
	require.Equal(t, "C", corr.Get("OBR-25"), "a correction of the result")
	require.Equal(t, o.meta.AccessionNumber, corr.Get("OBR-18"))
	require.True(t, strings.HasSuffix(corr.Get("MSH-10"), "-r2"), "MSH-10 %q names revision 2", corr.Get("MSH-10"))
	require.NotEqual(t, first.Get("MSH-10"), corr.Get("MSH-10"))
	obx := 0
	for i := 1; corr.Get("OBX("+itoa(i)+")-1") != ""; i++ {
		require.Equal(t, "C", corr.Get("OBX("+itoa(i)+")-11"), "OBX %d: corrected", i)
		obx++
	}
	require.Positive(t, obx)
	waitFor(t, 30*time.Second, "the order delivered in revision 2", func() bool {
		st := p.status(t, o)
		return st.State == radgate.StateDelivered && st.Engines[config.DefaultEngine].Revision == 2
	})

	// The history, as GET /orders/{id}/history serves it.
	resp, err := http.Get(p.url + "/orders/" + o.id + "/history")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var hist []radgate.HistoryEntry
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&hist))
	var orderPath []radgate.OrderState
	superseded := false
	for _, h := range hist {
		if h.Engine == "" {
			orderPath = append(orderPath, h.To)
		}
		superseded = superseded || h.Event == radgate.EvSuperseded && h.Revision == 1 && h.Engine == config.DefaultEngine
	}
	require.True(t, superseded, "revision 1 superseded: %v", hist)
	require.Equal(t, radgate.StateReceived, orderPath[0])
	require.Contains(t, orderPath, radgate.StateStabilising, "back to stabilising when the image came")
	require.Equal(t, radgate.StateDelivered, orderPath[len(orderPath)-1])
	require.Zero(t, invalidTransitions(t, p))
}

// TestLifecycleCancelWhileScoring: two orders whose images the PACS does not
// hand over yet (503 on their WADO-RS retrieval, through a fault proxy) are
// routed and their jobs are in the inference stage when one is cancelled
// from the EHR (ServiceRequest revoked) and the other from the RIS (ORC-1
// CA). When the jobs come back they stop: nothing is scored, nothing
// reaches the FHIR server or the PACS, both orders end cancelled.
func TestLifecycleCancelWhileScoring(t *testing.T) {
	needMLLPSend(t)
	ps := sharedPeers(t)
	px, err := faultproxy.New(ps.pacs.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = px.Close() })
	ps.radgatePACS = px.URL() + "/dicom-web"
	port := freePort(t)
	r := lcRig(t, ps, func(c *config.Config) {
		c.HL7v2.Listen = "127.0.0.1:" + port
		c.HL7v2.AccessionSystem = demo.AccessionSystem
	})
	orders := makeOrders(t, 2)
	viaFHIR, viaHL7 := orders[0], orders[1]
	px.SetRules(
		&faultproxy.Rule{Name: "fhir-order", Method: http.MethodGet, Contains: "/instances/" + viaFHIR.meta.SOPInstanceUID, Status: http.StatusServiceUnavailable, Times: 4},
		&faultproxy.Rule{Name: "hl7-order", Method: http.MethodGet, Contains: "/instances/" + viaHL7.meta.SOPInstanceUID, Status: http.StatusServiceUnavailable, Times: 4},
	)
	r.store(t.Context(), viaFHIR, viaHL7)
	p := r.start()
	submit(t, p, viaFHIR, viaHL7)
	waitFor(t, time.Minute, "both jobs are trying to retrieve their images", func() bool {
		return px.Hits("fhir-order") > 0 && px.Hits("hl7-order") > 0
	})
	for _, o := range orders {
		require.Equal(t, radgate.StateRouted, p.status(t, o).State)
	}

	code, body := postCancel(t, p, viaFHIR, "revoked")
	require.Less(t, code, 300, body)
	ack := sendMLLP(t, port,
		`MSH|^~\&|RIS|HOSP|RADGATE|HOSP|20240131142503||ORM^O01^ORM_O01|LCWS0001|P|2.5.1`,
		`PID|1||MRNQ-2^^^HOSP^MR||Qzwfa^Hl7patient||20210315|F`,
		`ORC|CA`,
		`OBR|1|||36643-5^XR Chest 2 Views^LN||||||||||||||`+viaHL7.meta.AccessionNumber+`||||||CR`)
	require.Equal(t, hl7v2.AA, ack.Code, "%+v", ack)
	for _, o := range orders {
		waitState(t, p, o, 30*time.Second, radgate.StateCancelled)
	}
	// The jobs come back (the 503 asks for a retry; retries are 0.1 s to
	// 1 s apart, and after 4 the PACS would answer) and stop there.
	seen := map[string]int{"fhir-order": px.Hits("fhir-order"), "hl7-order": px.Hits("hl7-order")}
	require.Less(t, seen["fhir-order"], 4, "cancelled before its images could come")
	require.Less(t, seen["hl7-order"], 4, "cancelled before its images could come")
	time.Sleep(5 * time.Second)
	for _, o := range orders {
		st := p.status(t, o)
		require.Equal(t, radgate.StateCancelled, st.State)
		e := st.Engines[config.DefaultEngine]
		require.Equal(t, radgate.StateCancelled, e.State)
		require.Nil(t, e.Probability, "never scored")
		id := fhir.ResultIdentifier(r.resultID(o))
		found, err := r.fhir.Search(t.Context(), "DiagnosticReport", url.Values{"identifier": {id.System + "|" + id.Value}})
		require.NoError(t, err)
		require.Empty(t, found, "no report reached the FHIR server")
		u := derived.UIDsFor(r.resultID(o), 1)
		require.Empty(t, r.qidoInstances(t, o.meta.StudyInstanceUID, u.SCSeries), "no SC reached the PACS")
	}
	for name, n := range seen {
		require.LessOrEqual(t, px.Hits(name), n+1, "%s: the cancelled job stopped retrieving", name)
	}
	require.Zero(t, invalidTransitions(t, p))
}
