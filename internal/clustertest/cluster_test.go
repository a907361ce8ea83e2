package clustertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dicomweb"
	"github.com/radgate/radgate/adapters/fhirhttp"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/fhir"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/radgate/radgate/pipeline"
	"github.com/radgate/radgate/service"
)

// hub is one radgate serve process (in the test process) on the cluster.
type hub struct {
	env  *demo.Env
	logs *testenv.LogBuffer
}

// startHub runs radgate serve on the real peers with nats.url the cluster
// and nats.replicas 3.
func startHub(t *testing.T, name string, natsURL string) *hub {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.URL, cfg.NATS.Replicas, cfg.NATS.PublishRetry = natsURL, 3, config.Duration(30*time.Second)
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.Orders.RetryMin, cfg.Orders.RetryMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	cfg.Orders.StudyWaitWindow = config.Duration(60 * time.Second)
	// An ack lost with its consumer's leader is redelivered after this.
	cfg.Orders.AckWait = config.Duration(10 * time.Second)
	cfg.HTTP.Limits.OrdersPerSecond, cfg.HTTP.Limits.OrderBurst = 1000, 1000
	cfg.FHIR.PDFReport = false
	cfg.DataDir = t.TempDir()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = testenv.ONNXRuntimeLib(t)
	cfg.PACS.DICOMwebURL = pacs.DICOMweb
	cfg.PACS.Username = pacs.Username
	t.Setenv("RADGATE_CLUSTERTEST_PACS_PASSWORD", pacs.Password)
	cfg.PACS.PasswordEnv = "RADGATE_CLUSTERTEST_PACS_PASSWORD"
	cfg.FHIR.BaseURL = fhirSrv.URL

	logs := &testenv.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- service.Run(ctx, cfg, service.Options{Logger: logger, Ready: ready}) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("hub %s ended before ready: %v\n%s", name, err, logs.String())
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("hub %s not ready in 90 s\n%s", name, logs.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Errorf("hub %s did not stop in 40 s", name)
		}
		if t.Failed() {
			var warned []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					warned = append(warned, l)
				}
			}
			if len(warned) > 200 {
				warned = warned[:200]
			}
			t.Logf("hub %s warnings and errors (first 200 of %d):\n%s", name, len(warned), strings.Join(warned, "\n"))
		}
	})
	pc, err := dicomweb.New(dicomweb.Options{BaseURL: pacs.DICOMweb, Username: pacs.Username, Password: pacs.Password})
	require.NoError(t, err)
	fc, err := fhirhttp.NewClient(fhirhttp.ClientOptions{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	return &hub{logs: logs, env: &demo.Env{RadgateURL: "http://" + addr, FHIR: fc, PACS: pc,
		HTTP: &http.Client{Timeout: 90 * time.Second}}}
}

// orders is how many orders the proof files (RADGATE_CLUSTERTEST_ORDERS
// for another number).
func orders(t *testing.T) int {
	n := 300
	if s := os.Getenv("RADGATE_CLUSTERTEST_ORDERS"); s != "" {
		_, err := fmt.Sscan(s, &n)
		require.NoError(t, err)
	}
	return n
}

// TestLeaderKillLosesNothing is issue 16's proof on the cluster: two hubs,
// ≥ 300 orders filed at their FHIR intakes, the RADGATE_ORDERS stream's
// leader killed with SIGKILL after a third of them and restarted 15 s
// later. Every order ends delivered with exactly one DiagnosticReport on
// the FHIR server, and the restarted node's replicas of every radgate
// stream and bucket are current again.
func TestLeaderKillLosesNothing(t *testing.T) {
	start := time.Now()
	cluster := testenv.StartNATSCluster(t, 3)
	a := startHub(t, "A", cluster.ClientURLs())
	b := startHub(t, "B", cluster.ClientURLs())
	t.Logf("cluster and two hubs up in %v", time.Since(start).Round(time.Millisecond))

	nc, err := broker.Connect(cluster.ClientURLs(), "", nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	// Clones of one small radiograph: new studies, so runs never meet on
	// the shared PACS and FHIR server. Clone numbers have up to 5 digits.
	n := orders(t)
	src, err := os.ReadFile(testenv.Testdata("cxr-dicom", "dx-chest-implicit-le-8bit.dcm"))
	require.NoError(t, err)
	base, err := rand.Int(rand.Reader, big.NewInt(int64(99999-n)))
	require.NoError(t, err)
	cases := make([]*demo.Case, n)
	for i := range cases {
		data, _, err := demo.Clone(src, int(base.Int64())+i)
		require.NoError(t, err)
		cases[i] = &demo.Case{File: "cluster.dcm", Data: data, Path: demo.ViaBundle}
	}
	loadStart := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			var mine []*demo.Case
			for i := w; i < n; i += workers {
				mine = append(mine, cases[i])
			}
			if err := a.env.LoadImages(t.Context(), mine); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	t.Logf("%d studies stored in the PACS in %v", n, time.Since(loadStart).Round(time.Millisecond))

	// File the orders from four EHR threads, alternating hubs; kill the
	// orders stream's leader once a third are accepted, restart it 15 s on.
	var accepted atomic.Int64
	killAt := int64(n / 3)
	killed := make(chan *testenv.NATSNode, 1)
	orderStart := time.Now()
	for w := range workers {
		wg.Go(func() {
			h := a
			if w%2 == 1 {
				h = b
			}
			for i := w; i < n; i += workers {
				if err := h.env.Order(t.Context(), cases[i:i+1]); err != nil {
					errs <- fmt.Errorf("order %d: %w", i, err)
					return
				}
				if accepted.Add(1) == killAt {
					node, err := killLeader(t.Context(), cluster, js, broker.StreamOrders)
					if err != nil {
						errs <- err
					}
					killed <- node
				}
			}
		})
	}
	victim := <-killed
	require.NotNil(t, victim, "no leader killed")
	killedAt := time.Now()
	t.Logf("killed %s (leader of %s) after %d orders accepted, %v into ordering", victim.Name, broker.StreamOrders,
		killAt, killedAt.Sub(orderStart).Round(time.Millisecond))
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(15*time.Second - time.Since(killedAt))
		cluster.Restart(victim)
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d orders accepted in %v (each intake call returned 2xx)", n, time.Since(orderStart).Round(time.Millisecond))
	<-restarted
	t.Logf("%s restarted %v after its kill", victim.Name, time.Since(killedAt).Round(time.Millisecond))

	require.NoError(t, a.env.Wait(t.Context(), cases, 4*time.Minute))
	t.Logf("every order finished %v after the first was filed", time.Since(orderStart).Round(time.Millisecond))

	// Exactly one report per order on the FHIR server: none lost, none doubled.
	version := engineVersion(t)
	lost, doubled := 0, 0
	for _, c := range cases {
		require.Equal(t, radgate.StateDelivered, c.Status.State, "order %s: %s", c.OrderID, c.Status.Reason)
		id := fhir.ResultIdentifier(pipeline.ResultID(c.OrderID, radgate.EngineInfo{ID: config.DefaultEngine, Version: version}))
		found, err := a.env.FHIR.Search(t.Context(), "DiagnosticReport", map[string][]string{"identifier": {id.System + "|" + id.Value}})
		require.NoError(t, err)
		switch {
		case len(found) == 0:
			lost++
		case len(found) > 1:
			doubled++
		}
	}
	retried := strings.Count(a.logs.String(), "JetStream request retried") + strings.Count(b.logs.String(), "JetStream request retried")
	gaveUp := strings.Count(a.logs.String(), "JetStream request failed after retrying") + strings.Count(b.logs.String(), "JetStream request failed after retrying")
	t.Logf("JetStream requests that needed retrying while the leader was elected: %d; given up after nats.publish_retry: %d", retried, gaveUp)
	for _, h := range []*hub{a, b} {
		for _, l := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(l, "JetStream request failed") {
				t.Log(l)
			}
		}
	}
	require.Positive(t, retried, "no request met the leaderless stream: the kill proved nothing")
	require.Zero(t, lost, "orders without a DiagnosticReport")
	require.Zero(t, doubled, "orders with more than one DiagnosticReport")

	// The restarted node's replicas catch up: every radgate stream and
	// bucket has three current replicas, a leader among them.
	catchUp := time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		behind := replicasBehind(t.Context(), js)
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not current 60 s on: %s", behind)
		}
	}
	t.Logf("every replica current %v after the check began; whole test %v", time.Since(catchUp).Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
}

