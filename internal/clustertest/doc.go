// Package clustertest holds the tests of radgate on a real NATS JetStream
// cluster (issue 16): three nats-server processes built from the module
// radgate depends on (testenv.StartNATSCluster), radgate serve hubs (in the
// test process, service.Run) with nats.replicas 3, on the real peers. The
// proof: a stream leader killed with SIGKILL mid-run loses and doubles no
// order, and the restarted node catches up. They are in their own package
// so that the test command runs them with their own timeout
// (scripts/test.sh).
//
// The package has no code besides its tests.
package clustertest
