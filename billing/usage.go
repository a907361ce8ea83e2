package billing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/radgate/radgate/broker"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Usage metering: every analysis (a scored result) is counted per facility ×
// engine × day, for a monthly fee plus a per-case fee.
//
// Why JetStream KV and not SQLite: the counts live where the rest of
// radgate's state already is, so every radgate process of a cluster counts
// into the same place with no second database to run, back up or secure;
// the KV bucket is replicated with the stream storage. Exactly-once counting
// comes from KV Create (which fails if the key exists) on keys that name the
// result id: see Count.
const (
	BucketUsage     = "radgate_usage"
	BucketUsageSeen = "radgate_usage_seen"

	// UnknownFacility stands for an order that named no facility.
	UnknownFacility = "(unknown facility)"
)

// UsageMeter counts analyses durably.
type UsageMeter struct {
	counts jetstream.KeyValue
	seen   jetstream.KeyValue

	// crashAt, when set (tests), is called after each write of Count with
	// its name ("marked", "counted"); an error it returns ends Count there,
	// as a crash would.
	crashAt func(step string) error
}

// EnsureUsageMeter is EnsureUsageMeterWith no limits: counts kept forever.
func EnsureUsageMeter(ctx context.Context, js jetstream.JetStream) (*UsageMeter, error) {
	return EnsureUsageMeterWith(ctx, js, broker.Limits{})
}

// EnsureUsageMeterWith creates the usage buckets, or updates the counts'
// limits (config retention.usage; zero: kept forever, no size limit). A
// full bucket refuses new counts: Count fails and the pipeline retries it.
func EnsureUsageMeterWith(ctx context.Context, js jetstream.JetStream, limits broker.Limits) (*UsageMeter, error) {
	maxBytes := limits.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	counts, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketUsage, Description: "analyses per day × engine × facility, one entry per result",
		Storage: jetstream.FileStorage, History: 1, TTL: limits.MaxAge, MaxBytes: maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketUsage, err)
	}
	seen, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketUsageSeen, Description: "result ids being or already counted, with their count key",
		Storage: jetstream.FileStorage, History: 1, TTL: 400 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketUsageSeen, err)
	}
	return &UsageMeter{counts: counts, seen: seen}, nil
}

// OpenUsageMeter opens existing usage buckets (for `radgate usage`).
func OpenUsageMeter(ctx context.Context, js jetstream.JetStream) (*UsageMeter, error) {
	counts, err := js.KeyValue(ctx, BucketUsage)
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s (has radgate serve run with this NATS?): %w", BucketUsage, err)
	}
	return &UsageMeter{counts: counts}, nil
}

// countKey is the count key of an analysis: "c.<month>.<day of month>.
// <engine>.<hex facility>", under which each result counted has its entry.
func countKey(day time.Time, engine, facility string) string {
	if facility == "" {
		facility = UnknownFacility
	}
	// Facility names are free text: hex keeps any of them a valid key token.
	return "c." + day.UTC().Format("2006-01.02") + "." + broker.Token(engine) + "." + hex.EncodeToString([]byte(facility))
}

// Count records one analysis for result id, unless it was already counted.
// It reports whether this call counted it.
//
// It writes twice, in this order:
//
//  1. the marker r.<result id> in BucketUsageSeen (KV Create: once per
//     result), holding the count key of the first attempt: its day, engine
//     and facility. When the marker exists, Count takes the key from it.
//  2. the count: the entry <count key>.<hex result id> in BucketUsage (KV
//     Create: once per result). The result is counted exactly when this
//     entry exists; Month counts entries.
//
// Each write is idempotent per result id, so a crash or a failed write at
// any point neither loses nor doubles a count, provided the caller retries
// a Count that did not return (the pipeline does: the job is redelivered
// and its result published again). After 1 alone there is a marker and no
// count: the retry reads the marker and creates the count, under the first
// attempt's key even if the retried scoring ends on another day. After 2
// the retry finds the count and reports false. The order matters: the
// marker first pins the key, so that no retry can create a second count
// under another day. (Before, the marker meant "counted" and was written
// before the increment: a crash between lost the count for good.)
//
// A marker holding a time instead of a key was written by an older radgate
// that counted into u.<day>.<engine>.<facility> totals: that result was
// counted there, and is not counted again.
func (u *UsageMeter) Count(ctx context.Context, resultID, engine, facility string, at time.Time) (bool, error) {
	marker := "r." + resultID
	key := countKey(at, engine, facility)
	if _, err := u.seen.Create(ctx, marker, []byte(key)); errors.Is(err, jetstream.ErrKeyExists) {
		e, err := u.seen.Get(ctx, marker)
		if err != nil {
			return false, fmt.Errorf("counting usage of result %s: reading its marker: %w", resultID, err)
		}
		if !strings.HasPrefix(string(e.Value()), "c.") {
			return false, nil // counted by an older radgate
		}
		key = string(e.Value())
	} else if err != nil {
		return false, fmt.Errorf("counting usage of result %s: marking it: %w", resultID, err)
	}
	if err := u.crash("marked"); err != nil {
		return false, err
	}
	if _, err := u.counts.Create(ctx, key+"."+hex.EncodeToString([]byte(resultID)), []byte(at.UTC().Format(time.RFC3339))); errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("counting usage of result %s: %w", resultID, err)
	}
	if err := u.crash("counted"); err != nil {
		return false, err
	}
	return true, nil
}

func (u *UsageMeter) crash(step string) error {
	if u.crashAt == nil {
		return nil
	}
	return u.crashAt(step)
}

// UsageRow is one facility × engine count for a period.
type UsageRow struct {
	Facility string `json:"facility"`
	Engine   string `json:"engine"`
	Analyses uint64 `json:"analyses"`
}

// Month sums the counts of a month ("2026-11"), sorted by facility, engine:
// the entries of each result counted, and the u.<day>.<engine>.<facility>
// totals an older radgate kept.
func (u *UsageMeter) Month(ctx context.Context, month string) ([]UsageRow, error) {
	if _, err := time.Parse("2006-01", month); err != nil {
		return nil, fmt.Errorf("month %q: want YYYY-MM", month)
	}
	lister, err := u.counts.ListKeysFiltered(ctx, "c."+month+".*.*.*.*", "u.*.*.*")
	if err != nil {
		return nil, fmt.Errorf("listing usage: %w", err)
	}
	sums := map[[2]string]uint64{}
	for key := range lister.Keys() {
		parts := strings.Split(key, ".")
		switch {
		case len(parts) == 6 && parts[0] == "c": // c, month, day, engine, hex(facility), hex(result id)
			if fac, err := hex.DecodeString(parts[4]); err == nil {
				sums[[2]string{string(fac), parts[3]}]++
			}
		case len(parts) == 4 && parts[0] == "u" && strings.HasPrefix(parts[1], month+"-"): // u, day, engine, hex(facility)
			fac, err := hex.DecodeString(parts[3])
			if err != nil {
				continue
			}
			e, err := u.counts.Get(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", key, err)
			}
			n, err := strconv.ParseUint(string(e.Value()), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("usage count %s is %q", key, e.Value())
			}
			sums[[2]string{string(fac), parts[2]}] += n
		}
	}
	rows := make([]UsageRow, 0, len(sums))
	for k, n := range sums {
		rows = append(rows, UsageRow{Facility: k[0], Engine: k[1], Analyses: n})
	}
	slices.SortFunc(rows, func(a, b UsageRow) int {
		if c := strings.Compare(a.Facility, b.Facility); c != 0 {
			return c
		}
		return strings.Compare(a.Engine, b.Engine)
	})
	return rows, nil
}
