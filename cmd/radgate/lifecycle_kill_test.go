package main

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

// TestLifecycleKill9InEveryNewState: radgate serve is killed with SIGKILL
// while one order waits for its images, one's study is stabilising and one
// is being retracted (its FHIR server paused mid-retraction), then started
// again on the same data dir: the waiting and stabilising orders end
// delivered, the retracted one cancelled, each with one DiagnosticReport,
// one retraction Provenance and one rejection note — nothing duplicated.
func TestLifecycleKill9InEveryNewState(t *testing.T) {
	fhirPeer, fhirBase := privateFHIR(t) // paused below: not the shared one
	ps := peers{pacs: testenv.Orthanc(t), fhir: fhirBase}
	r := lcRig(t, ps, func(c *config.Config) {
		c.Orders.StableAfter = config.Duration(8 * time.Second)
	})
	p := r.start()
	orders := makeOrders(t, 3)
	waiting, stabilising, retracting := orders[0], orders[1], orders[2]

	// The order to retract is delivered first, with the FHIR server up.
	r.store(t.Context(), retracting)
	submit(t, p, retracting)
	waitState(t, p, retracting, time.Minute, radgate.StateDelivered)
	_, retractedRef := r.report(t, retracting)

	submit(t, p, waiting, stabilising)
	waitState(t, p, waiting, 10*time.Second, radgate.StateWaiting)
	waitState(t, p, stabilising, 10*time.Second, radgate.StateWaiting)
	r.store(t.Context(), stabilising)
	waitState(t, p, stabilising, 10*time.Second, radgate.StateStabilising)

	// The FHIR server stops answering; the revoke starts the retraction,
	// which cannot finish.
	fhirPeer.signal(t, syscall.SIGSTOP)
	code, body := postCancel(t, p, retracting, "revoked")
	require.Equal(t, http.StatusAccepted, code, body)
	waitState(t, p, retracting, 20*time.Second, radgate.StateRetracting)
	require.Equal(t, radgate.StateWaiting, p.status(t, waiting).State)
	require.Equal(t, radgate.StateStabilising, p.status(t, stabilising).State)
	p.kill9(t)

	// While radgate is down the waiting order's images come and the FHIR
	// server is back.
	r.store(t.Context(), waiting)
	fhirPeer.signal(t, syscall.SIGCONT)
	p = r.start()

	waitState(t, p, waiting, 2*time.Minute, radgate.StateDelivered)
	waitState(t, p, stabilising, 2*time.Minute, radgate.StateDelivered)
	st := waitState(t, p, retracting, 2*time.Minute, radgate.StateCancelled)
	for dest, d := range st.Engines[config.DefaultEngine].Deliveries {
		require.True(t, d.Retracted, "retracted at %s", dest)
	}
	time.Sleep(4 * time.Second) // redeliveries after ack_wait 3 s would show by now

	for _, o := range []*order{waiting, stabilising} {
		dr, ref := r.report(t, o) // exactly one
		require.Equal(t, "final", dr["status"], "order %s", o.id)
		require.Equal(t, 1, r.versions(t, ref), "order %s: written once", o.id)
		require.Equal(t, 1, p.status(t, o).Engines[config.DefaultEngine].Revision)
	}
	dr, ref := r.report(t, retracting)
	require.Equal(t, retractedRef, ref)
	require.Equal(t, "entered-in-error", dr["status"])
	require.Equal(t, 1, r.versions(t, "Provenance/"+fhirhttp.RetractionProvenanceID(r.resultID(retracting))), "one retraction Provenance")
	r.requireRejectionNote(t, retracting, 1)
	require.Zero(t, invalidTransitions(t, p))
}
