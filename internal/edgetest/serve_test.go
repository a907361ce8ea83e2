package edgetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/dimse"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/faultproxy"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
	"github.com/radgate/radgate/service"
)

// serveConfig is radgate serve's configuration on the shared peers (the
// Orthanc as the PACS, the FHIR test server as the destination), with
// short waits, for the facilities given.
func serveConfig(t testing.TB, facilities ...string) config.Config {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.Orders.RetryMin, cfg.Orders.RetryMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(60 * time.Second)
	cfg.HTTP.Limits.OrdersPerSecond, cfg.HTTP.Limits.OrderBurst = 1000, 1000
	cfg.FHIR.PDFReport = false
	cfg.DataDir = t.TempDir()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = testenv.ONNXRuntimeLib(t)
	cfg.PACS.DICOMwebURL = pacs.DICOMweb
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_EDGETEST_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_EDGETEST_PACS_PASSWORD"
	cfg.FHIR.BaseURL = fhirSrv.URL
	for _, f := range facilities {
		cfg.Facilities = append(cfg.Facilities, config.Facility{ID: f, FHIROrganizations: []string{"Organization/" + f}})
	}
	return cfg
}

// hubServeConfig is a hub radgate's: role hub on the hub cluster with the
// hub's credential, R3.
func hubServeConfig(t testing.TB, h *hub, facilities ...string) config.Config {
	cfg := serveConfig(t, facilities...)
	cfg.Role = config.RoleHub
	cfg.NATS.URL, cfg.NATS.CredentialsFile = h.cluster.ClientURLs(), broker.HubCredentialPath(h.dir)
	cfg.NATS.Replicas, cfg.NATS.PublishRetry = 3, config.Duration(30*time.Second)
	return cfg
}

// edgeServeConfig is facility's edge radgate's: role edge, its embedded
// server on a fixed free port (check --connect finds it there), linked to
// hub node node through its own fault proxy.
func edgeServeConfig(t testing.TB, h *hub, facility string, node int, facilities ...string) (config.Config, *faultproxy.TCP) {
	cfg := serveConfig(t, facilities...)
	proxy, err := faultproxy.NewTCP(fmt.Sprintf("127.0.0.1:%d", h.cluster.Nodes[node].Leaf))
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	cfg.Role = config.RoleEdge
	cfg.NATS.EmbeddedListen = net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(t)))
	cfg.Edge = config.Edge{Facility: facility, HubURLs: []string{"nats-leaf://" + proxy.Addr()},
		CredentialFile: broker.SiteCredentialPath(h.dir, facility)}
	return cfg, proxy
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// served is a running radgate serve: its intake's base URL and its log.
type served struct {
	cfg  config.Config
	name string
	url  string
	logs *testenv.LogBuffer
}

// startServe runs radgate serve with cfg in process until the test ends.
func startServe(t testing.TB, name string, cfg config.Config) *served {
	t.Helper()
	return launchServe(t, name, cfg)()
}

// launchServe starts radgate serve with cfg in process, to run until the
// test ends, and returns what waits until it is ready (several serves
// start at once).
func launchServe(t testing.TB, name string, cfg config.Config) (wait func() *served) {
	t.Helper()
	s := &served{cfg: cfg, name: name, logs: &testenv.LogBuffer{}}
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("serve", name)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- service.Run(ctx, cfg, service.Options{Logger: logger, Ready: ready}) }()
	return func() *served {
		t.Helper()
		return waitServe(t, s, cancel, ready, errc)
	}
}

func waitServe(t testing.TB, s *served, cancel context.CancelFunc, ready chan string, errc chan error) *served {
	t.Helper()
	name := s.name
	select {
	case addr := <-ready:
		s.url = "http://" + addr
	case err := <-errc:
		cancel()
		t.Fatalf("serve %s ended before ready: %v\n%s", name, err, s.logs.String())
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("serve %s not ready in 90 s\n%s", name, s.logs.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err, "serve %s", name)
		case <-time.After(40 * time.Second):
			t.Errorf("serve %s did not stop in 40 s", name)
		}
		if t.Failed() {
			var warned []string
			for _, l := range strings.Split(s.logs.String(), "\n") {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					warned = append(warned, l)
				}
			}
			if len(warned) > 100 {
				warned = warned[:100]
			}
			t.Logf("serve %s warnings and errors (first 100 of %d):\n%s", name, len(warned), strings.Join(warned, "\n"))
		}
	})
	return s
}

// edgeLinkLine is check --connect's line about the edge's leaf link.
func edgeLinkLine(t *testing.T, cfg config.Config) string {
	t.Helper()
	return checkLine(t, cfg, "leaf link to the hub")
}

