package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/radgate/radgate/config"
)

// passwordEnv is the environment variable through which the child gets the
// PACS password (never written into its configuration file).
const passwordEnv = "RADGATE_BENCH_PACS_PASSWORD"

// serveConfig is radgate's configuration for the bench: the peers from o,
// a private embedded NATS on a free port, its data in dataDir, retries
// after 50 ms, and no per-client order rate limit.
func serveConfig(o Options, dataDir string) config.Config {
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.ModelsDir = "127.0.0.1:0", dataDir, o.ModelsDir
	cfg.NATS.EmbeddedListen = "127.0.0.1:-1" // a private broker: never collide with a running serve
	cfg.Inference.ONNXRuntimeLibrary = o.Library
	cfg.PACS.DICOMwebURL, cfg.PACS.Username = o.Orthanc+"/dicom-web", o.User
	cfg.PACS.PasswordEnv = passwordEnv
	cfg.FHIR.BaseURL = o.FHIR
	cfg.FHIR.PDFReport = o.PDFReport
	cfg.Orders.RetryMin = config.Duration(50 * time.Millisecond)
	// The bench is one client posting as fast as it can: the per-client rate
	// limit (a policy, not a cost) would measure itself instead of radgate.
	cfg.HTTP.Limits.OrdersPerSecond = 0
	return cfg
}

// writeConfig writes cfg as radgate.yaml at path, after checking that the
// file loads as radgate serve will load it.
func writeConfig(cfg config.Config, path string) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("writing radgate's configuration: %w", err)
	}
	if _, err := config.Load(path, b); err != nil {
		return fmt.Errorf("the configuration the bench wrote does not load: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// child is radgate serve running as a child process: its CPU time and
// memory are radgate's alone (embedded NATS included, the bench excluded).
type child struct {
	cmd  *exec.Cmd
	URL  string // the intake, http://host:port
	log  string // its stdout and stderr
	done chan struct{}
	err  error // once done: how it exited
}

var servingRE = regexp.MustCompile(`msg="radgate serving".* listen=(\S+)`)

// startChild runs `exe serve --config cfgPath [--cpuprofile F]
// [--memprofile F]` with env added to the environment, its output in
// dir/radgate.log, and waits until it serves.
func startChild(ctx context.Context, exe, cfgPath, cpuProfile, memProfile, dir string, env []string) (*child, error) {
	c := &child{log: filepath.Join(dir, "radgate.log"), done: make(chan struct{})}
	out, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	args := []string{"serve", "--config", cfgPath}
	if cpuProfile != "" {
		args = append(args, "--cpuprofile", cpuProfile)
	}
	if memProfile != "" {
		args = append(args, "--memprofile", memProfile)
	}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting radgate serve (%s): %w", exe, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(3 * time.Minute) // engines load slowly on a busy machine
	for {
		b, _ := os.ReadFile(c.log)
		if m := servingRE.FindSubmatch(b); m != nil {
			c.URL = "http://" + string(m[1])
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("radgate serve exited before serving (%v); its log ends:\n%s", c.err, c.tail())
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.kill()
			return nil, fmt.Errorf("radgate serve not serving after 3 minutes; its log ends:\n%s", c.tail())
		}
	}
}

// Pid is the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// CPU is the child's CPU time so far.
func (c *child) CPU() (time.Duration, error) { return procCPU(c.Pid()) }

// RSS is the child's resident memory now, in bytes.
func (c *child) RSS() (int64, error) { return procRSS(c.Pid()) }

// stop sends SIGTERM and waits for a clean exit (radgate drains its stages
// and writes the CPU profile); past limit it kills the child. A child that
// exits other than cleanly is an error carrying the tail of its log.
func (c *child) stop(limit time.Duration) error {
	select {
	case <-c.done:
		return c.exitErr("radgate serve had already exited")
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.done:
		return c.exitErr("radgate serve did not stop cleanly")
	case <-time.After(limit):
		c.kill()
		return fmt.Errorf("radgate serve did not stop within %s of SIGTERM (killed); its log ends:\n%s", limit, c.tail())
	}
}

func (c *child) exitErr(what string) error {
	if c.err == nil {
		return nil
	}
	return fmt.Errorf("%s (%v); its log ends:\n%s", what, c.err, c.tail())
}

// kill ends the child at once and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// tail is the end of the child's log.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	const n = 4000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
