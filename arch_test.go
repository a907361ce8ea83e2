package radgate_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/radgate/radgate"

// deps lists every package pkg links, by import path.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func imports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, module+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// The import rules ARCHITECTURE.md states.
func TestArchitectureImportRules(t *testing.T) {
	heavy := []string{"github.com/nats-io/nats-server", module + "/broker", module + "/pipeline", module + "/service", module + "/billing"}
	for _, leaf := range []string{"/report", "/derived", "/evaluation"} {
		for _, d := range deps(t, leaf) {
			for _, h := range heavy {
				if strings.HasPrefix(d, h) {
					t.Errorf("leaf package %s links %s", leaf, d)
				}
			}
		}
	}
	// ONNX Runtime is linked only through inference/onnx: the leaves and
	// inference itself (decoding, pixels, manifests, CAM) link none.
	for _, pkg := range []string{"/report", "/derived", "/evaluation", "/inference"} {
		for _, d := range deps(t, pkg) {
			if strings.Contains(d, "onnxruntime_go") {
				t.Errorf("package %s links ONNX Runtime (%s); only inference/onnx may", pkg, d)
			}
		}
	}
	for pkg, allowed := range map[string][]string{
		"":         {"/config"},
		"/config":  nil,
		"/routing": {"/config"},
		"/broker":  {"/config"},
		"/billing": {"/broker", "/config"},
		// governance: the pipeline asks it through pipeline.Governor, so
		// it never imports pipeline (nor the adapters: service writes its
		// AuditEvents).
		"/governance": {"", "/broker", "/config", "/evaluation", "/routing"},
		"/fhir":       {""},
		"/inference":  {"/inference/codec", "/dicomcs"},
		"/dicomcs":    nil,
		// console: pages over the read side; never service nor an adapter
		// but httpauth (it takes the pipeline through interfaces).
		"/console": {"", "/pipeline", "/governance", "/billing", "/broker", "/routing", "/config", "/adapters/httpauth"},
	} {
		for _, imp := range imports(t, pkg) {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || imp == module+a
			}
			if !ok {
				t.Errorf("package %q imports %s; ARCHITECTURE.md allows only %v", module+pkg, imp, allowed)
			}
		}
	}
}

// cmd/ only wires: flags, argument parsing and calls. Domain logic lives in
// the package that owns it, so no command file grows past 200 lines.
func TestCommandsOnlyWire(t *testing.T) {
	files, err := filepath.Glob("cmd/*/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no command files found: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) != "" {
				n++
			}
		}
		if n > 200 {
			t.Errorf("%s has %d non-blank lines: move its logic into the package that owns it", f, n)
		}
	}
}
