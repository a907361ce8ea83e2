package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StateVersion is the version of the JetStream layout (streams, subjects,
// buckets, object stores) this radgate declares. A change to the layout
// that an existing install cannot simply be re-declared into bumps it and
// adds a Migration from the previous version.
//
// Versions: 1, the layout as of issue 16's first slice (and every install
// from before versions); 2, the facility as a subject token of the work
// streams (subjects.go; migrationFacilityToken).
const StateVersion = 2

// BucketMeta holds radgate's own facts about its JetStream state; the key
// KeyStateVersion records the layout's version (StateRecord).
const (
	BucketMeta      = "radgate_meta"
	KeyStateVersion = "state_version"
)

// RadgateVersion is recorded beside the state version (cmd/radgate sets it
// to the build's version).
var RadgateVersion = "dev"

// migrationLease is how long a migration's claim on the state version
// holds other starters off; a claim older than this is taken to be of a
// process that died mid-migration, and is taken over.
var migrationLease = 10 * time.Minute

// StateRecord is the value of KeyStateVersion in BucketMeta.
type StateRecord struct {
	StateVersion   int    `json:"state_version"`
	RadgateVersion string `json:"radgate_version"`
	// Migration names the last migration that brought the state to
	// StateVersion; empty for a version written at install.
	Migration string `json:"migration,omitempty"`
	// MigratingTo, Owner and Since are set while a process runs the
	// migration to MigratingTo: the claim other starters wait on.
	MigratingTo int       `json:"migrating_to,omitempty"`
	Owner       string    `json:"owner,omitempty"`
	Since       time.Time `json:"since,omitzero"`
}

// Migration brings the JetStream state from version From to To (To is
// From+1). Run must be safe to run again after a crash midway (the claim
// is taken over after a lease, and Run starts again).
type Migration struct {
	From, To int
	Name     string
	Run      func(ctx context.Context, js jetstream.JetStream) error
}

// Migrations are the registered migrations, in order.
var Migrations = []Migration{migrationFacilityToken}

// NewerStateError is the refusal to start on a state a later radgate wrote.
type NewerStateError struct{ Found, Known int }

func (e *NewerStateError) Error() string {
	return fmt.Sprintf("JetStream state is version %d, this radgate knows up to %d: upgrade radgate or restore a backup made by this version",
		e.Found, e.Known)
}

// EnsureStateVersion reads the state version in BucketMeta (creating the
// bucket) and brings it to StateVersion with Migrations; see ensureState.
func EnsureStateVersion(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (StateRecord, error) {
	return ensureState(ctx, js, StateVersion, Migrations, logger)
}

// ensureState makes the recorded state version current: none recorded →
// current is written on a fresh install, 1 on one from before versions
// (radgate's streams there: the log says which), then migrated; equal → nothing; older → each migration from it is
// run in order by exactly one process (its claim is a KV update at the
// revision it read: a concurrent starter's update fails and it waits for
// the claim to be released) and recorded; newer → a NewerStateError.
func ensureState(ctx context.Context, js jetstream.JetStream, current int, migs []Migration, logger *slog.Logger) (StateRecord, error) {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "nats", "bucket", BucketMeta)
	meta, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketMeta,
		Description: "radgate's JetStream state version and the migrations that brought it there",
		Storage:     jetstream.FileStorage, History: 16})
	if err != nil {
		return StateRecord{}, fmt.Errorf("creating bucket %s: %w", BucketMeta, err)
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d", host, os.Getpid())
	for {
		e, err := meta.Get(ctx, KeyStateVersion)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			install := "fresh"
			rec := StateRecord{StateVersion: current, RadgateVersion: RadgateVersion}
			if _, err := js.Stream(ctx, StreamOrders); err == nil {
				// Radgate's streams from before versions: version 1's
				// layout, recorded as such and migrated from there.
				install, rec.StateVersion = "pre-versioned", min(current, 1)
			}
			b, _ := json.Marshal(rec)
			if _, err := meta.Create(ctx, KeyStateVersion, b); err != nil {
				if errors.Is(err, jetstream.ErrKeyExists) {
					continue // another starter recorded it first
				}
				return StateRecord{}, fmt.Errorf("recording the state version in %s: %w", BucketMeta, err)
			}
			log.Info("JetStream state version recorded", "state_version", rec.StateVersion, "install", install)
			if rec.StateVersion != current {
				continue
			}
			return rec, nil
		}
		if err != nil {
			return StateRecord{}, fmt.Errorf("reading the state version in %s: %w", BucketMeta, err)
		}
		var rec StateRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.StateVersion < 1 {
			return StateRecord{}, fmt.Errorf("%s %s holds %q, not a state version", BucketMeta, KeyStateVersion, e.Value())
		}
		if rec.StateVersion > current {
			return rec, &NewerStateError{Found: rec.StateVersion, Known: current}
		}
		if rec.MigratingTo != 0 && time.Since(rec.Since) < migrationLease {
			log.Info("waiting for another radgate's migration", "state_version", rec.StateVersion,
				"migrating_to", rec.MigratingTo, "owner", rec.Owner)
			select {
			case <-ctx.Done():
				return rec, fmt.Errorf("waiting for %s's migration of the JetStream state to version %d: %w", rec.Owner, rec.MigratingTo, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		if rec.StateVersion == current && rec.MigratingTo == 0 {
			return rec, nil
		}
		if rec.StateVersion == current { // a stale claim on a finished state
			rec.MigratingTo, rec.Owner, rec.Since = 0, "", time.Time{}
			b, _ := json.Marshal(rec)
			if _, err := meta.Update(ctx, KeyStateVersion, b, e.Revision()); err != nil && !isRevisionConflict(err) {
				return rec, fmt.Errorf("clearing a stale migration claim in %s: %w", BucketMeta, err)
			}
			continue
		}
		var m *Migration
		for i := range migs {
			if migs[i].From == rec.StateVersion {
				m = &migs[i]
				break
			}
		}
		if m == nil {
			return rec, fmt.Errorf("JetStream state is version %d and this radgate has no migration from it to %d: restore a backup or use the radgate that wrote it",
				rec.StateVersion, current)
		}
		claim := rec
		claim.MigratingTo, claim.Owner, claim.Since = m.To, owner, time.Now().UTC()
		b, _ := json.Marshal(claim)
		rev, err := meta.Update(ctx, KeyStateVersion, b, e.Revision())
		if isRevisionConflict(err) {
			continue // another starter claimed it
		} else if err != nil {
			return rec, fmt.Errorf("claiming the JetStream state for migration %s: %w", m.Name, err)
		}
		log.Info("migrating JetStream state", "from", m.From, "to", m.To, "migration", m.Name)
		start := time.Now()
		if err := m.Run(ctx, js); err != nil {
			b, _ := json.Marshal(rec)
			if _, uerr := meta.Update(context.WithoutCancel(ctx), KeyStateVersion, b, rev); uerr != nil {
				log.Warn("releasing the migration claim", "err", uerr)
			}
			return rec, fmt.Errorf("migration %s (state version %d to %d): %w", m.Name, m.From, m.To, err)
		}
		done := StateRecord{StateVersion: m.To, RadgateVersion: RadgateVersion, Migration: m.Name}
		b, _ = json.Marshal(done)
		if _, err := meta.Update(ctx, KeyStateVersion, b, rev); err != nil {
			return rec, fmt.Errorf("recording migration %s in %s: %w", m.Name, BucketMeta, err)
		}
		log.Info("JetStream state migrated", "from", m.From, "to", m.To, "migration", m.Name,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// ReadStateVersion reads the recorded state version without creating or
// changing anything; found is false when none is recorded (no radgate
// started yet, or one from before versions).
func ReadStateVersion(ctx context.Context, js jetstream.JetStream) (rec StateRecord, found bool, err error) {
	kv, err := js.KeyValue(ctx, BucketMeta)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return rec, false, nil
	} else if err != nil {
		return rec, false, fmt.Errorf("opening bucket %s: %w", BucketMeta, err)
	}
	e, err := kv.Get(ctx, KeyStateVersion)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, false, nil
	} else if err != nil {
		return rec, false, fmt.Errorf("reading the state version in %s: %w", BucketMeta, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.StateVersion < 1 {
		return rec, false, fmt.Errorf("%s %s holds %q, not a state version", BucketMeta, KeyStateVersion, e.Value())
	}
	return rec, true, nil
}

// CheckStateVersion says what radgate serve will make of the recorded
// state version (radgate check --connect): a line, and an error when serve
// would refuse to start.
func CheckStateVersion(ctx context.Context, js jetstream.JetStream) (string, error) {
	rec, found, err := ReadStateVersion(ctx, js)
	switch {
	case err != nil:
		return "JetStream state version", err
	case !found:
		return fmt.Sprintf("JetStream state version: none recorded (radgate serve records %d at its next start)", StateVersion), nil
	case rec.StateVersion > StateVersion:
		return fmt.Sprintf("JetStream state version %d (radgate %s)", rec.StateVersion, rec.RadgateVersion),
			&NewerStateError{Found: rec.StateVersion, Known: StateVersion}
	case rec.MigratingTo != 0:
		return fmt.Sprintf("JetStream state version %d, being migrated to %d by %s since %s", rec.StateVersion,
			rec.MigratingTo, rec.Owner, rec.Since.Format(time.RFC3339)), nil
	case rec.StateVersion < StateVersion:
		var names []string
		for _, m := range Migrations {
			if m.From >= rec.StateVersion {
				names = append(names, m.Name)
			}
		}
		return fmt.Sprintf("JetStream state version %d (radgate %s): radgate serve migrates it to %d at its next start (%s)",
			rec.StateVersion, rec.RadgateVersion, StateVersion, strings.Join(names, ", ")), nil
	}
	return fmt.Sprintf("JetStream state version %d (radgate %s), as this radgate's", rec.StateVersion, rec.RadgateVersion), nil
}

// isRevisionConflict reports whether err is a KV create or update that
// lost to a concurrent writer.
func isRevisionConflict(err error) bool {
	return err != nil && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || IsWrongSequence(err))
}
