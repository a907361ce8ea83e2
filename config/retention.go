package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Retention bounds what radgate keeps in JetStream, store by store: how
// long (max_age) and how much (max_bytes). Both are applied to the streams
// and buckets when radgate serve starts, so a change takes effect on the
// next restart. max_age 0 keeps entries until a size limit needs their room
// (or forever); max_bytes 0 sets no size limit.
//
// A store that reaches max_bytes refuses new writes, except the dlq, which
// drops its oldest dead letters: a refused order is answered 503 (FHIR) or
// AE with ERR-3 207 (HL7 v2) so the sender resends it, and a stage that
// cannot write retries its message later; nothing accepted is dropped. The
// radgate_storage_used_ratio{store} metric and a log warning above 80 % say
// when a store nears its limit (README, "Retention").
type Retention struct {
	// OrderEvents is the stream of accepted intake events (RADGATE_ORDERS;
	// default max_age 30d). order_state must cover the longest study wait plus orders.watch_after.
	OrderEvents StoreLimits `yaml:"order_events"`
	// Jobs is the work queue of scoring jobs (RADGATE_JOBS; default 30d).
	Jobs StoreLimits `yaml:"jobs"`
	// Results is the stream of results every destination reads
	// (RADGATE_RESULTS; default 30d). max_age must cover
	// orders.delivery_window.
	Results StoreLimits `yaml:"results"`
	// DLQ is the dead-letter stream (RADGATE_DLQ; default 90d), what
	// radgate dlq lists and replays.
	DLQ StoreLimits `yaml:"dlq"`
	// OrderState is the order state and reference index (KV bucket
	// radgate_orders; default 90d since an order's last change): what GET
	// /orders/{id} shows. Its max_age must not be shorter than that of
	// order_events, jobs, results or dlq, whose messages name orders.
	OrderState StoreLimits `yaml:"order_state"`
	// Heatmaps are the heatmap PNGs results point to (object store
	// radgate_heatmaps; default 30d). max_age must cover
	// orders.delivery_window.
	Heatmaps StoreLimits `yaml:"heatmaps"`
	// HL7Outbox holds every ORU^R01 sent to a RIS with its delivery record
	// (object store radgate_hl7_out, radgate hl7 list/show/resend; default
	// 90d). max_age must cover orders.delivery_window.
	HL7Outbox StoreLimits `yaml:"hl7_outbox"`
	// Images are the instances pushed to radgate's Storage SCP (dimse),
	// kept until they are scored and a while after for amendments (stream
	// RADGATE_IMAGES, and object store radgate_images with its index
	// radgate_studies for instances above NATS's max_payload; default 7d;
	// max_bytes bounds each of the two and dimse.min_free_bytes is checked
	// against their sum). The PACS, not radgate, is the archive.
	Images StoreLimits `yaml:"images"`
	// Usage is the analyses counted for billing (KV bucket radgate_usage;
	// default kept forever). With a max_age, radgate usage reports only
	// months still kept.
	Usage StoreLimits `yaml:"usage"`
}

// StoreLimits bound one stream or bucket.
type StoreLimits struct {
	// MaxAge: entries older than this are removed ("30d", "720h"; 0:
	// no age limit).
	MaxAge Age `yaml:"max_age"`
	// MaxBytes: the most the store holds ("10GiB", "500MB", or bytes; 0: no
	// size limit).
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// DefaultRetention is the retention section's defaults: the ages radgate
// always kept, now with order state and the HL7 outbox bounded too, usage
// kept forever, and no size limit anywhere.
func DefaultRetention() Retention {
	return Retention{
		OrderEvents: StoreLimits{MaxAge: 30 * Day},
		Jobs:        StoreLimits{MaxAge: 30 * Day},
		Results:     StoreLimits{MaxAge: 30 * Day},
		DLQ:         StoreLimits{MaxAge: 90 * Day},
		OrderState:  StoreLimits{MaxAge: 90 * Day},
		Heatmaps:    StoreLimits{MaxAge: 30 * Day},
		HL7Outbox:   StoreLimits{MaxAge: 90 * Day},
		Images:      StoreLimits{MaxAge: 7 * Day},
	}
}

// Age is a retention period: a Go duration ("36h") or whole days ("30d").
type Age time.Duration

// Day is an Age of 24 hours.
const Day = Age(24 * time.Hour)

// D returns a as a time.Duration.
func (a Age) D() time.Duration { return time.Duration(a) }

var daysRE = regexp.MustCompile(`^(\d+)d$`)

// UnmarshalYAML reads "30d", a Go duration or 0.
func (a *Age) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected an age such as 30d or 36h")
	}
	v := strings.TrimSpace(n.Value)
	if m := daysRE.FindStringSubmatch(v); m != nil {
		d, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || d > 100*365 {
			return fmt.Errorf("age %q is out of range (at most 36500d)", n.Value)
		}
		*a = Age(d) * Day
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("invalid age %q (use e.g. 30d, 36h; 0 for no age limit)", n.Value)
	}
	*a = Age(d)
	return nil
}

