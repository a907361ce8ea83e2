package broker

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// linkSourceInfo is a StreamSourceInfo as nats-server reports a
// HubJobsSource of facility.
func linkSourceInfo(facility string, lag uint64, active time.Duration, apiErr *jetstream.APIError) *jetstream.StreamSourceInfo {
	src := HubJobsSource(facility)
	return &jetstream.StreamSourceInfo{Name: src.Name, FilterSubject: src.FilterSubject, External: src.External,
		Lag: lag, Active: active, Error: apiErr}
}

// LinkSources reads each link source's health from a stream's info:
// active (heard from within 10 s, with its lag), never heard from, silent,
// with an error; other sources are left out, and the rest sorted by
// facility.
func TestLinkSources(t *testing.T) {
	info := &jetstream.StreamInfo{Sources: []*jetstream.StreamSourceInfo{
		linkSourceInfo("st-mary", 0, -1, nil),
		linkSourceInfo("general-hospital", 12, 800*time.Millisecond, nil),
		linkSourceInfo("north", 0, 25400*time.Millisecond, nil),
		linkSourceInfo("east", 3, 2*time.Second, &jetstream.APIError{Code: 503, ErrorCode: 10141, Description: "consumer setup failed"}),
		linkSourceInfo("west", 0, LinkSourceSilentAfter, nil),
		{Name: "OTHER", Active: -1}, // not a link source
		{Name: "OTHER2", Active: -1, External: &jetstream.ExternalStream{APIPrefix: "$JS.x.API", DeliverPrefix: "elsewhere.jobs"}},
		// An edge's results source.
		{Name: StreamResults, FilterSubject: ResultsFilter("south"), External: EdgeResultsSource("south").External, Lag: 1, Active: 300 * time.Millisecond},
	}}
	ss := LinkSources(info)
	var facilities []string
	for _, s := range ss {
		facilities = append(facilities, s.Facility)
	}
	require.Equal(t, []string{"east", "general-hospital", "north", "south", "st-mary", "west"}, facilities)

	byFacility := map[string]LinkSource{}
	for _, s := range ss {
		byFacility[s.Facility] = s
	}
	gh := byFacility["general-hospital"]
	require.NoError(t, gh.Problem())
	require.Equal(t, "heard from 800ms ago, lag 12", gh.Summary())
	require.Equal(t, StreamJobs, gh.Stream)
	require.Equal(t, JobsFilter("general-hospital"), gh.Filter)
	require.NoError(t, byFacility["south"].Problem())
	require.Equal(t, StreamResults, byFacility["south"].Stream)
	require.NoError(t, byFacility["west"].Problem(), "exactly 10 s is not yet silent")
	require.EqualError(t, byFacility["st-mary"].Problem(), "never heard from")
	require.EqualError(t, byFacility["north"].Problem(), "silent for 25.4s")
	require.EqualError(t, byFacility["east"].Problem(), "nats-server reports: consumer setup failed (code 503, err_code 10141)")

	withBoth := LinkSources(&jetstream.StreamInfo{Sources: []*jetstream.StreamSourceInfo{
		linkSourceInfo("x", 0, -1, &jetstream.APIError{Code: 500, Description: "boom"})}})
	require.EqualError(t, withBoth[0].Problem(), "never heard from; nats-server reports: boom (code 500, err_code 0)")

	h := SumLinkSources(ss)
	require.Equal(t, 6, h.Total)
	require.Equal(t, 3, h.OK)
	require.Equal(t, uint64(12), h.MaxLag, "the largest lag of the healthy sources")
	require.Len(t, h.Unhealthy, 3)
	require.Equal(t, []string{"east", "north", "st-mary"}, []string{h.Unhealthy[0].Facility, h.Unhealthy[1].Facility, h.Unhealthy[2].Facility})

	require.Empty(t, LinkSources(nil))
	require.Equal(t, LinkSourcesHealth{}, SumLinkSources(nil))
}
