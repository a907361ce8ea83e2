package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LinkSourceSilentAfter is how long a link source may go unheard from
// before radgate check reports it silent: a source's consumer at the
// origin sends a heartbeat every second, and nats-server re-creates a
// source it has not heard from this long (its source health check).
const LinkSourceSilentAfter = 10 * time.Second

// LinkSource is one link source of a stream as its server reports it (on
// the hub's RADGATE_JOBS, an edge's jobs; on an edge's RADGATE_RESULTS, the
// hub's results of its facility).
type LinkSource struct {
	// Facility is the facility's subject token (Token), read from the
	// source's deliver prefix (LinkPrefix).
	Facility string
	// Stream and Filter are the stream sourced at the other end and the
	// subjects taken from it.
	Stream, Filter string
	// Lag is how many messages the source is behind, as last heard.
	Lag uint64
	// Active is how long ago the source was last heard from (a message or
	// a heartbeat); negative: never since it was set up (or since its
	// stream's leader took over).
	Active time.Duration
	// Err is the error the server reports for the source ("" when none).
	Err string
}

// LinkSources are the link sources (those delivering on a LinkPrefix) in
// info, sorted by facility; the stream's other sources are left out.
func LinkSources(info *jetstream.StreamInfo) []LinkSource {
	if info == nil {
		return nil
	}
	var out []LinkSource
	for _, si := range info.Sources {
		if si == nil || si.External == nil {
			continue
		}
		f, ok := linkFacility(si.External.DeliverPrefix)
		if !ok {
			continue
		}
		s := LinkSource{Facility: f, Stream: si.Name, Filter: si.FilterSubject, Lag: si.Lag, Active: si.Active}
		if e := si.Error; e != nil {
			s.Err = fmt.Sprintf("%s (code %d, err_code %d)", e.Description, e.Code, e.ErrorCode)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b LinkSource) int { return strings.Compare(a.Facility, b.Facility) })
	return out
}

// linkFacility is the facility token of a link source's deliver prefix
// (LinkPrefix(facility) + ".jobs" or ".results").
func linkFacility(deliverPrefix string) (string, bool) {
	rest, ok := strings.CutPrefix(deliverPrefix, "radgate.link.")
	if !ok {
		return "", false
	}
	f, kind, ok := strings.Cut(rest, ".")
	if !ok || f == "" || (kind != "jobs" && kind != "results") {
		return "", false
	}
	return f, true
}

// Problem is why the source is not healthy, nil when it is: heard from
// within LinkSourceSilentAfter and no error reported.
func (s LinkSource) Problem() error {
	var why string
	switch {
	case s.Active < 0:
		why = "never heard from"
	case s.Active > LinkSourceSilentAfter:
		why = "silent for " + s.Active.Round(100*time.Millisecond).String()
	}
	if s.Err != "" {
		if why != "" {
			why += "; "
		}
		why += "nats-server reports: " + s.Err
	}
	if why == "" {
		return nil
	}
	return errors.New(why)
}

// Summary is the state of a healthy source: when last heard from and its
// lag.
func (s LinkSource) Summary() string {
	return fmt.Sprintf("heard from %s ago, lag %d", s.Active.Round(100*time.Millisecond), s.Lag)
}

// LinkSourcesHealth sums up many link sources (the hub's, one per edge):
// how many are healthy and their largest lag, and those that are not.
type LinkSourcesHealth struct {
	Total, OK int
	// MaxLag is the largest lag of the healthy sources.
	MaxLag uint64
	// Unhealthy are the sources with a Problem, in order.
	Unhealthy []LinkSource
}

// SumLinkSources is ss's LinkSourcesHealth.
func SumLinkSources(ss []LinkSource) LinkSourcesHealth {
	h := LinkSourcesHealth{Total: len(ss)}
	for _, s := range ss {
		if s.Problem() != nil {
			h.Unhealthy = append(h.Unhealthy, s)
			continue
		}
		h.OK++
		h.MaxLag = max(h.MaxLag, s.Lag)
	}
	return h
}
