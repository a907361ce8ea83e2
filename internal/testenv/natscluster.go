package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of real nats-server processes on
// 127.0.0.1, built from the nats-server module version go.mod requires
// (no download at test time). Nodes keep their ports and store across
// Kill9 and Restart; every process is stopped by its PID when the test ends.
type NATSCluster struct {
	t     testing.TB
	bin   string
	dir   string
	Nodes []*NATSNode
}

// NATSNode is one server of a NATSCluster.
type NATSNode struct {
	// Name is the server_name (n1, n2, …): what stream and meta leaders
	// are reported as.
	Name string
	// Client, Route and HTTP are its client, cluster-route and monitoring
	// ports on 127.0.0.1; Leaf its leafnode listener's (0 without one).
	Client, Route, HTTP, Leaf int

	conf, log string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
}

// LeafURL is the node's nats-leaf:// URL ("" without a leafnode listener).
func (n *NATSNode) LeafURL() string {
	if n.Leaf == 0 {
		return ""
	}
	return fmt.Sprintf("nats-leaf://127.0.0.1:%d", n.Leaf)
}

// ClientURL is the node's nats:// URL.
func (n *NATSNode) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Client) }

// Running reports whether the node's process is alive (not killed).
func (n *NATSNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

var natsServerBin struct {
	once sync.Once
	path string
	err  error
}

// NATSServerBinary returns the path of a nats-server binary built from the
// version go.mod requires, cached in testenv/run/bin (built once, from the
// module cache; `go build` needs no network when the modules are there).
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	natsServerBin.once.Do(func() {
		root := RepoRoot()
		version, err := requiredVersion(filepath.Join(root, "go.mod"), "github.com/nats-io/nats-server/v2")
		if err != nil {
			natsServerBin.err = err
			return
		}
		dir := filepath.Join(root, "testenv", "run", "bin")
		path := filepath.Join(dir, "nats-server-"+version)
		if _, err := os.Stat(path); err == nil {
			natsServerBin.path = path
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			natsServerBin.err = err
			return
		}
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			natsServerBin.err = fmt.Errorf("building nats-server %s: %v\n%s", version, err, out)
			return
		}
		natsServerBin.path, natsServerBin.err = path, os.Rename(tmp, path)
	})
	if natsServerBin.err != nil {
		t.Fatal(natsServerBin.err)
	}
	return natsServerBin.path
}

