// Package loadtest holds issue 16's load run of simulated facilities on
// the hub (BenchmarkFacilities, n = 10, 100, 1000; not run by the test
// command) and a small run at n = 10 that the test command runs to keep the
// harness honest (TestFacilitiesHarness).
//
// The rig: a hub of three real nats-server processes
// (testenv.StartNATSClusterWith: JetStream domain "hub", a leafnode
// listener, the authorization broker.GenerateSites makes for all n
// facilities); one NATS client connection per simulated facility with that
// site's own NKey credential, doing on the hub what the site's edge does on
// its link, within its permissions: its jobs published on its own link
// subject (radgate.link.<F>.jobs.sim, which a subject mapping in the hub's
// configuration files into RADGATE_JOBS as radgate.jobs.routine.<F>.sim: the
// stand-in for the edge's sourced delivery), and its results taken by a
// push consumer on the hub's RADGATE_RESULTS filtered on its facility,
// created with its own credential exactly as an edge's results source
// creates it (direct, no acks, flow control, a heartbeat a second,
// delivered on radgate.link.<F>.results.>); plus two real leaf-node edges
// (embedded nats-servers in their own domains, their jobs taken by the
// hub's RADGATE_JOBS sources, their results by their own sources). A worker
// on the hub stands in for the inference stage (job in, result out; no
// model is run: the figures are the NATS layer's). The servers' monitoring
// endpoints (/varz, /jsz, /subsz) give the resources per node.
//
// The link's stall (BENCHMARKS.md "The hub/edge link's stall"):
// TestSourceDeclaredWhileLinkDown reproduces a hub source that stays
// unset for nats-server's consumer-create timeout after its edge's link is
// back; BenchmarkLinkRecovery measures the edges' orders after leader
// stepdowns and link cuts (edges behind faultproxy); RADGATE_LOAD_TRACE
// makes a run sample its link sources and the hub worker's consumer, and
// testenv.NATSLogDirEnv keeps the servers' debug logs.
//
// The package has no code besides its tests.
package loadtest