// checkLine is check --connect's first line with cfg that contains what.
func checkLine(t *testing.T, cfg config.Config, what string) string {
	t.Helper()
	line, out := findCheckLine(t, cfg, what)
	if line == "" {
		t.Fatalf("check --connect has no line with %q:\n%s", what, out)
	}
	return line
}

// findCheckLine runs check --connect with cfg and returns its first line
// that contains what ("" if none) and its whole output.
func findCheckLine(t *testing.T, cfg config.Config, what string) (line, out string) {
	t.Helper()
	var b bytes.Buffer
	service.Check(t.Context(), cfg, service.CheckOptions{Connect: true, Timeout: 5 * time.Second}, &b)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, what) {
			return l, b.String()
		}
	}
	return "", b.String()
}

// TestServeRoles: radgate serve in role hub runs the inference stage only,
// on the hub cluster; in role edge it runs its embedded server as a leaf
// node of the hub in its own domain with the edge topology and its results
// source, and the router and deliveries but no inference; check --connect
// reports the edge's link, and FAILs while it is cut. The hub serve
// declares the hub's source of the edge's jobs. The edge opens no ONNX
// session: with no model file and no ONNX Runtime it starts, routes an
// order the hub scores, and delivers it; a hub or all serve with the same
// models directory refuses, naming the file. check --connect reports the
// link sources: the edge's results source and the hub's source of the
// edge's jobs active while the link is up, the results source silent
// while it is cut.
func TestServeRoles(t *testing.T) {
	ctx := t.Context()
	h := startHub(t, "site-a")
	// The edge's engines are their manifests: no model file (none in its
	// models directory) and no ONNX Runtime.
	ecfg, proxy := edgeServeConfig(t, h, "site-a", 0, "site-a")
	ecfg.ModelsDir = manifestsOnly(t)
	ecfg.Inference.ONNXRuntimeLibrary = filepath.Join(t.TempDir(), "no-libonnxruntime.so")
	edge := startServe(t, "edge-a", ecfg)
	hcfg := hubServeConfig(t, h, "site-a")
	startServe(t, "hub-1", hcfg)
	var checked bytes.Buffer
	service.Check(ctx, ecfg, service.CheckOptions{Timeout: 5 * time.Second}, &checked)
	require.Contains(t, checked.String(), "ok   engine "+config.DefaultEngine+": manifest (scored at the hub)\n", checked.String())
	// A hub or all serve with the same models directory refuses, naming
	// the model file.
	for _, role := range []string{config.RoleHub, config.RoleAll} {
		cfg := hubServeConfig(t, h, "site-a")
		cfg.Role, cfg.ModelsDir = role, ecfg.ModelsDir
		err := service.Run(ctx, cfg, service.Options{})
		require.ErrorContains(t, err, "model file "+filepath.Join(ecfg.ModelsDir, config.DefaultEngine, "model.onnx")+": no such file or directory", role)
	}
	// The hub serve declared its source of the edge's jobs.
	info, err := streamInfo(ctx, h.js, broker.StreamJobs)
	require.NoError(t, err)
	require.Len(t, info.Config.Sources, 1, "the hub's source of site-a's jobs")
	require.Equal(t, broker.JobsFilter("site-a"), info.Config.Sources[0].FilterSubject)

	// The edge without model files routes an order; the hub scores it and
	// the edge delivers it.
	env := siteEnv(t, edge)
	cases := newCases(t, env, 1)
	require.NoError(t, env.Order(ctx, cases))
	require.NoError(t, env.Wait(ctx, cases, 3*time.Minute))
	require.Equal(t, radgate.StateDelivered, cases[0].Status.State, cases[0].Status.Reason)
	requireOneReport(t, env, cases[0], engineVersion(t))

	hubConsumers := consumerNames(ctx, t, h.js, broker.StreamJobs)
	require.Contains(t, hubConsumers, "inference")
	require.Empty(t, consumerNames(ctx, t, h.js, broker.StreamOrders), "a hub runs no router")
	require.Empty(t, consumerNames(ctx, t, h.js, broker.StreamResults), "a hub delivers nothing")

	// The edge's JetStream, reached from the hub through its domain.
	ejs := edgeJS(t, h, "site-a")
	require.Contains(t, consumerNames(ctx, t, ejs, broker.StreamOrders), "router")
	require.Contains(t, consumerNames(ctx, t, ejs, broker.StreamResults), "deliver-fhir")
	require.Empty(t, consumerNames(ctx, t, ejs, broker.StreamJobs), "an edge runs no inference")
	info, err = streamInfo(ctx, ejs, broker.StreamResults)
	require.NoError(t, err)
	require.Len(t, info.Config.Sources, 1, "the edge's results source")
	require.Equal(t, broker.ResultsFilter("site-a"), info.Config.Sources[0].FilterSubject)

	line := edgeLinkLine(t, ecfg)
	require.True(t, strings.HasPrefix(line, "ok   edge site-a: leaf link to the hub: connected to n1"), line)
	t.Log(line)
	// check --connect reports each link source: the edge's source of the
	// hub's results, and on the hub the source of the edge's jobs (both
	// heard from every second by their heartbeat).
	line = checkLine(t, ecfg, "results source from the hub")
	require.True(t, strings.HasPrefix(line, "ok   edge site-a: results source from the hub: heard from "), line)
	t.Log(line)
	line, out := findCheckLine(t, hcfg, "edge source")
	require.True(t, strings.HasPrefix(line, "ok   hub: 1 of 1 edge sources active (heard from within 10s), max lag "), out)
	require.NotContains(t, out, "FAIL hub:", out)
	t.Log(line)
	proxy.Cut()
	linkIs(t, ecfg, false)
	line = edgeLinkLine(t, ecfg)
	require.Equal(t, "FAIL edge site-a: leaf link to the hub: no leaf link to the hub: the link is down (orders are kept and flow when it is back)", line)
	// With the link cut, the edge stops hearing from its results source:
	// silent once broker.LinkSourceSilentAfter (10 s) has passed.
	require.Eventually(t, func() bool {
		line, _ = findCheckLine(t, ecfg, "results source from the hub")
		return strings.HasPrefix(line, "FAIL edge site-a: results source from the hub: silent for ")
	}, 60*time.Second, time.Second, "the edge's results source while the link is cut: %s", line)
	require.Contains(t, line, "if the leaf link line FAILs, the link is down", line)
	t.Log(line)
	proxy.Restore()
	linkIs(t, ecfg, true)
	require.True(t, strings.HasPrefix(edgeLinkLine(t, ecfg), "ok   edge site-a"))
}

