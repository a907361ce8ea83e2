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
// comes from a marker per result id created with KV Create (which fails if
// the key exists): a redelivered or replayed result finds its marker and is
// not counted again.
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
}

// EnsureUsageMeter creates (or opens) the usage buckets.
func EnsureUsageMeter(ctx context.Context, js jetstream.JetStream) (*UsageMeter, error) {
	counts, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketUsage, Description: "analyses per day × engine × facility",
		Storage: jetstream.FileStorage, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", BucketUsage, err)
	}
	seen, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketUsageSeen, Description: "result ids already counted",
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

func usageKey(day time.Time, engine, facility string) string {
	if facility == "" {
		facility = UnknownFacility
	}
	// Facility names are free text: hex keeps any of them a valid key token.
	return "u." + day.UTC().Format("2006-01-02") + "." + broker.Token(engine) + "." + hex.EncodeToString([]byte(facility))
}

// Count records one analysis for result id, unless it was already counted.
// It reports whether this call counted it.
func (u *UsageMeter) Count(ctx context.Context, resultID, engine, facility string, at time.Time) (bool, error) {
	if _, err := u.seen.Create(ctx, "r."+resultID, []byte(at.UTC().Format(time.RFC3339))); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("marking result %s counted: %w", resultID, err)
	}
	key := usageKey(at, engine, facility)
	for attempt := 0; attempt < 50; attempt++ {
		e, err := u.counts.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := u.counts.Create(ctx, key, []byte("1")); err == nil {
				return true, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return false, u.undo(ctx, resultID, err)
			}
		case err != nil:
			return false, u.undo(ctx, resultID, err)
		default:
			n, perr := strconv.ParseUint(string(e.Value()), 10, 64)
			if perr != nil {
				return false, u.undo(ctx, resultID, fmt.Errorf("usage count %s is %q: %w", key, e.Value(), perr))
			}
			if _, err := u.counts.Update(ctx, key, []byte(strconv.FormatUint(n+1, 10)), e.Revision()); err == nil {
				return true, nil
			} else if !broker.IsWrongSequence(err) {
				return false, u.undo(ctx, resultID, err)
			}
		}
	}
	return false, u.undo(ctx, resultID, errors.New("too much contention on the usage count"))
}

// undo removes the marker of a count that did not happen, so a retry counts.
func (u *UsageMeter) undo(ctx context.Context, resultID string, cause error) error {
	_ = u.seen.Delete(ctx, "r."+resultID)
	return fmt.Errorf("counting usage: %w", cause)
}

// UsageRow is one facility × engine count for a period.
type UsageRow struct {
	Facility string `json:"facility"`
	Engine   string `json:"engine"`
	Analyses uint64 `json:"analyses"`
}

// Month sums the counts of a month ("2026-11"), sorted by facility, engine.
func (u *UsageMeter) Month(ctx context.Context, month string) ([]UsageRow, error) {
	if _, err := time.Parse("2006-01", month); err != nil {
		return nil, fmt.Errorf("month %q: want YYYY-MM", month)
	}
	lister, err := u.counts.ListKeysFiltered(ctx, "u.*.*.*")
	if err != nil {
		return nil, fmt.Errorf("listing usage: %w", err)
	}
	sums := map[[2]string]uint64{}
	for key := range lister.Keys() {
		parts := strings.SplitN(key, ".", 4) // u, day, engine, hex(facility)
		if len(parts) != 4 || !strings.HasPrefix(parts[1], month+"-") {
			continue
		}
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
