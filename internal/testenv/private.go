package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PrivateFHIR is a FHIR test server started for one test, on a free port
// of 127.0.0.1, stopped when the test ends.
type PrivateFHIR struct {
	// URL is the FHIR base, http://127.0.0.1:<port>/fhir/R4.
	URL string
	// Origin is http://127.0.0.1:<port>.
	Origin string
	// Cmd is the running node process (tests pause it with SIGSTOP).
	Cmd *exec.Cmd
}

// StartFHIR starts a private instance of the FHIR test server
// (testenv/fhir-server/server.js) with extra environment variables, for a
// test that needs a second server or one it may pause. It needs the same
// set-up as the shared one (FHIR skips or fails the test without it).
func StartFHIR(t testing.TB, env ...string) PrivateFHIR {
	t.Helper()
	FHIR(t)
	js := filepath.Join(RepoRoot(), "testenv", "fhir-server", "server.js")
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	cmd := exec.Command("node", js, "--host", "127.0.0.1", "--port", "0", "--port-file", portFile)
	cmd.Env = append(os.Environ(), env...)
	logs := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a private FHIR server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // in case a test left it paused
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("private FHIR server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(90 * time.Second) // loading the R4 definitions is slow on a loaded machine
	for {
		if b, err := os.ReadFile(portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			port, err := strconv.Atoi(string(bytes.TrimSpace(b)))
			if err != nil {
				t.Fatalf("private FHIR server wrote port %q", b)
			}
			origin := "http://127.0.0.1:" + strconv.Itoa(port)
			return PrivateFHIR{URL: origin + "/fhir/R4", Origin: origin, Cmd: cmd}
		}
		if time.Now().After(deadline) {
			t.Fatalf("private FHIR server not ready in 90 s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LogBuffer is a log sink tests read while servers write to it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
