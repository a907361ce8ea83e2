package service

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/radgate/radgate/config"
)

// ApplyRuntime sets the Go garbage collector from radgate.yaml's runtime
// section (radgate serve calls it once, at start): gc_percent as GOGC and,
// when set, memory_limit as GOMEMLIMIT. Either environment variable, when
// set, wins over its setting, which is then left alone.
func ApplyRuntime(r config.Runtime, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "serve")
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("runtime.gc_percent not applied: GOGC is set", "GOGC", v)
	} else {
		debug.SetGCPercent(r.GCPercent)
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		if r.MemoryLimit != 0 {
			log.Info("runtime.memory_limit not applied: GOMEMLIMIT is set", "GOMEMLIMIT", v)
		}
	} else if r.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(r.MemoryLimit))
	}
}
