package config

import "fmt"

// Runtime tunes the Go runtime that radgate serve runs on: its garbage
// collector. The GOGC and GOMEMLIMIT environment variables, when set, win
// over these (as Go documents them).
type Runtime struct {
	// GCPercent is Go's GOGC: between collections the heap may grow to
	// (1 + gc_percent/100) times what is live (default 400). Storing
	// pushed images allocates about twice each instance's size inside the
	// embedded NATS server; at Go's own 100 collections then cost about a
	// fifth of the CPU of a C-STORE (BENCHMARKS.md, issue 13, "Ingest,
	// continued"). The heap stays proportional to what is live; lower it
	// (at least 25) to trade CPU for memory.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimit is Go's GOMEMLIMIT: a soft bound on the memory the Go
	// runtime holds (heap and its own), nearing which it collects more
	// often whatever gc_percent says, e.g. 2GiB (default 0: none). It
	// does not bound memory outside Go's heap (ONNX Runtime's).
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// DefaultRuntime is the runtime section's defaults.
func DefaultRuntime() Runtime { return Runtime{GCPercent: 400} }

func validateRuntime(c *Config, bad func(path, msg string)) {
	if p := c.Runtime.GCPercent; p < 25 || p > 10000 {
		bad("runtime.gc_percent", fmt.Sprintf("%d: must be 25 to 10000 (Go's GOGC; collecting never is not offered: the heap would grow without bound)", p))
	}
	if m := c.Runtime.MemoryLimit; m != 0 && m < 64<<20 {
		bad("runtime.memory_limit", fmt.Sprintf("%s: must be 0 (none) or at least 64MiB", m))
	}
}
