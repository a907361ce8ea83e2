package service

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/hl7v2"
	"github.com/radgate/radgate/broker/brokertest"
)

// The console's view of the HL7 outbox (hl7Outbox): empty before the
// bucket exists; a message the RIS did not take is listed failed with why;
// once the RIS listens, a re-send (hl7v2.Outbox.ResendTo, as radgate hl7
// resend) to the recorded destination is acknowledged.
func TestConsoleOutboxListsAndResends(t *testing.T) {
	_, topo := brokertest.Topology(t)
	ob := hl7Outbox{js: topo.JS, timeout: 5 * time.Second}
	ctx := t.Context()
	msgs, err := ob.ListOutbox(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs, "no bucket yet: nothing, no error")
	_, err = ob.ResendOutbox(ctx, "nothing")
	require.ErrorIs(t, err, hl7v2.ErrNotStored)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ris := ln.Addr().String()
	require.NoError(t, ln.Close()) // nobody listens there yet
	sink, err := hl7v2.NewResultSink(hl7v2.ResultSinkOptions{JS: topo.JS, Address: ris,
		Client: hl7v2.ClientOptions{DialTimeout: time.Second, AckTimeout: time.Second, MaxAttempts: 1}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sink.Close() })
	r := radgate.Result{ID: "6a0c2a9e7d41b3c6a8e0f1d3",
		Order: radgate.OrderStatus{ID: "order-console-hl7", Accession: &radgate.Identifier{Value: "ACC-CON-1"},
			Patient: &radgate.Reference{Identifier: &radgate.Identifier{Value: "MRN-CON-1"}, Display: "Outboxia Patient"}},
		Engine:  radgate.EngineInfo{ID: "cxr", Name: "CXR", Version: "1.0.0", Disclaimer: "AI decision support — not a diagnosis."},
		Outcome: radgate.OutcomeScored, Probability: 0.42, Tier: "Mid", StudyInstanceUID: "1.2.3.4", ScoredAt: time.Now()}
	_, err = sink.Deliver(ctx, r)
	require.ErrorContains(t, err, "connection refused", "the RIS is not listening")

	msgs, err = ob.ListOutbox(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, r.ID, m.Key)
	require.Equal(t, "order-console-hl7", m.OrderID)
	require.Equal(t, ris, m.Destination)
	require.Equal(t, hl7v2.StateFailing, m.State)
	require.True(t, m.Failed)
	require.Contains(t, m.LastError, "connection refused")
	require.Equal(t, 1, m.Attempts)

	srv, err := hl7v2.NewServer(hl7v2.ServerOptions{Addr: ris,
		Handler: func(_ context.Context, msg *hl7v2.Message) *hl7v2.Message { return hl7v2.NewACK(msg, hl7v2.AA) }})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	m, err = ob.ResendOutbox(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, hl7v2.StateAcknowledged, m.State)
	require.False(t, m.Failed)
	require.Equal(t, 2, m.Attempts)
	require.Empty(t, m.LastError)
}
