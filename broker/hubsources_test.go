package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate/internal/testenv"
)

// hubSources are the facilities RADGATE_JOBS sources, from the stream's
// configuration, and the recorded set.
func hubSources(t *testing.T, js jetstream.JetStream) (stream, recorded []string) {
	t.Helper()
	stream, err := streamHubSources(t.Context(), js)
	require.NoError(t, err)
	kv, err := js.KeyValue(t.Context(), BucketMeta)
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), KeyHubSources)
	require.NoError(t, err)
	var rec HubSourcesRecord
	require.NoError(t, json.Unmarshal(e.Value(), &rec))
	return stream, rec.Facilities
}

// Several hub processes declaring their sources at once, with overlapping
// facility lists, while others (re)declare radgate's topology, converge on
// a real three-node cluster: every facility any of them named is sourced,
// once, and a source declared before the record existed is kept. A
// declarer with fewer facilities drops none; only a prune removes.
func TestHubSourcesConcurrentDeclarers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := testenv.StartNATSCluster(t, 3)
	cl := Cluster{Replicas: 3, PublishRetry: 30 * time.Second}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// Each declarer on its own connection, as separate processes are.
	const declarers = 6
	js := make([]jetstream.JetStream, declarers+1)
	for i := range js {
		nc, err := Connect(c.ClientURLs(), "", nil)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		topo, err := EnsureTopologyOn(ctx, nc, DefaultRetention(), cl)
		require.NoError(t, err)
		js[i] = topo.JS
	}
	// An operator's source from before the record (an older radgate sites
	// sources): kept.
	require.NoError(t, setSources(ctx, js[0], StreamJobs, []*jetstream.StreamSource{HubJobsSource("legacy")}, isHubJobsSource))

	want := []string{"legacy"}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 2*declarers)
		for i := range declarers {
			// Declarer i names facilities i and i+1 of the round, and one
			// every declarer names.
			list := []string{fmt.Sprintf("r%d-f%d", round, i), fmt.Sprintf("r%d-f%d", round, i+1), fmt.Sprintf("r%d-shared", round)}
			wg.Add(2)
			go func() {
				defer wg.Done()
				errs <- EnsureHubSources(ctx, js[i], list)
			}()
			// Meanwhile radgate's topology is declared again (a hub
			// process starting, radgate check): its stream update writes
			// the sources it read.
			go func() {
				defer wg.Done()
				_, err := EnsureTopologyOn(ctx, js[declarers].Conn(), DefaultRetention(), cl)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for i := range declarers + 1 {
			want = append(want, fmt.Sprintf("r%d-f%d", round, i))
		}
		want = facilityTokens(append(want, fmt.Sprintf("r%d-shared", round)))
		stream, recorded := hubSources(t, js[0])
		require.Equal(t, want, stream, "round %d: RADGATE_JOBS's sources", round)
		require.Equal(t, want, recorded, "round %d: the recorded set", round)
	}

	// Fewer facilities: nothing dropped, nothing changed.
	ch, err := DeclareHubSources(ctx, js[1], []string{"r0-f0"}, false)
	require.NoError(t, err)
	require.Empty(t, ch.Added)
	require.Empty(t, ch.Removed)
	require.Equal(t, want, ch.Facilities)
	stream, _ := hubSources(t, js[0])
	require.Equal(t, want, stream)

	// A prune makes the list exact, and the next topology declaration
	// keeps it so.
	ch, err = DeclareHubSources(ctx, js[2], []string{"legacy", "r2-shared"}, true)
	require.NoError(t, err)
	require.Equal(t, []string{"legacy", "r2-shared"}, ch.Facilities)
	require.Len(t, ch.Removed, len(want)-2)
	_, err = EnsureTopologyOn(ctx, js[3].Conn(), DefaultRetention(), cl)
	require.NoError(t, err)
	stream, recorded := hubSources(t, js[0])
	require.Equal(t, []string{"legacy", "r2-shared"}, stream)
	require.Equal(t, []string{"legacy", "r2-shared"}, recorded)
}

// A topology update that lost a hub source (written from what it read
// before the source was declared) gets it back from the record at its
// end; on a NATS where no hub source was ever declared, nothing is
// recorded.
func TestTopologyReappliesHubSources(t *testing.T) {
	nc := startNATS(t)
	topo, err := EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	kv, err := topo.JS.KeyValue(t.Context(), BucketMeta)
	require.NoError(t, err)
	_, err = kv.Get(t.Context(), KeyHubSources)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "a record without a hub source")

	require.NoError(t, EnsureHubSources(t.Context(), topo.JS, []string{"a", "b"}))
	// The lost update: the stream written without the sources.
	require.NoError(t, setSources(t.Context(), topo.JS, StreamJobs, nil, isHubJobsSource))
	stream, _ := hubSources(t, topo.JS)
	require.Empty(t, stream)
	_, err = EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	stream, recorded := hubSources(t, topo.JS)
	require.Equal(t, []string{"a", "b"}, stream)
	require.Equal(t, []string{"a", "b"}, recorded)
}

// The interleaving that loses a source without the check: declarer A
// records {a} and is slow to apply it; B records {a, b}, applies it and is
// done; A's stream update then writes {a}. A's check finds the record
// changed, and A applies the recorded set again: b is kept.
func TestHubSourcesSlowDeclarer(t *testing.T) {
	nc := startNATS(t)
	topo, err := EnsureTopology(t.Context(), nc)
	require.NoError(t, err)
	recorded, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testBeforeApply = func(next []string) {
		if len(next) == 1 && next[0] == "a" {
			once.Do(func() {
				close(recorded)
				<-resume
			})
		}
	}
	t.Cleanup(func() { testBeforeApply = nil })
	done := make(chan error, 1)
	go func() { done <- EnsureHubSources(t.Context(), topo.JS, []string{"a"}) }()
	<-recorded
	require.NoError(t, EnsureHubSources(t.Context(), topo.JS, []string{"b"}))
	stream, _ := hubSources(t, topo.JS)
	require.Equal(t, []string{"a", "b"}, stream)
	close(resume)
	require.NoError(t, <-done)
	stream, rec := hubSources(t, topo.JS)
	require.Equal(t, []string{"a", "b"}, stream, "B's source lost to A's late update")
	require.Equal(t, []string{"a", "b"}, rec)
}