// TestEdgeStartedWithItsLinkDown: an edge whose link to the hub is down
// when it starts takes orders, declares no results source while the link
// is down (one declared then would wait out nats-server's 30 s consumer
// create and 10 s backoff after the link returns), declares it once the
// link is up, and its order is scored at the hub and delivered once.
func TestEdgeStartedWithItsLinkDown(t *testing.T) {
	ctx := t.Context()
	h := startHub(t, "site-a")
	ecfg, proxy := edgeServeConfig(t, h, "site-a", 0, "site-a")
	proxy.Cut()
	edge := startServe(t, "edge-a", ecfg)
	env := siteEnv(t, edge)
	cases := newCases(t, env, 1)
	require.NoError(t, env.Order(ctx, cases), "the edge takes orders with its link down")

	addr, err := broker.ResolveAddress(ecfg)
	require.NoError(t, err)
	ejs, closeConn, err := addr.ConnectJetStream("edgetest")
	require.NoError(t, err)
	defer closeConn()
	info, err := streamInfo(ctx, ejs, broker.StreamResults)
	require.NoError(t, err)
	require.Empty(t, info.Config.Sources, "no results source declared while the link is down")

	proxy.Restore()
	restored := time.Now()
	linkIs(t, ecfg, true)
	require.Eventually(t, func() bool {
		info, err := streamInfo(ctx, ejs, broker.StreamResults)
		return err == nil && len(info.Config.Sources) == 1 && info.Config.Sources[0].FilterSubject == broker.ResultsFilter("site-a")
	}, 30*time.Second, 100*time.Millisecond, "the results source declared once the link is up")
	startServe(t, "hub-1", hubServeConfig(t, h, "site-a"))
	require.NoError(t, env.Wait(ctx, cases, 3*time.Minute))
	require.Equal(t, radgate.StateDelivered, cases[0].Status.State, cases[0].Status.Reason)
	requireOneReport(t, env, cases[0], engineVersion(t))
	t.Logf("delivered %v after the link returned (the hub serve started after it)", time.Since(restored).Round(100*time.Millisecond))
}

// manifestsOnly is a copy of the models directory without the model
// files.
func manifestsOnly(t *testing.T) string {
	t.Helper()
	src, dir := filepath.Join(testenv.RepoRoot(), "models"), t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		files, err := os.ReadDir(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.Mkdir(filepath.Join(dir, e.Name()), 0o755))
		for _, f := range files {
			if filepath.Ext(f.Name()) == ".onnx" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, e.Name(), f.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name(), f.Name()), b, 0o644))
		}
	}
	return dir
}