// MarshalYAML writes whole days as "30d", anything else as a duration.
func (a Age) MarshalYAML() (any, error) { return a.String(), nil }

func (a Age) String() string {
	if a != 0 && a%Day == 0 {
		return fmt.Sprintf("%dd", a/Day)
	}
	return time.Duration(a).String()
}

// ByteSize is a size in bytes, written as a number of bytes or with a unit:
// KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
type ByteSize int64

var sizeRE = regexp.MustCompile(`^(\d+)\s*([KMGT]i?B|B)?$`)

var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// UnmarshalYAML reads "10GiB", "500MB" or a number of bytes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as 10GiB or 500MB")
	}
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(n.Value))
	if m == nil {
		return fmt.Errorf("invalid size %q (use e.g. 10GiB, 500MB or a number of bytes; 0 for no size limit)", n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	unit := sizeUnits[m[2]]
	if err != nil || v > (1<<62)/unit {
		return fmt.Errorf("size %q is out of range", n.Value)
	}
	*b = ByteSize(v * unit)
	return nil
}

// MarshalYAML writes b with the largest binary unit that divides it.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

func (b ByteSize) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if b != 0 && int64(b)%sizeUnits[u] == 0 {
			return fmt.Sprintf("%d%s", int64(b)/sizeUnits[u], u)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// validateRetention checks the retention section against the orders
// section: a store must keep an entry as long as radgate may still need it.
func validateRetention(name string, root *yaml.Node, c *Config) Errors {
	var errs Errors
	bad := func(path, msg string) {
		e := Error{File: name, Message: fmt.Sprintf("%s: %s", path, msg)}
		for p := path; p != ""; p = p[:max(strings.LastIndex(p, "."), 0)] {
			if n := nodeAt(root, p); n != nil {
				e.Line, e.Column = n.Line, n.Column
				break
			}
		}
		errs = append(errs, e)
	}
	r := c.Retention
	stores := []struct {
		key string
		l   StoreLimits
	}{
		{"order_events", r.OrderEvents}, {"jobs", r.Jobs}, {"results", r.Results}, {"dlq", r.DLQ},
		{"order_state", r.OrderState}, {"heatmaps", r.Heatmaps}, {"hl7_outbox", r.HL7Outbox}, {"usage", r.Usage},
		{"images", r.Images},
	}
	for _, s := range stores {
		if s.l.MaxAge < 0 {
			bad("retention."+s.key+".max_age", "must not be negative (0: no age limit)")
		}
		if s.l.MaxBytes < 0 {
			bad("retention."+s.key+".max_bytes", "must not be negative (0: no size limit)")
		}
	}
	// atLeast reports a store whose age limit is below what radgate needs,
	// once per store.
	reported := map[string]bool{}
	atLeast := func(key string, got Age, need time.Duration, what, risk string) {
		if got > 0 && got.D() < need && !reported[key] {
			reported[key] = true
			bad("retention."+key+".max_age", fmt.Sprintf("%s is shorter than %s (%s): %s", got, what, Age(need), risk))
		}
	}
	longestWait := c.Orders.StudyWaitWindow.D()
	for _, o := range c.Orders.StudyWaitOverrides {
		longestWait = max(longestWait, o.Wait.D())
	}
	atLeast("order_state", r.OrderState.MaxAge, longestWait+c.Orders.WatchAfter.D(), "the longest orders.study_wait_window (or override) plus orders.watch_after",
		"an order could expire while it waits for its study")
	for _, s := range []struct {
		key string
		l   StoreLimits
	}{{"results", r.Results}, {"heatmaps", r.Heatmaps}, {"hl7_outbox", r.HL7Outbox}} {
		atLeast(s.key, s.l.MaxAge, c.Orders.DeliveryWindow.D(), "orders.delivery_window",
			"a result could expire while it is still being delivered")
	}
	// JetStream refuses a stream whose duplicate window (10m for the
	// order, job and result streams) is longer than its max age.
	const duplicateWindow = 10 * time.Minute
	for _, s := range stores[:3] {
		atLeast(s.key, s.l.MaxAge, duplicateWindow, "the duplicate window of radgate's streams", "JetStream would refuse the stream")
	}
	if keep := r.OrderState.MaxAge; keep > 0 {
		for _, s := range stores[:4] {
			if s.l.MaxAge == 0 || s.l.MaxAge > keep {
				kept := "kept with no age limit"
				if s.l.MaxAge > 0 {
					kept = "kept " + s.l.MaxAge.String()
				}
				bad("retention.order_state.max_age", fmt.Sprintf("%s is shorter than retention.%s.max_age (%s): its messages would name orders no longer stored", keep, s.key, kept))
				break
			}
		}
	}
	return errs
}
