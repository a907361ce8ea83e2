package onnx

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	configured := filepath.Join(dir, "configured.so")
	fromEnv := filepath.Join(dir, "env.so")
	for _, p := range []string{configured, fromEnv} {
		require.NoError(t, os.WriteFile(p, nil, 0o644))
	}
	cwd := t.TempDir()
	installed := filepath.Join(cwd, InstalledLibrary)
	require.NoError(t, os.MkdirAll(filepath.Dir(installed), 0o755))
	require.NoError(t, os.WriteFile(installed, nil, 0o644))
	t.Chdir(cwd)

	for _, tc := range []struct {
		name, configured, env, want string
	}{
		{"configured first", configured, fromEnv, configured},
		{"then the environment", "", fromEnv, fromEnv},
		{"a configured path that does not exist falls through", filepath.Join(dir, "nope.so"), fromEnv, fromEnv},
		{"then the set-up script's path from the working directory", "", "", installed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(LibraryEnv, tc.env)
			got, err := FindLibrary(tc.configured)
			require.NoError(t, err)
			want, _ := filepath.EvalSymlinks(tc.want)
			got, _ = filepath.EvalSymlinks(got)
			require.Equal(t, want, got)
		})
	}
	t.Run("none: the error names all three places", func(t *testing.T) {
		t.Chdir(t.TempDir())
		t.Setenv(LibraryEnv, filepath.Join(dir, "missing-env.so"))
		_, err := FindLibrary(filepath.Join(dir, "missing-config.so"))
		require.ErrorIs(t, err, ErrLibraryNotFound)
		for _, s := range []string{
			"(1) configured path (config inference.onnxruntime_library, or --onnxruntime-lib): " + filepath.Join(dir, "missing-config.so") + " does not exist",
			"(2) $RADGATE_ONNXRUNTIME_LIB: " + filepath.Join(dir, "missing-env.so") + " does not exist",
			"(3) set-up script install path, from the working directory: " + InstalledLibrary + " does not exist",
			"(3) set-up script install path, beside the executable",
		} {
			require.ErrorContains(t, err, s)
		}
	})
}

func TestInitRuntimeOnce(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	require.NoError(t, InitRuntime(lib))
	require.NoError(t, InitRuntime(lib), "same path again is a no-op")
	require.NotEmpty(t, RuntimeVersion())
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	require.NoError(t, os.WriteFile(other, nil, 0o644))
	err := InitRuntime(other)
	require.ErrorContains(t, err, "already initialised from")
	require.ErrorContains(t, err, "cannot switch to "+other)
}

func TestEngineConcurrentAndClose(t *testing.T) {
	e := newTestEngine(t, inference.DefaultEngineID)
	dir := testenv.Testdata("pneumoniamnist-val-dicom")
	var imgs []*inference.Image
	for _, f := range []string{"PMV0000.dcm", "PMV0002.dcm", "PMV0003.dcm", "PMV0005.dcm"} {
		img, err := inference.DecodeFile(filepath.Join(dir, f))
		require.NoError(t, err)
		imgs = append(imgs, img)
	}
	want, err := e.Score(t.Context(), imgs)
	require.NoError(t, err)
	require.Len(t, want, 4)
	for i, r := range want {
		require.Equal(t, inference.DefaultEngineID, r.EngineID)
		require.Equal(t, "1.0.0", r.EngineVersion)
		require.Len(t, r.CAM, 49)
		require.Equal(t, 28, r.SourceWidth)
		require.Equal(t, imgs[i].Width, r.Crop.Dx())
	}

	// The same session serves concurrent callers, one image each, and
	// batching does not change a score.
	var wg sync.WaitGroup
	got := make([][]inference.Result, 8)
	errs := make([]error, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g], errs[g] = e.Score(t.Context(), imgs[g%4:g%4+1])
		}()
	}
	wg.Wait()
	for g := range got {
		require.NoError(t, errs[g])
		require.InDelta(t, want[g%4].Probability, got[g][0].Probability, 1e-5)
	}

	require.NoError(t, e.Close())
	require.NoError(t, e.Close(), "Close is idempotent")
	_, err = e.Score(t.Context(), imgs)
	require.ErrorIs(t, err, ErrEngineClosed)
}

func TestEngineChecksum(t *testing.T) {
	m := *loadTestManifest(t, inference.DefaultEngineID)
	m.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
	_, err := NewEngine(&m, EngineOptions{Library: testenv.ONNXRuntimeLib(t)})
	require.ErrorContains(t, err, "has sha256 408df46a9b2fcd0d88ccfbe9e00ac9536b3fa20f9235d2342e00d2960c7bcff3")
}

func TestEngineRejectsBadImage(t *testing.T) {
	e := newTestEngine(t, inference.DefaultEngineID)
	_, err := e.Score(t.Context(), []*inference.Image{{Width: 2, Height: 2, Pixels: []float32{1}}})
	require.ErrorContains(t, err, "inconsistent image")
}

// The threading options reach the session: spinning is a session config
// entry in both pools, "0" unless asked for.
func TestSessionOptionsSpinning(t *testing.T) {
	require.NoError(t, InitRuntime(testenv.ONNXRuntimeLib(t)))
	for _, tc := range []struct {
		opts EngineOptions
		want string
	}{
		{EngineOptions{}, "0"},
		{EngineOptions{Threads: 1}, "0"},
		{EngineOptions{Threads: 2, Spinning: true}, "1"},
	} {
		so, err := sessionOptions(tc.opts)
		require.NoError(t, err)
		for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			got, err := so.GetSessionConfigEntry(key)
			require.NoError(t, err, key)
			require.Equal(t, tc.want, got, "%s with %+v", key, tc.opts)
		}
		require.NoError(t, so.Destroy())
	}
	_, err := sessionOptions(EngineOptions{Threads: -1})
	require.ErrorContains(t, err, "-1 intra-op threads")
}

// serve's options come from the config's inference section.
func TestOptionsFromConfig(t *testing.T) {
	lib := testenv.ONNXRuntimeLib(t)
	opts, err := OptionsFromConfig(config.Inference{ONNXRuntimeLibrary: lib})
	require.NoError(t, err)
	want, _ := filepath.Abs(lib)
	require.Equal(t, EngineOptions{Library: want, Threads: config.DefaultInferenceThreads}, opts)

	opts, err = OptionsFromConfig(config.Inference{ONNXRuntimeLibrary: lib, Threads: 2, Spinning: true})
	require.NoError(t, err)
	require.Equal(t, 2, opts.Threads)
	require.True(t, opts.Spinning)

	t.Chdir(t.TempDir())
	t.Setenv(LibraryEnv, "")
	_, err = OptionsFromConfig(config.Inference{ONNXRuntimeLibrary: filepath.Join(t.TempDir(), "missing.so")})
	require.ErrorIs(t, err, ErrLibraryNotFound)
}