// linkIs waits until the edge of cfg reports its link up (or down).
func linkIs(t *testing.T, cfg config.Config, up bool) {
	t.Helper()
	addr, err := broker.ResolveAddress(cfg)
	require.NoError(t, err)
	js, closeConn, err := addr.ConnectJetStream("edgetest")
	require.NoError(t, err)
	defer closeConn()
	require.Eventually(t, func() bool {
		_, err := broker.RequestLinkStatus(t.Context(), js.Conn())
		return (err == nil) == up
	}, 60*time.Second, 200*time.Millisecond, "link up: %v", up)
}

// edgeJS is facility's edge's JetStream, reached from the hub through its
// domain (as the hub's inference reads an edge's image store).
func edgeJS(t testing.TB, h *hub, facility string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.NewWithDomain(h.nc, broker.EdgeDomain(facility))
	require.NoError(t, err)
	return js
}

func streamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// consumerNames are the durable consumers of stream.
func consumerNames(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	var names []string
	l := s.ConsumerNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	require.NoError(t, l.Err())
	return names
}

// siteEnv is the hospital around an edge radgate: its intake, the shared
// PACS and its destination FHIR server.
func siteEnv(t testing.TB, s *served) *demo.Env {
	t.Helper()
	pacs := testenv.Orthanc(t)
	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: s.cfg.FHIR.BaseURL})
	require.NoError(t, err)
	return &demo.Env{RadgateURL: s.url, FHIR: fc, PACS: pc, HTTP: &http.Client{Timeout: 90 * time.Second}}
}

