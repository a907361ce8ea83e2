package service

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/internal/testenv"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testConfig is radgate on embedded defaults against the real peers.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	pacs := testenv.Orthanc(t)
	fhirSrv := testenv.FHIR(t)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1"
	// Studies stored after their order settle in 1 s, waiting orders are
	// looked at every 200 ms to 2 s (defaults: 60 s; 30 s to 15 min).
	cfg.Orders.StableAfter, cfg.Orders.PollMin, cfg.Orders.PollMax = config.Duration(time.Second), config.Duration(200*time.Millisecond), config.Duration(2*time.Second)
	cfg.DataDir = t.TempDir()
	cfg.ModelsDir = filepath.Join(testenv.RepoRoot(), "models")
	cfg.Inference.ONNXRuntimeLibrary = testenv.ONNXRuntimeLib(t)
	cfg.PACS.DICOMwebURL = pacs.DICOMweb
	cfg.FHIR.BaseURL = fhirSrv.URL
	return cfg
}

// runUntilReady runs serve with cfg until ctx ends and returns its intake's
// address once it is ready, and the channel Run's result comes on.
func runUntilReady(t *testing.T, ctx context.Context, cfg config.Config) (string, <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, Options{Registry: registry(t), Ready: ready}) }()
	select {
	case addr := <-ready:
		return addr, errc
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	return "", errc
}

// registry is a registry with the one destination type the built-in fhir
// destination needs, without importing the adapters (which import service's
// dependencies anyway; this keeps the test about the service).
func registry(t *testing.T) *radgate.Registry {
	reg := radgate.NewRegistry()
	reg.RegisterDestination(radgate.DestinationType{Name: "fhir", Keys: []string{"url"}, HTTP: true,
		New: func(radgate.DestinationContext) (radgate.Sink, error) { return nopSink{}, nil }})
	return reg
}

type nopSink struct{}

func (nopSink) Deliver(context.Context, radgate.Result) (radgate.Receipt, error) {
	return radgate.Receipt{}, nil
}

// An intake listener that dies stops radgate with an error (exit 1), not a
// quiet exit 0: a supervisor must see that it has stopped serving.
func TestRunFailsWhenTheIntakeListenerDies(t *testing.T) {
	cfg := testConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var logs lockedBuffer
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(t.Context(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registry: registry(t),
			Ready: ready, Listener: ln, StopTimeout: 10 * time.Second})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("not ready in 60 s")
	}
	require.NoError(t, ln.Close()) // the socket goes away under the server
	select {
	case err := <-errc:
		require.Error(t, err)
		require.Contains(t, err.Error(), "HTTP intake")
	case <-time.After(40 * time.Second):
		t.Fatalf("Run went on serving nothing\n%s", logs.String())
	}
	require.Contains(t, logs.String(), "level=ERROR msg=\"the HTTP intake stopped\"")
	require.Contains(t, logs.String(), "stopped on a failure")
}

// A stop asked for by the context is graceful: nil, intake closed first.
func TestRunStopsCleanlyOnCancel(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	_, errc := runUntilReady(t, ctx, cfg)
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("no stop in 40 s")
	}
}

// An unknown destination type is a configuration error naming the types
// the registry knows, before anything starts.
func TestRunRefusesAnUnknownDestinationType(t *testing.T) {
	cfg := testConfig(t)
	cfg.Destinations = map[string]config.Destination{"ris": {Type: "hl7v3", Address: "127.0.0.1:1"}}
	err := Run(t.Context(), cfg, Options{Registry: registry(t)})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), `destinations.ris.type: unknown destination type "hl7v3" (known: [fhir])`)
}

// A route file changed the moment serve says it is ready is reloaded:
// serve watches the file (and takes SIGHUP) before it reports ready, so
// an operator's edit, or a deployment writing the file right after the
// start, is never missed.
func TestRouteFileChangedRightAfterReadyIsReloaded(t *testing.T) {
	for i := range 3 {
		cfg := testConfig(t)
		cfg.RoutesFile = filepath.Join(t.TempDir(), "routes.yaml")
		routes := "routes:\n  - name: chest\n    when: {modality: [DX, CR], body_part: [CHEST]}\n    engines: [" + config.DefaultEngine + "]\n    destinations: [fhir]\n"
		require.NoError(t, os.WriteFile(cfg.RoutesFile, []byte(routes), 0o600))
		ctx, cancel := context.WithCancel(t.Context())
		addr, errc := runUntilReady(t, ctx, cfg)
		require.NoError(t, os.WriteFile(cfg.RoutesFile, []byte(strings.Replace(routes, "name: chest", "name: chest-v2", 1)), 0o600))
		require.Eventually(t, func() bool {
			r, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				return false
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			return strings.Contains(string(b), `radgate_routes_reloads_total{result="success"} 1`)
		}, 10*time.Second, 50*time.Millisecond, "start %d: the route file written right after ready was not reloaded", i+1)
		cancel()
		require.NoError(t, <-errc)
	}
}
