package pipeline

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/radgate/radgate"
)

var (
	transitionsMu   sync.Mutex
	transitionsSeen = map[[2]radgate.OrderState]bool{}
)

// TestMain checks, when the whole package's tests ran and passed, that
// they took every row of radgate.Transitions at least once: each
// transition of the state machine is exercised by some test.
func TestMain(m *testing.M) {
	observeTransition = func(from, to radgate.OrderState) {
		transitionsMu.Lock()
		transitionsSeen[[2]radgate.OrderState{from, to}] = true
		transitionsMu.Unlock()
	}
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		var missing []string
		for _, tr := range radgate.Transitions {
			if !transitionsSeen[[2]radgate.OrderState{tr.From, tr.To}] {
				missing = append(missing, fmt.Sprintf("%q → %q (%s)", tr.From, tr.To, tr.On))
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: no test of package pipeline takes these rows of radgate.Transitions:\n")
			for _, m := range missing {
				fmt.Fprintln(os.Stderr, "  ", m)
			}
			code = 1
		}
	}
	os.Exit(code)
}
