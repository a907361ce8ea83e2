package testenv

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Dciodvfy checks data (a DICOM Part 10 file) against its IOD with
// dicom3tools' dciodvfy and fails t listing every "Error -" line, naming
// the object by what. It returns the IOD dciodvfy recognised (its first
// line that is neither an error nor a warning, e.g. "SCImage") and the
// warnings. Without dciodvfy on PATH the test is skipped, or fails under
// RADGATE_REQUIRE_PEERS=1 (testenv/setup.sh installs the Debian package
// dicom3tools).
func Dciodvfy(t testing.TB, what string, data []byte) (iod string, warnings []string) {
	t.Helper()
	p, err := exec.LookPath("dciodvfy")
	if err != nil {
		msg := "dciodvfy (dicom3tools) not on PATH: install it with testenv/setup.sh"
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f := filepath.Join(t.TempDir(), "dciodvfy.dcm")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(p, f)
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var errs []string
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.HasPrefix(l, "Error - "):
			errs = append(errs, l)
		case strings.HasPrefix(l, "Warning - "):
			warnings = append(warnings, l)
		case iod == "":
			iod = l
		}
	}
	var exit *exec.ExitError
	switch {
	case len(errs) > 0:
		t.Fatalf("dciodvfy: %s (%s) has %d error(s):\n%s", what, iod, len(errs), strings.Join(errs, "\n"))
	case runErr != nil && !errors.As(runErr, &exit):
		t.Fatalf("dciodvfy: running it on %s: %v", what, runErr)
	case runErr != nil:
		t.Fatalf("dciodvfy: %s: exit status %d without an Error line:\n%s", what, exit.ExitCode(), out.String())
	}
	return iod, warnings
}
