package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv names the environment variable that points at the ONNX Runtime
// shared library.
const LibraryEnv = "RADGATE_ONNXRUNTIME_LIB"

// InstalledLibrary is where the project's set-up script installs the ONNX
// Runtime shared library, relative to the repository root (git-ignored).
const InstalledLibrary = ".tools/onnxruntime/lib/libonnxruntime.so"

// ErrLibraryNotFound is wrapped by FindLibrary's error when no candidate exists.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// FindLibrary returns the ONNX Runtime shared library to load, trying in
// order: (1) configured (the config's inference.onnxruntime_library, or a
// --onnxruntime-lib flag), (2) $RADGATE_ONNXRUNTIME_LIB, (3) InstalledLibrary
// relative to the working directory, then relative to the parent of the
// executable's directory (bin/radgate → the repository root). The first that
// exists wins; when none does, the error names all three places and why each
// failed.
func FindLibrary(configured string) (string, error) {
	var tried []string
	try := func(what, p string) (string, bool) {
		if p == "" {
			tried = append(tried, what+": not set")
			return "", false
		}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			tried = append(tried, fmt.Sprintf("%s: %s does not exist", what, p))
			return "", false
		case st.IsDir():
			tried = append(tried, fmt.Sprintf("%s: %s is a directory", what, p))
			return "", false
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p, true
	}
	if p, ok := try("(1) configured path (config inference.onnxruntime_library, or --onnxruntime-lib)", configured); ok {
		return p, nil
	}
	if p, ok := try("(2) $"+LibraryEnv, os.Getenv(LibraryEnv)); ok {
		return p, nil
	}
	if p, ok := try("(3) set-up script install path, from the working directory", InstalledLibrary); ok {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		root := filepath.Dir(filepath.Dir(exe))
		if p, ok := try("(3) set-up script install path, beside the executable", filepath.Join(root, InstalledLibrary)); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w; looked in:\n  %s\n(run the set-up script, or set %s)",
		ErrLibraryNotFound, strings.Join(tried, "\n  "), LibraryEnv)
}

var runtimeState struct {
	mu   sync.Mutex
	path string // the library the environment was initialised with
}

// InitRuntime loads the ONNX Runtime shared library and initialises its
// environment, once per process. Calling it again with the same path is a
// no-op; with a different path it is an error (one process holds one
// runtime). A failed initialisation may be retried.
func InitRuntime(libPath string) error {
	if libPath == "" {
		return errors.New("InitRuntime: empty ONNX Runtime library path")
	}
	if abs, err := filepath.Abs(libPath); err == nil {
		libPath = abs
	}
	if real, err := filepath.EvalSymlinks(libPath); err == nil {
		libPath = real // a symlink and its target are the same library
	}
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path != "" {
		if runtimeState.path != libPath {
			return fmt.Errorf("ONNX Runtime already initialised from %s; cannot switch to %s in the same process",
				runtimeState.path, libPath)
		}
		return nil
	}
	if _, err := os.Stat(libPath); err != nil {
		return fmt.Errorf("ONNX Runtime library: %w", err)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", libPath, err)
	}
	runtimeState.path = libPath
	return nil
}

// RuntimeVersion returns the loaded ONNX Runtime's version, or "" before
// InitRuntime succeeded.
func RuntimeVersion() string {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path == "" {
		return ""
	}
	return ort.GetVersion()
}