// TestServeHubAndEdges is issue 16's serve-level proof: a three-node hub,
// two radgate serves in role hub (inference only) and three in role edge
// (intakes, order store, router, deliveries), each edge its own facility
// with the shared Orthanc as its PACS and the FHIR test server as its
// destination. Orders filed at each edge are scored at the hub from
// images the edge staged in its own image store (read through its domain)
// and delivered by that edge only, exactly once; an edge answers GET
// /orders/{id} while its link is cut, and an order it takes then is
// delivered once the link is back.
func TestServeHubAndEdges(t *testing.T) {
	start := time.Now()
	sites := []string{"site-a", "site-b", "site-c"}
	// The two hub radgates start at once (after the edges) and declare the
	// hub's sources of the edges' jobs themselves (no radgate sites
	// sources), from lists that differ: hub-2's marks site-c edge: false.
	// Neither drops the other's: site-c's orders are scored too.
	r := startServeRig(t, func(name string, cfg *config.Config) {
		if name == "hub-2" {
			cfg.Facilities[2].Edge = new(bool)
		}
	}, sites...)
	h, hubs, edges, envs, proxies := r.h, r.hubs, r.edges, r.envs, r.proxies
	info, err := streamInfo(t.Context(), h.js, broker.StreamJobs)
	require.NoError(t, err)
	var sourced []string
	for _, src := range info.Config.Sources {
		sourced = append(sourced, src.FilterSubject)
	}
	require.ElementsMatch(t, []string{broker.JobsFilter("site-a"), broker.JobsFilter("site-b"), broker.JobsFilter("site-c")}, sourced)
	t.Logf("hub cluster, %d hub radgates and %d edge radgates up in %v", len(hubs), len(sites), time.Since(start).Round(time.Millisecond))

	// perSite orders at each site with every link up, then cutOrders more
	// at each site while site A's link is cut for cutFor (issue 16: 60 s).
	const perSite, cutOrders, cutFor = 3, 4, 60 * time.Second
	studies := newStudies(t, "dx-chest-implicit-le-8bit.dcm", len(sites)*(perSite+cutOrders))
	cases := map[string][]*demo.Case{}
	for _, f := range sites {
		cases[f] = studies.cases(envs[f], perSite+cutOrders)
	}
	ordered := time.Now()
	for _, f := range sites {
		require.NoError(t, envs[f].Order(t.Context(), cases[f][:perSite]))
	}
	for _, f := range sites {
		require.NoError(t, envs[f].Wait(t.Context(), cases[f][:perSite], 3*time.Minute))
	}
	t.Logf("%d orders at %d edges delivered %v after the first was filed", perSite*len(sites), len(sites), time.Since(ordered).Round(time.Millisecond))
	for _, f := range sites {
		in, out := proxies[f].Bytes()
		t.Logf("%s's link for its %d studies (one %d-byte image each): %d B edge → hub, %d B hub → edge, %.1f KiB per study in all",
			f, perSite, len(studies.src), in, out, float64(in+out)/perSite/1024)
	}

	version := engineVersion(t)
	for _, f := range sites {
		for _, c := range cases[f][:perSite] {
			require.Equal(t, radgate.StateDelivered, c.Status.State, "order %s at %s: %s", c.OrderID, f, c.Status.Reason)
			require.Equal(t, f, c.Status.FacilityID)
			require.Equal(t, radgate.StateDelivered, c.Status.Engines[config.DefaultEngine].State)
			requireOneReport(t, envs[f], c, version)
			// Scored at the hub, not at the edge.
			require.True(t, published(hubs[0], c.OrderID) != published(hubs[1], c.OrderID), "order %s not scored by one hub radgate", c.OrderID)
			require.False(t, published(edges[f], c.OrderID), "order %s scored at its edge", c.OrderID)
			// The other site's edge never knew the order.
			for _, g := range sites {
				if g != f {
					_, err := envs[g].OrderStatus(t.Context(), c.OrderID)
					require.ErrorContains(t, err, "HTTP 404", "order %s of %s at %s's edge", c.OrderID, f, g)
				}
			}
		}
	}

	// Cut site A's link for cutFor while every site's EHR keeps ordering:
	// A's edge still answers for its orders and takes the new ones, which
	// wait at the edge; B and C deliver theirs meanwhile; once the link is
	// back every one of A's is delivered, once.
	a := sites[0]
	proxies[a].Cut()
	cut := time.Now()
	linkIs(t, edges[a].cfg, false)
	st, err := envs[a].OrderStatus(t.Context(), cases[a][0].OrderID)
	require.NoError(t, err, "GET /orders/{id} at the edge while its link is cut")
	require.Equal(t, radgate.StateDelivered, st.State)
	for i := range cutOrders {
		for _, f := range sites {
			require.NoError(t, envs[f].Order(t.Context(), cases[f][perSite+i:perSite+i+1]), "order at %s during the cut", f)
		}
		time.Sleep(cutFor / (cutOrders + 1))
	}
	for _, f := range sites[1:] {
		require.NoError(t, envs[f].Wait(t.Context(), cases[f][perSite:], cutFor), "%s's orders while A's link is cut", f)
		for _, c := range cases[f][perSite:] {
			require.Equal(t, radgate.StateDelivered, c.Status.State, "order %s at %s during A's cut: %s", c.OrderID, f, c.Status.Reason)
			requireOneReport(t, envs[f], c, version)
		}
	}
	late := cases[a][perSite:]
	for _, c := range late {
		st, err = envs[a].OrderStatus(t.Context(), c.OrderID)
		require.NoError(t, err, "GET /orders/{id} at the edge while its link is cut")
		require.False(t, st.State.Terminal(), "order %s delivered while its edge's link was cut: %s", c.OrderID, st.State)
	}
	time.Sleep(time.Until(cut.Add(cutFor)))
	proxies[a].Restore()
	restored := time.Now()
	t.Logf("A's link cut %v", restored.Sub(cut).Round(time.Millisecond))
	require.NoError(t, envs[a].Wait(t.Context(), late, 4*time.Minute))
	for _, c := range late {
		require.Equal(t, radgate.StateDelivered, c.Status.State, "order %s: %s", c.OrderID, c.Status.Reason)
		requireOneReport(t, envs[a], c, version)
	}
	t.Logf("the %d orders taken during the cut delivered %v after the link returned; whole test %v",
		len(late), time.Since(restored).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// No hub stream holds an image.
	_, err = h.js.Stream(t.Context(), dimse.StreamImages)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}

// published: s logged a result of order id published.
func published(s *served, id string) bool {
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, `msg="result published"`) && strings.Contains(l, " order="+id+" ") {
			return true
		}
	}
	return false
}

// requireOneReport: exactly one DiagnosticReport of c's result on the FHIR
// server.
func requireOneReport(t *testing.T, env *demo.Env, c *demo.Case, version string) {
	t.Helper()
	id := fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version}))
	found, err := env.FHIR.Search(t.Context(), "DiagnosticReport", map[string][]string{"identifier": {id.System + "|" + id.Value}})
	require.NoError(t, err)
	require.Len(t, found, 1, "DiagnosticReports of order %s", c.OrderID)
}

func engineVersion(t *testing.T) string {
	m, err := inference.LoadManifest(filepath.Join(testenv.RepoRoot(), "models", config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	return m.Version
}
