package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamHealth is one of radgate's streams (a KV bucket or object store is
// a stream too, KV_… and OBJ_…) as the cluster reports it.
type StreamHealth struct {
	// Name is the stream's, Kind "stream", "bucket" or "object store",
	// Bucket the bucket's name for those.
	Name, Kind, Bucket string
	// Replicas is the configured number of copies.
	Replicas int
	// Leader is the server that leads it; "" when none is elected.
	Leader string
	// Peers are the other copies.
	Peers []jetstream.PeerInfo
	// Unanswered: the stream exists but nobody answered for it (its leader
	// is gone and no new one is elected yet).
	Unanswered bool
}

// What names it as a report line does: "stream RADGATE_ORDERS", "bucket
// radgate_orders".
func (s StreamHealth) What() string {
	if s.Bucket != "" {
		return s.Kind + " " + s.Bucket
	}
	return s.Kind + " " + s.Name
}

// Summary is its leader and each replica's state: "leader n1; n2 current,
// n3 offline (lag 12)".
func (s StreamHealth) Summary() string {
	if s.Unanswered {
		return "no answer from its leader"
	}
	if s.Replicas <= 1 && s.Leader == "" {
		return "1 copy (no cluster)"
	}
	leader := s.Leader
	if leader == "" {
		leader = "none"
	}
	parts := []string{fmt.Sprintf("%d replicas, leader %s", s.Replicas, leader)}
	for _, p := range s.Peers {
		state := "current"
		switch {
		case p.Offline:
			state = "offline"
		case !p.Current:
			state = "behind"
		}
		if d := peerDetail(p); d != "" {
			state += " (" + d + ")"
		}
		parts = append(parts, p.Name+" "+state)
	}
	return strings.Join(parts, "; ")
}

// Problem says what is wrong with it, or nil: no leader, fewer replicas
// than configured, a replica offline or not current.
func (s StreamHealth) Problem() error {
	var probs []string
	if s.Unanswered {
		return errors.New("no leader answers for it: writes fail until one is elected")
	}
	if s.Leader == "" && s.Replicas > 1 {
		probs = append(probs, "no leader: writes fail until one is elected")
	}
	if s.Replicas > 1 && len(s.Peers)+1 < s.Replicas {
		probs = append(probs, fmt.Sprintf("%d of %d replicas known", len(s.Peers)+1, s.Replicas))
	}
	for _, p := range s.Peers {
		switch {
		case p.Offline:
			probs = append(probs, "replica "+p.Name+" offline")
		case !p.Current:
			what := "replica " + p.Name + " not current"
			if d := peerDetail(p); d != "" {
				what += " (" + d + ")"
			}
			probs = append(probs, what)
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return errors.New(strings.Join(probs, ", "))
}

// IsRadgate reports whether a stream is one of radgate's: RADGATE_…, or a
// bucket or object store named radgate_….
func IsRadgate(stream string) bool {
	return strings.HasPrefix(stream, "RADGATE_") || strings.HasPrefix(stream, "KV_radgate_") ||
		strings.HasPrefix(stream, "OBJ_radgate_")
}

// ClusterHealth reads the state of every radgate stream, bucket and object
// store on js, by name. An error is the JetStream API not answering at all
// (no meta leader, or no JetStream): then nothing can be created or
// looked up.
func ClusterHealth(ctx context.Context, js jetstream.JetStream) ([]StreamHealth, error) {
	// The names come from the meta leader; the infos from each stream's
	// leader, so a stream without one is missing from the list.
	names := js.StreamNames(ctx)
	unanswered := map[string]bool{}
	for name := range names.Name() {
		if IsRadgate(name) {
			unanswered[name] = true
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("listing streams (is there a JetStream meta leader?): %w", err)
	}
	lister := js.ListStreams(ctx)
	var out []StreamHealth
	for info := range lister.Info() {
		delete(unanswered, info.Config.Name)
		if !IsRadgate(info.Config.Name) {
			continue
		}
		h := StreamHealth{Name: info.Config.Name, Kind: "stream", Replicas: max(info.Config.Replicas, 1)}.named()
		if c := info.Cluster; c != nil {
			h.Leader = c.Leader
			for _, p := range c.Replicas {
				if p != nil {
					h.Peers = append(h.Peers, *p)
				}
			}
		}
		out = append(out, h)
	}
	if err := lister.Err(); err != nil {
		return out, fmt.Errorf("listing streams (is there a JetStream meta leader?): %w", err)
	}
	for name := range unanswered {
		h := StreamHealth{Name: name, Kind: "stream", Unanswered: true}
		out = append(out, h.named())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// named sets Kind and Bucket from the stream's name.
func (s StreamHealth) named() StreamHealth {
	switch {
	case strings.HasPrefix(s.Name, "KV_"):
		s.Kind, s.Bucket = "bucket", strings.TrimPrefix(s.Name, "KV_")
	case strings.HasPrefix(s.Name, "OBJ_"):
		s.Kind, s.Bucket = "object store", strings.TrimPrefix(s.Name, "OBJ_")
	}
	return s
}

// peerDetail is a replica's lag and, when it has not been heard from for
// over two seconds, how long: "lag 12, last seen 6s ago".
func peerDetail(p jetstream.PeerInfo) string {
	var d []string
	if p.Lag > 0 {
		d = append(d, fmt.Sprintf("lag %d", p.Lag))
	}
	if p.Active > 2*time.Second {
		d = append(d, "last seen "+p.Active.Round(time.Second).String()+" ago")
	}
	return strings.Join(d, ", ")
}
