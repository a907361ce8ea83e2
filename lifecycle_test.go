package radgate

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ARCHITECTURE.md's table of the order state machine is Transitions, row
// for row.
func TestTransitionsMatchArchitecture(t *testing.T) {
	b, err := os.ReadFile("ARCHITECTURE.md")
	require.NoError(t, err)
	doc := string(b)
	begin, end := strings.Index(doc, "<!-- transitions:begin -->"), strings.Index(doc, "<!-- transitions:end -->")
	require.True(t, begin > 0 && end > begin, "ARCHITECTURE.md has the transitions table")
	var want []string
	want = append(want, "| from | to | on |", "|---|---|---|")
	for _, tr := range Transitions {
		want = append(want, strings.TrimSpace(fmt.Sprintf("| %s | %s | %s |", tr.From, tr.To, tr.On)))
	}
	var got []string
	for _, l := range strings.Split(doc[begin:end], "\n")[1:] {
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, strings.ReplaceAll(l, "|  |", "| |"))
		}
	}
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], "|  |", "| |")
	}
	require.Equal(t, want, got)
}

func TestTransitionTable(t *testing.T) {
	seen := map[[2]OrderState]bool{}
	for _, tr := range Transitions {
		k := [2]OrderState{tr.From, tr.To}
		require.False(t, seen[k], "one row per pair: %s → %s", tr.From, tr.To)
		seen[k] = true
		require.NotEqual(t, tr.From, tr.To)
		require.NotEmpty(t, tr.On)
		require.Equal(t, tr.On, TransitionEvent(tr.From, tr.To))
	}
	require.True(t, CanTransition(StateWaiting, StateWaiting), "staying is always allowed")
	require.False(t, CanTransition(StateCancelled, StateRouted), "cancelled is final (but for retracting a delivery that raced the cancellation)")
	require.False(t, CanTransition(StateDelivered, StateWaiting))
	// Every state can be left and reached.
	for _, s := range []OrderState{StateReceived, StateWaiting, StateStabilising, StateRouted, StateScored,
		StateDelivered, StateRejected, StateFailed, StateRetracting, StateCancelled} {
		from, to := false, false
		for _, tr := range Transitions {
			from = from || tr.From == s
			to = to || tr.To == s
		}
		require.True(t, to, "%s is reachable", s)
		require.True(t, from, "%s can be left", s)
	}
}
