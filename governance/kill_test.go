package governance

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/broker/brokertest"
)

// recorderEnv makes this test binary a verdict sender's radgate: it records
// the verdicts of killOrders orders on the NATS server at its value, one
// line per verdict recorded, until it is killed.
const recorderEnv = "RADGATE_TEST_GOVERNANCE_RECORDER"

const killOrders = 150

func TestMain(m *testing.M) {
	if url := os.Getenv(recorderEnv); url != "" {
		if err := recordAll(context.Background(), url, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func killVerdict(i int) radgate.Verdict {
	finding := radgate.FindingAbsent
	if i%3 == 0 {
		finding = radgate.FindingPresent
	}
	n := strconv.Itoa(i)
	return radgate.Verdict{Source: radgate.SourceHL7v2, ReadID: "ORU-" + n, Accession: &radgate.Identifier{System: "urn:acc", Value: "ACC-" + n},
		Finding: finding, ReceivedAt: time.Now()}
}

// recordAll records every verdict, as a sender retrying until acknowledged
// would, printing the number of each one recorded.
func recordAll(ctx context.Context, url string, out *os.File) error {
	nc, err := broker.Connect(url, "", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo, err := broker.BindTopology(ctx, js)
	if err != nil {
		return err
	}
	l := New(Options{Topology: topo}).Labels()
	for i := range killOrders {
		if _, err := l.Record(ctx, killVerdict(i)); err != nil {
			return err
		}
		fmt.Fprintln(out, i)
	}
	return nil
}

// kill -9 while verdicts are recorded, then the senders' retries of every
// verdict: each result labelled once, none lost, none counted twice.
func TestKill9WhileVerdictsAreRecorded(t *testing.T) {
	nc, topo := brokertest.Topology(t)
	g := New(Options{Topology: topo})
	ctx := t.Context()
	for i := range killOrders {
		st := order("x" + strconv.Itoa(i))
		st.Accession.Value = "ACC-" + strconv.Itoa(i)
		for _, e := range []string{"eng", "eng2"} {
			r := radgate.Result{ID: st.ID + e, Order: st, Engine: radgate.EngineInfo{ID: e, Version: "1.0"}, Outcome: radgate.OutcomeScored,
				Probability: float64(i%10) / 10, Tier: "Low"}
			require.NoError(t, g.Measure(ctx, r, radgate.EngineShadow))
		}
	}

	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), recorderEnv+"="+nc.ConnectedUrl())
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	seen := 0
	for lines.Scan() {
		if seen++; seen == killOrders/3 {
			break
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.Equal(t, killOrders/3, seen, "the recorder was killed part way")

	dup, created := 0, 0
	for i := range killOrders {
		rc, err := g.Labels().Record(ctx, killVerdict(i))
		require.NoError(t, err)
		require.Len(t, rc.Engines, 2)
		if rc.Duplicate {
			dup++
		} else {
			created++
		}
		require.False(t, rc.Replaced, "verdict %d", i)
	}
	require.GreaterOrEqual(t, dup, killOrders/3, "what was recorded before the kill is recognised")
	require.Greater(t, created, 0)
	for _, e := range []string{"eng", "eng2"} {
		ev, err := g.Evaluate(ctx, Key{Facility: "adult-clinic", Route: "adult-chest", Engine: e, Version: "1.0"}, radgate.Acceptance{MinCases: 1})
		require.NoError(t, err)
		require.Equal(t, killOrders, ev.Labelled, "engine %s: every result labelled once", e)
		require.Equal(t, killOrders/3, ev.Positives)
	}
}
