package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadRetention(t *testing.T) {
	cfg, err := Load("radgate.yaml", []byte(`
retention:
  order_events: {max_age: 14d, max_bytes: 2GiB}
  results:
    max_bytes: 500MB
  dlq:
    max_age: 36h
  usage: {max_age: 3650d}
`))
	require.NoError(t, err)
	r := cfg.Retention
	require.Equal(t, StoreLimits{MaxAge: 14 * Day, MaxBytes: 2 << 30}, r.OrderEvents)
	require.Equal(t, StoreLimits{MaxAge: 30 * Day, MaxBytes: 500_000_000}, r.Results, "an unset max_age keeps its default")
	require.Equal(t, 36*time.Hour, r.DLQ.MaxAge.D())
	require.Equal(t, 3650*Day, r.Usage.MaxAge)
	require.Equal(t, DefaultRetention().HL7Outbox, r.HL7Outbox)
	require.Equal(t, "14d", r.OrderEvents.MaxAge.String())
	require.Equal(t, "2GiB", r.OrderEvents.MaxBytes.String())
	require.Equal(t, "36h0m0s", r.DLQ.MaxAge.String())
}

// radgate.yaml's defaults are the ones the broker applies when no
// configuration is given (broker.EnsureTopology, used by tests and tools).
func TestLoadRetentionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "unparsable age and size",
			yaml: "retention:\n  results: {max_age: a month, max_bytes: 10 gigs}\n",
			want: []string{
				`radgate.yaml:2:22: retention.results.max_age: invalid age "a month" (use e.g. 30d, 36h; 0 for no age limit)`,
				`radgate.yaml:2:42: retention.results.max_bytes: invalid size "10 gigs" (use e.g. 10GiB, 500MB or a number of bytes; 0 for no size limit)`,
			},
		},
		{
			name: "negative age",
			yaml: "retention:\n  jobs:\n    max_age: -1h\n",
			want: []string{
				`radgate.yaml:3:14: retention.jobs.max_age: must not be negative (0: no age limit)`,
			},
		},
		{
			name: "unknown store",
			yaml: "retention:\n  outbox: {max_age: 1d}\n",
			want: []string{
				`radgate.yaml:2:3: unknown key "outbox" in retention (known: order_events, jobs, results, dlq, order_state, heatmaps, hl7_outbox, images, usage)`,
			},
		},
		{
			name: "shorter than what radgate needs",
			yaml: "orders:\n  delivery_window: 2h\n  study_wait_window: 1m\nretention:\n  order_events: {max_age: 5m}\n  jobs: {max_age: 2m}\n  results: {max_age: 1h}\n  hl7_outbox: {max_age: 90m}\n",
			want: []string{
				`radgate.yaml:5:27: retention.order_events.max_age: 5m0s is shorter than the duplicate window of radgate's streams (10m0s): JetStream would refuse the stream`,
				`radgate.yaml:6:19: retention.jobs.max_age: 2m0s is shorter than the duplicate window of radgate's streams (10m0s): JetStream would refuse the stream`,
				`radgate.yaml:7:22: retention.results.max_age: 1h0m0s is shorter than orders.delivery_window (2h0m0s): a result could expire while it is still being delivered`,
				`radgate.yaml:8:25: retention.hl7_outbox.max_age: 1h30m0s is shorter than orders.delivery_window (2h0m0s): a result could expire while it is still being delivered`,
			},
		},
		{
			name: "order events shorter than the study wait",
			yaml: "orders:\n  study_wait_overrides: [{priority: routine, wait: 240h}]\nretention:\n  order_state: {max_age: 10d}\n  dlq: {max_age: 10d}\n",
			want: []string{
				`radgate.yaml:4:26: retention.order_state.max_age: 10d is shorter than the longest orders.study_wait_window (or override) plus orders.watch_after (242h0m0s): an order could expire while it waits for its study`,
				`radgate.yaml:4:26: retention.order_state.max_age: 10d is shorter than retention.order_events.max_age (kept 30d): its messages would name orders no longer stored`,
			},
		},
		{
			name: "order state kept less long than the dead letters naming it",
			yaml: "retention:\n  order_state:\n    max_age: 60d\n",
			want: []string{
				`radgate.yaml:3:14: retention.order_state.max_age: 60d is shorter than retention.dlq.max_age (kept 90d): its messages would name orders no longer stored`,
			},
		},
		{
			name: "order state bounded while results are kept forever",
			yaml: "retention:\n  results: {max_age: 0}\n",
			want: []string{
				`radgate.yaml:2:3: retention.order_state.max_age: 90d is shorter than retention.results.max_age (kept with no age limit): its messages would name orders no longer stored`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("radgate.yaml", []byte(tc.yaml))
			require.Error(t, err)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.want, got)
		})
	}
}