// killLeader kills the leader of stream with SIGKILL and returns its node.
func killLeader(ctx context.Context, c *testenv.NATSCluster, js jetstream.JetStream, stream string) (*testenv.NATSNode, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("finding stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream, err)
	}
	node := c.Node(info.Cluster.Leader)
	if node == nil {
		return nil, fmt.Errorf("stream %s has no leader: %+v", stream, info.Cluster)
	}
	c.Kill9(node)
	return node, nil
}

// replicasBehind names the radgate streams (and buckets) not yet at three
// current replicas with a leader; "" when all are.
func replicasBehind(ctx context.Context, js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var behind []string
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			behind = append(behind, name+": "+err.Error())
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			behind = append(behind, name+": "+err.Error())
			continue
		}
		cl := info.Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			behind = append(behind, fmt.Sprintf("%s: %+v", name, cl))
			continue
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline {
				behind = append(behind, fmt.Sprintf("%s: replica %s current=%v offline=%v lag=%d", name, r.Name, r.Current, r.Offline, r.Lag))
			}
		}
	}
	if err := names.Err(); err != nil {
		behind = append(behind, err.Error())
	}
	return strings.Join(behind, "; ")
}

func engineVersion(t *testing.T) string {
	m, err := inference.LoadManifest(filepath.Join(testenv.RepoRoot(), "models", config.DefaultEngine, "model.yaml"))
	require.NoError(t, err)
	return m.Version
}