// requiredVersion reads module's version from a go.mod's require lines.
func requiredVersion(gomod, module string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("%s: no require line for %s", gomod, module)
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// StartNATSCluster starts a JetStream cluster of size nodes (server names
// n1…nN, cluster and domain "hub") and waits until every node is healthy
// (/healthz: JetStream current with the meta leader) and a meta leader is
// elected. The processes are killed, by PID, when the
// test ends; their logs are shown when it failed.
func StartNATSCluster(t testing.TB, size int) *NATSCluster {
	t.Helper()
	return StartNATSClusterWith(t, NATSClusterOptions{Size: size})
}

// NATSClusterOptions configure StartNATSClusterWith.
type NATSClusterOptions struct {
	// Size is the number of nodes.
	Size int
	// Leaf gives every node a leafnode listener (NATSNode.Leaf).
	Leaf bool
	// Config is added to every node's configuration: a hub's feature
	// flags and authorization block (broker.SiteConfig.NodeConfig; leaf
	// nodes authenticate against it too).
	Config string
}

// StartNATSClusterWith is StartNATSCluster as o says: a hub for leaf-node
// edges (issue 16) has Leaf and the hub's node Config.
func StartNATSClusterWith(t testing.TB, o NATSClusterOptions) *NATSCluster {
	t.Helper()
	size := o.Size
	c := &NATSCluster{t: t, bin: NATSServerBinary(t), dir: t.TempDir()}
	ports := freePorts(t, 4*size)
	for i := range size {
		n := &NATSNode{Name: fmt.Sprintf("n%d", i+1),
			Client: ports[4*i], Route: ports[4*i+1], HTTP: ports[4*i+2]}
		if o.Leaf {
			n.Leaf = ports[4*i+3]
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		var routes []string
		for _, o := range c.Nodes {
			if o != n {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.Route))
			}
		}
		n.conf = filepath.Join(c.dir, n.Name+".conf")
		n.log = filepath.Join(c.dir, n.Name+".log")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 8MB
jetstream { store_dir: %q, domain: hub }
cluster { name: hub, listen: 127.0.0.1:%d, routes: [%s] }
`, n.Name, n.Client, n.HTTP, filepath.Join(c.dir, n.Name), n.Route, strings.Join(routes, ", "))
		if n.Leaf != 0 {
			// no_advertise: a leaf node keeps to the URLs it was given (a
			// fault proxy in tests) instead of learning the other nodes'.
			conf += fmt.Sprintf("leafnodes { listen: 127.0.0.1:%d, no_advertise: true }\n", n.Leaf)
		}
		conf += o.Config
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := os.Getenv(NATSLogDirEnv)
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.stop()
		}
		if keep != "" {
			c.keepLogs(keep)
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(n.log)
				if len(b) > 12000 {
					b = b[len(b)-12000:]
				}
				t.Logf("nats-server %s log (tail):\n%s", n.Name, b)
			}
		}
	})
	for _, n := range c.Nodes {
		if err := c.start(n); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitHealthy(t, 30*time.Second)
	return c
}

// NATSLogDirEnv names the environment variable that, set to a folder,
// runs every node at debug level (-D) and copies each node's log there
// when the test ends (<test>-<node>.log), for diagnosing a run by hand
// (a source's set-up and retries, interest over a leaf link).
const NATSLogDirEnv = "RADGATE_NATS_LOG_DIR"

// keepLogs copies every node's log into dir.
func (c *NATSCluster) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("keeping the nats-server logs: %v", err)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name())
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.log)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+"-"+n.Name+".log"), b, 0o644)
		}
		if err != nil {
			c.t.Logf("keeping the nats-server %s log: %v", n.Name, err)
		}
	}
}

func (c *NATSCluster) start(n *NATSNode) error {
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"-c", n.conf}
	if os.Getenv(NATSLogDirEnv) != "" {
		args = append(args, "-D") // debug: source set-up, interest, leaf links
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting nats-server %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	return nil
}

// stop kills the node's process by its PID and waits for it.
func (n *NATSNode) stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// ClientURLs is every node's client URL, comma separated (nats.url).
func (c *NATSCluster) ClientURLs() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.ClientURL())
	}
	return strings.Join(urls, ",")
}

// Node returns the node named name (n1, …), or nil.
func (c *NATSCluster) Node(name string) *NATSNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Kill9 kills node's process with SIGKILL (no shutdown, no flush) and
// waits for it to be gone.
func (c *NATSCluster) Kill9(n *NATSNode) {
	c.t.Helper()
	if !n.Running() {
		c.t.Fatalf("nats-server %s is not running", n.Name)
	}
	n.stop()
}

// Restart starts a killed node again on its ports and store, and waits
// until it reports healthy.
func (c *NATSCluster) Restart(n *NATSNode) {
	c.t.Helper()
	if n.Running() {
		c.t.Fatalf("nats-server %s is still running", n.Name)
	}
	if err := c.start(n); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := n.healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server %s not healthy 30 s after its restart: %v", n.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitHealthy waits until every running node answers /healthz (JetStream
// enabled and current with the meta leader, its streams current) and one
// of them names a meta leader.
func (c *NATSCluster) WaitHealthy(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := c.healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS cluster not healthy within %v: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *NATSCluster) healthy() error {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if err := n.healthy(); err != nil {
			return err
		}
	}
	if _, err := c.MetaLeader(); err != nil {
		return err
	}
	return nil
}

func (n *NATSNode) healthy() error {
	// The full check: JetStream enabled and current with the meta leader.
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.HTTP))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: /healthz answered %s", n.Name, resp.Status)
	}
	return nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// MetaLeader is the name of the JetStream meta leader as a running node's
// /jsz reports it.
func (c *NATSCluster) MetaLeader() (string, error) {
	var last error = errors.New("no node running")
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		var jsz struct {
			Meta *struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/jsz", n.HTTP), &jsz); err != nil {
			last = fmt.Errorf("%s /jsz: %w", n.Name, err)
			continue
		}
		if jsz.Meta == nil || jsz.Meta.Leader == "" {
			last = fmt.Errorf("%s: no meta leader", n.Name)
			continue
		}
		return jsz.Meta.Leader, nil
	}
	return "", last
}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// LeafConn is one leaf connection as a hub node's /leafz reports it.
type LeafConn struct {
	// Node is the hub node, Name the leaf server's name (an edge's domain).
	Node string `json:"-"`
	Name string `json:"name"`
	RTT  string `json:"rtt"`
	// InBytes are what the hub received from the leaf, OutBytes what it
	// sent, since the connection was made.
	InBytes  int64 `json:"in_bytes"`
	OutBytes int64 `json:"out_bytes"`
	InMsgs   int64 `json:"in_msgs"`
	OutMsgs  int64 `json:"out_msgs"`
}

// Leafz reads the leaf connections of every running node from its
// monitoring endpoint (/leafz).
func (c *NATSCluster) Leafz() ([]LeafConn, error) {
	var out []LeafConn
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		var lz struct {
			Leafs []LeafConn `json:"leafs"`
		}
		if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/leafz", n.HTTP), &lz); err != nil {
			return nil, fmt.Errorf("%s /leafz: %w", n.Name, err)
		}
		for _, l := range lz.Leafs {
			l.Node = n.Name
			out = append(out, l)
		}
	}
	return out, nil
}

// DescribeSources is one line on stream as js sees it, for a failing
// test's message: its message count and, of its first max sources (all
// when max ≤ 0), each one's filter, lag, last activity ("never": not
// heard from since it was set up) and error.
func DescribeSources(ctx context.Context, who string, js jetstream.JetStream, stream string, max int) string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Sprintf("%s %s: %v; ", who, stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Sprintf("%s %s: %v; ", who, stream, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d msgs", who, stream, info.State.Msgs)
	for i, si := range info.Sources {
		if max > 0 && i == max {
			fmt.Fprintf(&b, " … %d sources", len(info.Sources))
			break
		}
		// Active < 0: never heard from (no consumer at the origin has
		// answered since the source was set up or its leader took over).
		active := "never"
		if si.Active >= 0 {
			active = si.Active.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, " [source %s %s lag %d active %s err %v]", si.Name, si.FilterSubject, si.Lag, active, si.Error)
	}
	b.WriteString("; ")
	return b.String()
}
