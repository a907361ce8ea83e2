// Package edgetest holds the tests of radgate's hub and edges (issue 16):
// a hub of three real nats-server processes (testenv.StartNATSClusterWith:
// JetStream domain "hub", a leafnode listener, one NKey user per site from
// broker.GenerateSites) and edges, embedded nats-servers that are leaf
// nodes of it in their own domains, each linked through its own TCP fault
// proxy (faultproxy.TCP) so that its link can be cut. The proofs: a site's
// credential cannot subscribe to another site's subjects (the permission
// error asserted); work crosses the links only through JetStream sourcing,
// each site's results reach that site only, a link cut for 60 s loses
// and doubles nothing while the other sites carry on, and a result larger
// than the hub's max_payload crosses a link in parts and is joined whole. With radgate serve in
// its roles (serve_test.go): two hub processes (inference only) and three
// edges (intakes, order store, router, deliveries) on the shared Orthanc
// and FHIR server, each order scored at the hub and reported once, by its
// own edge. They are in their own
// package so that the test command runs them with their own timeout
// (scripts/test.sh).
//
// The package has no code besides its tests.
package edgetest
