package service

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/radgate/radgate/config"
)

// ApplyRuntime sets GOGC and GOMEMLIMIT from radgate.yaml, unless the
// environment sets them.
func TestApplyRuntimeSetsTheCollectorUnlessTheEnvironmentDoes(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")

	ApplyRuntime(config.Runtime{GCPercent: 400, MemoryLimit: 3 << 30}, nil)
	assert.Equal(t, 400, debug.SetGCPercent(100), "gc_percent applied")
	assert.Equal(t, int64(3<<30), debug.SetMemoryLimit(-1), "memory_limit applied")

	debug.SetMemoryLimit(1 << 40)
	ApplyRuntime(config.DefaultRuntime(), nil)
	assert.Equal(t, 400, debug.SetGCPercent(100), "the default gc_percent")
	assert.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1), "memory_limit 0 leaves the limit as it was")

	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	ApplyRuntime(config.Runtime{GCPercent: 800, MemoryLimit: 3 << 30}, nil)
	assert.Equal(t, 100, debug.SetGCPercent(100), "GOGC wins: left alone")
	assert.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1), "GOMEMLIMIT wins: left alone")
}
