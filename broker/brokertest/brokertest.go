// Package brokertest starts what tests of radgate's packages need from
// JetStream: an embedded nats-server in a temporary directory, a client
// connection and radgate's streams and buckets, all closed when the test
// ends.
package brokertest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/radgate/radgate/broker"
)

// Topology starts an embedded server for t and returns a connection to it
// and radgate's topology on it (broker.EnsureTopology).
func Topology(t testing.TB) (*nats.Conn, *broker.Topology) {
	t.Helper()
	srv, err := broker.StartEmbedded(t.TempDir(), -1)
	if err != nil {
		t.Fatalf("starting the embedded NATS server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := broker.Connect(srv.ClientURL(), "", nil)
	if err != nil {
		t.Fatalf("connecting to the embedded NATS server: %v", err)
	}
	t.Cleanup(nc.Close)
	topo, err := broker.EnsureTopology(t.Context(), nc)
	if err != nil {
		t.Fatalf("declaring radgate's streams and buckets: %v", err)
	}
	return nc, topo
}
