package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The hub's sources of the edges' jobs (HubJobsSource, one per facility)
// are declared by every hub radgate serve from its facility list and by
// radgate sites sources, possibly several at once with different lists
// (a hub process started before a facility was added to the others'
// configuration). A stream's configuration has no revision to update it
// against, so the facilities sourced are kept in BucketMeta, key
// KeyHubSources, and changed there with the KV's compare-and-set: a
// declarer adds its facilities to the recorded set at the revision it read
// (retrying on a conflict), sets RADGATE_JOBS's sources to that set, then
// writes the same set again at the revision it wrote. That last write
// fails if anyone changed the set meanwhile, and the declarer starts over;
// so the last stream update of all is always of the last recorded set,
// which holds every facility any declarer added: concurrent declarers
// converge and none drops another's source. Only an explicit prune
// (radgate sites sources --prune) removes one.

// KeyHubSources is the key, in BucketMeta, of the facilities whose edges
// the hub's RADGATE_JOBS sources (HubSourcesRecord).
const KeyHubSources = "hub_sources"

// HubSourcesRecord is the value of KeyHubSources.
type HubSourcesRecord struct {
	// Facilities are the facilities' subject tokens, sorted.
	Facilities []string `json:"facilities"`
}

// HubSourcesChange is what DeclareHubSources did.
type HubSourcesChange struct {
	// Facilities are the facilities (subject tokens, sorted) whose edges
	// RADGATE_JOBS sources now.
	Facilities []string
	// Added and Removed are the facilities this call added to the recorded
	// set and removed from it (sorted).
	Added, Removed []string
}

// EnsureHubSources makes the hub's RADGATE_JOBS source the edges of
// facilities besides those it already sources (DeclareHubSources without
// prune). Idempotent.
func EnsureHubSources(ctx context.Context, js jetstream.JetStream, facilities []string) error {
	_, err := DeclareHubSources(ctx, js, facilities, false)
	return err
}

// DeclareHubSources adds a source of each facility's edge to the hub's
// RADGATE_JOBS (one per facility subject token; HubJobsSource), keeping
// the sources other declarers recorded — or, with prune, makes the
// sourced facilities exactly these. It keeps the stream's sources of
// other streams. Concurrent calls converge (see KeyHubSources). The first
// call on a hub whose sources were declared before the record existed
// takes those in. radgate's topology (BucketMeta, RADGATE_JOBS) must
// exist.
func DeclareHubSources(ctx context.Context, js jetstream.JetStream, facilities []string, prune bool) (HubSourcesChange, error) {
	var ch HubSourcesChange
	kv, err := js.KeyValue(ctx, BucketMeta)
	if err != nil {
		return ch, fmt.Errorf("bucket %s (radgate serve declares it at start): %w", BucketMeta, err)
	}
	want := facilityTokens(facilities)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Another declarer changed the set: start over after a
			// moment, at a random offset so that declarers started
			// together do not keep meeting.
			wait := time.Duration(min(attempt, 10)) * time.Duration(20+rand.IntN(80)) * time.Millisecond
			select {
			case <-ctx.Done():
				return ch, fmt.Errorf("declaring the hub's sources: %w", ctx.Err())
			case <-time.After(wait):
			}
		}
		var have []string
		var rev uint64
		e, err := kv.Get(ctx, KeyHubSources)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if len(want) == 0 && !prune {
				return ch, nil // nothing recorded, nothing to add
			}
			// Sources declared before the record (an older radgate
			// sites sources) are taken in.
			if have, err = streamHubSources(ctx, js); err != nil {
				return ch, err
			}
		case err != nil:
			return ch, fmt.Errorf("reading %s %s: %w", BucketMeta, KeyHubSources, err)
		default:
			var rec HubSourcesRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return ch, fmt.Errorf("%s %s holds %q, not the hub's sources: %w", BucketMeta, KeyHubSources, e.Value(), err)
			}
			have, rev = rec.Facilities, e.Revision()
		}
		next := want
		if !prune {
			next = facilityTokens(append(slices.Clone(have), want...))
		}
		value, _ := json.Marshal(HubSourcesRecord{Facilities: next})
		if rev == 0 {
			rev, err = kv.Create(ctx, KeyHubSources, value)
		} else if !slices.Equal(next, have) {
			rev, err = kv.Update(ctx, KeyHubSources, value, rev)
		}
		if isRevisionConflict(err) {
			continue
		} else if err != nil {
			return ch, fmt.Errorf("recording the hub's sources in %s: %w", BucketMeta, err)
		}
		if testBeforeApply != nil {
			testBeforeApply(next)
		}
		srcs := make([]*jetstream.StreamSource, len(next))
		for i, f := range next {
			srcs[i] = HubJobsSource(f)
		}
		if err := setSources(ctx, js, StreamJobs, srcs, isHubJobsSource); err != nil {
			return ch, err
		}
		// The check: the set is still the one just applied.
		if _, err := kv.Update(ctx, KeyHubSources, value, rev); isRevisionConflict(err) {
			continue
		} else if err != nil {
			return ch, fmt.Errorf("recording the hub's sources in %s: %w", BucketMeta, err)
		}
		ch.Facilities = next
		ch.Added, ch.Removed = difference(next, have), difference(have, next)
		return ch, nil
	}
}

// testBeforeApply, when set (tests), is called with the set about to be
// applied to the stream, after it was recorded.
var testBeforeApply func(next []string)

// isHubJobsSource: s is a HubJobsSource (an edge's jobs).
func isHubJobsSource(s *jetstream.StreamSource) bool {
	return s.External != nil && strings.HasPrefix(s.External.APIPrefix, "$JS.edge-")
}

// streamHubSources are the facilities whose edges RADGATE_JOBS sources,
// read from the stream's configuration.
func streamHubSources(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	s, err := js.Stream(ctx, StreamJobs)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamJobs, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamJobs, err)
	}
	var out []string
	for _, src := range info.Config.Sources {
		if isHubJobsSource(src) {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(src.External.APIPrefix, "$JS.edge-"), ".API"))
		}
	}
	return facilityTokens(out), nil
}

// facilityTokens are the facilities' subject tokens, sorted, without
// duplicates.
func facilityTokens(facilities []string) []string {
	out := make([]string, 0, len(facilities))
	for _, f := range facilities {
		out = append(out, Token(f))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// difference is what of a (sorted) is not in b.
func difference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
